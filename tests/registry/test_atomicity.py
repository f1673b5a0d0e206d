"""A commit that fails anywhere leaves the registry exactly as it was: rows and files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from forgeml.errors import RegistryError, UsageError
from forgeml.registry import NewVersion, Registry, store
from forgeml.registry.schema import metadata


def snapshot(registry: Registry) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, str]]:
    """Every row of every table, and every file and folder under the artifacts root."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with registry._db.read() as conn:
        for table in metadata.sorted_tables:
            result = conn.execute(sa.select(table)).all()
            rows[table.name] = sorted((tuple(map(repr, r)) for r in result), key=repr)
    tree: dict[str, str] = {}
    root = registry.artifacts_root
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return rows, tree


@pytest.fixture
def seeded(registry: Registry, make_run, make_source) -> Registry:
    """``churn`` version 1 (champion) already registered."""
    registry.commit_run(make_run(), NewVersion("churn", make_source(), aliases=["champion"]))
    return registry


class Boom(Exception):
    pass


def _operational_error() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, Exception("disk I/O error"))


def test_invalid_alias_changes_nothing(seeded: Registry, make_run, make_source) -> None:
    before = snapshot(seeded)
    with pytest.raises(UsageError, match="invalid alias"):
        seeded.commit_run(make_run(), NewVersion("churn", make_source(), aliases=["Bad Alias"]))
    assert snapshot(seeded) == before


@pytest.mark.parametrize("name", ["churn", "brand-new"])
def test_failure_after_rows_and_files_are_written(
    seeded: Registry, make_run, make_source, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    real = store.insert_version

    def insert_then_fail(conn: sa.Connection, **kwargs: Any) -> None:
        real(conn, **kwargs)
        assert (seeded.artifacts_root / kwargs["artifact_dir"]).is_dir()  # really installed
        raise Boom

    monkeypatch.setattr(store, "insert_version", insert_then_fail)
    before = snapshot(seeded)
    with pytest.raises(Boom):
        seeded.commit_run(make_run(), NewVersion(name, make_source(), aliases=["champion"]))
    assert snapshot(seeded) == before


def test_database_error_while_moving_aliases(
    seeded: Registry, make_run, make_source, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise _operational_error()

    monkeypatch.setattr(store.alias_ops, "move_alias", fail)
    before = snapshot(seeded)
    with pytest.raises(RegistryError, match="disk I/O error"):
        seeded.commit_run(make_run(), NewVersion("churn", make_source(), aliases=["champion"]))
    assert snapshot(seeded) == before


def test_failed_commit_statement_removes_the_files(
    seeded: Registry, make_run, make_source, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit = sa.engine.RootTransaction.commit
    calls = {"n": 0}

    def commit_fails_once(self: sa.engine.RootTransaction) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            self.rollback()
            raise _operational_error()
        real_commit(self)

    before = snapshot(seeded)
    monkeypatch.setattr(sa.engine.RootTransaction, "commit", commit_fails_once)
    with pytest.raises(RegistryError, match="disk I/O error"):
        seeded.commit_run(make_run(), NewVersion("churn", make_source(), aliases=["champion"]))
    monkeypatch.undo()
    assert snapshot(seeded) == before


def test_commit_that_landed_despite_an_error_keeps_its_files(
    seeded: Registry, make_run, make_source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection lost after COMMIT reached the server: the version exists, so must its files."""
    real_commit = sa.engine.RootTransaction.commit
    calls = {"n": 0}

    def commit_then_fail_once(self: sa.engine.RootTransaction) -> None:
        real_commit(self)
        calls["n"] += 1
        if calls["n"] == 1:
            raise _operational_error()

    monkeypatch.setattr(sa.engine.RootTransaction, "commit", commit_then_fail_once)
    with pytest.raises(RegistryError):
        seeded.commit_run(make_run(), NewVersion("churn", make_source()))
    monkeypatch.undo()
    seeded.open_artifacts("churn@2")


def test_leftover_folder_of_a_crashed_commit_is_replaced(
    seeded: Registry, make_run, make_source
) -> None:
    leftover = seeded.artifacts_root / "churn" / "2"
    (leftover / "half").mkdir(parents=True)
    (leftover / "half" / "written.bin").write_bytes(b"\0" * 10)
    seeded.commit_run(make_run(), NewVersion("churn", make_source({"model.txt": "v2"})))
    folder = seeded.open_artifacts("churn@2")
    assert (folder / "model.txt").read_text() == "v2"
    assert sorted(p.name for p in (seeded.artifacts_root / "churn").iterdir()) == ["1", "2"]


def test_unreadable_source_file_leaves_nothing(
    seeded: Registry, make_run, make_source, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Path.open

    def open_fails_for_source(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self.name == "info.json" and mode == "rb" and "src" in self.parent.parent.name:
            raise PermissionError(13, "Permission denied")
        return real_open(self, mode, *args, **kwargs)

    before = snapshot(seeded)
    monkeypatch.setattr(Path, "open", open_fails_for_source)
    with pytest.raises(UsageError, match=r"cannot read model source file .*info.json"):
        seeded.commit_run(make_run(), NewVersion("churn", make_source()))
    monkeypatch.undo()
    assert snapshot(seeded) == before
