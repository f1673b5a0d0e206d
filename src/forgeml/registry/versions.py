"""Model rows, version rows and their file lists, inside a caller's transaction.

Version numbers are gap-free per model: a writer locks the model row (``SELECT ... FOR
UPDATE``; on SQLite the whole database is already locked by ``BEGIN IMMEDIATE``), takes
``max(version) + 1`` and inserts in the same transaction, so concurrent commits queue on the
lock and a failed commit leaves no hole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from forgeml.errors import ModelNotFound
from forgeml.registry.artifacts import FileEntry
from forgeml.registry.database import Database
from forgeml.registry.records import ModelVersion
from forgeml.registry.refs import did_you_mean
from forgeml.registry.schema import aliases, model_versions, models, version_files

__all__ = [
    "insert_version",
    "latest_version",
    "load_versions",
    "lock_model",
    "model_names",
    "no_such_model",
    "no_such_version",
    "touch_model",
]


def lock_model(conn: Connection, db: Database, name: str, *, create: bool, at: datetime) -> bool:
    """Lock the row of model ``name`` until the transaction ends; create it first when
    ``create``. Returns whether the model exists."""
    if create:
        # ON CONFLICT DO NOTHING: a concurrent first commit of the same model must not fail.
        conn.execute(db.insert_ignore(models, name=name, created_at=at, updated_at=at))
    row = conn.execute(
        sa.select(models.c.name).where(models.c.name == name).with_for_update()
    ).first()
    return row is not None


def touch_model(conn: Connection, name: str, at: datetime) -> None:
    """Record that model ``name`` changed at ``at``."""
    conn.execute(models.update().where(models.c.name == name).values(updated_at=at))


def latest_version(conn: Connection, name: str) -> int:
    """The highest version of model ``name`` (0 when it has none)."""
    value = conn.execute(
        sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model == name)
    ).scalar_one()
    return int(value or 0)


def model_names(conn: Connection) -> list[str]:
    """Every model name, sorted."""
    return list(conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars())


def insert_version(
    conn: Connection,
    *,
    name: str,
    version: int,
    run_id: str | None,
    at: datetime,
    artifact_dir: str,
    metrics: dict[str, float],
    lineage: dict[str, Any],
    files: Iterable[FileEntry],
) -> None:
    """Insert one version row and its file rows."""
    version_id = conn.execute(
        model_versions.insert()
        .values(
            model=name,
            version=version,
            run_id=run_id,
            created_at=at,
            artifact_dir=artifact_dir,
            metrics=metrics,
            lineage=lineage,
        )
        .returning(model_versions.c.id)
    ).scalar_one()
    conn.execute(
        version_files.insert(),
        [
            {"version_id": version_id, "path": f.path, "sha256": f.sha256, "size": f.size}
            for f in files
        ],
    )


def load_versions(
    conn: Connection, name: str, numbers: Sequence[int] | None = None
) -> list[ModelVersion]:
    """Versions of model ``name`` (all, or those in ``numbers``), oldest first, with their
    files and current aliases."""
    query = sa.select(model_versions).where(model_versions.c.model == name)
    if numbers is not None:
        query = query.where(model_versions.c.version.in_(list(numbers)))
    rows = conn.execute(query.order_by(model_versions.c.version)).mappings().all()
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    files: dict[int, dict[str, str]] = defaultdict(dict)
    for version_id, path, sha in conn.execute(
        sa.select(version_files.c.version_id, version_files.c.path, version_files.c.sha256)
        .where(version_files.c.version_id.in_(ids))
        .order_by(version_files.c.version_id, version_files.c.path)
    ):
        files[version_id][path] = sha
    by_version: dict[int, list[str]] = defaultdict(list)
    for alias, version in conn.execute(
        sa.select(aliases.c.alias, aliases.c.version)
        .where(aliases.c.model == name)
        .order_by(aliases.c.alias)
    ):
        by_version[version].append(alias)
    return [
        ModelVersion(
            name=name,
            version=row["version"],
            run_id=row["run_id"],
            created_at=row["created_at"],
            artifact_dir=row["artifact_dir"],
            files=files[row["id"]],
            metrics=row["metrics"],
            lineage=row["lineage"],
            aliases=by_version[row["version"]],
        )
        for row in rows
    ]


def no_such_model(conn: Connection, name: str) -> ModelNotFound:
    """The error for an unknown model: suggests a close name, else lists the models."""
    names = model_names(conn)
    guess = did_you_mean(name, names)
    if guess is not None:
        hint = f"did you mean {guess!r}?"
    elif names:
        hint = "models: " + ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    else:
        hint = "the registry has no models yet"
    return ModelNotFound(f"no model named {name!r}", hint=hint)


def no_such_version(name: str, version: int, latest: int) -> ModelNotFound:
    """The error for an unknown version; versions are gap-free, so it gives the range.

    >>> str(no_such_version("churn", 7, 3))
    "model 'churn' has no version 7 (it has versions 1 to 3)"
    """
    hint = "it has only version 1" if latest == 1 else f"it has versions 1 to {latest}"
    return ModelNotFound(f"model {name!r} has no version {version}", hint=hint)
