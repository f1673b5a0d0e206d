"""SQL databases through SQLAlchemy URLs, and DuckDB queries; both streamed.

The ``query`` is the user's own SQL, run as written; forgeml never builds SQL from data.
A ``table`` name is checked against the database's tables and quoted by SQLAlchemy (or,
for DuckDB, as a quoted identifier), so ``order`` or ``My Table`` work as names. SQL
tables have no row order: a table is read in primary-key order when it has a primary
key; otherwise write a ``query`` with ``ORDER BY`` for repeatable reads (and splits).

>>> import sqlite3, tempfile, pathlib
>>> db = pathlib.Path(tempfile.mkdtemp()) / "t.db"
>>> with sqlite3.connect(db) as conn:
...     _ = conn.execute('create table "order" (id integer, amount real)')
...     _ = conn.executemany('insert into "order" values (?, ?)', [(i, i / 2) for i in range(3)])
>>> SqlSource(f"sqlite:///{db}", table="order").read().frame.rows()
[(0, 0.0), (1, 0.5), (2, 1.0)]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from forgeml.data.base import Batch, DataSource
from forgeml.errors import DataSourceError, MissingExtraError

__all__ = ["DuckDBSource", "SqlSource"]

_DRIVER_HINTS = {
    "psycopg": "pip install 'forgeml[postgres]'",
    "psycopg2": "pip install psycopg2-binary, or pip install 'forgeml[postgres]' and use postgresql+psycopg://",
    "pymysql": "pip install pymysql",
    "MySQLdb": "pip install mysqlclient, or pip install pymysql and use mysql+pymysql://",
}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class SqlSource(DataSource):
    """Rows of a SQL ``query`` or ``table``, fetched ``chunk_rows`` at a time from a
    server-side cursor (``stream_results``) where the driver has one."""

    format = "sql"

    def __init__(
        self,
        url: str,
        *,
        query: str | None = None,
        table: str | None = None,
        chunk_rows: int = 262_144,
        resolve: Callable[[str], str] = lambda s: s,
    ) -> None:
        import sqlalchemy as sa

        if (query is None) == (table is None):
            raise DataSourceError("data: a SQL source needs either data.query or data.table")
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise DataSourceError(f"data.source: invalid SQLAlchemy URL '{url}'") from exc
        if parsed.drivername in ("postgres", "postgresql"):
            # The driver forgeml installs (psycopg 3), as for registry URLs; SQLAlchemy's
            # own default for a plain URL is psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            database = resolve(parsed.database)
            if not Path(database).is_file():
                raise DataSourceError(f"data.source: file not found: {database}")
            parsed = parsed.set(database=database)
        self.url = parsed
        self.query = query
        self.table = table
        self.chunk_rows = chunk_rows
        shown = parsed.render_as_string(hide_password=True)
        self.description = f"{shown} (table '{table}')" if table else shown

    def iter_batches(self) -> Iterator[Batch]:
        import sqlalchemy as sa

        engine = self._engine()
        try:
            with engine.connect() as conn:
                statement = self._statement(conn)
                result = conn.execution_options(stream_results=True).execute(statement)
                columns = list(result.keys())
                offset = 0
                while True:
                    rows = result.fetchmany(self.chunk_rows)
                    if not rows and offset:
                        break
                    frame = pl.DataFrame(
                        [tuple(r) for r in rows],
                        schema=columns,
                        orient="row",
                        infer_schema_length=None,
                    )
                    yield Batch(frame, offset, [])
                    offset += len(rows)
                    if not rows:
                        break
        except sa.exc.SQLAlchemyError as exc:
            raise DataSourceError(
                f"data.source: query failed on {self.description}: {_first_line(exc)}"
            ) from exc
        finally:
            engine.dispose()

    def _engine(self) -> Any:
        import sqlalchemy as sa

        try:
            return sa.create_engine(self.url)
        except ImportError as exc:
            module = (exc.name or "the database driver").split(".")[0]
            extra = "postgres" if module == "psycopg" else module
            err = MissingExtraError(module, extra, f"reading {self.description}")
            err.hint = _DRIVER_HINTS.get(module, f"pip install {module}")
            raise err from exc
        except sa.exc.NoSuchModuleError as exc:
            raise DataSourceError(
                f"data.source: SQLAlchemy has no dialect for '{self.url.drivername}'"
            ) from exc

    def _statement(self, conn: Any) -> Any:
        import sqlalchemy as sa

        if self.query is not None:
            return sa.text(self.query)
        assert self.table is not None
        schema, _, name = self.table.rpartition(".")
        tables = sa.inspect(conn).get_table_names(schema=schema or None)
        tables += sa.inspect(conn).get_view_names(schema=schema or None)
        if name not in tables:
            raise DataSourceError(
                f"data.table: table '{self.table}' not found in "
                f"{self.url.render_as_string(hide_password=True)}{_did_you_mean(name, tables)}; "
                f"tables are: {', '.join(sorted(tables)) or '(none)'}"
            )
        # Rows of a table have no order in SQL; ordering by the primary key, when there is
        # one, makes reads (and so seeded splits) repeatable.
        key = sa.inspect(conn).get_pk_constraint(name, schema=schema or None)
        order: list[Any] = [sa.column(c) for c in key.get("constrained_columns") or []]
        table = sa.table(name, schema=schema or None)
        return sa.select(sa.text("*")).select_from(table).order_by(*order)


class DuckDBSource(DataSource):
    """The result of a DuckDB ``query`` (which may read files: ``read_csv('x.csv')``),
    or a ``table`` of a DuckDB database file, streamed as Arrow record batches.

    ``database`` is ``None`` for an in-memory database; relative file names inside the
    query are looked up in ``search_path`` (the spec's folder).
    """

    format = "duckdb"

    def __init__(
        self,
        *,
        query: str | None = None,
        table: str | None = None,
        database: str | None = None,
        search_path: str | None = None,
        chunk_rows: int = 262_144,
    ) -> None:
        if (query is None) == (table is None):
            raise DataSourceError("data: a DuckDB source needs either data.query or data.table")
        if database is not None and not Path(database).is_file():
            raise DataSourceError(f"data.source: file not found: {database}")
        self.query = query
        self.table = table
        self.database = database
        self.search_path = search_path
        self.chunk_rows = chunk_rows
        self.description = f"duckdb:{database or 'memory'}" + (
            f" (table '{table}')" if table else ""
        )

    def _sql(self) -> str:
        if self.query is not None:
            return self.query
        assert self.table is not None
        # An identifier, quoted (embedded quotes doubled), never a value: not injectable.
        return "select * from " + ".".join(  # noqa: S608
            '"' + part.replace('"', '""') + '"' for part in self.table.split(".")
        )

    def iter_batches(self) -> Iterator[Batch]:
        import duckdb

        try:
            conn = duckdb.connect(self.database or ":memory:", read_only=self.database is not None)
        except duckdb.Error as exc:
            raise DataSourceError(
                f"data.source: cannot open {self.description}: {_first_line(exc)}"
            ) from exc
        try:
            if self.search_path:
                quoted = self.search_path.replace("'", "''")
                conn.execute(f"SET file_search_path = '{quoted}'")
            reader = conn.sql(self._sql()).to_arrow_reader(self.chunk_rows)
            offset = 0
            first = True
            for record_batch in reader:
                if record_batch.num_rows == 0 and not first:
                    continue
                frame = pl.from_arrow(record_batch)
                assert isinstance(frame, pl.DataFrame)
                yield Batch(frame, offset, [])
                offset += frame.height
                first = False
            if first:
                frame = pl.from_arrow(reader.schema.empty_table())
                assert isinstance(frame, pl.DataFrame)
                yield Batch(frame, 0, [])
        except duckdb.Error as exc:
            what = "data.table" if self.table else "data.query"
            raise DataSourceError(
                f"{what}: DuckDB failed on {self.description}: {_first_line(exc)}"
            ) from exc
        finally:
            conn.close()
