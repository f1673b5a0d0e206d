"""``forgeml config``: check or show a pipeline spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt

app = typer.Typer(help="Check or show a pipeline spec.", no_args_is_help=True)

SpecArg = Annotated[Path, typer.Argument(help="The pipeline spec (forgeml.yaml).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override a field: key.path=value.")
]


@app.command("check")
def check(spec: SpecArg, set_: SetOpt = None, output: OutputOpt = OutputFormat.text) -> None:
    """Validate a spec: fields, model names, metric, data source and registry."""
    from forgeml.cli.output import emit_json
    from forgeml.cli.render import print_check_result
    from forgeml.workflow.check import check_spec

    result = check_spec(spec, overrides=list(set_ or []))
    if output == OutputFormat.json:
        emit_json(result.to_dict())
    else:
        print_check_result(result)


@app.command("show")
def show(spec: SpecArg, set_: SetOpt = None) -> None:
    """Print the spec with every default filled in, as forgeml will run it."""
    import yaml

    from forgeml.config.loader import load_spec

    loaded = load_spec(spec, overrides=list(set_ or []))
    data = loaded.model_dump(mode="json", exclude={"base_dir"})
    typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
