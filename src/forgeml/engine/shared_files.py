"""Arrays shared with local worker processes through memory-mapped ``.npy`` files.

Each worker maps the files once (cached per process by folder), so a 100 MB training
matrix is written once and read by the OS page cache, not pickled into every task.

>>> import numpy as np, tempfile
>>> folder = tempfile.mkdtemp()
>>> keys = save_shared(folder, {"X": np.arange(6, dtype=np.float32).reshape(2, 3)})
>>> load_shared(folder)["X"].sum()
np.float32(15.0)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_shared", "save_shared"]

# One mapping per folder per worker process: workers run many trials on the same data.
_CACHE: dict[str, dict[str, Any]] = {}


def save_shared(folder: str | Path, arrays: Mapping[str, Any]) -> tuple[str, ...]:
    """Write arrays (dense NumPy or SciPy sparse) into ``folder``; returns their keys."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, Any]] = {}
    for key, value in arrays.items():
        if hasattr(value, "tocsr") and not isinstance(value, np.ndarray):
            csr = value.tocsr()
            for part in ("data", "indices", "indptr"):
                np.save(root / f"{key}.{part}.npy", getattr(csr, part))
            manifest[key] = {"kind": "csr", "shape": list(csr.shape)}
        else:
            np.save(root / f"{key}.npy", np.asarray(value))
            manifest[key] = {"kind": "dense"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return tuple(manifest)


def load_shared(folder: str) -> dict[str, Any]:
    """Map the arrays written by :func:`save_shared` (cached per process)."""
    cached = _CACHE.get(folder)
    if cached is not None:
        return cached
    root = Path(folder)
    manifest = json.loads((root / "manifest.json").read_text())
    out: dict[str, Any] = {}
    for key, info in manifest.items():
        if info["kind"] == "csr":
            import scipy.sparse as sp

            parts = [np.load(root / f"{key}.{p}.npy") for p in ("data", "indices", "indptr")]
            out[key] = sp.csr_matrix(tuple(parts), shape=tuple(info["shape"]))
        else:
            out[key] = np.load(root / f"{key}.npy", mmap_mode="r")
    _CACHE.clear()  # a new study's data replaces the old one in long-lived workers
    _CACHE[folder] = out
    return out
