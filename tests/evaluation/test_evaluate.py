"""evaluate(): metrics agree with scikit-learn on real data; plot data is consistent; edge
cases give notes or clear DataErrors, never crashes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sklearn.metrics as skm

from forgeml.errors import DataError
from forgeml.evaluation import Evaluation, evaluate
from forgeml.tasks import TaskInfo, all_metrics

BINARY = TaskInfo("classification", target="t", classes=("no", "yes"))
THREE = TaskInfo("classification", target="t", classes=("a", "b", "c"))


def test_binary_metrics_equal_sklearn(binary_case):
    c = binary_case
    ev = evaluate(c.y, c.pred, c.task)
    p = c.pred[:, 1]
    yhat = (p >= 0.5).astype(int)
    expected = {
        "accuracy": skm.accuracy_score(c.y, yhat),
        "balanced_accuracy": skm.balanced_accuracy_score(c.y, yhat),
        "precision": skm.precision_score(c.y, yhat),
        "recall": skm.recall_score(c.y, yhat),
        "f1": skm.f1_score(c.y, yhat),
        "roc_auc": skm.roc_auc_score(c.y, p),
        "pr_auc": skm.average_precision_score(c.y, p),
        "log_loss": skm.log_loss(c.y, c.pred),
        "brier": skm.brier_score_loss(c.y, p),
    }
    assert set(ev.metrics) == set(all_metrics(c.y, c.pred, "binary"))
    for name, value in expected.items():
        assert ev.metrics[name] == pytest.approx(value, rel=1e-9), name
    assert ev.n_rows == len(c.y)
    assert ev.threshold == 0.5
    assert ev.notes == ()


def test_multiclass_metrics_equal_sklearn(multiclass_case):
    c = multiclass_case
    ev = evaluate(c.y, c.pred, c.task)
    yhat = c.pred.argmax(axis=1)
    expected = {
        "accuracy": skm.accuracy_score(c.y, yhat),
        "balanced_accuracy": skm.balanced_accuracy_score(c.y, yhat),
        "precision": skm.precision_score(c.y, yhat, average="macro"),
        "recall": skm.recall_score(c.y, yhat, average="macro"),
        "f1": skm.f1_score(c.y, yhat, average="macro"),
        "roc_auc": skm.roc_auc_score(c.y, c.pred, multi_class="ovr"),
        "log_loss": skm.log_loss(c.y, c.pred),
    }
    assert set(ev.metrics) == set(all_metrics(c.y, c.pred, "multiclass"))
    for name, value in expected.items():
        assert ev.metrics[name] == pytest.approx(value, rel=1e-9), name
    assert ev.threshold is None


def test_regression_metrics_equal_sklearn(regression_case):
    c = regression_case
    ev = evaluate(c.y, c.pred, c.task)
    expected = {
        "rmse": skm.root_mean_squared_error(c.y, c.pred),
        "mae": skm.mean_absolute_error(c.y, c.pred),
        "r2": skm.r2_score(c.y, c.pred),
        "mape": skm.mean_absolute_percentage_error(c.y, c.pred),
    }
    assert set(ev.metrics) == set(expected)
    for name, value in expected.items():
        assert ev.metrics[name] == pytest.approx(value, rel=1e-9), name
    assert ev.classification is None and ev.regression is not None


def test_confusion_and_per_class_match_sklearn(multiclass_case):
    c = multiclass_case
    detail = evaluate(c.y, c.pred, c.task).classification
    assert detail is not None
    yhat = c.pred.argmax(axis=1)
    cm = detail.confusion.as_array()
    assert cm.sum() == len(c.y)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(c.y, yhat, labels=[0, 1, 2]))
    assert detail.confusion.labels == c.task.classes
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        c.y, yhat, labels=[0, 1, 2], zero_division=np.nan
    )
    for i, report in enumerate(detail.per_class):
        assert report.label == c.task.classes[i]
        assert report.precision == pytest.approx(precision[i])
        assert report.recall == pytest.approx(recall[i])
        assert report.f1 == pytest.approx(f1[i])
        assert report.support == support[i]


def test_binary_threshold_changes_hard_labels(binary_case):
    c = binary_case
    low = evaluate(c.y, c.pred, c.task, threshold=0.05).classification
    high = evaluate(c.y, c.pred, c.task, threshold=0.95).classification
    assert low is not None and high is not None
    predicted_pos_low = low.confusion.as_array()[:, 1].sum()
    predicted_pos_high = high.confusion.as_array()[:, 1].sum()
    assert predicted_pos_low == int((c.pred[:, 1] >= 0.05).sum())
    assert predicted_pos_high == int((c.pred[:, 1] >= 0.95).sum())
    assert predicted_pos_low > predicted_pos_high


def test_curves_and_calibration_data(binary_case, multiclass_case):
    for case, n_curves, what in ((binary_case, 1, "positive"), (multiclass_case, 3, "top_label")):
        ev = evaluate(case.y, case.pred, case.task, sample_limit=50)
        detail = ev.classification
        assert detail is not None
        assert len(detail.roc) == len(detail.pr) == n_curves
        assert all(len(curve.x) <= 50 for curve in (*detail.roc, *detail.pr))
        assert sum(b.count for b in detail.calibration.bins) == len(case.y)
        assert detail.calibration.what == what
    ev = evaluate(binary_case.y, binary_case.pred, binary_case.task)
    assert ev.classification is not None
    (roc,) = ev.classification.roc
    assert roc.label == binary_case.task.classes[1]  # the positive class
    assert roc.auc == pytest.approx(ev.metrics["roc_auc"])


def test_regression_detail(regression_case):
    c = regression_case
    ev = evaluate(c.y, c.pred, c.task)
    detail = ev.regression
    assert detail is not None
    residuals = c.y - c.pred
    assert detail.residual_quantiles["p50"] == pytest.approx(np.median(residuals))
    assert detail.residual_quantiles["min"] <= detail.residual_quantiles["p01"]
    assert detail.residual_quantiles["p99"] <= detail.residual_quantiles["max"]
    assert sum(detail.residual_histogram.counts) == len(c.y)
    assert detail.sample.n_total == len(c.y) == len(detail.sample.y)  # small set: all rows


def test_regression_sample_is_bounded_and_deterministic():
    rng = np.random.default_rng(3)
    y = rng.normal(size=10_000)
    pred = y + rng.normal(size=10_000)
    pred[1234] = 50.0  # an outlier must stay in the sample
    task = TaskInfo("regression")
    a = evaluate(y, pred, task).regression
    b = evaluate(y, pred, task).regression
    assert a is not None and b is not None
    assert len(a.sample.y) == 2000 and a.sample == b.sample
    assert 50.0 in a.sample.pred


@pytest.mark.parametrize("case_name", ["binary_case", "multiclass_case", "regression_case"])
def test_to_dict_is_strict_json_and_round_trips(case_name, request):
    c = request.getfixturevalue(case_name)
    ev = evaluate(c.y, c.pred, c.task)
    data = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert Evaluation.from_dict(data) == ev


def test_nan_metrics_become_null_and_back():
    ev = evaluate(np.array([1, 1, 1]), np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]]), BINARY)
    assert math.isnan(ev.metrics["roc_auc"])
    data = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert data["metrics"]["roc_auc"] is None
    back = Evaluation.from_dict(data)
    assert math.isnan(back.metrics["roc_auc"])
    assert back.metrics["accuracy"] == ev.metrics["accuracy"]


def test_class_absent_from_multiclass_test_set(multiclass_case):
    c = multiclass_case
    keep = c.y != 2
    y, pred = c.y[keep], c.pred[keep]
    ev = evaluate(y, pred, c.task)
    assert any("absent from the test set" in note for note in ev.notes)
    present = [0, 1]
    expected_auc = np.mean([skm.roc_auc_score(y == k, pred[:, k]) for k in present])
    assert ev.metrics["roc_auc"] == pytest.approx(expected_auc)
    assert ev.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred.argmax(axis=1)))
    assert all(math.isfinite(v) for v in ev.metrics.values())
    detail = ev.classification
    assert detail is not None
    assert [curve.label for curve in detail.roc] == list(c.task.classes[:2])
    absent = detail.per_class[2]
    assert absent.support == 0 and math.isnan(absent.recall)
    assert detail.confusion.as_array().sum() == len(y)


def test_only_one_class_in_binary_test_set():
    pred = np.array([[0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    ev = evaluate(np.array([1, 1, 1]), pred, BINARY)
    assert math.isnan(ev.metrics["roc_auc"]) and math.isnan(ev.metrics["pr_auc"])
    assert ev.metrics["accuracy"] == pytest.approx(2 / 3)
    assert any("only one class" in note for note in ev.notes)
    assert ev.classification is not None and ev.classification.roc == ()


def test_multiclass_test_set_with_a_single_class():
    pred = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]])
    ev = evaluate(np.array([0, 0]), pred, THREE)
    assert math.isnan(ev.metrics["roc_auc"])
    assert ev.metrics["accuracy"] == 0.5


def test_constant_predictions(binary_case):
    c = binary_case
    pred = np.tile([0.3, 0.7], (len(c.y), 1))
    ev = evaluate(c.y, pred, c.task)
    assert ev.metrics["roc_auc"] == pytest.approx(0.5)
    assert any("identical" in note for note in ev.notes)
    assert ev.classification is not None
    assert len(ev.classification.calibration.bins) == 1
    reg = evaluate(np.array([1.0, 2.0, 3.0]), np.full(3, 2.0), TaskInfo("regression"))
    assert reg.metrics["r2"] == pytest.approx(0.0)
    assert any("identical" in note for note in reg.notes)


def test_regression_with_zero_targets_notes_mape():
    ev = evaluate(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.0, 2.5]), TaskInfo("regression"))
    assert ev.metrics["mape"] == pytest.approx(0.125)
    assert any("mape" in note for note in ev.notes)
    zeros = evaluate(np.zeros(3), np.ones(3), TaskInfo("regression"))
    assert math.isnan(zeros.metrics["mape"])


@pytest.mark.parametrize(
    ("y", "pred", "task", "match"),
    [
        ([0, 1], [[0.5, 0.5], [np.nan, 0.5]], BINARY, "NaN or infinite values in 1 of 2 rows"),
        ([1.0, 2.0], [1.0, np.inf], TaskInfo("regression"), "NaN or infinite"),
        ([1.0, np.nan], [1.0, 2.0], TaskInfo("regression"), "missing"),
        ([], np.zeros((0, 2)), BINARY, "empty"),
        ([0, 1, 1], [[0.5, 0.5], [0.5, 0.5]], BINARY, "2 predictions for 3 targets"),
        ([0, 1], [0.2, 0.7], BINARY, r"\(2, 2\) class probabilities"),
        ([0, 1], [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]], BINARY, "class probabilities"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], BINARY, "class indices 0..1"),
        ([0, -1], [[0.5, 0.5], [0.5, 0.5]], BINARY, "class indices"),
        ([0.0, 0.5], [[0.5, 0.5], [0.5, 0.5]], BINARY, "class indices"),
        ([0, 1], [[1.5, -0.5], [0.5, 0.5]], BINARY, r"\[0, 1\]"),
        ([1.0, 2.0], [[1.0], [2.0]], TaskInfo("regression"), "1-D"),
    ],
)
def test_invalid_input_is_a_clear_data_error(y, pred, task, match):
    with pytest.raises(DataError, match=match):
        evaluate(np.asarray(y), np.asarray(pred, dtype=np.float64), task)


def test_float_class_indices_and_rounding_noise_are_accepted():
    pred = np.array([[0.3, 0.7 + 1e-9], [1.0 + 1e-9, -1e-9]])
    ev = evaluate(np.array([1.0, 0.0]), pred, BINARY)
    assert ev.metrics["accuracy"] == 1.0
