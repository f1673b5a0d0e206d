"""The registry's records: plain frozen dataclasses that cross its public surface.

Nothing here touches the database or the file system; :mod:`forgeml.registry.store`
turns rows into these and back. Timestamps are timezone-aware UTC datetimes.

>>> from datetime import UTC, datetime
>>> run = RunRecord(run_id="r1", name="churn", status="finished",
...                 started_at=datetime(2026, 1, 2, tzinfo=UTC), metrics={"auc": 0.91})
>>> run.metrics["auc"], run.ended_at is None
(0.91, True)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "RUN_STATUSES",
    "AliasAction",
    "AliasChange",
    "CommitResult",
    "ModelDetail",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "ParamValue",
    "RunRecord",
    "new_run_id",
]

ParamValue = str | float | int | bool
RUN_STATUSES = ("running", "finished", "failed")
AliasAction = Literal["set", "delete", "rollback"]


def new_run_id() -> str:
    """A fresh, random run id (32 hex characters, like MLflow's).

    >>> len(new_run_id()), new_run_id() != new_run_id()
    (32, True)
    """
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RunRecord:
    """One pipeline run: what went in (config, seed, data, library versions) and what came out.

    ``status`` is one of :data:`RUN_STATUSES`. ``params`` are the flat, typed settings a user
    compares runs by; ``config`` is the whole resolved spec as JSON-compatible values.
    """

    run_id: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_fingerprint: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NewVersion:
    """A model version to register together with its run.

    ``source_dir`` is copied (every regular file, recursively; symlinks are refused) into the
    artifacts root. ``aliases`` are moved onto the new version; ``aliases_if_absent`` are set
    only when the model has no such alias yet, which is how a first version becomes
    ``champion`` without a later version taking the title silently.
    """

    name: str
    source_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    aliases_if_absent: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version.

    ``artifact_dir`` is relative to the artifacts root (``churn/3``); ``files`` maps each
    artifact file's relative POSIX path to its sha256. ``aliases`` are the aliases that point
    at this version now.
    """

    name: str
    version: int
    run_id: str | None
    created_at: datetime
    artifact_dir: str
    files: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """The unambiguous reference of this version, ``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class CommitResult:
    """What :meth:`Registry.commit_run` recorded: the run id and the new version, if any."""

    run_id: str
    version: ModelVersion | None


@dataclass(frozen=True)
class AliasChange:
    """One move of an alias: ``from_version`` is None when the alias was created,
    ``to_version`` is None when it was deleted. ``action`` says what moved it."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    action: AliasAction = "set"


@dataclass(frozen=True)
class ModelSummary:
    """One line of :meth:`Registry.list_models`."""

    name: str
    latest_version: int
    aliases: dict[str, int]
    n_versions: int
    updated_at: datetime


@dataclass(frozen=True)
class ModelDetail:
    """Everything the registry knows about one model; versions oldest first, history oldest
    first."""

    name: str
    created_at: datetime
    updated_at: datetime
    versions: list[ModelVersion]
    aliases: dict[str, int]
    alias_history: list[AliasChange]

    @property
    def latest(self) -> ModelVersion:
        """The highest version."""
        return self.versions[-1]
