"""Smoothed target encoding on integer category codes, in-sample and out-of-fold.

Codes are what :mod:`forgeml.features.categorical` computes: ``0..n-1`` for the fitted
categories, ``-1`` for null and ``-2`` for an unseen value. For category ``c`` with ``n_c``
training rows whose targets sum to ``s_c``, the encoding is the smoothed mean

    (s_c + m * prior) / (n_c + m)        m = ``target_smoothing``

where ``prior`` is the mean target of the rows used for fitting. Binary tasks encode the
rate of class 1 (one column), regression the mean target (one column), multiclass tasks
the rate of each class (one column per class). Null and unseen categories get the prior.
Rows whose target is missing (-1 / NaN) are left out of every statistic.

>>> from forgeml.tasks.info import TaskInfo
>>> Y, valid, labels = target_matrix(np.array([0, 1, 1, 0]), TaskInfo("classification", classes=("n", "y")))
>>> prior, table = fit_table(np.array([0, 0, 1, -1]), 2, Y, valid, smoothing=2.0)
>>> prior.tolist(), table[:, 0].tolist()
([0.5], [0.5, 0.6666666666666666])
"""

from __future__ import annotations

import numpy as np

from forgeml.errors import DataError
from forgeml.tasks.info import TaskInfo

__all__ = ["encode", "fit_table", "kfold", "out_of_fold", "target_matrix"]

Folds = list[tuple[np.ndarray, np.ndarray]]


def target_matrix(y: np.ndarray, task: TaskInfo) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Targets as an ``(n, k)`` float64 matrix to average, the rows with a target, and the
    class label of each column (empty for a single-column encoding)."""
    y = np.asarray(y)
    if task.kind == "regression":
        values = y.astype(np.float64)
        valid = np.isfinite(values)
        return np.where(valid, values, 0.0)[:, None], valid, []
    codes = y.astype(np.int64)
    k = task.n_classes or (int(codes.max()) + 1 if codes.size else 2)
    valid = (codes >= 0) & (codes < k)
    if k <= 2:
        return (codes == 1).astype(np.float64)[:, None], valid, []
    onehot = np.zeros((len(codes), k))
    onehot[np.flatnonzero(valid), codes[valid]] = 1.0
    labels = [str(c) for c in task.classes] if task.n_classes else [str(i) for i in range(k)]
    return onehot, valid, labels


def fit_table(
    codes: np.ndarray, n_categories: int, Y: np.ndarray, valid: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    """``prior`` (k,) and smoothed ``table`` (n_categories, k) from the rows in ``valid``."""
    k = Y.shape[1]
    prior = Y[valid].mean(axis=0) if valid.any() else np.full(k, 0.0 if k == 1 else 1.0 / k)
    used = valid & (codes >= 0)
    c = codes[used]
    counts = np.bincount(c, minlength=n_categories).astype(np.float64)
    sums = np.stack(
        [np.bincount(c, weights=Y[used, j], minlength=n_categories) for j in range(k)], axis=1
    )
    denom = counts + smoothing
    with np.errstate(invalid="ignore", divide="ignore"):
        table = (sums + smoothing * prior) / denom[:, None]
    table[denom == 0] = prior  # smoothing 0 and no rows: the prior
    return prior, table


def encode(codes: np.ndarray, prior: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Encoded ``(n, k)`` values of ``codes``; null and unseen codes get the prior.

    >>> encode(np.array([1, -2]), np.array([0.5]), np.array([[0.1], [0.9]])).ravel().tolist()
    [0.9, 0.5]
    """
    extended = np.vstack([table, prior[None, :]])
    return extended[np.where(codes >= 0, codes, len(table))]


def kfold(n: int, n_splits: int, seed: int) -> Folds:
    """Shuffled K-fold (train, valid) index pairs, like ``KFold(shuffle=True)``.

    >>> [valid.tolist() for _, valid in kfold(5, 2, seed=0)]
    [[1, 2, 3], [0, 4]]
    """
    n_splits = min(n_splits, n)
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % max(n_splits, 1)
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(n_splits)]


def out_of_fold(
    codes: np.ndarray,
    n_categories: int,
    Y: np.ndarray,
    valid: np.ndarray,
    smoothing: float,
    folds: Folds,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold encodings: each fold's validation rows are encoded with statistics
    (prior included) from that fold's training rows only.

    Returns the ``(n, k)`` values and a mask of the rows some fold covered; rows in no
    validation fold keep the in-sample encoding. A row in several validation folds gets
    the last one's value.

    >>> Y, valid = np.array([[1.0], [0.0], [1.0], [1.0]]), np.ones(4, dtype=bool)
    >>> folds = [(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]
    >>> values, covered = out_of_fold(np.array([0, 0, 0, 1]), 2, Y, valid, 0.0, folds)
    >>> values.ravel().tolist(), covered.all()
    ([1.0, 1.0, 0.5, 0.5], np.True_)
    """
    n = len(codes)
    out = np.zeros((n, Y.shape[1]))
    covered = np.zeros(n, dtype=bool)
    for i, (train, held) in enumerate(folds):
        train = _indices(train, n, f"folds[{i}][0]")
        held = _indices(held, n, f"folds[{i}][1]")
        in_train = np.zeros(n, dtype=bool)
        in_train[train] = True
        prior, table = fit_table(codes, n_categories, Y, valid & in_train, smoothing)
        out[held] = encode(codes[held], prior, table)
        covered[held] = True
    return out, covered


def _indices(idx: np.ndarray, n: int, where: str) -> np.ndarray:
    idx = np.asarray(idx)
    if idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n):
        raise DataError(f"{where}: expected row indices in 0..{n - 1}")
    return idx.astype(np.int64, copy=False)
