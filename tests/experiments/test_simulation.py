"""Proof by simulation: peeking does not inflate false positives; a real lift is found.

Each simulated experiment has two arms of a binary metric; after every 500 users per arm
the cumulative data is looked at (20 looks, up to 10,000 users per arm). Deterministic
seeds, so every run of the suite sees the same experiments.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from forgeml.experiments import SequentialTest, always_valid_p, two_proportions

EXPERIMENTS, LOOKS, BATCH, ALPHA = 2_000, 20, 500, 0.05
BASE = 0.10
TAU = 0.1 * np.sqrt(BASE * (1 - BASE))  # the SequentialTest default: a tenth of the sd


def _looks(p_control: float, p_treatment: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per experiment and look: the difference of rates and its variance."""
    rng = np.random.default_rng(seed)
    n = BATCH * np.arange(1, LOOKS + 1)
    a = rng.binomial(BATCH, p_control, size=(EXPERIMENTS, LOOKS)).cumsum(axis=1) / n
    b = rng.binomial(BATCH, p_treatment, size=(EXPERIMENTS, LOOKS)).cumsum(axis=1) / n
    variance = (a * (1 - a) + b * (1 - b)) / n
    return b - a, variance


def test_peeking_keeps_false_positives_at_or_below_alpha() -> None:
    difference, variance = _looks(BASE, BASE, seed=1)
    sequential = always_valid_p(difference, variance, TAU).min(axis=1)
    false_positive_rate = float((sequential <= ALPHA).mean())
    assert false_positive_rate <= ALPHA, false_positive_rate
    # The fixed-horizon z-test, checked at every look, is what the sequential test fixes:
    naive = 2 * norm.sf(np.abs(difference) / np.sqrt(variance))
    naive_rate = float((naive.min(axis=1) <= ALPHA).mean())
    assert naive_rate > 2 * ALPHA, naive_rate


def test_a_real_lift_is_detected_at_the_stated_power() -> None:
    difference, variance = _looks(BASE, BASE + 0.02, seed=2)  # +2 points, 20% relative
    detected = float((always_valid_p(difference, variance, TAU).min(axis=1) <= ALPHA).mean())
    assert detected >= 0.8, detected


def test_the_running_test_object_agrees_with_the_vectorised_one() -> None:
    rng = np.random.default_rng(3)
    test = SequentialTest(alpha=ALPHA, tau=float(TAU))
    xa = xb = n = 0
    expected = 1.0
    for _ in range(LOOKS):
        xa += int(rng.binomial(BATCH, BASE))
        xb += int(rng.binomial(BATCH, BASE + 0.02))
        n += BATCH
        effect = two_proportions(xa, n, xb, n)
        p = test.update(effect)
        expected = min(expected, float(always_valid_p(effect.difference, effect.variance, TAU)))
        assert p == expected
    assert test.history == sorted(test.history, reverse=True)  # never goes back up
