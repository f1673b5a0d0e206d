"""The experiment statistics against SciPy, and their error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from forgeml.errors import UsageError
from forgeml.experiments import (
    SequentialTest,
    Summary,
    decide,
    srm_check,
    two_proportions,
    welch,
)

samples = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=3, max_size=60
)


@settings(max_examples=60)
@given(samples, samples)
def test_welch_matches_scipy(a: list[float], b: list[float]) -> None:
    # Near-constant arms are cancellation noise in both implementations
    # (SciPy warns on them): the comparison only means something with spread.
    for arm in (a, b):
        assume(np.ptp(arm) > 1e-6 * max(1.0, float(np.max(np.abs(arm)))))
    effect = welch(Summary.of(a), Summary.of(b))
    expected = sps.ttest_ind(b, a, equal_var=False)
    assert math.isclose(effect.p_value, float(expected.pvalue), rel_tol=1e-6, abs_tol=1e-12)
    low, high = expected.confidence_interval(0.95)
    assert math.isclose(effect.ci_low, float(low), rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(effect.ci_high, float(high), rel_tol=1e-6, abs_tol=1e-9)


@settings(max_examples=60)
@given(
    st.integers(min_value=1, max_value=5_000),
    st.integers(min_value=1, max_value=5_000),
    st.floats(min_value=0.01, max_value=0.99),
    st.floats(min_value=0.01, max_value=0.99),
)
def test_two_proportions_p_value_is_the_chi_square_test(
    n_a: int, n_b: int, p: float, q: float
) -> None:
    x_a, x_b = round(n_a * p), round(n_b * q)
    effect = two_proportions(x_a, n_a, x_b, n_b)
    table = np.array([[x_a, n_a - x_a], [x_b, n_b - x_b]])
    if (table.sum(axis=0) == 0).any():
        assert effect.p_value == 1.0
        return
    expected = sps.chi2_contingency(table, correction=False).pvalue
    assert math.isclose(effect.p_value, float(expected), rel_tol=1e-6, abs_tol=1e-12)
    assert effect.ci_low <= effect.difference <= effect.ci_high


def test_srm_flags_a_broken_split_and_not_a_fair_one() -> None:
    weights = {"champion": 0.9, "challenger": 0.1}
    assert not srm_check({"champion": 9_020, "challenger": 980}, weights).mismatch
    broken = srm_check({"champion": 8_800, "challenger": 1_200}, weights)
    assert broken.mismatch and broken.p_value < 1e-6


def test_decisions_name_their_reasons() -> None:
    weights = {"control": 0.5, "treatment": 0.5}
    fair = srm_check({"control": 5_000, "treatment": 5_000}, weights)
    lift = two_proportions(500, 5_000, 650, 5_000)
    test = SequentialTest()
    test.update(lift)
    decision = decide(lift, test, fair)
    assert decision.verdict == "promote" and "better" in decision.reasons[0]
    flat = two_proportions(500, 5_000, 505, 5_000)
    quiet = SequentialTest()
    quiet.update(flat)
    assert decide(flat, quiet, fair).verdict == "keep running"
    slower = welch(Summary(5_000, 0.020, 1e-5), Summary(5_000, 0.030, 1e-5))
    verdict = decide(lift, test, fair, guardrails={"latency_seconds": slower}, guardrail_margin=0.1)
    assert verdict.verdict == "rollback" and "latency_seconds" in verdict.reasons[0]
    skewed = srm_check({"control": 5_400, "treatment": 4_600}, weights)
    stop = decide(lift, test, skewed)
    assert stop.verdict == "stop: broken split" and "sample ratio mismatch" in stop.reasons[0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: two_proportions(5, 0, 1, 10), "no exposures"),
        (lambda: two_proportions(11, 10, 1, 10), "impossible"),
        (lambda: two_proportions(1, 10, 1, 10, alpha=1.5), "alpha"),
        (lambda: Summary.of([1.0]), "at least 2"),
        (lambda: Summary.of([1.0, float("nan")]), "finite"),
        (lambda: srm_check({"a": 1}, {"a": 0.5, "b": 0.5}), "variants"),
        (lambda: srm_check({"a": 0, "b": 0}, {"a": 0.5, "b": 0.5}), "no exposures"),
    ],
)
def test_bad_inputs_get_clear_errors(call, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        call()
