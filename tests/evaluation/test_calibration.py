"""Calibration bins: every row in exactly one bin, means inside their bins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.errors import UsageError
from forgeml.evaluation.calibration import Calibration, calibration_bins

probabilities = st.lists(
    st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.5, 1.0])), min_size=1, max_size=200
)


@given(probabilities, st.sampled_from(["quantile", "uniform"]), st.integers(1, 12))
def test_counts_sum_to_n_and_bins_are_consistent(values, strategy, n_bins):
    prob = np.array(values)
    outcome = (np.arange(len(prob)) % 3 == 0).astype(float)
    cal = calibration_bins(outcome, prob, n_bins=n_bins, strategy=strategy)
    assert sum(b.count for b in cal.bins) == len(prob)
    assert 1 <= len(cal.bins) <= n_bins
    for b in cal.bins:
        assert b.count > 0
        assert b.lower - 1e-12 <= b.mean_predicted <= b.upper + 1e-12
        assert 0.0 <= b.observed_rate <= 1.0
    lowers = [b.lower for b in cal.bins]
    assert lowers == sorted(lowers)


def test_matches_sklearn_calibration_curve_on_uniform_bins(binary_case):
    from sklearn.calibration import calibration_curve

    c = binary_case
    prob = c.pred[:, 1]
    cal = calibration_bins(c.y, prob, n_bins=10, strategy="uniform")
    observed, predicted = calibration_curve(c.y, prob, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([b.observed_rate for b in cal.bins], observed)
    np.testing.assert_allclose([b.mean_predicted for b in cal.bins], predicted)


def test_quantile_bins_hold_similar_counts(binary_case):
    c = binary_case
    cal = calibration_bins(c.y, c.pred[:, 1], n_bins=10)
    counts = [b.count for b in cal.bins]
    assert len(counts) == 10
    assert max(counts) - min(counts) <= 2


def test_constant_probabilities_give_one_bin():
    cal = calibration_bins(np.array([0, 1, 1, 0]), np.full(4, 0.3))
    assert len(cal.bins) == 1
    assert cal.bins[0].count == 4 and cal.bins[0].observed_rate == 0.5


def test_round_trip_and_bad_arguments():
    cal = calibration_bins(np.array([0, 1]), np.array([0.2, 0.9]), n_bins=2)
    assert Calibration.from_dict(cal.to_dict()) == cal
    with pytest.raises(UsageError, match="strategy"):
        calibration_bins(np.array([0]), np.array([0.1]), strategy="kmeans")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="n_bins"):
        calibration_bins(np.array([0]), np.array([0.1]), n_bins=0)
