"""``forgeml run``: validate -> features -> tune -> evaluate -> register -> report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt, RegistryOpt


def run(
    spec: Annotated[Path, typer.Argument(help="The pipeline spec (forgeml.yaml).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help="Override a spec field, e.g. tuning.budget.trials=20 (repeatable)."
        ),
    ] = None,
    engine: Annotated[
        str | None, typer.Option("--engine", help="Where trials run: local (default) or ray.")
    ] = None,
    registry: RegistryOpt = None,
    study_storage: Annotated[
        str | None,
        typer.Option(
            "--study-storage",
            help="Keep the Optuna study in this database: sqlite:///study.db or "
            "postgresql://host/db (sets tuning.storage).",
        ),
    ] = None,
    resume_study: Annotated[
        str | None,
        typer.Option(
            "--resume-study",
            help="Continue this study in the study storage instead of starting a new one "
            "(sets tuning.resume_study).",
        ),
    ] = None,
    output: OutputOpt = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Run a pipeline spec end to end and register the resulting model."""
    from forgeml.cli.output import RichReporter, emit_json
    from forgeml.cli.render import print_run_result
    from forgeml.workflow.run import run_spec

    overrides = list(set_ or [])
    if engine:
        overrides.append(f"engine.kind={engine}")
    registry = registry or os.environ.get("FORGEML_REGISTRY")
    if registry:
        if "://" not in registry:  # a folder: relative to where the command runs, as for
            registry = str(Path(registry).resolve())  # predict and models, not the spec
        overrides.append(f"registry.uri={registry}")
    if study_storage:
        overrides.append(f"tuning.storage={_cwd_relative(study_storage)}")
    if resume_study:
        overrides.append(f"tuning.resume_study={resume_study}")
    reporter = RichReporter(quiet=quiet or output == OutputFormat.json)
    try:
        result = run_spec(spec, overrides=overrides, reporter=reporter)
    finally:
        reporter.done()
    if output == OutputFormat.json:
        emit_json(result.to_dict())
    else:
        print_run_result(result)


def _cwd_relative(url: str) -> str:
    """A relative SQLite file on the command line is relative to where the command runs
    (in the spec, to the spec's folder)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        path = url.removeprefix(prefix)
        if path and path != ":memory:":
            return prefix + str(Path(path).expanduser().resolve())
    return url
