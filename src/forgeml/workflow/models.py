"""Registry operations behind ``forgeml models ...`` and :func:`forgeml.load_model`."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from forgeml.workflow.workspace import Workspace

__all__ = ["list_models", "load_bundle_ref", "promote", "rollback", "show_model"]


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def list_models(registry: str) -> list[dict[str, Any]]:
    """Every registered model: name, latest version, aliases, number of versions."""
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        return [_plain(m) for m in reg.list_models()]


def show_model(registry: str, name: str) -> dict[str, Any]:
    """One model's versions (metrics, run, created), aliases and alias history."""
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        return dict(_plain(reg.get_model(name)))


def promote(registry: str, name: str, version: int, alias: str = "champion") -> dict[str, Any]:
    """Point ``alias`` at ``version`` (atomically); returns the change."""
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        return dict(_plain(reg.set_alias(name, alias, version)))


def rollback(registry: str, name: str, alias: str = "champion") -> dict[str, Any]:
    """Move ``alias`` back to the version it pointed to before its last move."""
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        return dict(_plain(reg.rollback(name, alias)))


def load_bundle_ref(ref: str, registry: str) -> Any:
    """Resolve ``ref`` and load its bundle after verifying every artifact's sha256."""
    from forgeml.models.bundle import load_bundle

    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        version = reg.resolve(ref)
        directory = reg.open_artifacts(version)
        bundle = load_bundle(directory)
    bundle.metadata = {**(bundle.metadata or {}), "name": version.name, "version": version.version}
    return bundle
