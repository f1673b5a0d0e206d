"""Windows, buckets and drift over time: on real flights, a bucket of shifted traffic
drifts and the buckets around it do not; per-bucket drift equals the one-window check."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forgeml.errors import UsageError
from forgeml.monitoring import Profile, detect_drift
from forgeml.monitoring.drift import drift_by_group
from forgeml.monitoring.windows import (
    DRIFT_COLUMNS,
    bucket_edges,
    bucket_of,
    drift_over_time,
    parse_window,
)

SCHEMA = {
    "dep_delay": "float",
    "distance": "int",
    "sched_dep_time": "int",
    "carrier": "categorical",
    "origin": "categorical",
}
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def halves(flights_sample: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    shuffled = flights_sample.sample(fraction=1.0, seed=3, shuffle=True)
    return shuffled.head(10_000), shuffled.tail(10_000)


@given(st.integers(1, 999), st.sampled_from(["m", "h", "d", "w"]))
def test_windows_parse_as_their_units(number: int, unit: str) -> None:
    seconds = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}[unit]
    assert parse_window(f"{number}{unit}") == timedelta(seconds=number * seconds)
    assert parse_window(f" {number} {unit} ") == timedelta(seconds=number * seconds)


@pytest.mark.parametrize("text", ["", "1", "d", "0d", "-1d", "1.5h", "1y", "1 day", "1D", "7dd"])
def test_bad_windows_are_usage_errors_naming_the_option(text: str) -> None:
    with pytest.raises(UsageError, match=r"--window .*like 30m, 6h, 1d or 2w"):
        parse_window(text)


@settings(max_examples=40)
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(1, 10**12),
    st.integers(1, 500),
)
def test_bucket_edges_cover_the_window_exactly(start: datetime, micros: int, n: int) -> None:
    since = start.replace(tzinfo=UTC)
    until = since + timedelta(microseconds=micros)
    if micros < n:
        with pytest.raises(UsageError, match="more buckets"):
            bucket_edges(since, until, n)
        return
    edges = bucket_edges(since, until, n)
    assert len(edges) == n + 1
    assert edges[0] == since and edges[-1] == until
    assert all(a < b for a, b in itertools.pairwise(edges))
    widths = {b - a for a, b in itertools.pairwise(edges)}
    assert max(widths) - min(widths) <= timedelta(microseconds=1)


def test_bucket_edges_refuse_nonsense_and_take_naive_times_as_utc() -> None:
    naive = datetime(2026, 3, 1)
    assert bucket_edges(naive, naive + timedelta(hours=2), 2)[1] == T0 + timedelta(hours=1)
    with pytest.raises(UsageError, match="not before"):
        bucket_edges(T0, T0 - timedelta(hours=1), 2)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(UsageError, match="--buckets"):
            bucket_edges(T0, T0 + timedelta(hours=1), bad)  # type: ignore[arg-type]


def test_bucket_of_is_half_open_and_leaves_out_what_is_outside() -> None:
    edges = bucket_edges(T0, T0 + timedelta(hours=3), 3)
    ts = pl.Series(
        "ts",
        [
            T0 - timedelta(microseconds=1),
            T0,
            T0 + timedelta(minutes=59, seconds=59, microseconds=999_999),
            T0 + timedelta(hours=1),
            T0 + timedelta(hours=3) - timedelta(microseconds=1),
            T0 + timedelta(hours=3),
            None,
        ],
        dtype=pl.Datetime("us", "UTC"),
    )
    assert bucket_of(ts, edges).tolist() == [-1, 0, 0, 1, 2, -1, -1]
    # Another unit and a time zone name the same instants.
    other = ts.dt.cast_time_unit("ns").dt.convert_time_zone("Europe/Paris")
    assert bucket_of(other, edges).tolist() == [-1, 0, 0, 1, 2, -1, -1]


def _stamp(frame: pl.DataFrame, at: datetime) -> pl.DataFrame:
    return frame.with_columns(pl.lit(at).cast(pl.Datetime("us", "UTC")).alias("ts"))


def test_a_shifted_bucket_of_real_flights_drifts_and_its_neighbours_do_not(halves) -> None:
    reference, current = halves
    profile = Profile.build(reference, SCHEMA)
    top = reference["carrier"].mode().to_list()[0]
    quarters = [current.slice(i * 2_500, 2_500) for i in range(4)]
    shifted = quarters[2].with_columns(pl.col("dep_delay") + 45).filter(pl.col("carrier") != top)
    edges = bucket_edges(T0, T0 + timedelta(hours=4), 4)
    frame = pl.concat(
        [
            _stamp(quarters[0], edges[0] + timedelta(minutes=5)),
            _stamp(quarters[1], edges[1] + timedelta(minutes=30)),
            _stamp(shifted, edges[2] + timedelta(minutes=59)),
            _stamp(quarters[3], edges[3]),
        ]
    ).sample(fraction=1.0, seed=1, shuffle=True)  # arrival order does not matter
    drift = drift_over_time(profile, frame, edges=edges)
    assert tuple(drift.columns) == DRIFT_COLUMNS
    drifted = drift.filter(pl.col("drifted")).group_by("bucket").agg(pl.col("feature").unique())
    assert drifted["bucket"].to_list() == [edges[2]]
    assert set(drifted["feature"][0]) == {"dep_delay", "carrier"}
    assert drift["bucket"].unique().sort().to_list() == edges[:4]


def test_each_bucket_equals_the_one_window_check_of_its_rows(halves) -> None:
    reference, current = halves
    profile = Profile.build(reference, SCHEMA)
    edges = bucket_edges(T0, T0 + timedelta(hours=6), 6)
    rng = np.random.default_rng(0)
    offsets = rng.integers(-3_600, 7 * 3_600, current.height)  # some before, some after
    frame = current.with_columns(
        pl.Series("ts", [T0 + timedelta(seconds=int(s)) for s in offsets]).dt.cast_time_unit("us")
    )
    drift = drift_over_time(profile, frame, edges=edges)
    for start, end in itertools.pairwise(edges):
        window = frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        expected = detect_drift(profile, window)
        got = drift.filter(pl.col("bucket") == start)
        assert got["feature"].to_list() == [d.feature for d in expected]
        assert got["method"].to_list() == [d.method for d in expected]
        assert got["drifted"].to_list() == [d.drifted for d in expected]
        assert got["rows"].to_list() == [d.rows for d in expected]
        np.testing.assert_allclose(got["score"].to_numpy(), [d.score for d in expected])


@settings(max_examples=25)
@given(
    st.lists(st.integers(-1, 3), min_size=1, max_size=300),
    st.lists(st.one_of(st.none(), st.floats(-5, 5), st.just(float("nan"))), min_size=300),
    st.lists(st.one_of(st.none(), st.sampled_from("abcz")), min_size=300),
)
def test_grouped_drift_is_the_drift_of_each_group(groups, numbers, letters) -> None:
    rng = np.random.default_rng(1)
    reference = pl.DataFrame({"x": rng.normal(size=500), "c": rng.choice(list("abcd"), 500)})
    profile = Profile.build(reference, {"x": "float", "c": "categorical"})
    n = len(groups)
    frame = pl.DataFrame(
        {"x": numbers[:n], "c": letters[:n]}, schema={"x": pl.Float64, "c": pl.String}
    )
    results = drift_by_group(profile, frame, np.asarray(groups), 4, total=True)
    assert len(results) == 5
    chosen = np.asarray(groups)
    for g, got in enumerate(results):
        mask = chosen >= 0 if g == 4 else chosen == g
        subset = frame.filter(pl.Series(mask))
        expected = detect_drift(profile, subset) if subset.height else []
        assert [(d.feature, d.method, d.rows, d.drifted) for d in got] == [
            (d.feature, d.method, d.rows, d.drifted) for d in expected
        ]
        np.testing.assert_allclose([d.score for d in got], [d.score for d in expected])


def test_drift_over_time_needs_a_time_column_and_two_edges(halves) -> None:
    reference, current = halves
    profile = Profile.build(reference, SCHEMA)
    with pytest.raises(UsageError, match="no 'ts' column"):
        drift_over_time(profile, current, edges=[T0, T0 + timedelta(hours=1)])
    with pytest.raises(UsageError, match="two bucket edges"):
        drift_over_time(profile, _stamp(current, T0), edges=[T0])
    empty = drift_over_time(profile, _stamp(current.head(0), T0), edges=[T0, T0 + timedelta(1)])
    assert empty.height == 0 and tuple(empty.columns) == DRIFT_COLUMNS
