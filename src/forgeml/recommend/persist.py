"""Save and load fitted recommenders without pickle.

A saved recommender is a folder: ``recommender.json`` (format, class name, constructor
parameters, which file holds which fitted array, the id maps' files, the caller's ``meta``
and the sha256 of every file) plus one file per array — dense arrays as ``.npy``, sparse
matrices as ``.npz`` of their CSR parts, string ids as UTF-8 bytes and offsets, an ANN
index in hnswlib's own binary format, a user-attribute fallback
(:class:`~forgeml.recommend.user_features.SegmentPopularity`) as one ``.npz`` of its arrays
with its attribute names and values in the description. Everything is read back with
``allow_pickle=False``; classes come from a table in this module (never imported by
name from the file), and every array is checked (shapes, index ranges, finite values)
before a model uses it, so a corrupt or foreign folder is a :class:`DataError` naming the
file, not a crash.

Writes are atomic: into a new folder, everything is written to a temporary sibling that is
renamed into place; into an existing folder, each file is replaced atomically and
``recommender.json`` is written last (a crash in between leaves files whose sha256 no
longer matches, which :func:`load` refuses).

>>> import tempfile
>>> import polars as pl
>>> from forgeml.recommend import Interactions, ItemKNN
>>> log = Interactions.from_frame(pl.DataFrame({"user_id": ["a", "a", "b"], "item_id": [1, 2, 1]}))
>>> model = ItemKNN().fit(log)
>>> with tempfile.TemporaryDirectory() as tmp:
...     files = save(f"{tmp}/model", model, user_ids=log.user_ids, item_ids=log.item_ids)
...     saved = load(f"{tmp}/model")
>>> sorted(files)
['item_ids.npy', 'recommender.json', 'seen_.npz', 'similarity_.npz', 'user_ids.npz']
>>> type(saved.model).__name__, saved.user_ids.tolist(), saved.model.recommend([1], k=1)[0].tolist()
('ItemKNN', ['a', 'b'], [[1]])
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import DataError, ForgeError, UsageError
from forgeml.recommend.models import Recommender

if TYPE_CHECKING:
    import scipy.sparse as sp

    from forgeml.recommend.user_features import SegmentPopularity

__all__ = ["MANIFEST", "SavedRecommender", "load", "save"]

MANIFEST = "recommender.json"
FORMAT = "forgeml.recommender"
FORMAT_VERSION = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class SavedRecommender:
    """What :func:`load` returns: the fitted ``model``, the id maps (``user_ids[code]`` is
    the original id of a user code), the ``meta`` dict given to :func:`save` and the
    user-attribute fallback saved with it (``None`` when there is none)."""

    model: Recommender
    user_ids: np.ndarray
    item_ids: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    user_features: SegmentPopularity | None = None


def _classes() -> dict[str, type[Recommender]]:
    """The only classes :func:`load` builds (a trust list in code, not in the file)."""
    from forgeml.recommend.als import ALS
    from forgeml.recommend.bpr import BPR
    from forgeml.recommend.hybrid import Hybrid
    from forgeml.recommend.models import EASE, ItemKNN, Popularity

    return {cls.__name__: cls for cls in (Popularity, ItemKNN, EASE, ALS, BPR, Hybrid)}


# --------------------------------------------------------------------------------- save


def save(
    folder: str | Path,
    model: Recommender,
    *,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    meta: dict[str, Any] | None = None,
    user_features: SegmentPopularity | None = None,
) -> list[str]:
    """Write a fitted ``model`` and its id maps into ``folder``; returns the written file
    names (relative to ``folder``, ``recommender.json`` last). ``meta`` must be
    JSON-serialisable; it comes back from :func:`load` unchanged. An ANN index built with
    :func:`forgeml.recommend.ann.build_index` (``model.index_``) is saved with it, and so
    is ``user_features``, a fitted cold-start fallback over the same items."""
    seen = model._fitted()
    user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
    if user_ids.ndim != 1 or item_ids.ndim != 1 or seen.shape != (len(user_ids), len(item_ids)):
        raise UsageError(
            f"save: the model was fitted on {seen.shape[0]} users x {seen.shape[1]} items, "
            f"but user_ids has shape {user_ids.shape} and item_ids {item_ids.shape}"
        )
    writers: dict[str, Callable[[IO[bytes]], None]] = {}
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": _describe(model, "", writers, {}),
        "user_ids": _describe_ids(user_ids, "user_ids", writers),
        "item_ids": _describe_ids(item_ids, "item_ids", writers),
        "meta": {} if meta is None else meta,
    }
    if not isinstance(description["meta"], dict):
        raise UsageError("save: meta must be a dict")
    _json_bytes(description["meta"], "meta")
    if user_features is not None:
        description["user_features"] = _describe_user_features(
            user_features, seen.shape[1], writers
        )
    index = getattr(model, "index_", None)
    scratch = Path(tempfile.mkdtemp(prefix="forgeml-ann-")) if index is not None else None
    try:
        if index is not None and scratch is not None:
            description["index"] = {"file": "index.hnsw", **index._save(scratch / "index.hnsw")}
            writers["index.hnsw"] = _copy_from(scratch / "index.hnsw")
        return _write_folder(Path(folder), writers, description)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _describe(
    model: Recommender,
    prefix: str,
    writers: dict[str, Callable[[IO[bytes]], None]],
    written: dict[int, str],
) -> dict[str, Any]:
    """JSON description of ``model`` (and of models among its parameters, recursively);
    registers one writer per fitted array (an array shared with a parent: written once)."""
    name = type(model).__name__
    if _classes().get(name) is not type(model):
        raise UsageError(f"save: {name} is not a recommender forgeml can save")
    params: dict[str, Any] = {}
    for key, value in model.get_params().items():
        if isinstance(value, Recommender):
            value._fitted()
            params[key] = {"$model": _describe(value, f"{prefix}{key}.", writers, written)}
        else:
            params[key] = list(value) if isinstance(value, tuple) else value
    _json_bytes(params, f"{name} parameters")
    state: dict[str, str] = {}
    for attr in model._state_attrs:
        value = getattr(model, attr, None)
        if value is None:
            raise UsageError(f"save: {name} has no fitted {attr}")
        if id(value) in written:
            state[attr] = written[id(value)]
            continue
        file = _state_file(f"{prefix}{attr}", value, writers)
        written[id(value)] = state[attr] = file
    return {"class": name, "params": params, "state": state}


def _state_file(stem: str, value: Any, writers: dict[str, Callable[[IO[bytes]], None]]) -> str:
    import scipy.sparse as sp

    if sp.issparse(value):
        csr = value if isinstance(value, sp.csr_matrix) else sp.csr_matrix(value)
        # Canonical form (sorted, unique indices), in place so the model in memory computes
        # exactly what the loaded one will.
        csr.sum_duplicates()
        file = f"{stem}.npz"
        writers[file] = lambda fh: _save_csr(fh, csr)
        return file
    array = np.ascontiguousarray(value)
    if array.dtype.hasobject:
        raise UsageError(f"save: {stem} holds Python objects, which are not saved")
    file = f"{stem}.npy"
    writers[file] = lambda fh: np.save(fh, array, allow_pickle=False)
    return file


def _save_csr(fh: IO[bytes], matrix: sp.csr_matrix) -> None:
    parts = {
        "shape": np.asarray(matrix.shape, dtype=np.int64),
        "indptr": matrix.indptr.astype(np.int64),
        "indices": matrix.indices.astype(np.int32),
    }
    # A binary matrix (every seen_) needs no values: leaving them out halves the file.
    if not np.all(matrix.data == 1.0):
        parts["data"] = matrix.data.astype(np.float32)
    np.savez(fh, allow_pickle=False, **parts)


def _describe_ids(
    ids: np.ndarray, stem: str, writers: dict[str, Callable[[IO[bytes]], None]]
) -> dict[str, Any]:
    if ids.dtype == object:
        if not all(isinstance(value, str) for value in ids.tolist()):
            raise UsageError(f"save: {stem} must hold only strings or only numbers/dates")
        import pyarrow as pa

        strings = pa.array(ids, type=pa.large_string())
        offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64)[: len(ids) + 1].copy()
        data_buffer = strings.buffers()[2]
        data = (
            np.zeros(0, np.uint8)
            if data_buffer is None
            else np.frombuffer(data_buffer, dtype=np.uint8)[: offsets[-1]].copy()
        )
        writers[f"{stem}.npz"] = lambda fh: np.savez(fh, offsets=offsets, data=data)
        return {"file": f"{stem}.npz", "kind": "utf8", "length": len(ids)}
    if ids.dtype.hasobject or ids.dtype.kind == "V":
        raise UsageError(f"save: {stem} of dtype {ids.dtype} cannot be saved")
    array = np.ascontiguousarray(ids)
    writers[f"{stem}.npy"] = lambda fh: np.save(fh, array, allow_pickle=False)
    return {"file": f"{stem}.npy", "kind": "array", "length": len(ids)}


def _describe_user_features(
    fallback: SegmentPopularity, n_items: int, writers: dict[str, Callable[[IO[bytes]], None]]
) -> dict[str, Any]:
    from forgeml.recommend.user_features import SegmentPopularity

    if not isinstance(fallback, SegmentPopularity):
        raise UsageError("save: user_features must be a fitted SegmentPopularity")
    if fallback.n_items != n_items:
        raise UsageError(
            f"save: user_features was fitted on {fallback.n_items} items, the model on {n_items}"
        )
    entry, arrays = fallback._state()
    _json_bytes(entry, "user_features")
    writers["user_features.npz"] = lambda fh: np.savez(fh, allow_pickle=False, **arrays)
    return {"file": "user_features.npz", **entry}


def _copy_from(path: Path) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        with path.open("rb") as source:
            shutil.copyfileobj(source, fh, 1 << 20)

    return write


def _json_bytes(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, indent=1, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise UsageError(f"save: {what} must be JSON-serialisable: {exc}") from exc


def _write_folder(
    folder: Path, writers: dict[str, Callable[[IO[bytes]], None]], description: dict[str, Any]
) -> list[str]:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"save: {folder} exists and is not a folder")
    fresh = not folder.exists()
    previous = set() if fresh else _listed_files(folder)
    target = folder
    if fresh:
        folder.parent.mkdir(parents=True, exist_ok=True)
        target = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:12]}"
        target.mkdir()
    try:
        digests = {name: _write_atomic(target, name, writer) for name, writer in writers.items()}
        description["files"] = digests
        manifest = _json_bytes(description, "the description")

        def write_manifest(fh: IO[bytes]) -> None:
            fh.write(manifest)

        _write_atomic(target, MANIFEST, write_manifest)
        if fresh:
            _fsync_dir(target)
            target.replace(folder)
            _fsync_dir(folder.parent)
    except BaseException:
        if fresh:
            shutil.rmtree(target, ignore_errors=True)
        raise
    for name in previous - set(writers):  # files of an earlier save the new one replaced
        (folder / name).unlink(missing_ok=True)
    return [*writers, MANIFEST]


def _listed_files(folder: Path) -> set[str]:
    """The plain file names an earlier ``recommender.json`` in ``folder`` lists (none if
    there is none or it is unreadable: then nothing is removed)."""
    try:
        files = json.loads((folder / MANIFEST).read_bytes()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(files, dict):
        return set()
    return {
        name
        for name in files
        if isinstance(name, str)
        and _SAFE_NAME.match(name)
        and ".." not in name
        and name != MANIFEST
    }


def _write_atomic(folder: Path, name: str, writer: Callable[[IO[bytes]], None]) -> str:
    """Write through ``writer`` into a temp file, fsync, rename to ``name``; its sha256."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return _sha256(folder / name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------- load


def load(folder: str | Path) -> SavedRecommender:
    """Read a recommender written by :func:`save`. A missing, foreign or corrupt folder
    (unknown class, missing file, sha256 mismatch, bad array) raises :class:`DataError`
    naming the file."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (not a saved recommender)")
    try:
        description = json.loads(manifest.read_bytes())
    except FileNotFoundError as exc:
        raise DataError(f"{manifest} is missing: {folder} is not a saved recommender") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{manifest} cannot be read as JSON: {exc}") from exc
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise DataError(f"{manifest} is not a forgeml recommender description")
    version = description.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataError(
            f"{manifest}: format_version {version!r} is not supported (this forgeml reads "
            f"up to {FORMAT_VERSION}; upgrade forgeml)"
        )
    files = _checked_files(folder, description.get("files"))
    reader = _Reader(folder, files)
    try:
        user_ids = reader.ids(description.get("user_ids"), "user_ids")
        item_ids = reader.ids(description.get("item_ids"), "item_ids")
        model = reader.model(description.get("model"), "model")
        seen = model._fitted()
        if seen.shape != (len(user_ids), len(item_ids)):
            raise DataError(
                f"{manifest}: the model has {seen.shape[0]} users x {seen.shape[1]} items "
                f"but the id maps hold {len(user_ids)} x {len(item_ids)}"
            )
        if description.get("index") is not None:
            from forgeml.recommend.ann import ItemIndex

            entry = description["index"]
            if not isinstance(entry, dict):
                raise DataError(f"{manifest}: 'index' must be an object")
            path = reader.path(entry.get("file"), "index")
            ItemIndex._load(path, entry, model)  # attaches itself as model.index_
        user_features = None
        if description.get("user_features") is not None:
            user_features = _load_user_features(reader, description["user_features"], model)
    except DataError:
        raise
    except ForgeError:
        raise
    except Exception as exc:  # a library's error on a malformed file
        raise DataError(f"{folder}: the saved recommender cannot be loaded: {exc}") from exc
    meta = description.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{manifest}: 'meta' must be an object")
    return SavedRecommender(model, user_ids, item_ids, meta, user_features)


def _load_user_features(reader: _Reader, entry: Any, model: Recommender) -> SegmentPopularity:
    from forgeml.recommend.user_features import SegmentPopularity

    manifest = reader.folder / MANIFEST
    if not isinstance(entry, dict):
        raise DataError(f"{manifest}: 'user_features' must be an object")
    path = reader.path(entry.get("file"), "user_features")
    arrays = _load_parts(path, {"offsets", "indptr", "indices", "data", "popularity"})
    return SegmentPopularity._from_state(entry, arrays, model._fitted().shape[1], str(path))


def _checked_files(folder: Path, files: Any) -> dict[str, str]:
    """Every listed file exists, has a plain name and the recorded sha256."""
    manifest = folder / MANIFEST
    if not isinstance(files, dict) or not all(
        isinstance(name, str) and isinstance(digest, str) for name, digest in files.items()
    ):
        raise DataError(f"{manifest}: 'files' must map file names to sha256 digests")
    for name, digest in files.items():
        if not _SAFE_NAME.match(name) or ".." in name or name == MANIFEST:
            raise DataError(f"{manifest}: file name {name!r} is not a plain file name")
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing (listed in {MANIFEST})")
        if _sha256(path) != digest:
            raise DataError(f"{path}: sha256 differs from {MANIFEST} (corrupt or replaced)")
    return files


class _Reader:
    """Reads the files of one saved folder, each only if the manifest lists it."""

    def __init__(self, folder: Path, files: dict[str, str]) -> None:
        self.folder = folder
        self.files = files
        self.arrays: dict[str, Any] = {}

    def path(self, name: Any, what: str) -> Path:
        if not isinstance(name, str) or name not in self.files:
            raise DataError(f"{self.folder / MANIFEST}: {what} names a file it does not list")
        return self.folder / name

    def ids(self, entry: Any, what: str) -> np.ndarray:
        if not isinstance(entry, dict) or entry.get("kind") not in ("utf8", "array"):
            raise DataError(f"{self.folder / MANIFEST}: {what} is not described")
        path = self.path(entry.get("file"), what)
        ids = _load_npy(path) if entry["kind"] == "array" else _load_strings(path)
        if ids.ndim != 1 or len(ids) != entry.get("length"):
            raise DataError(f"{path}: expected {entry.get('length')} ids, found shape {ids.shape}")
        return ids

    def model(self, entry: Any, where: str) -> Recommender:
        manifest = self.folder / MANIFEST
        if not isinstance(entry, dict):
            raise DataError(f"{manifest}: {where} is not described")
        name = entry.get("class")
        cls = _classes().get(name) if isinstance(name, str) else None
        if cls is None:
            raise DataError(f"{manifest}: {where}: unknown recommender class {name!r}")
        params, state = entry.get("params"), entry.get("state")
        if not isinstance(params, dict) or not isinstance(state, dict):
            raise DataError(f"{manifest}: {where}: 'params' and 'state' must be objects")
        kwargs = {
            key: self.model(value["$model"], f"{where}.{key}")
            if isinstance(value, dict) and "$model" in value
            else tuple(value)
            if isinstance(value, list)
            else value
            for key, value in params.items()
        }
        try:
            model = cls(**kwargs)
        except TypeError as exc:
            raise DataError(f"{manifest}: {where}: bad parameters for {name}: {exc}") from exc
        # State added in a later forgeml may be absent from older folders: the model
        # supplies it (_default_state) from the rest.
        required = set(cls._state_attrs) - set(cls._optional_state)
        if not required <= set(state) <= set(cls._state_attrs):
            raise DataError(
                f"{manifest}: {where}: {name} state lists {sorted(state)}, "
                f"expected {sorted(cls._state_attrs)}"
            )
        for attr in cls._state_attrs:
            if attr not in state:
                continue
            path = self.path(state[attr], f"{where}.{attr}")
            if path.name not in self.arrays:  # a file shared by a model and its cf: read once
                self.arrays[path.name] = (
                    _load_csr(path) if path.suffix == ".npz" else _load_npy(path)
                )
            setattr(model, attr, self.arrays[path.name])
        seen = model.seen_
        if not hasattr(seen, "indptr") or not np.all(seen.data == 1.0):
            raise DataError(f"{self.path(state['seen_'], where)}: seen_ must be a binary matrix")
        for attr in set(cls._state_attrs) - set(state):
            setattr(model, attr, model._default_state(attr))
        try:
            model._check_state()
        except DataError as exc:
            raise DataError(f"{manifest}: {where}: {exc}") from exc
        return model


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: not a .npy array")
    return array


def _load_parts(path: Path, required: set[str], optional: set[str] | None = None) -> dict[str, Any]:
    optional = optional or set()
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            if not required <= keys <= required | optional:
                raise DataError(
                    f"{path}: holds {sorted(keys)}, expected {sorted(required)}"
                    + (f" (optionally {sorted(optional)})" if optional else "")
                )
            return {key: archive[key] for key in keys}
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npz archive: {exc}") from exc


def _load_csr(path: Path) -> sp.csr_matrix:
    """A CSR matrix from its parts, checked so no index can point outside the matrix."""
    import scipy.sparse as sp

    parts = _load_parts(path, {"shape", "indptr", "indices"}, {"data"})
    shape, indptr, indices = parts["shape"], parts["indptr"], parts["indices"]
    ok = (
        shape.shape == (2,)
        and np.issubdtype(shape.dtype, np.integer)
        and np.issubdtype(indptr.dtype, np.integer)
        and np.issubdtype(indices.dtype, np.integer)
        and indptr.ndim == indices.ndim == 1
    )
    if ok:
        rows, cols = int(shape[0]), int(shape[1])
        nnz = len(indices)
        ok = (
            rows >= 0
            and cols >= 0
            and len(indptr) == rows + 1
            and indptr[0] == 0
            and indptr[-1] == nnz
            and bool(np.all(np.diff(indptr) >= 0))
            and (nnz == 0 or (indices.min() >= 0 and indices.max() < cols))
        )
    if not ok:
        raise DataError(f"{path}: not a valid sparse matrix (shape/indptr/indices disagree)")
    data = parts.get("data")
    if data is None:
        data = np.ones(nnz, dtype=np.float32)
    elif data.shape != (nnz,) or not np.issubdtype(data.dtype, np.floating):
        raise DataError(f"{path}: values do not match the sparse structure")
    # Canonical form: strictly increasing column indices inside each row.
    steps = np.diff(indices.astype(np.int64))
    row_starts = indptr[1:-1]
    inside = np.ones(max(nnz - 1, 0), dtype=bool)
    inside[row_starts[(row_starts > 0) & (row_starts < nnz)] - 1] = False
    if np.any(steps[inside] <= 0):
        raise DataError(f"{path}: sparse column indices are not sorted and unique per row")
    return sp.csr_matrix(
        (data.astype(np.float32), indices.astype(np.int32), indptr.astype(np.int64)),
        shape=(rows, cols),
    )


def _load_strings(path: Path) -> np.ndarray:
    import pyarrow as pa

    parts = _load_parts(path, {"offsets", "data"})
    offsets, data = parts["offsets"], parts["data"]
    if (
        offsets.dtype != np.int64
        or data.dtype != np.uint8
        or offsets.ndim != 1
        or len(offsets) < 1
        or offsets[0] != 0
        or offsets[-1] != len(data)
        or np.any(np.diff(offsets) < 0)
    ):
        raise DataError(f"{path}: not a valid string table (offsets/data disagree)")
    strings = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes())
    )
    try:
        strings.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: ids are not valid UTF-8 strings: {exc}") from exc
    return np.asarray(strings.to_numpy(zero_copy_only=False), dtype=object)
