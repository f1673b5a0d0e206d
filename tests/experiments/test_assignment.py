"""Sticky, deterministic traffic splits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.errors import UsageError
from forgeml.experiments import TrafficSplit, unit_point

USERS = [f"user-{i}" for i in range(10_000)]


def test_a_90_10_split_of_10000_users_lands_within_2_percent_and_replays() -> None:
    split = TrafficSplit.parse("churn-2026-11", "champion:0.9,challenger:0.1")
    first = [split.assign(u) for u in USERS]
    share = first.count("challenger") / len(USERS)
    assert abs(share - 0.1) <= 0.02
    again = TrafficSplit.parse("churn-2026-11", "champion:0.9,challenger:0.1")
    assert [again.assign(u) for u in USERS] == first  # identical when replayed


def test_experiments_split_independently() -> None:
    a = TrafficSplit("exp-a", {"x": 0.5, "y": 0.5})
    b = TrafficSplit("exp-b", {"x": 0.5, "y": 0.5})
    both = sum(a.assign(u) == "y" and b.assign(u) == "y" for u in USERS) / len(USERS)
    assert abs(both - 0.25) <= 0.02  # no correlation between the two splits


@given(st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_points_are_in_the_unit_interval_and_stable(experiment: str, unit: str) -> None:
    point = unit_point(experiment, unit)
    assert 0.0 <= point < 1.0
    assert unit_point(experiment, unit) == point


@given(
    st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=2, max_size=6),
    st.text(max_size=20),
)
def test_every_unit_gets_one_of_the_variants(raw: list[float], unit: str) -> None:
    total = sum(raw)
    weights = {f"v{i}": w / total for i, w in enumerate(raw)}
    split = TrafficSplit("e", weights)
    assert split.assign(unit) in weights


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("champion:0.9,challenger:0.2", "must sum to 1"),
        ("champion:1", "at least 2 variants"),
        ("champion:0.5,champion:0.5", "listed twice"),
        ("champion:0.5,challenger:half", "not a number"),
        ("champion,challenger", "expected NAME:WEIGHT"),
        ("champion:1.1,challenger:-0.1", "positive number"),
        ("champion:nan,challenger:0.5", "positive number"),
    ],
)
def test_bad_variants_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TrafficSplit.parse("e", text)
