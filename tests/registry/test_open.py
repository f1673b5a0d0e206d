"""Opening a registry: folders, URLs, missing or unwritable locations, unreachable databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from forgeml._optional import available
from forgeml.errors import (
    MissingExtraError,
    ModelNotFound,
    RegistryError,
    RegistryNotWritable,
    UsageError,
)
from forgeml.registry import NewVersion, Registry, check_writable
from forgeml.registry.schema import SCHEMA_VERSION, forgeml_schema


def test_default_is_the_workspace_folder(workspace: Path) -> None:
    with Registry.open() as reg:
        assert reg.location == str(workspace / ".forgeml")
        assert reg.artifacts_root == (workspace / ".forgeml" / "artifacts").resolve()
    assert (workspace / ".forgeml" / "registry.db").is_file()
    assert repr(reg).startswith(f"Registry({str(workspace / '.forgeml')!r}, artifacts=")


def test_sqlite_url_with_default_artifacts(workspace: Path, make_run, make_source) -> None:
    with Registry.open(f"sqlite:///{workspace / 'meta' / 'reg.db'}") as reg:
        reg.commit_run(make_run(), NewVersion("churn", make_source()))
        assert reg.artifacts_root == (workspace / ".forgeml" / "artifacts").resolve()
    assert (workspace / ".forgeml" / "artifacts" / "churn" / "1" / "model.txt").is_file()


def test_path_objects_are_accepted(tmp_path: Path) -> None:
    with Registry.open(tmp_path / "reg", tmp_path / "art") as reg:
        assert reg.artifacts_root == (tmp_path / "art").resolve()


def test_folder_under_a_file_is_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryNotWritable) as info:
        Registry.open(str(blocker / "sub"))
    assert str(info.value) == f"cannot create registry folder {blocker / 'sub'}: Not a directory"
    assert "\n" not in str(info.value)
    with pytest.raises(RegistryNotWritable, match=r"registry artifacts folder .*file/art"):
        Registry.open(str(tmp_path / "ok"), str(blocker / "art"))
    with pytest.raises(RegistryNotWritable, match="a file is in the way"):
        Registry.open(str(tmp_path / "ok2"), str(blocker))


def test_create_false_without_a_registry(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound) as info:
        Registry.open(str(tmp_path / "nothing"), create=False)
    assert str(info.value) == (
        f"no registry exists at {tmp_path / 'nothing'} (run `forgeml run` first)"
    )
    assert not (tmp_path / "nothing").exists()


@pytest.mark.postgres
def test_create_false_on_an_empty_database(pg_where) -> None:
    with pytest.raises(ModelNotFound, match="no registry exists at postgresql"):
        Registry.open(pg_where.uri, pg_where.artifacts, create=False)


@pytest.mark.postgres
def test_plain_postgresql_url_uses_psycopg3(pg_where, make_run) -> None:
    plain = pg_where.uri.replace("postgresql+psycopg://", "postgresql://")
    assert plain.startswith("postgresql://")
    with Registry.open(plain, pg_where.artifacts) as reg:
        assert reg.location.startswith("postgresql+psycopg://")
        reg.commit_run(make_run())
        assert len(reg.list_runs()) == 1


def test_unreachable_database_names_the_host_not_the_password(tmp_path: Path) -> None:
    url = "postgresql://forge:s3cr3t-pw@127.0.0.1:1/registry"
    with pytest.raises(RegistryError) as info:
        Registry.open(url, str(tmp_path / "art"))
    message = str(info.value)
    assert "127.0.0.1" in message and "s3cr3t" not in message
    assert message.startswith("cannot reach the registry database postgresql+psycopg://forge:***@")
    assert "\n" not in message


@pytest.mark.parametrize(
    "uri", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "  ", "oracle://u:pw@h/db"]
)
def test_unsupported_locations(uri: str) -> None:
    with pytest.raises(UsageError) as info:
        Registry.open(uri)
    assert ":pw@" not in str(info.value)


def test_remote_artifacts_are_not_supported_yet(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="local folder"):
        Registry.open(str(tmp_path / "reg"), "s3://bucket/artifacts")


def test_schema_is_created_once_and_reopening_is_idempotent(where) -> None:
    for _ in range(3):
        with where.open() as reg, reg._db.read() as conn:
            rows = conn.execute(sa.select(forgeml_schema.c.version)).scalars().all()
    assert rows == [SCHEMA_VERSION]


def test_newer_schema_is_refused(where) -> None:
    with where.open() as reg, reg._db.write() as conn:
        conn.execute(forgeml_schema.update().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(RegistryError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        where.open()


def test_read_only_database_file_is_reported(tmp_path: Path, make_run, monkeypatch) -> None:
    with Registry.open(str(tmp_path / "reg")) as reg:
        original = sa.engine.Connection.execute

        def readonly(self, statement, *args, **kwargs):  # type: ignore[no-untyped-def]
            if isinstance(statement, sa.Insert):
                raise sa.exc.OperationalError(
                    "INSERT", {}, Exception("attempt to write a readonly database")
                )
            return original(self, statement, *args, **kwargs)

        monkeypatch.setattr(sa.engine.Connection, "execute", readonly)
        with pytest.raises(RegistryNotWritable, match="is read-only"):
            reg.commit_run(make_run())


def test_missing_driver_names_the_extra(tmp_path: Path) -> None:
    if available("psycopg2"):
        pytest.skip("psycopg2 is installed")
    with pytest.raises(MissingExtraError, match=r"forgeml\[postgres\]"):
        Registry.open("postgresql+psycopg2://u@db.internal/registry", str(tmp_path / "art"))


def test_check_writable_creates_nothing(tmp_path: Path) -> None:
    check_writable(str(tmp_path / "a" / "b" / ".forgeml"))
    check_writable(f"sqlite:///{tmp_path / 'db' / 'reg.db'}", str(tmp_path / "art"))
    assert list(tmp_path.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryNotWritable, match=r"cannot create registry folder .*: .* is not"):
        check_writable(str(blocker / "sub" / ".forgeml"))
    with pytest.raises(RegistryNotWritable, match="registry artifacts folder"):
        check_writable(str(tmp_path / "ok"), str(blocker / "art"))


def test_check_writable_on_databases(where, tmp_path: Path) -> None:
    if where.backend == "postgres":
        check_writable(where.uri, where.artifacts)  # empty database: fine, nothing created
        with pytest.raises(ModelNotFound):
            Registry.open(where.uri, where.artifacts, create=False)
    with where.open():
        pass
    check_writable(where.uri, where.artifacts)
    with pytest.raises(RegistryError, match="cannot reach the registry database"):
        check_writable("postgresql://u:pw@127.0.0.1:1/db", str(tmp_path / "art"))
