"""Task vocabulary: target encoding and metrics agree with scikit-learn on real data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from forgeml.errors import ConfigError, DataError
from forgeml.tasks import METRICS, all_metrics, encode_target, resolve_metric, score


def _fit_predict(frame: pl.DataFrame, target: str, kind: str):
    X = StandardScaler().fit_transform(frame.drop(target).to_numpy())
    y, info = encode_target(frame[target].to_numpy(), kind, target=target)
    if kind == "regression":
        return y, Ridge().fit(X, y).predict(X), info
    return y, LogisticRegression(max_iter=2000).fit(X, y).predict_proba(X), info


def test_binary_metrics_match_sklearn(breast_cancer: pl.DataFrame) -> None:
    y, proba, info = _fit_predict(breast_cancer, "diagnosis", "classification")
    assert info.classes == ("benign", "malignant") and info.is_binary
    got = all_metrics(y, proba, "binary", threshold=0.3)
    yhat = (proba[:, 1] >= 0.3).astype(int)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, proba[:, 1]))
    assert got["f1"] == pytest.approx(skm.f1_score(y, yhat))
    assert got["precision"] == pytest.approx(skm.precision_score(y, yhat))
    assert got["recall"] == pytest.approx(skm.recall_score(y, yhat))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-6)


def test_multiclass_metrics_match_sklearn(wine: pl.DataFrame) -> None:
    y, proba, info = _fit_predict(wine, "cultivar", "classification")
    assert info.subtype == "multiclass" and info.n_classes == 3
    got = all_metrics(y, proba, "multiclass")
    yhat = proba.argmax(axis=1)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["f1"] == pytest.approx(skm.f1_score(y, yhat, average="macro"))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, yhat))


def test_multiclass_with_absent_classes_does_not_crash(wine: pl.DataFrame) -> None:
    y, proba, _ = _fit_predict(wine, "cultivar", "classification")
    two = y != 2  # only classes 0 and 1 present: scikit-learn would read it as binary
    got = all_metrics(y[two], proba[two], "multiclass")
    assert 0.9 < got["roc_auc"] <= 1.0 and np.isfinite(got["pr_auc"])


def test_regression_metrics_match_sklearn(diabetes: pl.DataFrame) -> None:
    y, pred, _ = _fit_predict(diabetes, "progression", "regression")
    got = all_metrics(y, pred, "regression")
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))


def test_target_encoding_rules() -> None:
    y, info = encode_target(
        np.array(["yes", "no", None, "yes"], dtype=object), "classification", positive_class="no"
    )
    assert info.classes == ("yes", "no") and y.tolist() == [0, 1, -1, 0]
    with pytest.raises(DataError, match="only 'a'"):
        encode_target(np.array(["a", "a"], dtype=object), "classification", target="t")
    with pytest.raises(DataError, match="positive_class 'z'"):
        encode_target(np.array(["a", "b"], dtype=object), "classification", positive_class="z")
    with pytest.raises(DataError, match="non-numeric"):
        encode_target(np.array(["a", "b"], dtype=object), "regression")


def test_metric_resolution_errors_name_the_field() -> None:
    assert resolve_metric(None, "binary").name == "roc_auc"
    assert resolve_metric(None, "regression").name == "rmse"
    with pytest.raises(ConfigError, match=r"tuning\.metric: unknown metric 'auc'"):
        resolve_metric("auc", "binary")
    with pytest.raises(ConfigError, match="does not apply to regression"):
        resolve_metric("roc_auc", "regression")


@given(st.lists(st.integers(0, 2), min_size=3, max_size=50), st.integers(0, 2**32 - 1))
def test_labels_decode_back(values: list[int], seed: int) -> None:
    labels = np.array([f"c{v}" for v in values], dtype=object)
    y, info = encode_target(labels, "classification") if len(set(values)) > 1 else (None, None)
    if info is None:
        return
    assert info.decode(y).tolist() == labels.tolist()
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(info.n_classes), size=len(values))
    for name, metric in METRICS.items():
        if info.subtype in metric.subtypes:
            value = score(name, y, proba, info.subtype)
            assert np.isnan(value) or np.isfinite(value)
