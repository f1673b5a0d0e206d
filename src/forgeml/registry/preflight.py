"""Checking a registry location before a long run, without creating anything.

``forgeml check`` and the start of ``forgeml run`` call :func:`check_writable` so that an
unwritable folder or an unreachable database is reported before minutes of training, not
after.

>>> import tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> check_writable(root / "not-yet" / ".forgeml")
>>> (root / "not-yet").exists()
False
>>> root.rmdir()
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from forgeml.registry.database import Database
from forgeml.registry.location import check_creatable_dir, locate
from forgeml.registry.schema import check_schema_version, read_artifacts_root, read_schema_version

__all__ = ["check_writable"]


def check_writable(
    uri: str | PathLike[str] = ".forgeml", artifacts: str | PathLike[str] | None = None
) -> None:
    """Raise what :meth:`Registry.open` would raise for this location, creating nothing.

    Folders (the SQLite file's and the artifacts folder) must exist and be writable, or be
    creatable; a database URL must be reachable and not hold a newer schema. Raises
    :class:`RegistryNotWritable`, :class:`RegistryError` or :class:`UsageError`.
    """
    location = locate(str(uri), None if artifacts is None else str(artifacts))
    if location.sqlite_file is not None:
        what = "registry folder" if location.folder else "registry database folder"
        check_creatable_dir(location.sqlite_file.parent, what)
    if location.sqlite_file is not None and not location.sqlite_file.is_file():
        check_creatable_dir(location.artifacts, "registry artifacts folder")
        return  # a SQLite file that can be created can be opened
    db = Database(location)
    try:
        with db.read() as conn:
            version = read_schema_version(conn)
            stored = read_artifacts_root(conn) if location.folder is None else None
    finally:
        db.dispose()
    check_schema_version(version, location.display)
    root = Path(stored) if stored is not None and artifacts is None else location.artifacts
    check_creatable_dir(root, "registry artifacts folder")
