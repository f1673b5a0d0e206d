"""The artifacts root: immutable folders of files, one per model version, each file hashed.

A version's files are first copied into a staging folder next to their final place
(``<root>/<name>/.staging-*``), hashed while copied and fsynced; installing is then a single
``os.replace`` to ``<root>/<name>/<version>``, done while the caller holds the model's lock.
Every path is checked to stay under the root; symlinks and special files are refused on the
way in and reported on the way out.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> src = root / "src"; src.mkdir(); _ = (src / "model.txt").write_text("weights")
>>> store = ArtifactStore(root / "artifacts")
>>> staged = store.stage("churn", src)
>>> [(f.path, f.size) for f in staged.files]
[('model.txt', 7)]
>>> installed = store.install(staged, "churn", 1)
>>> store.verify("churn@1", "churn/1", {f.path: f.sha256 for f in staged.files}).name
'1'
>>> shutil.rmtree(root)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from forgeml.errors import ArtifactIntegrityError, RegistryError, RegistryNotWritable, UsageError

__all__ = ["ArtifactStore", "FileEntry", "Installed", "Staged", "hash_file", "safe_join"]

_CHUNK = 1 << 20
_MAX_PATH = 1024


@dataclass(frozen=True)
class FileEntry:
    """One artifact file: its POSIX path relative to the version folder, sha256 and size."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Staged:
    """A fully written, fsynced copy of a source folder, not yet under its version name."""

    path: Path
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class Installed:
    """A staged folder moved to its version folder; ``inode`` identifies it for undo."""

    path: Path
    inode: tuple[int, int]


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would leave ``root``.

    >>> safe_join(Path("/a"), "b/c.txt").as_posix()
    '/a/b/c.txt'
    >>> safe_join(Path("/a"), "../etc/passwd")
    Traceback (most recent call last):
    ...
    forgeml.errors.RegistryError: artifact path '../etc/passwd' leaves the artifacts root
    """
    pure = PurePosixPath(relative)
    if (
        not relative
        or pure.is_absolute()
        or "\\" in relative
        or any(part in {"", ".", ".."} for part in relative.split("/"))
    ):
        raise RegistryError(f"artifact path {relative!r} leaves the artifacts root")
    # Canonical paths (symlinks resolved) so a linked folder cannot lead outside either.
    root_abs = Path(root).resolve()
    joined = root_abs.joinpath(*pure.parts).resolve()
    if not joined.is_relative_to(root_abs):
        raise RegistryError(f"artifact path {relative!r} leaves the artifacts root")
    return joined


def hash_file(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size in bytes of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _walk(directory: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Every entry under ``directory`` except folders, sorted, without following links."""
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        links = [d for d in dirnames if (base / d).is_symlink()]
        for name in sorted([*filenames, *links]):
            path = base / name
            yield path.relative_to(directory).as_posix(), path, path.lstat()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (fsynced, read-only), hashing the bytes as they are written,
    so the recorded hash is that of the copy even if the source changes meanwhile."""
    digest = hashlib.sha256()
    size = 0
    try:
        fin = src.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read model source file {src}: {exc.strerror or exc}") from exc
    with fin, dst.open("xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    dst.chmod(0o444)
    return digest.hexdigest(), size


class ArtifactStore:
    """A local artifacts root holding ``<name>/<version>/`` folders."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def relative_dir(self, name: str, version: int) -> str:
        """The version folder relative to the root, as stored in the database."""
        return f"{name}/{version}"

    def stage(self, name: str, source_dir: Path) -> Staged:
        """Copy every regular file under ``source_dir`` into a fresh staging folder.

        Raises :class:`UsageError` for symlinks, special files, odd names or an empty source,
        and :class:`RegistryNotWritable` when the root cannot be written.
        """
        source = Path(source_dir)
        if not source.is_dir():
            raise UsageError(f"model source folder {source} does not exist or is not a folder")
        entries = list(_walk(source))
        for rel, _path, st in entries:
            if stat.S_ISLNK(st.st_mode):
                raise UsageError(f"model source {source} contains a symlink: {rel} (copy the file)")
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(f"model source {source} contains a non-regular file: {rel}")
            if len(rel) > _MAX_PATH or "\\" in rel or any(ord(c) < 32 for c in rel):
                raise UsageError(f"model source {source} has an unsupported file name: {rel!r}")
        if not entries:
            raise UsageError(f"model source folder {source} has no files")
        staging = self._make_staging(name)
        try:
            files = []
            for rel, path, _ in entries:
                target = safe_join(staging, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                sha, size = _copy(path, target)
                files.append(FileEntry(rel, sha, size))
            for directory in sorted({p.parent for p in staging.rglob("*")}, reverse=True):
                _fsync_dir(directory)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            self.prune(name)
            if isinstance(exc, OSError):
                raise RegistryNotWritable(
                    f"cannot write artifacts under {self.root}: {exc.strerror or exc}"
                ) from exc
            raise
        return Staged(staging, tuple(files))

    def _make_staging(self, name: str) -> Path:
        parent = safe_join(self.root, name)
        for attempt in range(5):
            try:
                parent.mkdir(parents=True, exist_ok=True)
                return Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
            except FileNotFoundError:
                # Another process pruned the (empty) model folder in between: try again.
                if attempt == 4:
                    raise
            except OSError as exc:
                raise RegistryNotWritable(
                    f"cannot write artifacts under {self.root}: {exc.strerror or exc}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def install(self, staged: Staged, name: str, version: int) -> Installed:
        """Move ``staged`` to ``<name>/<version>`` atomically. Call with the model locked.

        A folder already there has no database row (the caller checked the version is
        free), so it is the leftover of a crashed commit: it is moved aside and removed.
        """
        target = safe_join(self.root, self.relative_dir(name, version))
        if target.exists() or target.is_symlink():
            leftover = target.with_name(f".orphan-{version}-{uuid.uuid4().hex[:8]}")
            target.replace(leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        staged.path.replace(target)
        _fsync_dir(target.parent)
        st = target.lstat()
        return Installed(target, (st.st_dev, st.st_ino))

    def uninstall(self, installed: Installed) -> None:
        """Remove an installed folder whose database transaction did not commit."""
        try:
            st = installed.path.lstat()
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) != installed.inode:
            return  # someone else's folder now: never remove it
        trash = installed.path.with_name(f".trash-{uuid.uuid4().hex[:8]}")
        installed.path.replace(trash)
        shutil.rmtree(trash, ignore_errors=True)
        _fsync_dir(trash.parent)

    def discard(self, staged: Staged) -> None:
        """Remove a staging folder that was not installed (no-op once installed)."""
        shutil.rmtree(staged.path, ignore_errors=True)

    def prune(self, name: str) -> None:
        """Remove the model's folder if it is empty (a first commit that failed)."""
        with contextlib.suppress(OSError):  # not empty, or not there: both fine
            safe_join(self.root, name).rmdir()

    def verify(self, label: str, relative_dir: str, expected: Mapping[str, str]) -> Path:
        """Check the version folder holds exactly ``expected`` (path -> sha256).

        Returns the folder; raises :class:`ArtifactIntegrityError` naming the first file that
        is missing, unexpected, not a regular file, or whose sha256 differs.
        """
        directory = safe_join(self.root, relative_dir)
        if not directory.is_dir() or directory.is_symlink():
            raise ArtifactIntegrityError(f"artifact {label}: folder {directory} is missing")
        problems: list[str] = []
        found = {rel: (path, st) for rel, path, st in _walk(directory)}
        for rel in sorted(set(expected) - set(found)):
            problems.append(f"file {rel}: missing")
        for rel in sorted(set(found) - set(expected)):
            problems.append(f"file {rel}: unexpected file (not recorded at registration)")
        for rel in sorted(set(expected) & set(found)):
            path, st = found[rel]
            if not stat.S_ISREG(st.st_mode):
                problems.append(f"file {rel}: not a regular file")
                continue
            sha, _ = hash_file(path)
            if sha != expected[rel]:
                problems.append(
                    f"file {rel}: sha256 mismatch (expected {expected[rel][:12]}…, "
                    f"found {sha[:12]}…)"
                )
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ArtifactIntegrityError(f"artifact {label} {problems[0]}{more}")
        return directory
