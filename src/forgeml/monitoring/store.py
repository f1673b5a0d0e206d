"""The monitoring log store: predictions, feedback and events behind one small interface.

A log lives in a folder of Parquet files (the default) or in a PostgreSQL database named by
URL; :func:`open_store` picks the backend from the location. The server writes through
:meth:`LogStore.write` (one writer thread per server; several servers may share a store);
drift checks, reports and A/B analysis read through :meth:`LogStore.read` and
:meth:`LogStore.find`, and get the same columns and dtypes from either backend.

Every write is atomic: a reader sees all of a call's rows or none. In a folder, each call is
one file ``<folder>/<kind>/date=YYYY-MM-DD/part-<ms>-<pid>-<token>-<seq>.parquet``, written
under a dot-name, synced and renamed. ``date`` is the UTC day of the call's earliest row, so
a partition holds rows of its day and (for a call that crosses midnight) the next, which is
what readers prune on; the rare call whose rows fall on more than two days (a backfill,
never a server's flush) is written as one file per day, renamed one after the other. In
PostgreSQL, each call is one ``COPY`` in one transaction into ``forgeml_log_<kind>``.
Prediction logs written before this store (Parquet files directly under
``<folder>/date=YYYY-MM-DD/``, without ``unit`` and ``shadow``) are read as predictions.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> import pyarrow as pa
>>> store = open_store(tempfile.mkdtemp())
>>> event = {"ts": [datetime(2026, 1, 2, tzinfo=UTC)], "kind": ["reload"], "count": [1]}
>>> store.write("events", pa.table(event))
>>> store.read("events").row(0)
(datetime.datetime(2026, 1, 2, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), None, 'reload', 1, None)
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from forgeml.errors import ConfigError, DataSourceError, ForgeError, UsageError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa
    import sqlalchemy as sa

__all__ = [
    "EVENTS_SCHEMA",
    "FEEDBACK_SCHEMA",
    "LOG_KINDS",
    "PREDICTIONS_SCHEMA",
    "LogStore",
    "ParquetStore",
    "PostgresStore",
    "open_store",
    "polars_schema",
    "schema",
]

LOG_KINDS = ("predictions", "feedback", "events")
TABLE_PREFIX = "forgeml_log_"
_DAY_US = 86_400_000_000
_EPOCH = date(1970, 1, 1)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")  # C:\logs is a folder, not a URL
_PG_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2")


@dataclass(frozen=True)
class _Column:
    name: str
    type: str  # string | ts | bool | int32 | int64 | float64
    nullable: bool = False
    default: bool | None = None  # filled in where the column is missing or null
    # Few distinct values (a model's name, a label): Parquet dictionary-encodes these
    # columns only. Trying a dictionary on ids and input rows first cost twice the CPU of
    # the whole write and made the files larger.
    repeats: bool = False


_COLUMNS: dict[str, tuple[_Column, ...]] = {
    "predictions": (
        _Column("request_id", "string"),
        _Column("ts", "ts"),
        _Column("model", "string", repeats=True),
        _Column("version", "string", repeats=True),
        _Column("variant", "string", nullable=True, repeats=True),
        _Column("unit", "string", nullable=True),
        _Column("shadow", "bool", default=False),
        _Column("row", "int32"),
        _Column("inputs", "string", nullable=True),  # null: not sampled (--log-inputs)
        _Column("prediction", "string", repeats=True),
        _Column("score", "float64", nullable=True),
        _Column("latency_ms", "float64"),
    ),
    "feedback": (
        _Column("ts", "ts"),
        _Column("model", "string", repeats=True),
        _Column("request_id", "string", nullable=True),
        _Column("row", "int32", nullable=True),
        _Column("unit", "string", nullable=True),
        _Column("experiment", "string", nullable=True, repeats=True),
        _Column("label", "string", repeats=True),
        _Column("event_id", "string", nullable=True),
    ),
    "events": (
        _Column("ts", "ts"),
        _Column("model", "string", nullable=True, repeats=True),
        _Column("kind", "string", repeats=True),
        _Column("count", "int64"),
        # added later: nullable, like any
        _Column("variant", "string", nullable=True, repeats=True),
    ),
}
_PG_TYPES = {
    "string": "text",
    "ts": "timestamptz",
    "bool": "boolean",
    "int32": "integer",
    "int64": "bigint",
    "float64": "double precision",
}


def _repeating(kind: str, table: pa.Table) -> list[str]:
    """The columns of ``table`` worth a Parquet dictionary (see ``_Column.repeats``)."""
    repeats = {c.name for c in _columns(kind) if c.repeats}
    return [name for name in table.column_names if name in repeats]


def _columns(kind: str) -> tuple[_Column, ...]:
    columns = _COLUMNS.get(kind) if isinstance(kind, str) else None
    if columns is None:
        raise UsageError(f"unknown log kind {kind!r}: use one of {', '.join(LOG_KINDS)}")
    return columns


@cache
def schema(kind: str) -> pa.Schema:
    """The Arrow schema of a log kind (``predictions``, ``feedback`` or ``events``).

    >>> schema("events").names
    ['ts', 'model', 'kind', 'count', 'variant']
    """
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "ts": pa.timestamp("us", tz="UTC"),
        "bool": pa.bool_(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float64": pa.float64(),
    }
    return pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in _columns(kind)])


@cache
def polars_schema(kind: str) -> pl.Schema:
    """The Polars schema every read of ``kind`` returns, on every backend."""
    import polars as pl

    frame = pl.from_arrow(schema(kind).empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.schema


PREDICTIONS_SCHEMA: pa.Schema
FEEDBACK_SCHEMA: pa.Schema
EVENTS_SCHEMA: pa.Schema


def __getattr__(name: str) -> Any:
    # The schemas are built on first use, so importing this module does not import pyarrow.
    kind = {"PREDICTIONS_SCHEMA": "predictions", "FEEDBACK_SCHEMA": "feedback"}.get(name)
    if kind is not None or name == "EVENTS_SCHEMA":
        return schema(kind or "events")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class _Query:
    kind: str
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    latest_first: bool = False
    request_id: str | None = None


class LogStore(ABC):
    """Where the prediction, feedback and event logs live; see :func:`open_store`."""

    location: str  # for messages: the folder, or the URL with its password as ***

    def write(self, kind: str, table: Any) -> None:
        """Append the rows of ``table`` (an Arrow table or a Polars frame) to the ``kind``
        log, atomically. Columns may come in any order; missing nullable ones are filled
        with nulls (``shadow`` with false). Raises :class:`UsageError` for an unknown kind
        or column, or a missing or null required column, and :class:`ForgeError` when the
        storage fails (a full disk, a database gone)."""
        rows = _conform(kind, table)
        if rows.num_rows:
            self._write(kind, rows)

    def read(
        self,
        kind: str,
        *,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        latest_first: bool = False,
    ) -> pl.DataFrame:
        """Rows with ``since <= ts < until`` (naive datetimes are UTC) of ``model``, by time
        (newest first when ``latest_first``), at most ``limit`` of them (the latest ones when
        ``latest_first``). Always every column of the kind, with :func:`polars_schema`'s
        dtypes, also when there are no rows."""
        _columns(kind)
        if model is not None and not isinstance(model, str):
            raise UsageError(f"model must be a string, not {type(model).__name__}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise UsageError(f"limit must be a whole number >= 0, not {limit!r}")
        query = _Query(
            kind, model, _utc(since, "since"), _utc(until, "until"), limit, bool(latest_first)
        )
        if limit == 0 or (query.since and query.until and query.since >= query.until):
            return _frame(kind, None)
        return _frame(kind, self._read(query))

    def find(self, request_id: str) -> pl.DataFrame:
        """Every logged prediction row of one request (any time), in row order."""
        if not isinstance(request_id, str):
            raise UsageError(f"request_id must be a string, not {type(request_id).__name__}")
        return _frame("predictions", self._read(_Query("predictions", request_id=request_id)))

    def prune(self, before: datetime) -> dict[str, int]:
        """Delete what was logged before ``before`` (retention); returns, per kind, how
        many rows (PostgreSQL) or files (Parquet) went. Parquet logs go by whole day
        folders, and a day's folder only once ``before`` is two days past it (a flush that
        crossed midnight files its last rows under the previous day), so nothing newer
        than ``before`` is ever deleted."""
        cutoff = _utc(before, "before")
        assert cutoff is not None
        return self._prune(cutoff)

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    @abstractmethod
    def _prune(self, before: datetime) -> dict[str, int]: ...

    @abstractmethod
    def _write(self, kind: str, table: pa.Table) -> None: ...

    @abstractmethod
    def _read(self, query: _Query) -> pl.DataFrame | None: ...

    def __enter__(self) -> LogStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def open_store(location: str | os.PathLike[str], *, create: bool = True) -> LogStore:
    """The log store at ``location``: ``postgresql://...`` (any PostgreSQL driver name; psycopg
    3 is used) is a database, anything else a folder (``file://`` allowed).

    ``create=True`` (a server): make the folder or the tables; a folder that cannot be
    written or a database that cannot be reached is a :class:`ConfigError`. ``create=False``
    (a reader): a missing folder or missing tables are a :class:`DataSourceError`; a kind
    with no rows yet reads as an empty frame.

    >>> open_store("/no/such/log", create=False)
    Traceback (most recent call last):
    ...
    forgeml.errors.DataSourceError: /no/such/log: no prediction log there (start `forgeml serve --prediction-log /no/such/log` to write one)
    """
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if not isinstance(location, str) or not location.strip():
        raise ConfigError(
            "the prediction log location is empty: give a folder or a postgresql:// URL"
        )
    if _URL.match(location) and not _DRIVE.match(location):
        scheme = location.split(":", 1)[0].lower()
        if scheme in _PG_SCHEMES:
            return PostgresStore(_pg_url(location), create=create)
        if scheme != "file":
            raise ConfigError(
                f"unsupported prediction log location {_hide_password(location)!r}: "
                "use a folder or postgresql://<host>/<database>"
            )
        location = re.sub(r"^file:(//)?", "", location, flags=re.IGNORECASE)
    return ParquetStore(Path(location).expanduser().absolute(), create=create)


# --- shared helpers ---------------------------------------------------------------------
def _no_log(location: str) -> DataSourceError:
    return DataSourceError(
        f"{location}: no prediction log there",
        hint=f"start `forgeml serve --prediction-log {location}` to write one",
    )


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise UsageError(f"{name} must be a datetime, not {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _conform(kind: str, table: Any) -> pa.Table:
    """``table`` with exactly the columns, order and types of ``schema(kind)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = _columns(kind)
    if hasattr(table, "to_arrow") and not isinstance(table, pa.Table):  # a Polars frame
        table = table.to_arrow()
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise UsageError(f"{kind} log: expected an Arrow table, not {type(table).__name__}")
    names = table.column_names
    known = [c.name for c in columns]
    unknown = [n for n in names if n not in known]
    if unknown or len(set(names)) != len(names):
        what = f"unknown column(s) {_quoted(unknown)}" if unknown else "duplicate column names"
        raise UsageError(f"{kind} log: {what}; its columns are {', '.join(known)}")
    required = [c.name for c in columns if not c.nullable and c.default is None]
    missing = [n for n in required if n not in names]
    if missing:
        raise UsageError(f"{kind} log: missing required column(s) {_quoted(missing)}")
    target = schema(kind)
    arrays = []
    for column, field in zip(columns, target, strict=True):
        if column.name in names:
            array = _cast(table.column(column.name), field.type, kind, column.name)
        else:
            array = pa.nulls(table.num_rows, field.type)
        if array.null_count and column.default is not None:
            array = pc.fill_null(array, column.default)
        elif array.null_count and not column.nullable:
            raise UsageError(
                f"{kind} log: column '{column.name}' is required but has "
                f"{array.null_count} null value(s)"
            )
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=target)


def _cast(array: Any, target: Any, kind: str, name: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if array.type == target:
        return array
    try:
        # ns -> us drops sub-microsecond digits; every other lossy cast is refused.
        options = pc.CastOptions(target, allow_time_truncate=pa.types.is_timestamp(target))
        return pc.cast(array, options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        reason = str(exc).splitlines()[0]
        raise UsageError(
            f"{kind} log: column '{name}' has type {array.type}, not {target} ({reason})"
        ) from exc


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _frame(kind: str, frame: pl.DataFrame | None) -> pl.DataFrame:
    """``frame`` (or no rows) with exactly the columns and dtypes of ``polars_schema(kind)``."""
    import polars as pl

    target = polars_schema(kind)
    if frame is None:
        return pl.DataFrame(schema=target)
    exprs = [pl.col(n).cast(t) for n, t in target.items()]
    if kind == "predictions":  # the legacy layout has no shadow column
        exprs[list(target).index("shadow")] = pl.col("shadow").cast(pl.Boolean).fill_null(False)
    return frame.select(exprs)


def _hide_password(text: str) -> str:
    from forgeml.config.redact import hide_password

    return hide_password(text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- a folder of Parquet files -----------------------------------------------------------
class ParquetStore(LogStore):
    """A log in a folder: one Parquet file per write under ``<kind>/date=YYYY-MM-DD/``."""

    def __init__(self, folder: Path, *, create: bool = True) -> None:
        self.folder = folder
        self.location = str(folder)
        if create:
            _ensure_writable(folder)
        elif not folder.is_dir():
            raise _no_log(self.location)
        # pid + a per-store random token + a sequence: unique across threads, stores, hosts.
        self._token = os.urandom(4).hex()
        self._sequence = itertools.count(1)

    def close(self) -> None:
        """Nothing to release: every write opens and closes its own file."""

    def _write(self, kind: str, table: pa.Table) -> None:
        try:
            for day, part in _split_by_day(table):
                self._write_file(self.folder / kind / f"date={day}", kind, part)
        except OSError as exc:
            raise ForgeError(
                f"cannot write the prediction log {self.location}: {exc.strerror or exc}"
            ) from exc

    def _write_file(self, folder: Path, kind: str, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        ms = time.time_ns() // 1_000_000
        name = f"part-{ms:013d}-{os.getpid()}-{self._token}-{next(self._sequence):06d}.parquet"
        tmp = folder / f".{name}.tmp"
        try:
            pq.write_table(
                table, str(tmp), compression="zstd", use_dictionary=_repeating(kind, table)
            )
            fd = os.open(tmp, os.O_RDONLY)  # on disk before it gets its name
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _read(self, query: _Query) -> pl.DataFrame | None:
        import polars as pl

        files = self._files(query.kind, query.since, query.until)
        if not files:
            return None
        scan = pl.scan_parquet(
            files,
            schema=polars_schema(query.kind),
            missing_columns="insert",  # legacy predictions lack unit and shadow
            extra_columns="ignore",
            hive_partitioning=False,
            glob=False,
        )
        conditions = []
        if query.model is not None:
            conditions.append(pl.col("model") == query.model)
        if query.request_id is not None:
            conditions.append(pl.col("request_id") == query.request_id)
        if query.since is not None:
            conditions.append(pl.col("ts") >= query.since)
        if query.until is not None:
            conditions.append(pl.col("ts") < query.until)
        if conditions:
            scan = scan.filter(*conditions)
        # Stable: rows with the same ts keep the order they were written in, both ways.
        scan = scan.sort("ts", descending=query.latest_first, maintain_order=True)
        if query.limit is not None:
            scan = scan.head(query.limit)
        try:
            return scan.collect()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataSourceError(
                f"{self.location}: cannot read the {query.kind} log ({_first_line(exc)})"
            ) from exc

    def _prune(self, before: datetime) -> dict[str, int]:
        last = before.date() - timedelta(days=2)  # rows of day D may sit in D-1's folder
        removed: dict[str, int] = {}
        for kind in LOG_KINDS:
            roots = [self.folder / kind] + ([self.folder] if kind == "predictions" else [])
            for root in roots:
                for day, path in _partitions(root):
                    if day > last:
                        continue
                    files = _parquet_files(path)
                    try:
                        shutil.rmtree(path)
                    except OSError as exc:
                        raise ForgeError(
                            f"{self.location}: cannot delete {path} ({exc.strerror or exc})"
                        ) from exc
                    removed[kind] = removed.get(kind, 0) + len(files)
        return removed

    def _files(self, kind: str, since: datetime | None, until: datetime | None) -> list[str]:
        """The Parquet files that may hold rows in [since, until), oldest first."""
        roots = [self.folder / kind]
        if kind == "predictions":
            roots.insert(0, self.folder)  # the legacy layout: date=... right in the folder
        # A file's rows lie in its day or the next (see the module docstring).
        first = None
        if since is not None and since.date() > date.min:
            first = since.date() - timedelta(days=1)
        files: list[str] = []
        for root in roots:
            for day, path in _partitions(root):
                if first is not None and day < first:
                    continue
                if (
                    until is not None
                    and datetime(day.year, day.month, day.day, tzinfo=UTC) >= until
                ):
                    continue
                files += _parquet_files(path)
        return files


def _ensure_writable(folder: Path) -> None:
    """Create ``folder`` and prove a file can be written there (the only test that holds for
    root, read-only mounts and ACLs)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        Path(probe).unlink()
    except FileExistsError as exc:
        raise ConfigError(
            f"cannot create the prediction log folder {folder}: a file is in the way"
        ) from exc
    except OSError as exc:
        action = "write to" if folder.is_dir() else "create"
        raise ConfigError(
            f"cannot {action} the prediction log folder {folder}: {exc.strerror or exc}"
        ) from exc


def _split_by_day(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """One (day, rows) part when the rows span at most two days (every server flush), else
    one part per day, so that a partition's rows lie in its day or the next."""
    import numpy as np
    import pyarrow as pa

    days = np.floor_divide(table.column("ts").cast(pa.int64()).to_numpy(), _DAY_US)
    low, high = int(days.min()), int(days.max())
    if high - low <= 1:
        return [(_iso_day(low), table)]
    return [(_iso_day(int(d)), table.filter(pa.array(days == d))) for d in np.unique(days)]


def _iso_day(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def _partitions(root: Path) -> list[tuple[date, str]]:
    """The ``date=YYYY-MM-DD`` folders right under ``root``, by day."""
    found = []
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        if entry.name.startswith("date=") and entry.is_dir():
            try:
                found.append((date.fromisoformat(entry.name[5:]), entry.path))
            except ValueError:
                continue
    return sorted(found)


def _parquet_files(folder: str) -> list[str]:
    """Finished Parquet files (not ``.part-*.tmp`` or other dot-files), in name order."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    return sorted(
        e.path
        for e in entries
        if e.name.endswith(".parquet") and not e.name.startswith(".") and e.is_file()
    )


# --- PostgreSQL --------------------------------------------------------------------------
def _pg_url(location: str) -> sa.URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(location)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"invalid prediction log URL {_hide_password(location)!r}: {_first_line(exc)}"
        ) from None
    return url.set(drivername="postgresql+psycopg")


def _table(kind: str) -> str:
    return f"{TABLE_PREFIX}{kind}"


def _ddl(kind: str) -> list[str]:
    table = _table(kind)
    columns = ['"id" bigint GENERATED ALWAYS AS IDENTITY']  # insertion order breaks ts ties
    columns += [
        f'"{c.name}" {_PG_TYPES[c.type]}{"" if c.nullable else " NOT NULL"}' for c in _columns(kind)
    ]
    statements = [
        f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)})",
        f'CREATE INDEX IF NOT EXISTS {table}_model_ts ON {table} ("model", "ts")',
    ]
    if any(c.name == "request_id" for c in _columns(kind)):
        statements.append(
            f'CREATE INDEX IF NOT EXISTS {table}_request_id ON {table} ("request_id")'
        )
    return statements


# Arbitrary constant: the key of the advisory lock that serialises creating the log tables.
_SCHEMA_LOCK_KEY = 0x666F7267656C6F67


class PostgresStore(LogStore):
    """A log in PostgreSQL tables ``forgeml_log_<kind>`` (writes by ``COPY``)."""

    def __init__(self, url: sa.URL, *, create: bool = True) -> None:
        import sqlalchemy as sa

        from forgeml._optional import require

        require("psycopg", extra="postgres", feature="a PostgreSQL prediction log")
        self.location = url.render_as_string(hide_password=True)
        self._password = url.password
        # Fail fast on an unreachable host, unless the URL says otherwise.
        timeout = {} if "connect_timeout" in url.query else {"connect_timeout": 10}
        self._engine = sa.create_engine(url, pool_pre_ping=True, connect_args=timeout)
        try:
            self._open(create)
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        self._engine.dispose()

    def _open(self, create: bool) -> None:
        import sqlalchemy as sa

        try:
            with self._engine.begin() as conn:
                if create:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
                present = self._present(conn)
                if create:
                    for kind in LOG_KINDS:
                        if kind not in present:
                            for statement in _ddl(kind):
                                conn.exec_driver_sql(statement)
                        else:  # columns added, or made nullable, since the table was made
                            for column in _columns(kind):
                                if column.nullable:
                                    conn.exec_driver_sql(
                                        f"ALTER TABLE {_table(kind)} ADD COLUMN IF NOT EXISTS "
                                        f'"{column.name}" {_PG_TYPES[column.type]}'
                                    )
                                    conn.exec_driver_sql(
                                        f'ALTER TABLE {_table(kind)} ALTER COLUMN "{column.name}" '
                                        "DROP NOT NULL"
                                    )
        except sa.exc.DBAPIError as exc:
            reason = self._scrub(_first_line(exc.orig or exc))
            error = ConfigError if create else DataSourceError
            if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
                message = f"cannot reach the prediction log database {self.location}: {reason}"
            else:
                message = f"cannot create the prediction log tables in {self.location}: {reason}"
            raise error(message) from exc
        if not create and not present:
            raise _no_log(self.location)

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _present(self, conn: Any) -> set[str]:
        """The kinds whose table exists (in the connection's search path)."""
        import sqlalchemy as sa

        names = ", ".join(f"to_regclass('{_table(k)}')" for k in LOG_KINDS)
        row = conn.execute(sa.text(f"SELECT {names}")).one()
        return {kind for kind, oid in zip(LOG_KINDS, row, strict=True) if oid is not None}

    @contextmanager
    def _connection(self, action: str) -> Iterator[Any]:
        """A pooled psycopg connection; its transaction is rolled back unless committed."""
        import psycopg
        import sqlalchemy as sa

        try:
            raw = self._engine.raw_connection()
            try:
                yield raw.driver_connection
            finally:
                raw.close()
        except (sa.exc.DBAPIError, psycopg.Error) as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ForgeError(
                f"prediction log database {self.location}: {action} failed: "
                f"{self._scrub(_first_line(cause))}"
            ) from exc

    def _write(self, kind: str, table: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        # CSV from Arrow's C++ writer: strings quoted, nulls empty and unquoted, which is
        # exactly how COPY tells a null from an empty string.
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
        data = sink.getvalue()
        names = ", ".join(f'"{n}"' for n in table.column_names)
        statement = f"COPY {_table(kind)} ({names}) FROM STDIN (FORMAT csv)"
        with self._connection(f"writing {kind}") as conn:
            with conn.cursor() as cursor, cursor.copy(statement) as copy:
                copy.write(memoryview(data))
            conn.commit()

    def _prune(self, before: datetime) -> dict[str, int]:
        from psycopg import sql

        removed: dict[str, int] = {}
        statement = sql.SQL('DELETE FROM {} WHERE "ts" < %s')
        with self._connection("deleting old rows") as conn:
            with conn.cursor() as cursor:
                for kind in LOG_KINDS:
                    cursor.execute(statement.format(sql.Identifier(_table(kind))), (before,))
                    if cursor.rowcount:
                        removed[kind] = cursor.rowcount
            conn.commit()
        return removed

    def _read(self, query: _Query) -> pl.DataFrame | None:
        import psycopg

        columns = [
            '(extract(epoch FROM "ts") * 1000000)::bigint AS "ts"'
            if c.type == "ts"
            else f'"{c.name}"'
            for c in _columns(query.kind)
        ]
        conditions, params = [], []
        for sql, value in (
            ('"model" = %s', query.model),
            ('"request_id" = %s', query.request_id),
            ('"ts" >= %s', query.since),
            ('"ts" < %s', query.until),
        ):
            if value is not None:
                conditions.append(sql)
                params.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = ' ORDER BY "ts" DESC, "id"' if query.latest_first else ' ORDER BY "ts", "id"'
        limit = f" LIMIT {int(query.limit)}" if query.limit is not None else ""
        # Only constant identifiers are spliced in; every value is a parameter.
        select = f"SELECT {', '.join(columns)} FROM {_table(query.kind)}{where}{order}{limit}"  # noqa: S608
        data = bytearray()
        with self._connection(f"reading {query.kind}") as conn:
            try:
                with (
                    conn.cursor() as cursor,
                    cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT csv)", params) as copy,
                ):
                    while chunk := copy.read():
                        data += chunk
            except psycopg.errors.UndefinedTable:
                return None  # no server has written this log yet
        return _parse_csv(query.kind, data) if data else None


def _parse_csv(kind: str, data: bytearray) -> pl.DataFrame:
    """Rows of ``COPY ... (FORMAT csv)`` (``ts`` as epoch microseconds) as a frame."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.csv as pacsv

    target = schema(kind)
    types = {f.name: pa.int64() if f.name == "ts" else f.type for f in target}
    table = pacsv.read_csv(
        pa.BufferReader(pa.py_buffer(data)),
        read_options=pacsv.ReadOptions(column_names=target.names),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""],  # NaN is a number here, not a null
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # "" is an empty string, a bare empty is null
            true_values=["t"],
            false_values=["f"],
        ),
    )
    ts = table.schema.get_field_index("ts")
    table = table.set_column(ts, "ts", table.column(ts).cast(pa.timestamp("us", tz="UTC")))
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
