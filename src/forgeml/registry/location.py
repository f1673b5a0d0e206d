"""Where a registry lives: a folder, or a database URL plus an artifacts folder.

``.forgeml`` (any path) means SQLite at ``<folder>/registry.db`` with artifacts in
``<folder>/artifacts``. A SQLAlchemy URL (``sqlite:///...``, ``postgresql://...``) names the
metadata store; plain ``postgresql://`` is routed to psycopg 3. Passwords never appear in
what this module shows.

>>> loc = locate("postgresql://ml:secret@db.internal/registry", artifacts="/srv/artifacts")
>>> loc.url.drivername, loc.display
('postgresql+psycopg', 'postgresql+psycopg://ml:***@db.internal/registry')
>>> locate("/srv/forgeml").url.database
'/srv/forgeml/registry.db'
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from forgeml.config.redact import hide_password
from forgeml.errors import ModelNotFound, RegistryNotWritable, UsageError

__all__ = [
    "DB_FILE",
    "Location",
    "check_creatable_dir",
    "default_log_location",
    "ensure_writable_dir",
    "hide_password",
    "locate",
    "no_registry",
]

DB_FILE = "registry.db"
ARTIFACTS_DIR = "artifacts"
DEFAULT_FOLDER = ".forgeml"
LOGS_DIR = "logs"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg2",
}


@dataclass(frozen=True)
class Location:
    """A resolved registry location.

    ``folder`` is set for the embedded layout; ``sqlite_file`` for every SQLite store.
    """

    url: URL
    artifacts: Path
    display: str
    folder: Path | None = None
    sqlite_file: Path | None = None


def locate(uri: str = DEFAULT_FOLDER, artifacts: str | None = None) -> Location:
    """Resolve ``uri`` (a folder or a SQLAlchemy URL) and the artifacts folder.

    >>> locate("sqlite:///meta.db").artifacts.parts[-2:]
    ('.forgeml', 'artifacts')
    >>> locate("mysql://h/db")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: unsupported registry URL 'mysql://h/db': use a folder, sqlite:///<file> or postgresql://<host>/<db>
    """
    if not isinstance(uri, str) or not uri.strip():
        raise UsageError("the registry location is empty: give a folder or a database URL")
    if not _URL.match(uri) or re.match(r"^[A-Za-z]:[\\/]", uri):
        folder = Path(uri).expanduser().absolute()
        db_file = folder / DB_FILE
        art = _artifacts_path(artifacts, folder / ARTIFACTS_DIR)
        return Location(
            url=URL.create("sqlite", database=str(db_file)),
            artifacts=art,
            display=str(folder),
            folder=folder,
            sqlite_file=db_file,
        )
    url = _parse_url(uri)
    art = _artifacts_path(artifacts, Path(DEFAULT_FOLDER) / ARTIFACTS_DIR)
    sqlite_file = None
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            raise UsageError(
                f"the registry needs a SQLite file, not {uri!r}: use sqlite:///<path/to/file.db>"
            )
        sqlite_file = Path(url.database).expanduser().absolute()
        url = url.set(database=str(sqlite_file))
    return Location(
        url=url,
        artifacts=art,
        display=url.render_as_string(hide_password=True),
        sqlite_file=sqlite_file,
    )


def default_log_location(uri: str = DEFAULT_FOLDER) -> str:
    """Where the prediction log of a registry's models lives unless told otherwise: the
    ``logs`` folder beside a file registry, or the PostgreSQL database of a URL registry
    (its own tables).

    >>> default_log_location("/srv/forgeml")
    '/srv/forgeml/logs'
    >>> default_log_location("postgresql://ml@db/reg")
    'postgresql+psycopg://ml@db/reg'
    """
    loc = locate(uri)
    if loc.folder is not None:
        return str(loc.folder / LOGS_DIR)
    if loc.sqlite_file is not None:
        return str(loc.sqlite_file.parent / LOGS_DIR)
    return loc.url.render_as_string(hide_password=False)


def _parse_url(uri: str) -> URL:
    unsupported = UsageError(
        f"unsupported registry URL {hide_password(uri)!r}: use a folder, sqlite:///<file> or "
        "postgresql://<host>/<db>"
    )
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise unsupported from exc
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise unsupported
    return url.set(drivername=driver)


def _artifacts_path(artifacts: str | None, default: Path) -> Path:
    if artifacts is None:
        return default.expanduser().absolute()
    if "://" in artifacts and not artifacts.startswith("file://"):
        raise UsageError(
            f"registry artifacts must be a local folder for now, not {artifacts!r}",
        )
    return Path(artifacts.removeprefix("file://")).expanduser().absolute()


def ensure_writable_dir(path: Path, what: str) -> None:
    """Create ``path`` (and parents) and prove it is writable, or raise
    :class:`RegistryNotWritable` naming it.

    Writing a probe file is the only test that holds for root, read-only mounts and ACLs.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     ensure_writable_dir(Path(f.name) / "sub", "registry folder")
    Traceback (most recent call last):
    ...
    forgeml.errors.RegistryNotWritable: cannot create registry folder .../sub: Not a directory
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        os.close(fd)
        Path(probe).unlink()
    except FileExistsError as exc:
        raise RegistryNotWritable(f"cannot create {what} {path}: a file is in the way") from exc
    except OSError as exc:
        action = "create" if not path.is_dir() else "write to"
        raise RegistryNotWritable(f"cannot {action} {what} {path}: {exc.strerror or exc}") from exc


def check_creatable_dir(path: Path, what: str) -> None:
    """Like :func:`ensure_writable_dir` but creating nothing: ``path``, or the nearest folder
    above it that exists, must accept a new file.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     check_creatable_dir(Path(f.name) / "sub" / "artifacts", "registry folder")
    Traceback (most recent call last):
    ...
    forgeml.errors.RegistryNotWritable: cannot create registry folder .../sub/artifacts: ... is not a folder
    """
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise RegistryNotWritable(f"cannot create {what} {path}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=existing)
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        action = "write to" if existing == path else "create"
        raise RegistryNotWritable(f"cannot {action} {what} {path}: {exc.strerror or exc}") from exc


def no_registry(display: str) -> ModelNotFound:
    """The error for a location where no registry was created yet."""
    return ModelNotFound(f"no registry exists at {display}", hint="run `forgeml run` first")
