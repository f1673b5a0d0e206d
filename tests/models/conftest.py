"""Prepared training/test splits of the shared datasets, and helpers the model tests share."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from forgeml.models import FittedEstimator, get_adapter
from forgeml.models.catalog import ADAPTERS
from forgeml.tasks import encode_target

SUBTYPES = ("binary", "multiclass", "regression")

# Small configurations: the contract does not need big models, the shared machine has 2 cores.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "linear": {},
    "random_forest": {"n_estimators": 40},
    "lightgbm": {"n_estimators": 80},
    "xgboost": {"n_estimators": 80},
    "mlp": {
        "epochs": 20,
        "hidden_units": 32,
        "layers": 1,
        "batch_size": 64,
        "learning_rate": 0.003,
    },
}
# What early stopping counts, by adapter: boosting rounds, or the mlp's epochs.
ROUNDS_PARAM = {name: cls.rounds_param for name, cls in ADAPTERS.items()}


@dataclass(frozen=True)
class Split:
    """Standardised float32 features, encoded targets, 75/25 train/test."""

    subtype: str
    n_classes: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])


def _split(frame: pl.DataFrame, target: str, kind: str) -> Split:
    X = frame.drop(target).to_numpy().astype(np.float64)
    y, task = encode_target(frame[target].to_numpy(), kind, target=target)  # type: ignore[arg-type]
    order = np.random.default_rng(0).permutation(len(y))
    cut = int(0.75 * len(y))
    train, test = order[:cut], order[cut:]
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    X = ((X - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
    return Split(task.subtype, task.n_classes, X[train], y[train], X[test], y[test])


@pytest.fixture(scope="session")
def splits(
    breast_cancer: pl.DataFrame, wine: pl.DataFrame, diabetes: pl.DataFrame
) -> dict[str, Split]:
    return {
        "binary": _split(breast_cancer, "diagnosis", "classification"),
        "multiclass": _split(wine, "cultivar", "classification"),
        "regression": _split(diabetes, "progression", "regression"),
    }


def _fit(name: str, split: Split, **overrides: Any) -> FittedEstimator:
    params = {**FAST_PARAMS[name], **overrides.pop("params", {})}
    X = overrides.pop("X", split.X_train)
    y = overrides.pop("y", split.y_train)
    overrides.setdefault("seed", 0)
    return get_adapter(name).fit(
        X, y, subtype=split.subtype, n_classes=split.n_classes, params=params, **overrides
    )


@pytest.fixture(scope="session")
def fit_model() -> Callable[..., FittedEstimator]:
    """``fit_model(name, split, **overrides)``: fit with the fast parameters (overridable)."""
    return _fit


@pytest.fixture(scope="session")
def fitted(splits: dict[str, Split]) -> Callable[[str, str], FittedEstimator]:
    """``fitted(name, subtype)``: the baseline model of a case, fitted once per session."""
    cache: dict[tuple[str, str], FittedEstimator] = {}

    def get(name: str, subtype: str) -> FittedEstimator:
        if (name, subtype) not in cache:
            cache[name, subtype] = _fit(name, splits[subtype])
        return cache[name, subtype]

    return get


@pytest.fixture(scope="session")
def save_meta() -> Callable[[FittedEstimator, Path], dict[str, Any]]:
    """``save_meta(estimator, directory)``: save, and return the metadata through JSON."""

    def save(estimator: FittedEstimator, directory: Path) -> dict[str, Any]:
        estimator.save(directory)
        return dict(json.loads(json.dumps(estimator.to_meta())))

    return save


def _skip_missing(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not ADAPTERS[name].available(), reason=f"{name} is not installed")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``case`` (adapter x subtype), ``adapter_name`` and ``booster_name``."""
    if "case" in metafunc.fixturenames:
        cases = [
            pytest.param((name, subtype), id=f"{name}-{subtype}", marks=_skip_missing(name))
            for name, cls in ADAPTERS.items()
            for subtype in SUBTYPES
            if subtype in cls.subtypes
        ]
        metafunc.parametrize("case", cases)
    if "adapter_name" in metafunc.fixturenames:
        names = [pytest.param(n, id=n, marks=_skip_missing(n)) for n in ADAPTERS]
        metafunc.parametrize("adapter_name", names)
    if "booster_name" in metafunc.fixturenames:
        boosters = [
            pytest.param(n, id=n, marks=_skip_missing(n))
            for n, cls in ADAPTERS.items()
            if cls.supports_early_stopping
        ]
        metafunc.parametrize("booster_name", boosters)
