"""``forgeml validate``: check a spec's data against its schema and rules, streamed.

Valid rows go to ``-o`` (Parquet, typed), quarantined rows with their reasons to the
quarantine file; memory stays at about one batch whatever the file's size. Exit code 0
when the data would pass a run's validation, 1 when it would stop it (too many bad rows,
a column rule), 2 for a usage or config error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt


def validate(
    spec: Annotated[Path, typer.Argument(help="The pipeline spec (forgeml.yaml).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the valid rows (typed) to this Parquet file."),
    ] = None,
    quarantine: Annotated[
        Path | None,
        typer.Option(
            "--quarantine",
            help="Quarantine Parquet file. Default: validation.quarantine_dir, else next to "
            "--out, else ./quarantine.parquet.",
            show_default=False,
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a spec field, e.g. data.chunk_rows=100000."),
    ] = None,
    output: OutputOpt = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Validate the spec's data source chunk by chunk: valid rows and quarantined rows."""
    from forgeml.cli.output import RichReporter, emit_json, out_console
    from forgeml.workflow.validate import validate_spec

    reporter = RichReporter(quiet=quiet or output == OutputFormat.json)
    try:
        result = validate_spec(
            spec, out=out, quarantine=quarantine, overrides=list(set_ or []), reporter=reporter
        )
    finally:
        reporter.done()
    data = result.to_dict()
    if output == OutputFormat.json:
        emit_json(data)
    else:
        out_console.print(
            f"{data['source']}: {data['n_input']:,} rows = {data['n_valid']:,} valid + "
            f"{data['n_quarantined']:,} quarantined ({data['bad_fraction']:.2%}) in "
            f"{data['seconds']:.1f} s"
        )
        for code, n in list(data["reasons"].items())[:10]:
            example = (data["examples"].get(code) or [""])[0]
            out_console.print(f"  {code}: {n:,}" + (f"  e.g. {example}" if example else ""))
        if data["valid"]:
            out_console.print(f"valid rows -> {data['valid']}")
        out_console.print(f"quarantined rows -> {data['quarantine']}")
        if data["failure"]:
            out_console.print(f"FAILED: {data['failure']}", style="bold red")
    if not result.ok:
        raise typer.Exit(1)
