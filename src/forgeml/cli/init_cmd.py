"""``forgeml init``: infer a schema from a data file and write forgeml.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt


def init(
    data: Annotated[str, typer.Argument(help="Training data: CSV or Parquet path, fsspec URI.")],
    target: Annotated[str, typer.Option("--target", "-t", help="Column to predict.")],
    task: Annotated[
        str | None, typer.Option(help="classification or regression (default: inferred).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the file name).")] = None,
    spec: Annotated[Path, typer.Option("--spec", "-o", help="Where to write the spec.")] = Path(
        "forgeml.yaml"
    ),
    delimiter: Annotated[str, typer.Option(help="CSV delimiter.")] = ",",
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec file.")] = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Infer column types and the task from DATA and write a pipeline spec."""
    from forgeml.cli.output import emit_json
    from forgeml.cli.render import print_init_result
    from forgeml.workflow.init import init_spec

    result = init_spec(
        data, target=target, task=task, name=name, spec_path=spec, delimiter=delimiter, force=force
    )
    if output == OutputFormat.json:
        emit_json(result.to_dict())
    else:
        print_init_result(result)
