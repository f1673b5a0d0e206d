"""Splits and folds: partitions, no group leakage, time order, determinism, class ratios."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.data import cv_folds, holdout_split
from forgeml.errors import DataError

STRATEGIES = ["random", "stratified", "group", "time"]


@st.composite
def tables(draw, min_rows: int = 2):
    n = draw(st.integers(min_rows, 120))
    n_classes = draw(st.integers(1, 6))
    y = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    n_groups = draw(st.integers(2, max(2, n)))
    groups = np.array(draw(st.lists(st.integers(0, n_groups - 1), min_size=n, max_size=n)))
    groups[:2] = [0, 1]  # at least two groups
    times = np.array(
        draw(st.lists(st.integers(0, 50), min_size=n, max_size=n)), dtype="datetime64[D]"
    )
    return n, {"y": y, "groups": groups, "times": times}


def check_partition(n: int, train: np.ndarray, test: np.ndarray) -> None:
    assert train.dtype == test.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted, unique
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == n and len(train) > 0 and len(test) > 0


def check_rules(strategy: str, data: dict, train: np.ndarray, test: np.ndarray) -> None:
    if strategy == "group":
        assert not set(data["groups"][train]) & set(data["groups"][test])
    if strategy == "time":
        assert data["times"][train].max() <= data["times"][test].min()


@given(tables(), st.sampled_from(STRATEGIES), st.floats(0.05, 0.6), st.integers(0, 2**31 - 1))
def test_holdout_is_a_partition_that_respects_its_strategy(table, strategy, size, seed) -> None:
    n, data = table
    train, test = holdout_split(n, strategy=strategy, test_size=size, seed=seed, **data)
    check_partition(n, train, test)
    check_rules(strategy, data, train, test)
    again = holdout_split(n, strategy=strategy, test_size=size, seed=seed, **data)
    assert all(np.array_equal(a, b) for a, b in zip((train, test), again, strict=True))


@given(
    tables(min_rows=6), st.sampled_from(STRATEGIES), st.integers(2, 5), st.integers(0, 2**31 - 1)
)
def test_folds_partition_the_rows(table, strategy, folds, seed) -> None:
    n, data = table
    if strategy == "group" and len(set(data["groups"])) < folds:
        with pytest.raises(DataError, match=f"cannot make {folds} group folds"):
            cv_folds(n, strategy=strategy, folds=folds, seed=seed, **data)
        return
    splits = cv_folds(n, strategy=strategy, folds=folds, seed=seed, **data)
    assert len(splits) == folds
    for train, valid in splits:
        assert len(np.intersect1d(train, valid)) == 0 and len(valid) > 0 and len(train) > 0
        check_rules(strategy, data, train, valid)
    validation = np.concatenate([v for _, v in splits])
    if strategy == "time":  # expanding windows: each fold trains on everything before it
        assert len(np.unique(validation)) == len(validation)
        sizes = [len(t) for t, _ in splits]
        assert sizes == sorted(sizes)
    else:
        assert np.array_equal(np.sort(validation), np.arange(n))
        for train, valid in splits:
            assert len(train) + len(valid) == n
    again = cv_folds(n, strategy=strategy, folds=folds, seed=seed, **data)
    assert all(
        np.array_equal(a, b)
        for s1, s2 in zip(splits, again, strict=True)
        for a, b in zip(s1, s2, strict=True)
    )


def test_stratified_keeps_class_ratios_on_real_data(wine) -> None:
    y = wine["cultivar"].to_numpy()
    train, test = holdout_split(len(y), strategy="stratified", test_size=0.25, seed=7, y=y)
    for label in np.unique(y):
        share = (y == label).mean()
        assert abs((y[test] == label).mean() - share) < 0.03
        assert abs((y[train] == label).mean() - share) < 0.03
    for _, valid in cv_folds(len(y), strategy="stratified", folds=5, seed=7, y=y):
        for label in np.unique(y):  # each fold holds a fifth of each class, give or take one
            assert abs((y[valid] == label).sum() - (y == label).sum() / 5) <= 1


def test_classes_with_one_row_do_not_crash() -> None:
    y = np.array(["a"] * 10 + ["rare", "b", "b"], dtype=object)
    train, test = holdout_split(13, strategy="stratified", test_size=0.2, seed=0, y=y)
    assert "rare" in set(y[train]) and len(test) == 2
    folds = cv_folds(13, strategy="stratified", folds=3, seed=0, y=y)
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(13))
    with_missing = np.array(["a", None, "a", "b", None, "b"], dtype=object)
    holdout_split(6, strategy="stratified", test_size=0.34, seed=0, y=with_missing)


def test_seeds_change_random_splits() -> None:
    a = holdout_split(100, strategy="random", test_size=0.2, seed=1)[1]
    b = holdout_split(100, strategy="random", test_size=0.2, seed=2)[1]
    assert not np.array_equal(a, b)


def test_time_ties_stay_on_one_side_and_single_fold_uses_validation_size() -> None:
    times = np.array([1, 1, 2, 2, 2, 3, 3, 4, 4, 4])
    train, test = holdout_split(10, strategy="time", test_size=0.2, seed=0, times=times)
    assert (train.tolist(), test.tolist()) == ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    ((_train, valid),) = cv_folds(10, strategy="random", folds=1, seed=0, validation_size=0.3)
    assert len(valid) == 3


def test_impossible_splits_are_data_errors() -> None:
    with pytest.raises(DataError, match="cannot make a train/test split from 1 rows"):
        holdout_split(1, strategy="random", test_size=0.2, seed=0)
    with pytest.raises(DataError, match="cannot make 5 folds from 3 rows"):
        cv_folds(3, strategy="random", folds=5, seed=0)
    with pytest.raises(DataError, match="at least 2 groups"):
        holdout_split(4, strategy="group", test_size=0.5, seed=0, groups=np.array([7, 7, 7, 7]))
    with pytest.raises(DataError, match="2 are missing"):
        holdout_split(
            4, strategy="time", test_size=0.5, seed=0, times=np.array([1.0, np.nan, 2.0, np.nan])
        )
    with pytest.raises(ValueError, match="needs groups"):
        holdout_split(4, strategy="group", test_size=0.5, seed=0)
    with pytest.raises(ValueError, match="y has 3 values for 4 rows"):
        holdout_split(4, strategy="stratified", test_size=0.5, seed=0, y=np.array([1, 2, 3]))
