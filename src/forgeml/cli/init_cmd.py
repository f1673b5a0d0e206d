"""``forgeml init``: infer a schema from a data file and write forgeml.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt

_REC = "Recommendation"


def init(
    data: Annotated[str, typer.Argument(help="Training data: CSV or Parquet path, fsspec URI.")],
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", help="Column to predict (classification, regression)."),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="classification, regression or recommendation (default: inferred; "
            "recommendation when --user and --item are given)."
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="User id column.", rich_help_panel=_REC)
    ] = None,
    item: Annotated[
        str | None, typer.Option("--item", help="Item id column.", rich_help_panel=_REC)
    ] = None,
    time: Annotated[
        str | None,
        typer.Option("--time", help="Event time column (optional).", rich_help_panel=_REC),
    ] = None,
    rating: Annotated[
        str | None,
        typer.Option("--rating", help="Rating or weight column (optional).", rich_help_panel=_REC),
    ] = None,
    positive_threshold: Annotated[
        float | None,
        typer.Option(
            "--positive-threshold",
            help="Explicit feedback: ratings at or above this are positives (needs --rating).",
            rich_help_panel=_REC,
        ),
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
        data,
        target=target,
        task=task,
        name=name,
        spec_path=spec,
        delimiter=delimiter,
        force=force,
        user=user,
        item=item,
        time=time,
        rating=rating,
        positive_threshold=positive_threshold,
    )
    if output == OutputFormat.json:
        emit_json(result.to_dict())
    else:
        print_init_result(result)
