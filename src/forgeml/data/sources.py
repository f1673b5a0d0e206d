"""Open the data source a :class:`~forgeml.config.spec.DataSpec` describes.

``format: auto`` picks the backend from the source: a SQLAlchemy URL (``sqlite:``,
``postgresql[+driver]:``, ``mysql[+driver]:``) is SQL, ``duckdb`` is DuckDB, and anything
else is files, whose extension (``.csv``/``.tsv``/``.txt``, optionally compressed, or
``.parquet``/``.pq``) or, failing that, first bytes decide between CSV and Parquet.

>>> import tempfile, pathlib
>>> from forgeml.config.spec import DataSpec
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "t.tsv").write_text("a\\tb\\n1\\t2\\n")
>>> source = open_source(DataSpec(source="t.tsv"), resolve=lambda p: str(folder / p))
>>> source.format, source.read().frame.rows()
('csv', [('1', '2')])
>>> open_source(DataSpec(), frame={"x": [1, 2]}).read().frame.height
2
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from forgeml.config.spec import DataSpec
from forgeml.data.base import BadLine, Batch, DataSource, MemorySource
from forgeml.data.csv_source import CsvSource
from forgeml.data.frame import to_polars
from forgeml.data.locations import (
    Files,
    classify,
    find_files,
    kind_of_path,
    scheme_of,
    strip_compression,
)
from forgeml.data.parquet_source import ParquetSource
from forgeml.data.sql_source import DuckDBSource, SqlSource
from forgeml.errors import DataSourceError

__all__ = ["BadLine", "Batch", "DataSource", "open_source"]


def open_source(
    spec: DataSpec,
    *,
    resolve: Callable[[str], str] = lambda s: s,
    frame: object | None = None,
) -> DataSource:
    """The :class:`DataSource` for ``spec``; ``frame`` (pandas, Polars, Arrow, dict), when
    given, wins over ``spec.source``. ``resolve`` maps relative paths (``Spec.resolve_path``).

    Nothing is read yet, except what is needed to find the files and tell their format.

    >>> open_source(DataSpec(source="postgresql+psycopg://db.example/shop", table="orders")).format
    'sql'
    """
    if frame is not None:
        return MemorySource(
            to_polars(frame),
            chunk_rows=spec.chunk_rows,
            description=f"<in-memory {type(frame).__name__}>",
        )
    source = spec.source
    if source is None:
        if spec.format == "duckdb" or (spec.format == "auto" and spec.query):
            return _duckdb(spec, None, resolve)
        raise DataSourceError(
            "data.source is not set; give a file path, URI or SQL URL, or pass a frame"
        )
    kind = classify(source)
    fmt: str = spec.format
    if fmt == "auto" and kind != "file":
        fmt = kind
    if fmt == "sql" or kind == "sql":
        if kind != "sql" or fmt != "sql":
            raise DataSourceError(
                f"data.format '{fmt}' does not match data.source '{source}' "
                "(SQL URLs need format sql or auto)"
            )
        return SqlSource(
            source, query=spec.query, table=spec.table, chunk_rows=spec.chunk_rows, resolve=resolve
        )
    if fmt == "duckdb":
        return _duckdb(spec, source, resolve)
    if spec.query or spec.table:
        raise DataSourceError(
            "data.query and data.table only apply to SQL and DuckDB sources, "
            f"not to the files at '{source}'"
        )
    files = find_files(resolve(source), spec.storage_options)
    if fmt == "auto":
        fmt = kind_of_path(files.paths[0]) or _sniff_format(files)
    if fmt == "parquet":
        return ParquetSource(files, chunk_rows=spec.chunk_rows)
    delimiter = spec.delimiter
    if delimiter == "," and _suffix(files.paths[0]) == ".tsv":
        delimiter = "\t"
    return CsvSource(
        files,
        delimiter=delimiter,
        encoding=spec.encoding,
        header=spec.header,
        null_values=spec.null_values,
        chunk_rows=spec.chunk_rows,
    )


def _duckdb(spec: DataSpec, source: str | None, resolve: Callable[[str], str]) -> DuckDBSource:
    """``duckdb`` (in memory), ``duckdb:///<file>`` (SQLAlchemy's convention: three slashes,
    then a relative path or a fourth slash for an absolute one), or a local DuckDB file."""
    database = None
    if source is not None and source != "duckdb":
        if scheme_of(source) == "duckdb":
            rest = source.split(":", 1)[1]
            database = rest[3:] if rest.startswith("///") else rest.lstrip("/")
        elif scheme_of(source) is None:
            database = source
        else:
            raise DataSourceError(
                "data.source: format duckdb needs 'duckdb', 'duckdb:///<file>' or a local "
                f"DuckDB file, got '{source}'"
            )
        database = resolve(database) if database not in ("", ":memory:") else None
    return DuckDBSource(
        query=spec.query,
        table=spec.table,
        database=database,
        search_path=resolve("."),
        chunk_rows=spec.chunk_rows,
    )


def _suffix(path: str) -> str:
    return PurePosixPath(strip_compression(path)).suffix.lower()


def _sniff_format(files: Files) -> str:
    """Parquet files start with ``PAR1``; anything else is read as CSV (whose own checks
    then reject binary content with a clear message)."""
    try:
        with files.fs.open(files.paths[0], "rb") as stream:
            magic = stream.read(4)
    except OSError as exc:
        raise DataSourceError(f"data.source: cannot read {files.source}: {exc}") from exc
    return "parquet" if magic == b"PAR1" else "csv"
