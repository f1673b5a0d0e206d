"""Drift against a reference profile, on real flights: a shifted copy drifts, a fair one not."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forgeml.errors import DataError
from forgeml.monitoring import Profile, detect_drift, psi

SCHEMA = {
    "dep_delay": "float",
    "distance": "int",
    "sched_dep_time": "int",
    "air_time": "float",
    "carrier": "categorical",
    "origin": "categorical",
    "dest": "categorical",
}


@pytest.fixture(scope="module")
def halves(flights_sample: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two random halves of the same 20,000 real flights."""
    shuffled = flights_sample.sample(fraction=1.0, seed=7, shuffle=True)
    return shuffled.head(10_000), shuffled.tail(10_000)


def _drifted(results) -> set[str]:
    return {d.feature for d in results if d.drifted}


def test_a_fair_sample_does_not_drift(halves) -> None:
    reference, current = halves
    profile = Profile.build(reference, SCHEMA)
    results = detect_drift(profile, current)
    assert _drifted(results) == set()
    assert {d.method for d in results} == {"psi", "ks", "chi2", "js"}
    assert all(d.rows > 9_000 for d in results)


def test_a_shifted_copy_drifts_in_the_shifted_columns_only(halves) -> None:
    reference, current = halves
    profile = Profile.build(reference, SCHEMA)
    shifted = current.with_columns(pl.col("dep_delay") + 45)  # everything 45 minutes later
    top = reference["carrier"].mode().to_list()[0]
    shifted = shifted.filter(pl.col("carrier") != top)  # the biggest airline disappears
    assert _drifted(detect_drift(profile, shifted)) >= {"dep_delay", "carrier"}
    # With only the delays shifted, every other column stays quiet.
    untouched = _drifted(detect_drift(profile, current.with_columns(pl.col("dep_delay") + 45)))
    assert untouched == {"dep_delay"}


def test_profiles_are_small_json_and_round_trip(halves) -> None:
    reference, _ = halves
    profile = Profile.build(reference, SCHEMA)
    text = json.dumps(profile.to_dict())
    assert len(text) < 20_000
    again = Profile.from_dict(json.loads(text))
    assert again == profile
    assert [d.score for d in detect_drift(again, reference)] == [
        d.score for d in detect_drift(profile, reference)
    ]


@settings(max_examples=40)
@given(st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=2, max_size=12))
def test_psi_is_zero_for_equal_shares_and_positive_otherwise(raw: list[float]) -> None:
    shares = np.asarray(raw) / sum(raw)
    assert psi(shares, shares) == pytest.approx(0.0, abs=1e-12)
    other = np.roll(shares, 1)
    if not np.allclose(other, shares):
        assert psi(shares, other) > 0


def test_ks_of_the_reference_against_itself_is_small(halves) -> None:
    reference, _ = halves
    profile = Profile.build(reference, SCHEMA)
    ks = {d.feature: d.score for d in detect_drift(profile, reference) if d.method == "ks"}
    assert max(ks.values()) <= 0.011  # the 101-quantile sketch is exact to 1%


def test_empty_windows_and_tables_are_refused() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(DataError, match="empty table"):
        Profile.build(frame.head(0), {"x": "float"})
    profile = Profile.build(frame, {"x": "float"})
    with pytest.raises(DataError, match="no rows"):
        detect_drift(profile, frame.head(0))
    with pytest.raises(DataError, match="not in the table"):
        Profile.build(frame, {"y": "float"})
    with pytest.raises(DataError, match="invalid reference profile"):
        Profile.from_dict({"rows": 1})


def test_every_registered_model_carries_its_training_profile(tmp_path, flights_sample) -> None:
    from tests.workflow.conftest import small_spec

    import forgeml

    data = flights_sample.head(3_000).drop("arr_delay", "arr_time", "air_time")
    registry = tmp_path / "reg"
    forgeml.run(small_spec(None, registry, tuning={"budget": {"trials": 1}}), data=data)
    (path,) = list(registry.rglob("profile.json"))
    profile = Profile.from_dict(json.loads(path.read_text()))
    assert {"dep_delay", "carrier", "origin", "__prediction__"} <= set(profile.columns)
    prediction = profile.columns["__prediction__"]
    assert 0.0 <= prediction.quantiles[0] <= prediction.quantiles[-1] <= 1.0
    # The training rows themselves do not drift from their own profile.
    assert _drifted(detect_drift(profile, data)) == set()


def test_many_small_categories_do_not_drift_on_fair_samples(flights_sample) -> None:
    """A reference of 3,000 rows and a column of ~4,000 values: the reference is a sample
    too, and its top values must not be measured on the rows that chose them — else every
    fair window of ``tailnum`` (and ``dest``) looked drifted."""
    columns = ["tailnum", "dest", "carrier", "origin"]
    frame = flights_sample.select(columns)
    profile = Profile.build(frame.head(3_000), dict.fromkeys(columns, "string"))
    fair = frame.slice(3_000, 5_000)
    assert not [d for d in detect_drift(profile, fair) if d.drifted]
    # The rows that dropped the busiest carrier (and its planes, routes) do drift.
    busiest = fair["carrier"].mode()[0]
    shifted = frame.slice(3_000).filter(pl.col("carrier") != busiest).head(5_000)
    drifted = {d.feature for d in detect_drift(profile, shifted) if d.drifted}
    assert {"carrier", "dest"} <= drifted
