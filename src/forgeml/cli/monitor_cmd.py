"""``forgeml monitor``: how served models' data compares with their training data, and
how well they predict once labels come back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt, RegistryOpt, registry_uri

if TYPE_CHECKING:
    from rich.console import Console

    from forgeml.workflow.monitor import MonitorReport

PREDICTION = "prediction (the model's score)"

app = typer.Typer(
    help="Check data and served traffic against a model's training profile; report on a "
    "window of traffic.",
    no_args_is_help=True,
)


@app.command("drift")
def drift(
    model: Annotated[
        str, typer.Argument(help="Model reference: name@alias, name@version or name.")
    ],
    source: Annotated[
        str,
        typer.Argument(
            help="Current rows: a CSV/Parquet path or URI, or with --from-log a "
            "prediction log (forgeml serve --prediction-log): a folder or a postgresql:// URL."
        ),
    ],
    registry: RegistryOpt = None,
    from_log: Annotated[
        bool,
        typer.Option(help="SOURCE is a prediction log: the model's logged inputs and scores."),
    ] = False,
    max_rows: Annotated[
        int, typer.Option(help="Compare at most this many rows (the first, or the latest logged).")
    ] = 1_000_000,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Per-feature drift of SOURCE against MODEL's training profile (PSI, KS, chi-square, JS).

    Exit code 0 whether or not drift is found (it is reported), 2 for invalid arguments.
    """
    from forgeml.cli.output import emit_json, out_console
    from forgeml.workflow.monitor import drift_check

    result = drift_check(
        model, source, registry=registry_uri(registry), from_log=from_log, max_rows=max_rows
    )
    if output == OutputFormat.json:
        emit_json(result.to_dict())
        return
    from rich.table import Table
    from rich.text import Text

    cut = " (first rows only: --max-rows)" if result.truncated else ""
    table = Table(
        title=f"{result.model}@{result.version} vs {result.source}: {result.rows:,} rows{cut}",
        title_justify="left",
    )
    for column in ("feature", "method", "score", "p-value", "drifted"):
        table.add_column(column, justify="left" if column in ("feature", "method") else "right")
    for f in result.features:
        p_value = "" if f["p_value"] is None else f"{f['p_value']:.3g}"
        mark = Text("yes", style="bold red") if f["drifted"] else "no"
        table.add_row(f["feature"], f["method"], f"{f['score']:.4f}", p_value, mark)
    out_console.print(table)
    drifted = result.drifted
    out_console.print(
        f"drifted: {', '.join(drifted)}"
        if drifted
        else "no feature drifted (PSI < 0.2, KS < 0.1, JS < 0.1)"
    )


@app.command("report")
def report(
    model: Annotated[
        str,
        typer.Argument(
            help="Model: a name (every version's traffic) or name@alias / name@version "
            "(that version's only)."
        ),
    ],
    log: Annotated[
        str | None,
        typer.Option(
            "--log",
            help="The prediction log: a folder or a postgresql:// URL. Default: the "
            "registry's (<registry folder>/logs, or its PostgreSQL database).",
            show_default=False,
        ),
    ] = None,
    window: Annotated[str, typer.Option(help="How far back from now: 30m, 6h, 1d, 2w.")] = "1d",
    buckets: Annotated[int, typer.Option(help="Time buckets the window is cut into.")] = 24,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the HTML report here (default with -O text: monitor-report.html; "
            "with -O json only when given).",
            show_default=False,
        ),
    ] = None,
    max_rows: Annotated[
        int, typer.Option(help="Read at most this many predictions (the latest).")
    ] = 1_000_000,
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """A window of MODEL's served traffic as an HTML report: volume and latency, versions,
    dropped log rows, feedback and live metrics, drift against the training profile (as a
    whole and over time) with plots.

    Exit code 0 whether or not drift is found, 1 when the window holds no prediction of
    MODEL, 2 for invalid arguments.
    """
    from forgeml.cli.output import emit_json, out_console
    from forgeml.workflow.monitor import monitor_report

    result = monitor_report(
        model,
        registry=registry_uri(registry),
        log=log,
        window=window,
        buckets=buckets,
        max_rows=max_rows,
    )
    if out is None and output == OutputFormat.text:
        out = Path("monitor-report.html")
    path = result.write_html(out) if out is not None else None
    if output == OutputFormat.json:
        emit_json({**result.to_dict(), "html": None if path is None else str(path)})
        return
    _print_summary(result, out_console)
    out_console.print(f"report: {path}")


@app.command("prune")
def prune(
    older_than: Annotated[
        str, typer.Option(help="Delete what was logged longer ago than this: 7d, 30d, 12w.")
    ] = "30d",
    log: Annotated[
        str | None,
        typer.Option(
            "--log",
            help="The prediction log: a folder or a postgresql:// URL. Default: the registry's.",
            show_default=False,
        ),
    ] = None,
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Retention: delete predictions, feedback and events logged before now - OLDER_THAN
    (Parquet logs by whole days, keeping at least one more day than asked)."""
    from forgeml.cli.output import emit_json, out_console
    from forgeml.workflow.monitor import prune_log

    result = prune_log(registry=registry_uri(registry), log=log, older_than=older_than)
    if output == OutputFormat.json:
        emit_json(result)
        return
    removed = result["removed"]
    what = ", ".join(f"{n:,} {kind}" for kind, n in removed.items()) or "nothing"
    out_console.print(
        f"{result['log']}: deleted {what} ({result['unit']}) logged before {result['before']}"
    )


def _print_summary(result: MonitorReport, console: Console) -> None:
    from rich.text import Text

    from forgeml.monitoring import PREDICTION_COLUMN

    versions = ", ".join(result.versions)
    console.print(
        f"{result.model} (version {versions}), last {result.window}: {result.rows:,} "
        f"predictions in {result.requests:,} requests, from {result.location}"
    )
    if result.dropped:
        console.print(
            Text(f"{result.dropped:,} prediction rows were dropped from the log", style="bold red")
        )
    f = result.feedback
    console.print(
        f"feedback: {f['joined']:,} joined, {f['duplicates']:,} duplicates, "
        f"{f['unmatched']:,} unmatched, {f['unkeyed']:,} experiment outcomes"
    )
    if result.live_metrics:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in result.live_metrics.items())
        console.print(f"live metrics: {shown}")
    for note in result.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    drifted = [PREDICTION if f == PREDICTION_COLUMN else f for f in result.drifted]
    console.print(
        Text(f"drifted: {', '.join(drifted)}", style="bold red")
        if drifted
        else "no feature drifted (PSI < 0.2, KS < 0.1, JS < 0.1)"
    )
