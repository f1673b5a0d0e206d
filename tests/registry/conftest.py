"""Registry fixtures: the same suite runs on SQLite (a tmp folder) and on PostgreSQL.

Each PostgreSQL test gets its own schema (via ``search_path`` in the URL) inside the session's
throwaway database, so tests are isolated even when they run in parallel workers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from forgeml.registry import Registry, RunRecord, new_run_id


@dataclass(frozen=True)
class Where:
    """A registry location for :meth:`Registry.open`."""

    backend: str
    uri: str
    artifacts: str | None

    def open(self, **kwargs: bool) -> Registry:
        return Registry.open(self.uri, self.artifacts, **kwargs)


def pg_schema_url(pg_url: str, schema: str) -> str:
    url = sa.make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def pg_where(pg_url: str, tmp_path: Path) -> Iterator[Where]:
    """A fresh PostgreSQL schema plus a tmp artifacts folder."""
    schema = f"reg_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Where("postgres", pg_schema_url(pg_url, schema), str(tmp_path / "artifacts"))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """Where a registry lives: parametrised over both backends."""
    if request.param == "sqlite":
        return Where("sqlite", str(tmp_path / "registry"), None)
    pg: Where = request.getfixturevalue("pg_where")
    return pg


@pytest.fixture
def registry(where: Where) -> Iterator[Registry]:
    """An open, empty registry on each backend."""
    with where.open() as reg:
        yield reg


MakeSource = Callable[..., Path]
MakeRun = Callable[..., RunRecord]


@pytest.fixture
def make_source(tmp_path: Path) -> MakeSource:
    """Write a model folder: ``make_source({"model.txt": "w"})`` (default: two files)."""
    counter = iter(range(1_000_000))

    def make(files: dict[str, str | bytes] | None = None) -> Path:
        root = tmp_path / f"src{next(counter)}"
        for rel, content in (files or {"model.txt": "weights", "meta/info.json": "{}"}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        root.mkdir(exist_ok=True)
        return root

    return make


@pytest.fixture
def make_run() -> MakeRun:
    """A finished :class:`RunRecord` with a fresh id; keyword arguments override fields."""

    def make(name: str = "churn", **fields: object) -> RunRecord:
        values: dict[str, object] = {
            "run_id": new_run_id(),
            "name": name,
            "status": "finished",
            "started_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            "ended_at": datetime(2026, 1, 2, 3, 9, 0, tzinfo=UTC),
            "params": {"lr": 0.1, "depth": 6, "model": "lightgbm", "balanced": True},
            "metrics": {"auc": 0.91, "logloss": 0.3},
            "config": {"name": name, "tuning": {"budget": {"trials": 10}}},
            "seed": 7,
            "data_fingerprint": {"sha256": "ab" * 32, "n_rows": 569},
            "library_versions": {"lightgbm": "4.5.0"},
            "summary": {"best": "lightgbm", "rows": {"used": 560, "quarantined": 9}},
            "tags": {"user": "ci"},
        }
        values.update(fields)
        return RunRecord(**values)  # type: ignore[arg-type]

    return make
