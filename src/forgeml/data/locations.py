"""Where data lives: the URI allowlist, fsspec filesystems, and file discovery.

Every ``data.source`` goes through :func:`classify` before anything is opened, so a URI
scheme nobody meant to support (``ftp:``, ``ssh:``...) is an error instead of whatever an
fsspec plug-in would do with it.

>>> classify("data/train.csv"), classify("s3://bucket/x.parquet"), classify("postgresql+psycopg://db/x")
('file', 'file', 'sql')
>>> classify("ftp://example.com/x.csv")
Traceback (most recent call last):
...
forgeml.errors.DataSourceError: data.source: unsupported URI scheme 'ftp' in 'ftp://example.com/x.csv'; allowed for files: local paths, file, memory, s3, s3a, gs, gcs, az, abfs, abfss, http, https; for SQL: sqlite, postgresql, mysql (each optionally +driver), duckdb
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from forgeml.errors import DataSourceError, MissingExtraError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "CSV_SUFFIXES",
    "FILE_SCHEMES",
    "PARQUET_SUFFIXES",
    "SQL_SCHEMES",
    "Files",
    "classify",
    "find_files",
    "kind_of_path",
    "strip_compression",
]

FILE_SCHEMES = ("file", "memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "http", "https")
SQL_SCHEMES = ("sqlite", "postgresql", "mysql")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip")
# The package that provides each fsspec protocol, for the error when it is missing.
_BACKENDS = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "http": "aiohttp",
    "https": "aiohttp",
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_GLOB_CHARS = re.compile(r"[*?\[]")

Kind = Literal["file", "sql", "duckdb"]


def scheme_of(source: str) -> str | None:
    """The lower-cased URI scheme of ``source``, or ``None`` for a plain local path.

    >>> scheme_of("S3://b/k"), scheme_of("C:/data/x.csv"), scheme_of("x.csv")
    ('s3', None, None)
    """
    if source == "duckdb":
        return "duckdb"
    match = _SCHEME.match(source)
    if match is None or len(match.group(1)) == 1:  # "C:" is a Windows drive, not a scheme
        return None
    return match.group(1).lower()


def classify(source: str) -> Kind:
    """Say whether ``source`` names files, a SQL database or DuckDB; reject other schemes."""
    scheme = scheme_of(source)
    if scheme is None or scheme in FILE_SCHEMES:
        return "file"
    if scheme == "duckdb":
        return "duckdb"
    if scheme.split("+", 1)[0] in SQL_SCHEMES:
        return "sql"
    raise DataSourceError(
        f"data.source: unsupported URI scheme '{scheme}' in '{source}'; allowed for files: "
        f"local paths, {', '.join(FILE_SCHEMES)}; for SQL: {', '.join(SQL_SCHEMES)} "
        "(each optionally +driver), duckdb"
    )


def strip_compression(path: str) -> str:
    """``path`` without a trailing compression suffix (``x.csv.gz`` -> ``x.csv``)."""
    lower = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return path[: -len(suffix)]
    return path


def kind_of_path(path: str) -> Literal["csv", "parquet"] | None:
    """The format a file name implies, ignoring compression, or ``None`` if it says nothing.

    >>> kind_of_path("a/b.csv.gz"), kind_of_path("part-0.PQ"), kind_of_path("x.json")
    ('csv', 'parquet', None)
    """
    suffix = PurePosixPath(strip_compression(path).lower()).suffix
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return None


@dataclass
class Files:
    """The files a file source reads, in a stable order, on one fsspec filesystem."""

    fs: AbstractFileSystem
    paths: list[str]
    source: str
    single: bool = False
    root: str | None = None  # the directory the source names, if it names one

    def name(self, path: str) -> str:
        """How a message names ``path``: the source itself when it is a single file."""
        return self.source if self.single else f"{self.source} ({PurePosixPath(path).name})"

    def content_sha256(self) -> str:
        """sha256 over the raw bytes of every file, in order, read in 8 MiB pieces."""
        digest = hashlib.sha256()
        for path in self.paths:
            with self.fs.open(path, "rb") as stream:
                while piece := stream.read(1 << 23):
                    digest.update(piece)
        return digest.hexdigest()


def filesystem(source: str, storage_options: dict[str, Any]) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem for ``source`` and the path on it; a missing backend package
    (``s3fs``, ``gcsfs``...) is a :class:`MissingExtraError` naming the package."""
    import fsspec

    scheme = scheme_of(source)
    try:
        fs, path = fsspec.core.url_to_fs(source, **storage_options)
    except ImportError as exc:
        raise _missing_backend(scheme, exc.name) from exc
    except (ValueError, TypeError) as exc:
        if scheme in _BACKENDS and "Protocol not known" in str(exc):  # registered on install
            raise _missing_backend(scheme, None) from exc
        raise DataSourceError(f"data.source: cannot open '{source}': {exc}") from exc
    return fs, path


# The forgeml extra that installs each backend package.
_EXTRAS = {"s3fs": "s3", "gcsfs": "gcs", "adlfs": "azure", "aiohttp": "http"}


def _missing_backend(scheme: str | None, module: str | None) -> MissingExtraError:
    package = _BACKENDS.get(scheme or "", module or "the fsspec backend")
    extra = _EXTRAS.get(package)
    err = MissingExtraError(package, extra or package, f"reading {scheme}:// data")
    if extra is None:
        err.hint = f"pip install {package}"
    return err


def find_files(source: str, storage_options: dict[str, Any]) -> Files:
    """Expand ``source`` (a file, a directory, or a glob) into the data files it names.

    A directory yields its Parquet files if it has any, else its CSV files; names starting
    with ``.`` or ``_`` (``_SUCCESS``, ``.crc``) are skipped, as Spark and Arrow do.
    """
    fs, path = filesystem(source, storage_options)
    try:
        if _GLOB_CHARS.search(path):
            paths = sorted(p for p in fs.glob(path) if not fs.isdir(p))
            if not paths:
                raise DataSourceError(f"data.source: no files match '{source}'")
            return Files(fs, paths, source)
        if fs.isdir(path):
            return Files(fs, _data_files(fs, path, source), source, root=path)
        if not fs.exists(path):
            raise DataSourceError(f"data.source: file not found: {source}")
    except PermissionError as exc:
        raise DataSourceError(f"data.source: cannot read {source}: permission denied") from exc
    except OSError as exc:
        raise DataSourceError(f"data.source: cannot read {source}: {exc}") from exc
    return Files(fs, [path], source, single=True)


def _data_files(fs: AbstractFileSystem, path: str, source: str) -> list[str]:
    found = [
        p
        for p in fs.find(path)
        if not any(part.startswith((".", "_")) for part in PurePosixPath(p).parts[-1:])
    ]
    parquet = sorted(p for p in found if kind_of_path(p) == "parquet")
    csv = sorted(p for p in found if kind_of_path(p) == "csv")
    if parquet or csv:
        return parquet or csv
    raise DataSourceError(
        f"data.source: directory {source} has no data files "
        f"({', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)})"
    )
