"""``forgeml ab``: A/B experiments between versions of a model — start, status, weights,
conclude, list."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from forgeml.cli.options import OutputFormat, OutputOpt, RegistryOpt, registry_uri

if TYPE_CHECKING:
    from forgeml.experiments.analysis import ExperimentStatus
    from forgeml.experiments.spec import Experiment

app = typer.Typer(
    help="A/B experiments between versions of a model: split traffic, measure, promote.",
    no_args_is_help=True,
)


class MetricKind(StrEnum):
    binary = "binary"
    continuous = "continuous"


ModelArg = Annotated[str, typer.Argument(help="Model name.")]
VariantsOpt = Annotated[
    str,
    typer.Option(
        "--variants",
        help="Variants and their traffic shares, NAME:WEIGHT,... summing to 1; each NAME "
        "an alias (champion, challenger) or a version (3 or v3). The first is the control.",
    ),
]


@app.command("start")
def start(
    model: ModelArg,
    unit: Annotated[
        str, typer.Option(help="Field of requests and feedback that identifies a unit (user_id).")
    ],
    metric: Annotated[str, typer.Option(help="The outcome measured (converted, revenue).")],
    variants: VariantsOpt = "champion:0.9,challenger:0.1",
    kind: Annotated[
        MetricKind, typer.Option(help="binary (converted or not) or continuous (a value).")
    ] = MetricKind.binary,
    name: Annotated[
        str | None,
        typer.Option(help="Experiment name (default: MODEL-<UTC time>).", show_default=False),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(help="The control answers every request; other variants score it too."),
    ] = False,
    alias: Annotated[
        str, typer.Option(help="The alias the server splits and a promotion moves.")
    ] = "champion",
    control: Annotated[
        str | None,
        typer.Option(help="The variant others are compared with (default: the first)."),
    ] = None,
    lower_is_better: Annotated[
        bool, typer.Option(help="A lower metric is better (e.g. churned, cost).")
    ] = False,
    alpha: Annotated[float, typer.Option(help="Significance level of the decision.")] = 0.05,
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Start an experiment: servers split MODEL's ALIAS traffic between the variants."""
    from forgeml.workflow.ab import ab_start

    experiment = ab_start(
        registry_uri(registry),
        model,
        unit=unit,
        metric=metric,
        variants=variants,
        metric_kind=kind.value,
        name=name,
        shadow=shadow,
        alias=alias,
        control=control,
        higher_is_better=not lower_is_better,
        alpha=alpha,
    )
    _changed(experiment.to_dict(), output, f"started {_describe(experiment)}")


@app.command("status")
def status(
    model: ModelArg,
    log: Annotated[
        str | None,
        typer.Option(
            help="Log store with the exposures and outcomes (default: the registry's).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="An experiment by name (default: the running one, else the latest)."),
    ] = None,
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Exposures, outcomes, effect with its interval, SRM check, guardrails and the
    decision with its reasons. Each look at a running experiment is recorded, so repeated
    looks keep the always-valid p-value valid."""
    from forgeml.cli.output import emit_json
    from forgeml.workflow.ab import ab_status

    result = ab_status(registry_uri(registry), model, log=log, name=name)
    if output == OutputFormat.json:
        emit_json(result.to_dict())
    else:
        _print_status(result)


@app.command("weights")
def weights(
    model: ModelArg,
    variants: Annotated[
        str,
        typer.Option("--variants", help="New traffic shares of the same variants, NAME:WEIGHT,..."),
    ],
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Change the traffic shares of the running experiment (units that change variant are
    left out of its analysis from then on)."""
    from forgeml.workflow.ab import ab_weights

    experiment, moved = ab_weights(registry_uri(registry), model, variants)
    shares = ", ".join(f"{v}:{w:g}" for v, w in experiment.variants.items())
    _changed(
        {**experiment.to_dict(), "moved_share": moved},
        output,
        f"{experiment.name}: weights now {shares}; {moved:.1%} of units change variant "
        "and leave the analysis",
    )


@app.command("conclude")
def conclude(
    model: ModelArg,
    promote: Annotated[
        str | None,
        typer.Option(help="Promote this variant: the alias moves to its version."),
    ] = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="End it without moving the alias.")
    ] = False,
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """End the running experiment: --promote VARIANT or --rollback."""
    from forgeml.workflow.ab import ab_conclude

    experiment, change = ab_conclude(
        registry_uri(registry), model, promote=promote, rollback=rollback
    )
    alias = experiment.alias
    if promote is None:
        line = f"{experiment.name} concluded: rolled back, {model}@{alias} unchanged"
    elif change is None:
        line = f"{experiment.name} concluded: {promote} promoted, {model}@{alias} already there"
    else:
        line = (
            f"{experiment.name} concluded: {promote} promoted, {model}@{alias}: "
            f"{change.from_version or '-'} -> {change.to_version}"
        )
    moved = None
    if change is not None:
        moved = {k: getattr(change, k) for k in ("alias", "from_version", "to_version")}
    _changed({**experiment.to_dict(), "alias_change": moved}, output, line)


@app.command("list")
def list_experiments(
    model: Annotated[str | None, typer.Argument(help="Only this model's.")] = None,
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """List experiments, oldest first."""
    from forgeml.cli.output import emit_json, out_console
    from forgeml.workflow.ab import ab_list

    found = ab_list(registry_uri(registry), model)
    if output == OutputFormat.json:
        emit_json([e.to_dict() for e in found])
        return
    if not found:
        out_console.print("no experiments")
        return
    from rich.table import Table

    table = Table()
    for column in ("model", "experiment", "status", "variants", "started", "outcome"):
        table.add_column(column, no_wrap=column in ("model", "experiment", "status"))
    for e in found:
        outcome = ""
        if e.conclusion:
            outcome = e.conclusion.get("action", "")
            if e.conclusion.get("variant"):
                outcome += f" {e.conclusion['variant']}"
        variants = _variants(e).replace(", ", "\n")
        table.add_row(e.model, e.name, e.status, variants, _when(e.started_at), outcome)
    out_console.print(table)


# -- rendering ---------------------------------------------------------------------------


def _changed(data: dict[str, Any], output: OutputFormat, line: str) -> None:
    from forgeml.cli.output import emit_json, err_console, out_console
    from forgeml.workflow.ab import RELOAD_HINT

    if output == OutputFormat.json:
        emit_json(data)
    else:
        out_console.print(line)
    err_console.print(RELOAD_HINT)


def _when(at: Any) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M")


def _variants(e: Experiment) -> str:
    share = "" if e.shadow else " {:.0%}"  # in shadow mode the control answers everyone
    return ", ".join(
        f"{v} (v{e.versions.get(v, '?')})" + share.format(w) for v, w in e.variants.items()
    )


def _describe(e: Experiment) -> str:
    mode = "shadow " if e.shadow else ""
    return (
        f"{mode}experiment {e.name} on {e.model}@{e.alias}: {_variants(e)}; unit {e.unit}, "
        f"metric {e.metric} ({e.metric_kind}, control {e.control})"
    )


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _print_status(status: ExperimentStatus) -> None:
    from rich.table import Table
    from rich.text import Text

    from forgeml.cli.output import out_console

    e = status.experiment
    binary = e.metric_kind == "binary"
    since = f"since {_when(e.started_at)}" if e.running else f"{_when(e.concluded_at)}"
    table = Table(
        title=f"{e.model}: experiment {e.name} ({e.status} {since}), "
        f"{e.metric} ({e.metric_kind}) by {e.unit}",
        title_justify="left",
    )
    table.add_column("")
    for v in status.variants:
        table.add_column(v.name + (" (control)" if v.name == e.control else ""), justify="right")
    by_variant = {c.variant: c for c in status.comparisons}
    pct = ".2%" if binary else ".4g"

    def diff(x: float) -> str:  # a difference of rates is in percentage points
        return f"{x * 100:+.2f} pp" if binary else f"{x:+.4g}"

    rows: dict[str, list[str]] = {}
    for v in status.variants:
        c = by_variant.get(v.name)
        f = None if c is None else c.effect
        cells = {
            "version": str(v.version or "-"),
            "weight": "-" if e.shadow else f"{v.weight:.0%}",
            "exposures (units)": f"{v.exposures:,}",
            "outcomes": f"{v.outcomes:,}",
            "rate" if binary else "mean per unit": _fmt(v.value, pct),
            "difference": "" if f is None else diff(f.difference),
            "interval": "" if f is None else f"[{diff(f.ci_low)}, {diff(f.ci_high)}]",
            "p-value": "" if f is None else _fmt(f.p_value, ".3g"),
            "always-valid p": "" if c is None else _fmt(c.always_valid_p, ".3g"),
            "latency ms (mean)": _fmt(v.latency_ms, ".1f"),
            "server errors": f"{v.errors:,}",
        }
        if e.shadow:
            cells["shadow rows scored"] = f"{v.shadow_rows:,}"
            cells["agreement"] = "" if v.agreement is None else f"{v.agreement:.1%}"
        for label, cell in cells.items():
            rows.setdefault(label, []).append(cell)
    for label, values in rows.items():
        table.add_row(label, *values)
    out_console.print(table)
    for label, text in _status_lines(status):
        out_console.print(Text.assemble((f"{label:<14}", "bold"), text))


def _status_lines(status: ExperimentStatus) -> list[tuple[str, Any]]:
    from rich.text import Text

    srm = status.srm
    if srm is None:
        srm_text = Text("- (no exposures since the weights were set)")
    elif srm.mismatch:
        srm_text = Text(f"MISMATCH (p = {srm.p_value:.2g} < {srm.threshold:g})", "bold red")
    else:
        srm_text = Text(f"ok (p = {srm.p_value:.3g})", "green")
    guards = []
    for c in status.comparisons:
        if c.latency is not None:
            g = c.latency
            guards.append(
                f"latency {c.variant} {g.difference:+.3g} ms [{g.ci_low:+.3g}, {g.ci_high:+.3g}]"
            )
        if c.errors is not None:
            g = c.errors
            guards.append(
                f"error rate {c.variant} {g.difference:+.2%} [{g.ci_low:+.2%}, {g.ci_high:+.2%}]"
            )
    ignored = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in status.ignored.items() if n)
    lines: list[tuple[str, Any]] = [
        ("sample ratio", srm_text),
        ("guardrails", "; ".join(guards) or "- (too few requests)"),
        ("outcomes", f"{status.outcomes_counted:,} counted; ignored: {ignored or 'none'}"),
    ]
    if status.switched:
        lines.append(("switched", f"{status.switched:,} units saw two variants (left out)"))
    if status.unknown_variant_rows:
        lines.append(("unknown", f"{status.unknown_variant_rows:,} rows of other variants"))
    verdict = status.decision.verdict
    style = {"promote": "bold green", "rollback": "bold red"}.get(verdict, "bold yellow")
    pick = f" {status.recommended}" if status.recommended else ""
    lines.append(("decision", Text(f"{verdict.upper()}{pick}", style)))
    lines.extend(("", f"- {reason}") for reason in status.decision.reasons)
    return lines
