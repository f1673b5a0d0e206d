"""The synthetic generator: exact counts, determinism, heavy tails and sessions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from forgeml.errors import UsageError
from forgeml.recommend import Interactions, generate


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return generate(users=2_000, items=5_000, interactions=200_000, seed=7)


def test_counts_ranges_and_types(frame):
    assert frame.height == 200_000
    assert frame.schema == pl.Schema(
        {"user_id": pl.Int64, "item_id": pl.Int64, "timestamp": pl.Datetime("us")}
    )
    assert frame["user_id"].min() >= 0 and frame["user_id"].max() < 2_000
    assert frame["item_id"].min() >= 0 and frame["item_id"].max() < 5_000
    assert frame.null_count().sum_horizontal().item() == 0


def test_same_seed_same_frame_other_seed_other_frame(frame):
    assert frame.equals(generate(users=2_000, items=5_000, interactions=200_000, seed=7))
    assert not frame.equals(generate(users=2_000, items=5_000, interactions=200_000, seed=8))


def test_item_popularity_is_heavy_tailed(frame):
    counts = np.sort(frame["item_id"].value_counts()["count"].to_numpy())[::-1]
    top_one_percent = counts[: len(counts) // 100].sum() / counts.sum()
    assert top_one_percent > 0.2  # uniform would be 0.01
    # Zipf: log(count) falls roughly linearly in log(rank) over the head.
    ranks = np.arange(1, 201)
    slope = np.polyfit(np.log(ranks), np.log(counts[:200]), 1)[0]
    assert -1.5 < slope < -0.5


def test_user_activity_is_heavy_tailed(frame):
    per_user = frame["user_id"].value_counts()["count"].to_numpy()
    assert per_user.max() > 10 * np.median(per_user)
    assert np.mean(per_user) > 1.5 * np.median(per_user)


def test_events_come_in_sessions_within_a_year(frame):
    ordered = frame.sort("user_id", "timestamp", maintain_order=True)
    same_user = (ordered["user_id"].diff() == 0).fill_null(False).to_numpy()
    gaps = ordered["timestamp"].diff().dt.total_seconds().fill_null(0).to_numpy()[same_user]
    assert (gaps >= 0).all()
    assert np.mean(gaps < 3600) > 0.5  # most steps stay inside a session
    assert np.mean(gaps > 86_400) > 0.05  # and sessions are days apart
    span = frame["timestamp"].max() - frame["timestamp"].min()
    assert span.days <= 366


def test_rows_are_sorted_by_user_then_time(frame):
    assert frame.equals(frame.sort("user_id", "timestamp", maintain_order=True))


def test_loads_into_interactions_and_handles_edge_sizes():
    log = Interactions.from_frame(
        generate(users=3, items=1, interactions=10, seed=0), time="timestamp"
    )
    assert (log.n_items, log.n_events) == (1, 10)
    assert generate(users=5, items=5, interactions=0, seed=0).height == 0
    with pytest.raises(UsageError, match="users and items"):
        generate(users=0, items=5, interactions=10, seed=0)
