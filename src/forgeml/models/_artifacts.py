"""Estimator files on disk: atomic writes, and reads checked against the recorded sha256.

An estimator's files are written whole or not at all (temp file in the same folder, fsync,
``os.replace``), and read back as bytes that are hashed and parsed from the same buffer, so
what is parsed is exactly what was checked.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     digest = write_atomic(Path(tmp), "a.json", b"{}")
...     read_verified(Path(tmp), "a.json", {"a.json": digest})
b'{}'
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from forgeml.errors import ArtifactIntegrityError

__all__ = ["read_verified", "sha256_bytes", "write_atomic"]

# Estimator files sit next to the bundle's manifest: plain names only, no folders.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _check_name(name: str) -> None:
    if not _SAFE_NAME.match(name) or ".." in name:
        raise ArtifactIntegrityError(f"estimator file name {name!r} is not a plain file name")


def write_atomic(directory: Path, name: str, data: bytes) -> str:
    """Write ``data`` to ``directory/name`` atomically; returns its sha256."""
    _check_name(name)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sha256_bytes(data)


def read_verified(directory: Path, name: str, digests: Mapping[str, str]) -> bytes:
    """The bytes of ``directory/name``, refused unless their sha256 is ``digests[name]``."""
    _check_name(name)
    expected = digests.get(name)
    if not isinstance(expected, str):
        raise ArtifactIntegrityError(f"{directory}: no sha256 recorded for estimator file {name}")
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(f"{directory}: estimator file {name} is missing") from exc
    except OSError as exc:
        raise ArtifactIntegrityError(f"{path}: cannot be read: {exc}") from exc
    found = sha256_bytes(data)
    if found != expected:
        raise ArtifactIntegrityError(
            f"{path}: sha256 mismatch (expected {expected[:12]}…, found {found[:12]}…)"
        )
    return data
