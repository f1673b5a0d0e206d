"""Where a run's outputs live: the registry (metadata + artifacts) and the runs folder.

Embedded default: one folder (``.forgeml``) holding ``registry.db``, ``artifacts/`` and
``runs/<run_id>/`` (report, summary, quarantine). With a SQLAlchemy URL registry the
artifacts folder is ``registry.artifacts`` (default ``.forgeml/artifacts``) and runs go
next to it. A failed run writes only into ``runs/``; the registry is never touched.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from forgeml.config.spec import Spec

if TYPE_CHECKING:
    from forgeml.registry import Registry

__all__ = ["Workspace", "new_run_id"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261126-182251-3f9a1c``."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Workspace:
    registry_uri: str
    artifacts: str | None
    runs_dir: Path

    @classmethod
    def from_uri(cls, uri: str, artifacts: str | None = None) -> Workspace:
        if _URL.match(uri):
            # Without an explicit folder the registry uses the one its database records
            # (./.forgeml/artifacts, absolute, for a new one); run outputs (reports,
            # quarantine files) go to ./.forgeml/runs, or next to an explicit folder.
            root = Path(artifacts) if artifacts else Path(".forgeml") / "artifacts"
            return cls(uri, artifacts, root.parent / "runs")
        return cls(uri, artifacts, Path(uri) / "runs")

    @classmethod
    def from_spec(cls, spec: Spec) -> Workspace:
        uri = spec.registry.uri
        if not _URL.match(uri):
            uri = spec.resolve_path(uri)
        artifacts = spec.resolve_path(spec.registry.artifacts) if spec.registry.artifacts else None
        return cls.from_uri(uri, artifacts)

    def open_registry(self, *, create: bool = True) -> Registry:
        from forgeml.registry import Registry

        return Registry.open(self.registry_uri, self.artifacts, create=create)

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id
