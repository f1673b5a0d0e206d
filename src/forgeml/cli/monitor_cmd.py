"""``forgeml monitor``: how served models' data compares with their training data."""

from __future__ import annotations

from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt, RegistryOpt, registry_uri

app = typer.Typer(
    help="Check data and traffic against a model's training profile.", no_args_is_help=True
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
            "forgeml serve --prediction-log folder."
        ),
    ],
    registry: RegistryOpt = None,
    from_log: Annotated[
        bool, typer.Option(help="SOURCE is a prediction log: its inputs and scores.")
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

    cut = " (first rows only: --max-rows)" if result.truncated else ""
    table = Table(
        title=f"{result.model}@{result.version} vs {result.source}: {result.rows:,} rows{cut}",
        title_justify="left",
    )
    for column in ("feature", "method", "score", "p-value", "drifted"):
        table.add_column(column, justify="left" if column in ("feature", "method") else "right")
    for f in result.features:
        p_value = "" if f["p_value"] is None else f"{f['p_value']:.3g}"
        mark = "[bold red]yes[/]" if f["drifted"] else "no"
        table.add_row(f["feature"], f["method"], f"{f['score']:.4f}", p_value, mark)
    out_console.print(table)
    drifted = result.drifted
    out_console.print(
        f"drifted: {', '.join(drifted)}"
        if drifted
        else "no feature drifted (PSI < 0.2, KS < 0.1, JS < 0.1)"
    )
