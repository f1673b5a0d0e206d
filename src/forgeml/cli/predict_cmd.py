"""``forgeml predict``: score a file (streamed in chunks) with a registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt, RegistryOpt, registry_uri


def predict(
    model: Annotated[
        str, typer.Argument(help="Model reference: name@alias, name@version or name.")
    ],
    input: Annotated[
        str, typer.Argument(help="Rows to score: CSV or Parquet path, or fsspec URI.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet file.")],
    registry: RegistryOpt = None,
    delimiter: Annotated[str, typer.Option(help="CSV delimiter.")] = ",",
    chunk_rows: Annotated[int, typer.Option(help="Rows per streamed chunk.")] = 262_144,
    keep_columns: Annotated[
        bool, typer.Option(help="Copy the input columns into the output next to the predictions.")
    ] = True,
    output: OutputOpt = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Score INPUT with MODEL and write predictions to a Parquet file."""
    from forgeml.cli.output import RichReporter, emit_json
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
        )
    finally:
        reporter.done()
    if output == OutputFormat.json:
        emit_json(result.to_dict())
    else:
        print_predict_result(result)
