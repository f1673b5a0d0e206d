"""Real predictions to evaluate: quick scikit-learn models trained on the shared datasets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from forgeml.tasks import TaskInfo, encode_target


@dataclass(frozen=True)
class Case:
    """Held-out targets and predictions, plus the training split (for threshold tuning)."""

    task: TaskInfo
    y: np.ndarray
    pred: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    feature_names: list[str]


def _split(frame: pl.DataFrame, target: str, kind: str, seed: int = 0):
    X = frame.drop(target).to_numpy().astype(np.float64)
    y, task = encode_target(frame[target].to_numpy(), kind, target=target)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.7 * len(y))
    train, test = order[:cut], order[cut:]
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    X = (X - mean) / np.where(std > 0, std, 1.0)
    return X[train], y[train], X[test], y[test], task, frame.drop(target).columns


def _classifier_case(frame: pl.DataFrame, target: str) -> Case:
    from sklearn.linear_model import LogisticRegression

    X_train, y_train, X_test, y_test, task, names = _split(frame, target, "classification")
    model = LogisticRegression(max_iter=500).fit(X_train, y_train)
    return Case(task, y_test, model.predict_proba(X_test), X_train, y_train, names)


@pytest.fixture(scope="session")
def binary_case(breast_cancer: pl.DataFrame) -> Case:
    return _classifier_case(breast_cancer, "diagnosis")


@pytest.fixture(scope="session")
def multiclass_case(wine: pl.DataFrame) -> Case:
    return _classifier_case(wine, "cultivar")


@pytest.fixture(scope="session")
def regression_case(diabetes: pl.DataFrame) -> Case:
    from sklearn.linear_model import Ridge

    X_train, y_train, X_test, y_test, task, names = _split(diabetes, "progression", "regression")
    model = Ridge(alpha=1.0).fit(X_train, y_train)
    return Case(task, y_test, model.predict(X_test), X_train, y_train, names)
