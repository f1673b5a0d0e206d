"""The metadata store's one seam: an engine plus the few statements that differ by backend.

SQLite: every connection runs in WAL mode with a busy timeout and foreign keys on, and write
transactions start with ``BEGIN IMMEDIATE`` so concurrent writers queue for the lock instead
of failing halfway. PostgreSQL: writers take a row lock (``SELECT ... FOR UPDATE``) on the
model row; schema creation takes a transaction-level advisory lock. Driver errors are
re-raised as :class:`~forgeml.errors.RegistryError` with one line that never shows a
password.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from forgeml._optional import require
from forgeml.errors import RegistryError, RegistryNotWritable
from forgeml.registry.location import Location

__all__ = ["Database"]

BUSY_TIMEOUT_S = 60.0
_WRITE = "forgeml_write"
# Arbitrary constant: the key of the advisory lock that serialises schema creation.
_SCHEMA_LOCK_KEY = 0x666F7267656D6C


class Database:
    """A SQLAlchemy engine for one registry location."""

    def __init__(self, location: Location) -> None:
        self.display = location.display
        self._password = location.url.password
        self.backend = location.url.get_backend_name()
        if self.backend == "sqlite":
            self.engine = _sqlite_engine(location.url)
        else:
            driver = location.url.get_driver_name()
            require(driver, extra="postgres", feature="a PostgreSQL registry")
            # Fail fast on an unreachable host, unless the URL says otherwise.
            timeout = {} if "connect_timeout" in location.url.query else {"connect_timeout": 10}
            self.engine = sa.create_engine(location.url, pool_pre_ping=True, connect_args=timeout)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction with a consistent snapshot."""
        with self.errors("reading"), self.engine.connect() as conn:
            if self.backend == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on any exception."""
        with self.errors("writing"), self.connect_write() as conn, conn.begin():
            yield conn

    def connect_write(self) -> Connection:
        """A connection whose transactions take the write lock up front (SQLite)."""
        return self.engine.connect().execution_options(**{_WRITE: True})

    def insert_ignore(self, table: sa.Table, **values: Any) -> sa.Insert:
        """``INSERT ... ON CONFLICT DO NOTHING`` for this backend."""
        if self.backend == "postgresql":
            return postgresql.insert(table).values(**values).on_conflict_do_nothing()
        return sqlite.insert(table).values(**values).on_conflict_do_nothing()

    def lock_schema(self, conn: Connection) -> None:
        """Serialise schema creation; SQLite's ``BEGIN IMMEDIATE`` already does."""
        if self.backend == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Re-raise driver errors as :class:`RegistryError` (one line, no password)."""
        try:
            yield
        except sa.exc.DBAPIError as exc:
            raise self.translate(exc, action) from exc

    def translate(self, exc: sa.exc.DBAPIError, action: str) -> RegistryError:
        """The :class:`RegistryError` that tells a user what ``exc`` means."""
        reason = self._scrub(str(exc.orig).strip().splitlines()[0] if str(exc.orig) else "")
        low = reason.lower()
        if "readonly" in low or "read-only" in low or "read only" in low:
            return RegistryNotWritable(f"registry database {self.display} is read-only: {reason}")
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
            if "locked" in low or "busy" in low:
                return RegistryError(
                    f"registry database {self.display} is locked by another process "
                    f"(waited up to {BUSY_TIMEOUT_S:.0f} s while {action})"
                )
            return RegistryError(f"cannot reach the registry database {self.display}: {reason}")
        return RegistryError(f"registry database error while {action} ({self.display}): {reason}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text


def _sqlite_engine(url: sa.URL) -> Engine:
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Take over BEGIN from the sqlite3 module (see SQLAlchemy's SQLite transaction docs).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cur.execute("PRAGMA foreign_keys = ON")
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
        finally:
            cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine
