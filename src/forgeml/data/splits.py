"""Held-out test splits and cross-validation folds, as sorted int64 index arrays.

Strategies: ``random``; ``stratified`` (class ratios kept; a class too small to split
stays in training instead of failing); ``group`` (a group is never on both sides);
``time`` (the test rows are the latest; folds are expanding windows going forward).
Everything is a function of ``seed`` only, and vectorised with NumPy.

>>> train, test = holdout_split(10, strategy="random", test_size=0.2, seed=0)
>>> len(train), len(test), sorted({*train, *test}) == list(range(10))
(8, 2, True)
>>> times = np.arange(10)[::-1]
>>> holdout_split(10, strategy="time", test_size=0.3, seed=0, times=times)[1].tolist()
[0, 1, 2]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from forgeml.errors import DataError

__all__ = ["Strategy", "cv_folds", "holdout_split"]

Strategy = Literal["random", "stratified", "group", "time"]
Split = tuple[np.ndarray, np.ndarray]


def holdout_split(
    n_rows: int,
    *,
    strategy: Strategy,
    test_size: float,
    seed: int,
    y: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    times: np.ndarray | None = None,
) -> Split:
    """``(train, test)`` row indices; ``test`` holds about ``test_size`` of the rows.

    ``y`` is needed for ``stratified``, ``groups`` for ``group``, ``times`` for ``time``.

    >>> y = np.array(["a"] * 8 + ["b"] * 4 + ["c"])
    >>> _, test = holdout_split(13, strategy="stratified", test_size=0.25, seed=1, y=y)
    >>> sorted(y[test].tolist())
    ['a', 'a', 'b']
    """
    _check_rows(n_rows, 2, "a train/test split")
    rng = np.random.default_rng(seed)
    if strategy == "random":
        test = rng.permutation(n_rows)[: _n_test(n_rows, test_size)]
    elif strategy == "stratified":
        test = _stratified_test(_codes(_need(y, "y", strategy, n_rows)), test_size, rng)
    elif strategy == "group":
        test = _group_test(_codes(_need(groups, "groups", strategy, n_rows)), test_size, rng)
    elif strategy == "time":
        test = _time_test(_times(_need(times, "times", strategy, n_rows)), test_size)
    else:
        raise ValueError(f"unknown split strategy {strategy!r}")
    return _complement(n_rows, test), np.sort(test).astype(np.int64)


def cv_folds(
    n_rows: int,
    *,
    strategy: Strategy,
    folds: int,
    seed: int,
    y: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    times: np.ndarray | None = None,
    validation_size: float = 0.2,
) -> list[Split]:
    """``folds`` pairs of ``(train, validation)`` indices.

    ``folds == 1`` is one train/validation split of ``validation_size``. Otherwise the
    validation parts partition the rows (``time``: expanding windows, where each fold
    trains on everything before its validation block).

    >>> [len(v) for _, v in cv_folds(10, strategy="random", folds=3, seed=0)]
    [4, 3, 3]
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    if folds == 1:
        split = holdout_split(
            n_rows,
            strategy=strategy,
            test_size=validation_size,
            seed=seed,
            y=y,
            groups=groups,
            times=times,
        )
        return [split]
    _check_rows(n_rows, folds + (strategy == "time"), f"{folds} folds")
    rng = np.random.default_rng(seed)
    if strategy == "time":
        return _time_folds(_times(_need(times, "times", strategy, n_rows)), folds)
    if strategy == "random":
        fold_of = np.empty(n_rows, dtype=np.int64)
        fold_of[rng.permutation(n_rows)] = np.arange(n_rows) % folds
    elif strategy == "stratified":
        order = _by_class(_codes(_need(y, "y", strategy, n_rows)), rng)
        fold_of = np.empty(n_rows, dtype=np.int64)
        fold_of[order] = np.arange(n_rows) % folds
    elif strategy == "group":
        fold_of = _group_folds(_codes(_need(groups, "groups", strategy, n_rows)), folds, rng)
    else:
        raise ValueError(f"unknown split strategy {strategy!r}")
    return [
        (
            np.flatnonzero(fold_of != k).astype(np.int64),
            np.flatnonzero(fold_of == k).astype(np.int64),
        )
        for k in range(folds)
    ]


def _check_rows(n_rows: int, needed: int, what: str) -> None:
    if n_rows < needed:
        raise DataError(f"cannot make {what} from {n_rows} rows; at least {needed} are needed")


def _need(values: np.ndarray | None, name: str, strategy: str, n_rows: int) -> np.ndarray:
    if values is None:
        raise ValueError(f"split strategy '{strategy}' needs {name}")
    values = np.asarray(values)
    if len(values) != n_rows:
        raise ValueError(f"{name} has {len(values)} values for {n_rows} rows")
    return values


def _n_test(n_rows: int, fraction: float) -> int:
    return int(min(n_rows - 1, max(1, round(fraction * n_rows))))


def _complement(n_rows: int, chosen: np.ndarray) -> np.ndarray:
    keep = np.ones(n_rows, dtype=bool)
    keep[chosen] = False
    return np.flatnonzero(keep).astype(np.int64)


def _codes(values: np.ndarray) -> np.ndarray:
    """Dense integer codes of labels or group keys (any dtype; missing values are a code)."""
    try:
        _, codes = np.unique(values, return_inverse=True)
    except TypeError:  # mixed Python objects (None next to strings) do not sort
        _, codes = np.unique(np.asarray([repr(v) for v in values]), return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def _by_class(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices grouped by class, in random order within each class."""
    perm = rng.permutation(len(codes))
    return perm[np.argsort(codes[perm], kind="stable")]


def _stratified_test(codes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    order = _by_class(codes, rng)
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(codes)) - np.repeat(starts, counts)
    # Each class gives its share, and keeps at least one row for training.
    share = np.minimum(np.round(counts * fraction), np.maximum(counts - 1, 0)).astype(np.int64)
    test = order[rank < share[codes[order]]]
    if len(test) == 0:  # every class too small to split: fall back to a random split
        test = rng.permutation(len(codes))[: _n_test(len(codes), fraction)]
    return test


def _group_test(codes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    sizes = np.bincount(codes)
    if len(sizes) < 2:
        raise DataError("a group split needs at least 2 groups; all rows share one group")
    order = rng.permutation(len(sizes))
    taken = int(np.searchsorted(np.cumsum(sizes[order]), fraction * len(codes))) + 1
    chosen = order[: min(max(taken, 1), len(sizes) - 1)]
    return np.flatnonzero(np.isin(codes, chosen))


def _group_folds(codes: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each row: groups by size (largest first, ties in random order), dealt in a
    snake order (0..k-1, k-1..0, ...) so folds get similar numbers of rows."""
    sizes = np.bincount(codes)
    if len(sizes) < folds:
        raise DataError(f"cannot make {folds} group folds from {len(sizes)} groups")
    tie = rng.permutation(len(sizes))
    ranked = np.lexsort((tie, -sizes))
    rank = np.empty(len(sizes), dtype=np.int64)
    rank[ranked] = np.arange(len(sizes))
    cycle, position = np.divmod(rank, folds)
    group_fold = np.where(cycle % 2 == 0, position, folds - 1 - position)
    return group_fold[codes]


def _times(values: np.ndarray) -> np.ndarray:
    """Sortable times; missing times are an error (a row without one has no side)."""
    if values.dtype == object:
        try:
            values = values.astype("datetime64[us]")
        except (TypeError, ValueError):
            values = values.astype(np.float64)
    missing = (
        np.isnat(values)
        if values.dtype.kind in "mM"
        else (np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool))
    )
    if missing.any():
        raise DataError(
            f"a time split needs a time for every row; {int(missing.sum())} are missing"
        )
    return values


def _time_test(times: np.ndarray, fraction: float) -> np.ndarray:
    """The latest rows; rows sharing the boundary time all go to test when that leaves
    a training set, so no timestamp is on both sides."""
    n = len(times)
    order = np.argsort(times, kind="stable")
    positional = order[n - _n_test(n, fraction) :]
    boundary = times[positional[0]]
    later = np.flatnonzero(times >= boundary)
    return later if len(later) < n else positional


def _time_folds(times: np.ndarray, folds: int) -> list[Split]:
    from sklearn.model_selection import TimeSeriesSplit

    order = np.argsort(times, kind="stable")
    return [
        (np.sort(order[train]).astype(np.int64), np.sort(order[valid]).astype(np.int64))
        for train, valid in TimeSeriesSplit(n_splits=folds).split(order)
    ]
