"""Human-readable results on stdout (``--output json`` prints the same data as JSON)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from forgeml.cli.output import out_console

__all__ = [
    "print_check_result",
    "print_demo_result",
    "print_init_result",
    "print_model_detail",
    "print_model_list",
    "print_predict_result",
    "print_run_result",
]

_KEY_METRICS = {
    "binary": ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "r2", "mape"),
}


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _run_table(run: dict[str, Any]) -> Table:
    table = Table(title=f"{run['model']} v{run['version']} — test set", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    metrics = run["test_metrics"]
    # tabular tasks: their key metrics, in order; others (recommendation): every figure
    names = _KEY_METRICS.get(run["task"]) or [
        n for n, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    for name in names:
        if name in metrics:
            table.add_row(name, _num(metrics[name]))
    return table


def _print_run(run: dict[str, Any]) -> None:
    out_console.print(_run_table(run))
    cv = run["cv_score"]
    best = run["best"]
    validation = run["validation"]
    trials = run["trials"]
    lines = [
        f"best trial   {best['model']} (trial {best['trial']}), cv {cv['metric']} "
        f"{cv['mean']:.4f} ± {cv['std']:.4f}",
        f"trials       {trials.get('complete', 0)} complete, {trials.get('pruned', 0)} pruned, "
        f"{trials.get('failed', 0)} failed",
        f"rows         {validation['n_input']:,} in = {validation['n_valid']:,} used + "
        f"{validation['n_quarantined']:,} quarantined",
    ]
    if best.get("ensemble"):
        members = " + ".join(
            f"{m['weight']:.2f}×{m['model']}#{m['trial']}" for m in best["ensemble"]
        )
        lines.append(f"final model  ensemble: {members}")
    if run.get("threshold") is not None:
        lines.append(f"threshold    {run['threshold']:.4f} (tuned on out-of-fold predictions)")
    aliases = ", ".join(run["aliases"]) or "none"
    lines += [
        f"model        {run['ref']}  (aliases: {aliases})",
        f"registry     {run['registry']}",
        f"report       {run['report']}",
    ]
    if validation.get("quarantine_path") and validation.get("n_quarantined"):
        lines.append(f"quarantine   {validation['quarantine_path']}")
    for line in lines:
        out_console.print(line)


def print_run_result(result: Any) -> None:
    _print_run(result.to_dict())


def print_predict_result(result: Any) -> None:
    data = result.to_dict()
    out_console.print(
        f"scored {data['n_scored']:,} of {data['n_input']:,} rows with "
        f"{data['model']}@{data['version']} -> {data['output']} "
        f"({data['rows_per_second'] or '-'} rows/s)"
    )
    if data["n_unreadable"]:
        out_console.print(f"{data['n_unreadable']} unreadable line(s) -> {data['rejected']}")


def print_init_result(result: Any) -> None:
    data = result.to_dict()
    kinds: dict[str, int] = {}
    for kind in data["columns"].values():
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    out_console.print(
        f"wrote {data['spec']}: {data['task']} of '{data['target']}' as model '{data['name']}' "
        f"({summary}; inferred from {data['sampled_rows']:,} rows)"
    )
    out_console.print(f"next: forgeml run {data['spec']}")


def print_check_result(result: Any) -> None:
    data = result.to_dict()
    out_console.print(
        f"ok: {data['spec']} — {data['task']} of '{data['target']}', candidates "
        f"{', '.join(data['candidates'])}, metric {data['metric']}, registry {data['registry']}"
    )
    for warning in data["warnings"]:
        out_console.print(f"warning: {warning}")


def print_model_list(models: list[dict[str, Any]]) -> None:
    if not models:
        out_console.print("no models registered yet (run `forgeml run forgeml.yaml`)")
        return
    table = Table()
    for col in ("name", "latest", "versions", "aliases", "updated"):
        table.add_column(col)
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted((m.get("aliases") or {}).items()))
        table.add_row(
            m["name"],
            str(m.get("latest_version")),
            str(m.get("n_versions")),
            aliases,
            str(m.get("updated_at", "")),
        )
    out_console.print(table)


def print_model_detail(detail: dict[str, Any]) -> None:
    aliases = detail.get("aliases") or {}
    shown = ", ".join(f"{a}→{v}" for a, v in sorted(aliases.items())) or "none"
    out_console.print(Text.assemble((detail["name"], "bold"), f"  aliases: {shown}"))
    table = Table()
    for col in ("version", "created", "run", "aliases", "metrics"):
        table.add_column(col)
    for v in detail.get("versions", []):
        metrics = v.get("metrics") or {}
        shown = ", ".join(f"{k}={metrics[k]:.4f}" for k in list(metrics)[:4])
        table.add_row(
            str(v["version"]),
            str(v.get("created_at", "")),
            str(v.get("run_id", "")),
            ", ".join(v.get("aliases", [])),
            shown,
        )
    out_console.print(table)


def print_demo_result(result: Any) -> None:
    data = result.to_dict()
    out_console.rule("forgeml demo: late arrivals of NYC flights")
    _print_run(data["run"])
    p = data["predict"]
    out_console.print(
        f"scored       {p['n_scored']:,} new flights with flights@champion -> {p['output']}"
    )
    out_console.print(f"total        {data['seconds']:.0f} s")
