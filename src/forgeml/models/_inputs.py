"""Checks and conversions of what adapters are given: feature matrices, targets, weights.

Feature matrices become ``float32`` C-ordered arrays or ``float32`` CSR matrices; targets
become ``int64`` class indices (classification) or ``float64`` values (regression).

>>> as_matrix([[1, 2], [3, 4]]).dtype
dtype('float32')
>>> check_target(np.array([0, 2, 1]), n_rows=3, subtype="multiclass", n_classes=3).tolist()
[0, 2, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import DataError, UsageError

if TYPE_CHECKING:
    from forgeml.models.base import Matrix

__all__ = [
    "SUBTYPES",
    "as_matrix",
    "check_n_classes",
    "check_target",
    "check_weights",
    "is_sparse",
]

SUBTYPES = ("binary", "multiclass", "regression")


def is_sparse(X: Any) -> bool:
    """True for a SciPy sparse matrix or array (without importing SciPy for dense input)."""
    return not isinstance(X, np.ndarray) and type(X).__module__.startswith("scipy.sparse")


def as_matrix(X: Any, *, what: str = "X") -> Matrix:
    """``X`` as a 2-D ``float32`` array (C order) or ``float32`` CSR matrix."""
    if is_sparse(X):
        import scipy.sparse as sp

        if X.ndim != 2:
            raise DataError(f"{what} must be 2-D, got shape {X.shape}")
        out = sp.csr_matrix(X, dtype=np.float32)
        return out
    try:
        arr = np.ascontiguousarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a numeric matrix: {exc}") from exc
    if arr.ndim != 2:
        raise DataError(f"{what} must be 2-D, got shape {arr.shape}")
    return arr


def check_n_classes(subtype: str, n_classes: int) -> int:
    """The class count a subtype implies: 2 (binary), 3+ (multiclass), 0 (regression)."""
    if subtype not in SUBTYPES:
        raise UsageError(f"unknown task subtype '{subtype}' (known: {', '.join(SUBTYPES)})")
    if subtype == "regression":
        return 0
    if subtype == "binary" and n_classes != 2:
        raise UsageError(f"a binary task has 2 classes, not {n_classes}")
    if subtype == "multiclass" and n_classes < 3:
        raise UsageError(f"a multiclass task has at least 3 classes, not {n_classes}")
    return int(n_classes)


def check_target(
    y: Any, *, n_rows: int, subtype: str, n_classes: int, what: str = "y"
) -> np.ndarray:
    """``y`` as ``int64`` class indices in ``0..n_classes-1`` or finite ``float64`` values."""
    arr = np.asarray(y)
    if arr.shape != (n_rows,):
        raise DataError(f"{what} has shape {arr.shape}; expected ({n_rows},) to match the rows")
    if subtype == "regression":
        try:
            values = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what} must be numeric for regression") from exc
        if not np.isfinite(values).all():
            raise DataError(f"{what} has missing or infinite values")
        return values
    if arr.dtype.kind not in "iub":
        raise DataError(f"{what} must hold integer class indices, not {arr.dtype}")
    labels = arr.astype(np.int64)
    if n_rows and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{what} has class indices outside 0..{n_classes - 1}")
    return labels


def check_weights(weights: Any, *, n_rows: int) -> np.ndarray | None:
    """Sample weights as finite, non-negative ``float64`` with a positive sum."""
    if weights is None:
        return None
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape != (n_rows,):
        raise DataError(f"sample_weight has shape {arr.shape}; expected ({n_rows},)")
    if not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise DataError("sample_weight must be finite, non-negative and not all zero")
    return arr
