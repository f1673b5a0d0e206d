"""ROC and PR curves: bounded, monotone, faithful to scikit-learn, downsampled in shape."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given
from hypothesis import strategies as st

from forgeml.errors import UsageError
from forgeml.evaluation.curves import Curve, downsample_curve, pr_curves, roc_curves


def _check_bounded(curve: Curve) -> None:
    x, y = np.array(curve.x), np.array(curve.y)
    assert len(x) == len(y) == len(curve.thresholds) >= 2
    assert ((x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)).all()
    assert np.all(np.diff(x) >= 0), "x must not decrease along the curve"
    assert 0.0 <= curve.auc <= 1.0


@pytest.mark.parametrize("case_name", ["binary_case", "multiclass_case"])
def test_roc_curves_are_monotone_and_match_sklearn(case_name, request):
    c = request.getfixturevalue(case_name)
    curves = roc_curves(c.y, c.pred, labels=c.task.classes, sample_limit=30)
    columns = [1] if c.task.is_binary else range(c.task.n_classes)
    assert [curve.label for curve in curves] == [c.task.classes[k] for k in columns]
    for k, curve in zip(columns, curves, strict=True):
        _check_bounded(curve)
        assert np.all(np.diff(curve.y) >= 0)
        assert (curve.x[0], curve.y[0]) == (0.0, 0.0)
        assert (curve.x[-1], curve.y[-1]) == (1.0, 1.0)
        assert curve.thresholds[0] is None  # above every score: nothing predicted positive
        assert curve.auc == pytest.approx(skm.roc_auc_score(c.y == k, c.pred[:, k]))
        assert curve.prevalence == pytest.approx(np.mean(c.y == k))


@pytest.mark.parametrize("case_name", ["binary_case", "multiclass_case"])
def test_pr_curves_are_bounded_and_match_sklearn(case_name, request):
    c = request.getfixturevalue(case_name)
    curves = pr_curves(c.y, c.pred, labels=c.task.classes, sample_limit=30)
    columns = [1] if c.task.is_binary else range(c.task.n_classes)
    for k, curve in zip(columns, curves, strict=True):
        _check_bounded(curve)
        assert (curve.x[0], curve.y[0]) == (0.0, 1.0)
        assert curve.x[-1] == 1.0
        assert curve.auc == pytest.approx(skm.average_precision_score(c.y == k, c.pred[:, k]))


def test_thresholds_reproduce_the_points(binary_case):
    c = binary_case
    scores, positive = c.pred[:, 1], c.y == 1
    (roc,) = roc_curves(c.y, c.pred, labels=c.task.classes, sample_limit=1000)
    for fpr, tpr, t in zip(roc.x, roc.y, roc.thresholds, strict=True):
        if t is None:
            continue
        predicted = scores >= t
        assert tpr == pytest.approx((predicted & positive).sum() / positive.sum())
        assert fpr == pytest.approx((predicted & ~positive).sum() / (~positive).sum())


def test_downsampling_keeps_endpoints_and_shape():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20_000)
    scores = np.clip(y * 0.3 + rng.random(20_000) * 0.7, 0, 1)
    proba = np.column_stack([1 - scores, scores])
    full = skm.roc_curve(y, scores)
    (curve,) = roc_curves(y, proba, labels=(0, 1), sample_limit=100)
    assert len(full[0]) > 100 >= len(curve.x)
    # The downsampled curve stays close to the full one: same area, same height across x.
    assert skm.auc(curve.x, curve.y) == pytest.approx(skm.auc(full[0], full[1]), abs=2e-3)
    grid = np.linspace(0.01, 0.99, 99)
    gap = np.interp(grid, curve.x, curve.y) - np.interp(grid, full[0], full[1])
    assert np.max(np.abs(gap)) < 0.02
    assert curve.auc == pytest.approx(skm.roc_auc_score(y, scores))


def test_downsample_rejects_tiny_limits():
    with pytest.raises(UsageError):
        downsample_curve(np.arange(5.0), np.arange(5.0), 1)


@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=300),
    st.integers(2, 50),
)
def test_downsample_indices_are_ordered_bounded_and_keep_ends(values, limit):
    x = np.sort(np.array(values))
    y = np.sqrt(x)
    idx = downsample_curve(x, y, limit)
    assert len(idx) <= limit
    assert idx[0] == 0 and idx[-1] == len(x) - 1
    assert np.all(np.diff(idx) > 0)


def test_curve_round_trips_through_dict(binary_case):
    c = binary_case
    for curve in (
        *roc_curves(c.y, c.pred, labels=c.task.classes),
        *pr_curves(c.y, c.pred, labels=c.task.classes),
    ):
        assert Curve.from_dict(curve.to_dict()) == curve
