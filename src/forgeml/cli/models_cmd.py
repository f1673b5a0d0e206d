"""``forgeml models``: list, show, promote, roll back and export registered models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt, RegistryOpt, registry_uri

app = typer.Typer(help="Inspect and manage registered models.", no_args_is_help=True)


@app.command("list")
def list_models(registry: RegistryOpt = None, output: OutputOpt = OutputFormat.text) -> None:
    """List registered models with their latest version and aliases."""
    from forgeml.cli.output import emit_json
    from forgeml.cli.render import print_model_list
    from forgeml.workflow.models import list_models as do_list

    models = do_list(registry_uri(registry))
    if output == OutputFormat.json:
        emit_json(models)
    else:
        print_model_list(models)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Show a model's versions, metrics, aliases and alias history."""
    from forgeml.cli.output import emit_json
    from forgeml.cli.render import print_model_detail
    from forgeml.workflow.models import show_model

    detail = show_model(registry_uri(registry), name)
    if output == OutputFormat.json:
        emit_json(detail)
    else:
        print_model_detail(detail)


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to point the alias at.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Point ALIAS (default: champion) at VERSION."""
    from forgeml.cli.output import emit_json, out_console
    from forgeml.workflow.models import promote as do_promote

    change = do_promote(registry_uri(registry), name, version, alias)
    if output == OutputFormat.json:
        emit_json(change)
    else:
        out_console.print(
            f"{name}@{alias}: {change['from_version'] or '-'} -> {change['to_version']}"
        )


@app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "champion",
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Move ALIAS (default: champion) back to the version it pointed to before."""
    from forgeml.cli.output import emit_json, out_console
    from forgeml.workflow.models import rollback as do_rollback

    change = do_rollback(registry_uri(registry), name, alias)
    if output == OutputFormat.json:
        emit_json(change)
    else:
        out_console.print(
            f"{name}@{alias}: {change['from_version']} -> {change['to_version']} (rolled back)"
        )


@app.command("export")
def export(
    model: Annotated[str, typer.Argument(help="Model reference: name@alias or name@version.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (must not exist).")],
    format: Annotated[str, typer.Option("--format", help="Export format: mlflow.")] = "mlflow",
    registry: RegistryOpt = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Export a registered model, e.g. as an MLflow model (MLmodel + pyfunc flavor)."""
    from forgeml.cli.output import emit_json, out_console
    from forgeml.workflow.export import export_model

    result = export_model(registry_uri(registry), model, out, format=format)
    if output == OutputFormat.json:
        emit_json(result)
    else:
        out_console.print(f"exported {result['model']} as {result['format']} to {result['path']}")
