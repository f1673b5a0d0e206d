"""Interactions: id encoding, the sparse matrix, thresholds and precise data errors."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forgeml.errors import DataError, UsageError
from forgeml.recommend import Interactions


def test_codes_round_trip_to_the_original_ids():
    frame = pl.DataFrame({"user_id": ["x", "y", "x", "z"], "item_id": [30, 10, 20, 30]})
    log = Interactions.from_frame(frame)
    assert log.user_ids[log.user_codes].tolist() == ["x", "y", "x", "z"]
    assert log.item_ids[log.item_codes].tolist() == [30, 10, 20, 30]
    assert log.user_codes_of(["z", "x"]).tolist() == [2, 0]
    with pytest.raises(DataError, match="unknown item id 99"):
        log.item_codes_of([10, 99])


def test_duplicate_events_are_summed_and_binary_counts_once():
    frame = pl.DataFrame(
        {"user_id": [1, 1, 1, 2], "item_id": [5, 5, 6, 5], "w": [2.0, 3.0, 1.0, 4.0]}
    )
    log = Interactions.from_frame(frame, weight="w")
    assert log.n_events == 4  # events stay one per row
    assert log.matrix().toarray().tolist() == [[5.0, 1.0], [4.0, 0.0]]
    assert log.matrix(binary=True).toarray().tolist() == [[1.0, 1.0], [1.0, 0.0]]
    counted = Interactions.from_frame(frame.drop("w"))
    assert counted.matrix().toarray().tolist() == [[2.0, 1.0], [1.0, 0.0]]


def test_positive_threshold_keeps_ratings_at_or_above_it_and_every_id():
    frame = pl.DataFrame({"u": [1, 1, 2], "i": ["a", "b", "c"], "r": [4.0, 3.5, 2.0]})
    log = Interactions.from_frame(frame, user="u", item="i", weight="r", positive_threshold=4)
    assert log.item_ids[log.item_codes].tolist() == ["a"]
    assert (log.n_users, log.n_items) == (2, 3)
    with pytest.raises(UsageError, match="weight column"):
        Interactions.from_frame(frame, user="u", item="i", positive_threshold=4)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("user_id", [1, None, 3], "column 'user_id': null value at row 1"),
        ("item_id", [1, 2, None], "column 'item_id': null value at row 2"),
        ("w", [1.0, float("nan"), 2.0], "column 'w': value nan at row 1 is not finite"),
        ("t", ["2024-01-01", "not a date", "2024-01-03"], "column 't': 'not a date' at row 1"),
        ("t", [1.0, 2.0, float("inf")], "column 't': value inf at row 2"),
        ("t", [1, None, 2], "column 't': null value at row 1"),
    ],
)
def test_bad_values_name_the_column_and_row(column, values, message):
    frame = pl.DataFrame(
        {"user_id": [1, 2, 3], "item_id": [1, 2, 3], "w": [1.0, 1.0, 1.0], "t": [1, 2, 3]}
    ).with_columns(pl.Series(column, values))
    with pytest.raises(DataError, match=message):
        Interactions.from_frame(frame, weight="w", time="t")


def test_missing_column_is_named():
    with pytest.raises(DataError, match="item column 'movie'"):
        Interactions.from_frame(pl.DataFrame({"user_id": [1]}), item="movie")


def test_datetimes_and_iso_strings_become_epoch_microseconds():
    moments = [datetime(2024, 1, 1), datetime(2024, 1, 2, 12)]
    base = pl.DataFrame({"user_id": [1, 1], "item_id": [1, 2]})
    native = Interactions.from_frame(base.with_columns(t=pl.Series(moments)), time="t")
    parsed = Interactions.from_frame(
        base.with_columns(t=pl.Series(["2024-01-01T00:00:00", "2024-01-02T12:00:00"])), time="t"
    )
    assert native.times is not None and parsed.times is not None
    assert native.times.tolist() == parsed.times.tolist()
    assert int(native.times[1] - native.times[0]) == 36 * 3600 * 1_000_000


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 9), st.floats(0.5, 5.0)),
        min_size=1,
        max_size=60,
    )
)
def test_matrix_sums_every_event_weight(events):
    users, items, weights = (list(column) for column in zip(*events, strict=True))
    log = Interactions.from_frame(
        pl.DataFrame({"user_id": users, "item_id": items, "w": weights}), weight="w"
    )
    matrix = log.matrix().toarray()
    expected = np.zeros_like(matrix)
    for u, i, w in events:
        expected[log.user_codes_of([u])[0], log.item_codes_of([i])[0]] += np.float32(w)
    np.testing.assert_allclose(matrix, expected, rtol=1e-5)
    assert matrix.shape == (len(set(users)), len(set(items)))
