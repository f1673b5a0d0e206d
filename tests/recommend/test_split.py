"""Splits: leave-last-n-out per user by time, and a global time cut."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forgeml.errors import UsageError
from forgeml.recommend import Interactions, generate, leave_last_n_out, time_split


def _log(users, items, times) -> Interactions:
    return Interactions.from_frame(
        pl.DataFrame({"user_id": users, "item_id": items, "t": times}), time="t"
    )


def test_leave_last_two_out_takes_each_users_latest_and_keeps_short_users_in_train():
    log = _log([1, 1, 1, 1, 2, 2, 3], [10, 11, 12, 13, 10, 11, 12], [4, 1, 3, 2, 1, 2, 9])
    split = leave_last_n_out(log, n=2)
    test_pairs = {
        (log.user_ids[u], log.item_ids[i])
        for u, i in zip(split.test.user_codes, split.test.item_codes, strict=True)
    }
    assert test_pairs == {(1, 10), (1, 12)}  # user 1's two latest; users 2 and 3 too short
    assert split.train.n_events == 5 and split.cold_events == 0
    assert split.train.n_items == split.test.n_items == 4  # id maps shared


def test_equal_times_keep_row_order():
    split = leave_last_n_out(_log([1, 1, 1], [5, 6, 7], [0, 0, 0]), n=1)
    assert split.test.item_ids[split.test.item_codes].tolist() == [7]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 8), st.integers(0, 20)), min_size=1),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 3)),
)
def test_leave_last_n_out_partitions_events_and_tests_only_the_latest(events, n, min_train):
    users, items, times = (list(column) for column in zip(*events, strict=True))
    log = _log(users, items, times)
    split = leave_last_n_out(log, n=n, min_train=min_train)
    assert split.train.n_events + split.test.n_events == log.n_events
    assert split.train.times is not None and split.test.times is not None
    for user in range(log.n_users):
        in_test = split.test.user_codes == user
        in_train = split.train.user_codes == user
        total = int(in_test.sum() + in_train.sum())
        if min_train is None:
            assert in_test.sum() == (n if total > n else 0)
        else:
            assert in_test.sum() == min(n, max(total - min_train, 0))
        if in_test.any() and in_train.any():
            assert split.test.times[in_test].min() >= split.train.times[in_train].max()


def test_min_train_lets_short_users_hold_out_fewer_events():
    log = _log([1, 1, 1, 1, 2, 2, 3], [10, 11, 12, 13, 10, 11, 12], [4, 1, 3, 2, 1, 2, 9])
    split = leave_last_n_out(log, n=3, min_train=1)
    test_pairs = {
        (log.user_ids[u], log.item_ids[i])
        for u, i in zip(split.test.user_codes, split.test.item_codes, strict=True)
    }
    # User 1: its three latest (one left to train on); user 2: all but its first; user 3:
    # a single event, nothing to hold out.
    assert test_pairs == {(1, 10), (1, 12), (1, 13), (2, 11)}
    with pytest.raises(UsageError, match="min_train must be >= 1"):
        leave_last_n_out(log, n=1, min_train=0)


def test_time_split_cuts_at_a_datetime_and_counts_cold_users():
    frame = generate(users=300, items=200, interactions=5_000, seed=3)
    log = Interactions.from_frame(frame, time="timestamp")
    cut = datetime(2024, 7, 1)
    split = time_split(log, cut)
    train_times = frame.filter(pl.col("timestamp") < cut)
    assert split.train.n_events == train_times.height
    warm = set(train_times["user_id"].to_list())
    later = frame.filter(pl.col("timestamp") >= cut)
    expected_test = later.filter(pl.col("user_id").is_in(list(warm)))
    assert split.test.n_events == expected_test.height
    assert split.cold_events == later.height - expected_test.height > 0
    assert time_split(log, date(2024, 7, 1)).test.n_events == split.test.n_events


def test_time_split_on_numeric_times():
    split = time_split(_log([1, 1, 2, 2], [1, 2, 1, 2], [1, 5, 2, 8]), at=5)
    assert split.train.n_events == 2 and split.test.n_events == 2
    assert np.all(split.test.times >= 5)


def test_splits_need_times_and_a_positive_n():
    log = Interactions.from_frame(pl.DataFrame({"user_id": [1], "item_id": [1]}))
    with pytest.raises(UsageError, match="needs timestamps"):
        leave_last_n_out(log)
    with pytest.raises(UsageError, match="needs timestamps"):
        time_split(log, 0)
    with pytest.raises(UsageError, match="n must be >= 1"):
        leave_last_n_out(_log([1], [1], [1]), n=0)
