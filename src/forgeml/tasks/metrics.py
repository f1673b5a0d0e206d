"""Scalar metrics by name, with their direction and the task subtypes they apply to.

Predictions are what the model bundle produces: for classification an ``(n, k)`` array of
class probabilities (column 1 is the positive class for binary tasks), for regression an
``(n,)`` array of values. Hard labels for binary tasks use the given ``threshold``.

>>> import numpy as np
>>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
>>> round(score("roc_auc", np.array([0, 1, 0, 1]), proba, "binary"), 3)
1.0
>>> METRICS["rmse"].direction
'minimize'
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from forgeml.errors import ConfigError

__all__ = [
    "METRICS",
    "Metric",
    "all_metrics",
    "default_metric",
    "hard_labels",
    "resolve_metric",
    "score",
]

Subtype = Literal["binary", "multiclass", "regression"]
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction
    subtypes: frozenset[str]
    fn: Callable[[np.ndarray, np.ndarray, str, float], float]
    needs_proba: bool = False

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "maximize" else a < b


def hard_labels(pred: np.ndarray, subtype: str, threshold: float = 0.5) -> np.ndarray:
    """Class indices from probabilities (the binary threshold applies to column 1)."""
    if subtype == "binary":
        return (pred[:, 1] >= threshold).astype(np.int64)
    return np.asarray(np.argmax(pred, axis=1), dtype=np.int64)


def _labels(
    fn: Callable[..., float], **kw: object
) -> Callable[[np.ndarray, np.ndarray, str, float], float]:
    def metric(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
        yhat = hard_labels(pred, subtype, threshold)
        extra = dict(kw)
        if "average" in extra and subtype == "binary":
            extra["average"] = "binary"
        if "average" in extra:
            extra["zero_division"] = 0
        with warnings.catch_warnings():
            # A class absent from y (small test sets) makes scikit-learn warn; the value is
            # still defined over the classes present, which is what we report.
            warnings.simplefilter("ignore", UserWarning)
            return float(fn(y, yhat, **extra))

    return metric


def _roc_auc(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
    from sklearn.metrics import roc_auc_score

    if subtype == "binary":
        return float(roc_auc_score(y, pred[:, 1]))
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if len(present) < pred.shape[1]:  # classes absent from y: score over the present ones
        sub = pred[:, present] / np.clip(pred[:, present].sum(axis=1, keepdims=True), 1e-12, None)
        remap = np.searchsorted(present, y)
        if len(present) == 2:  # scikit-learn reads two columns as a binary problem
            return float(roc_auc_score(remap, sub[:, 1]))
        return float(roc_auc_score(remap, sub, multi_class="ovr", average="macro"))
    return float(roc_auc_score(y, pred, multi_class="ovr", average="macro"))


def _pr_auc(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
    from sklearn.metrics import average_precision_score

    if subtype == "binary":
        return float(average_precision_score(y, pred[:, 1]))
    present = np.unique(y)  # average precision is undefined for a class absent from y
    onehot = np.eye(pred.shape[1])[y]
    return float(average_precision_score(onehot[:, present], pred[:, present], average="macro"))


def _log_loss(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
    from sklearn.metrics import log_loss

    clipped = np.clip(pred, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return float(log_loss(y, clipped, labels=np.arange(pred.shape[1])))


def _brier(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
    return float(np.mean((pred[:, 1] - y) ** 2))


def _rmse(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - y) ** 2)))


def _mae(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
    return float(np.mean(np.abs(np.asarray(pred, dtype=np.float64) - y)))


def _r2(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
    total = float(np.sum((y - y.mean()) ** 2))
    resid = float(np.sum((y - pred) ** 2))
    return 1.0 - resid / total if total > 0 else 0.0


def _mape(y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float) -> float:
    # Rows with y == 0 have no percentage error; they are left out rather than exploding.
    nonzero = y != 0
    if not nonzero.any():
        return float("nan")
    return float(np.mean(np.abs((pred[nonzero] - y[nonzero]) / y[nonzero])))


def _sk(name: str) -> Callable[..., float]:
    def call(*args: object, **kw: object) -> float:
        import sklearn.metrics as skm

        return float(getattr(skm, name)(*args, **kw))

    return call


_CLS = frozenset({"binary", "multiclass"})
_REG = frozenset({"regression"})

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "maximize", _CLS, _labels(_sk("accuracy_score"))),
        Metric("balanced_accuracy", "maximize", _CLS, _labels(_sk("balanced_accuracy_score"))),
        Metric("precision", "maximize", _CLS, _labels(_sk("precision_score"), average="macro")),
        Metric("recall", "maximize", _CLS, _labels(_sk("recall_score"), average="macro")),
        Metric("f1", "maximize", _CLS, _labels(_sk("f1_score"), average="macro")),
        Metric("roc_auc", "maximize", _CLS, _roc_auc, needs_proba=True),
        Metric("pr_auc", "maximize", _CLS, _pr_auc, needs_proba=True),
        Metric("log_loss", "minimize", _CLS, _log_loss, needs_proba=True),
        Metric("brier", "minimize", frozenset({"binary"}), _brier, needs_proba=True),
        Metric("rmse", "minimize", _REG, _rmse),
        Metric("mae", "minimize", _REG, _mae),
        Metric("r2", "maximize", _REG, _r2),
        Metric("mape", "minimize", _REG, _mape),
    )
}

_DEFAULTS = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def default_metric(subtype: str) -> str:
    """The metric tuning optimises when the spec names none."""
    return _DEFAULTS[subtype]


def resolve_metric(name: str | None, subtype: str, *, field: str = "tuning.metric") -> Metric:
    """The metric called ``name`` (or the default), checked against the task subtype."""
    metric_name = name or default_metric(subtype)
    metric = METRICS.get(metric_name)
    if metric is None:
        known = ", ".join(m for m, v in METRICS.items() if subtype in v.subtypes)
        raise ConfigError(f"{field}: unknown metric '{metric_name}' (known for {subtype}: {known})")
    if subtype not in metric.subtypes:
        known = ", ".join(m for m, v in METRICS.items() if subtype in v.subtypes)
        raise ConfigError(
            f"{field}: metric '{metric_name}' does not apply to {subtype} tasks (use one of: {known})"
        )
    return metric


def score(
    name: str, y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float = 0.5
) -> float:
    """Compute one metric; ``pred`` as described in the module docstring."""
    return METRICS[name].fn(np.asarray(y), np.asarray(pred), subtype, threshold)


def all_metrics(
    y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float = 0.5
) -> dict[str, float]:
    """Every metric that applies to ``subtype``, by name."""
    return {
        name: score(name, y, pred, subtype, threshold)
        for name, metric in METRICS.items()
        if subtype in metric.subtypes
    }
