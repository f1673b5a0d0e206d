"""``forgeml predict``: score files (streamed in chunks) with a registered model, locally or
with Ray Data (``--engine ray``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt, RegistryOpt, registry_uri


class Engine(StrEnum):
    local = "local"
    ray = "ray"


def predict(
    model: Annotated[
        str, typer.Argument(help="Model reference: name@alias, name@version or name.")
    ],
    input: Annotated[
        str,
        typer.Argument(
            help="Rows to score: a CSV or Parquet file, a folder of them or a glob "
            "('data/*.parquet'; quote it), local or an fsspec URI."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output: a Parquet file; a folder of part files (part-00000.parquet...) "
            "when INPUT is a folder or a glob, or with --engine ray.",
        ),
    ],
    registry: RegistryOpt = None,
    delimiter: Annotated[str, typer.Option(help="CSV delimiter.")] = ",",
    chunk_rows: Annotated[int, typer.Option(help="Rows per streamed chunk (batch).")] = 262_144,
    keep_columns: Annotated[
        bool, typer.Option(help="Copy the input columns into the output next to the predictions.")
    ] = True,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="Where scoring runs: local (this process) or ray (Ray Data on the cluster "
            "in $RAY_ADDRESS, else a local Ray; Parquet input).",
        ),
    ] = Engine.local,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Ray: scoring tasks at once (and the local Ray's CPUs). Default: every CPU.",
            show_default=False,
        ),
    ] = None,
    output: OutputOpt = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Score INPUT with MODEL and write predictions as Parquet (a file or a folder)."""
    from forgeml.cli.output import RichReporter, emit_json, out_console
    from forgeml.cli.render import print_predict_result
    from forgeml.workflow.predict import predict_file

    reporter = RichReporter(quiet=quiet or output == OutputFormat.json)
    try:
        result = predict_file(
            model,
            input,
            out,
            registry=registry_uri(registry),
            delimiter=delimiter,
            chunk_rows=chunk_rows,
            keep_columns=keep_columns,
            reporter=reporter,
            engine=engine.value,
            workers=workers,
        )
    finally:
        reporter.done()
    if output == OutputFormat.json:
        emit_json(result.to_dict())
        return
    print_predict_result(result)
    if result.layout == "folder":
        out_console.print(
            f"{len(result.parts)} part file(s) from {result.n_files} input file(s) "
            f"(engine {result.engine}) in {result.output}"
        )
    if result.n_flagged:
        out_console.print(f"{result.n_flagged:,} row(s) flagged in the _issues column")
