"""Options shared by several commands."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated

import typer

__all__ = ["OutputFormat", "OutputOpt", "RegistryOpt", "registry_uri"]


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


OutputOpt = Annotated[
    OutputFormat,
    typer.Option("--output", "-O", help="Result format on stdout: text or json."),
]

RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry: a folder (embedded SQLite) or a SQLAlchemy URL. "
        "Default: $FORGEML_REGISTRY, else .forgeml (for run: else the spec's registry.uri)",
        show_default=False,
    ),
]


def registry_uri(value: str | None) -> str:
    """The registry the user asked for, else ``$FORGEML_REGISTRY``, else ``.forgeml``."""
    return value or os.environ.get("FORGEML_REGISTRY") or ".forgeml"
