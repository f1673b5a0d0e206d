"""Named arrays as one ``.npz`` file: written byte-for-byte reproducibly, read back only
when every member is the expected one.

A model made of arrays (the ``mlp``'s layers) is saved as an uncompressed zip of ``.npy``
files, NumPy's declarative array format, and read with ``allow_pickle=False``. Reading
checks the member names and sizes before anything is parsed, then every array's shape,
dtype and finiteness; anything else is an :class:`ArtifactIntegrityError`.

>>> layout = {"w": ((2, 2), np.float32)}
>>> data = write_npz({"w": np.eye(2, dtype=np.float32)})
>>> read_npz(data, layout, name="m.npz")["w"].tolist()
[[1.0, 0.0], [0.0, 1.0]]
>>> read_npz(data, {"w": ((3, 2), np.float32)}, name="m.npz")
Traceback (most recent call last):
...
forgeml.errors.ArtifactIntegrityError: m.npz: w is float32[2, 2], expected float32[3, 2]
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np

from forgeml.errors import ArtifactIntegrityError

__all__ = ["Layout", "check_arrays", "read_npz", "write_npz"]

# name -> (shape, dtype) of every array a file must hold
Layout = dict[str, tuple[tuple[int, ...], Any]]

_HEADER = 4096  # an .npy header is 128 bytes for these arrays; this bounds a forged one
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no clock in the bytes


def write_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """The ``.npz`` bytes of ``arrays`` (uncompressed, fixed timestamps: the same arrays
    always give the same bytes, hence the same sha256)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", _EPOCH), member.getvalue())
    return buffer.getvalue()


def check_arrays(arrays: Any, layout: Layout, *, name: str) -> dict[str, np.ndarray]:
    """``arrays`` when they are exactly the arrays of ``layout``, with finite values; else
    :class:`ArtifactIntegrityError` naming ``name``."""
    if not isinstance(arrays, dict) or sorted(arrays) != sorted(layout):
        found = sorted(arrays) if isinstance(arrays, dict) else type(arrays).__name__
        raise ArtifactIntegrityError(f"{name}: holds {found}, expected {sorted(layout)}")
    for key, (shape, dtype) in layout.items():
        array = arrays[key]
        if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
            found = f"{array.dtype}{list(array.shape)}" if isinstance(array, np.ndarray) else "?"
            raise ArtifactIntegrityError(
                f"{name}: {key} is {found}, expected {np.dtype(dtype)}{list(shape)}"
            )
        if not np.isfinite(array).all():
            raise ArtifactIntegrityError(f"{name}: {key} holds non-finite values")
    return arrays


def read_npz(data: bytes, layout: Layout, *, name: str) -> dict[str, np.ndarray]:
    """The arrays of ``.npz`` bytes holding exactly the members of ``layout`` (their sizes
    checked before any is read), with its shapes, dtypes, and finite values."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ArtifactIntegrityError(f"{name}: not an .npz archive ({exc})") from exc
    with archive:
        infos = archive.infolist()
        members = {info.filename: info for info in infos}
        wanted = {f"{key}.npy" for key in layout}
        if set(members) != wanted or len(members) != len(infos):
            found = sorted(info.filename for info in infos)
            raise ArtifactIntegrityError(f"{name}: holds {found}, expected {sorted(wanted)}")
        for key, (shape, dtype) in layout.items():
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if members[f"{key}.npy"].file_size > size + _HEADER:
                raise ArtifactIntegrityError(
                    f"{name}: member {key} is larger than {shape} {np.dtype(dtype)}"
                )
        arrays = {}
        for key in layout:
            try:
                with archive.open(f"{key}.npy") as fh:
                    arrays[key] = np.lib.format.read_array(fh, allow_pickle=False)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise ArtifactIntegrityError(f"{name}: member {key} is unreadable: {exc}") from exc
    return check_arrays(arrays, layout, name=name)
