"""Evaluate predictions on a held-out set: every metric plus the data behind every plot.

``evaluate`` returns an :class:`Evaluation`, plain data that the report renders and that
``to_dict()`` turns into strict JSON (undefined values become ``null``) for the registry.

>>> import numpy as np
>>> from forgeml.tasks import TaskInfo
>>> task = TaskInfo("classification", target="churn", classes=("no", "yes"))
>>> proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
>>> ev = evaluate(np.array([0, 1, 0, 1]), proba, task)
>>> ev.metrics["accuracy"], ev.classification.confusion.counts
(1.0, ((2, 0), (0, 2)))
>>> import json; _ = json.dumps(ev.to_dict(), allow_nan=False)
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from forgeml.errors import DataError
from forgeml.evaluation._json import json_safe, nan_if_none
from forgeml.evaluation.calibration import Calibration, Strategy, calibration_bins
from forgeml.evaluation.confusion import ClassReport, ConfusionMatrix, confusion, per_class
from forgeml.evaluation.curves import Curve, pr_curves, roc_curves
from forgeml.evaluation.residuals import (
    Histogram,
    ScatterSample,
    histogram,
    residual_quantiles,
    scatter_sample,
)
from forgeml.tasks import METRICS, TaskInfo, score
from forgeml.tasks.metrics import hard_labels

__all__ = ["ClassificationDetail", "Evaluation", "RegressionDetail", "evaluate"]

# Probabilities may come out of a model a rounding error past [0, 1].
_PROBA_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ClassificationDetail:
    """What the classification plots and tables need; curves are one-vs-rest per class
    (one curve for binary tasks: the positive class)."""

    confusion: ConfusionMatrix
    per_class: tuple[ClassReport, ...]
    roc: tuple[Curve, ...]
    pr: tuple[Curve, ...]
    calibration: Calibration

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassificationDetail:
        return cls(
            confusion=ConfusionMatrix.from_dict(data["confusion"]),
            per_class=tuple(ClassReport.from_dict(r) for r in data["per_class"]),
            roc=tuple(Curve.from_dict(c) for c in data["roc"]),
            pr=tuple(Curve.from_dict(c) for c in data["pr"]),
            calibration=Calibration.from_dict(data["calibration"]),
        )


@dataclass(frozen=True)
class RegressionDetail:
    """Residual (``y - pred``) summary, histogram and a bounded ``(y, pred)`` sample."""

    residual_quantiles: dict[str, float]
    residual_histogram: Histogram
    sample: ScatterSample

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegressionDetail:
        return cls(
            residual_quantiles={k: nan_if_none(v) for k, v in data["residual_quantiles"].items()},
            residual_histogram=Histogram.from_dict(data["residual_histogram"]),
            sample=ScatterSample.from_dict(data["sample"]),
        )


@dataclass(frozen=True)
class Evaluation:
    """Metrics and plot data for one set of predictions.

    ``metrics`` holds every metric that applies to ``subtype`` (NaN where undefined, with
    the reason in ``notes``). ``threshold`` is the binary decision threshold used for hard
    labels (``None`` for other tasks). Exactly one of ``classification`` / ``regression``
    is set.
    """

    subtype: str
    n_rows: int
    metrics: dict[str, float]
    threshold: float | None = None
    classification: ClassificationDetail | None = None
    regression: RegressionDetail | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON data (NaN and infinities become ``None``)."""
        return dict(json_safe(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """The inverse of :meth:`to_dict`."""
        cls_data, reg_data = data.get("classification"), data.get("regression")
        return cls(
            subtype=data["subtype"],
            n_rows=int(data["n_rows"]),
            metrics={k: nan_if_none(v) for k, v in data["metrics"].items()},
            threshold=data.get("threshold"),
            classification=None if cls_data is None else ClassificationDetail.from_dict(cls_data),
            regression=None if reg_data is None else RegressionDetail.from_dict(reg_data),
            notes=tuple(data.get("notes", ())),
        )


def evaluate(
    y: np.ndarray,
    pred: np.ndarray,
    task: TaskInfo,
    *,
    threshold: float = 0.5,
    sample_limit: int = 200,
    calibration_strategy: Strategy = "quantile",
    scatter_limit: int = 2000,
) -> Evaluation:
    """Score ``pred`` against ``y`` for ``task``.

    ``y`` holds encoded targets (class indices ``0..k-1`` in ``task.classes`` order, or
    float values); ``pred`` is ``(n, k)`` probabilities or ``(n,)`` values. Curves are
    downsampled to at most ``sample_limit`` points; regression keeps a deterministic
    sample of at most ``scatter_limit`` ``(y, pred)`` pairs.

    Raises :class:`DataError` for empty input, mismatched shapes, NaN or infinite
    predictions, probabilities outside [0, 1] and labels that are not class indices. A
    class absent from ``y`` is not an error: averages cover the classes present and a
    note says so.
    """
    y_arr, pred_arr = _check_inputs(y, pred, task)
    notes: list[str] = []
    if task.is_classification:
        return _evaluate_classification(
            y_arr, pred_arr, task, threshold, sample_limit, calibration_strategy, notes
        )
    return _evaluate_regression(y_arr, pred_arr, scatter_limit, notes)


def _check_inputs(y: np.ndarray, pred: np.ndarray, task: TaskInfo) -> tuple[np.ndarray, np.ndarray]:
    y_arr, pred_arr = np.asarray(y), np.asarray(pred)
    n = len(y_arr)
    if y_arr.ndim != 1:
        raise DataError(f"targets must be 1-D, got shape {y_arr.shape}")
    if n == 0:
        raise DataError("cannot evaluate on an empty set (0 rows)")
    if len(pred_arr) != n:
        raise DataError(f"{len(pred_arr)} predictions for {n} targets")
    try:
        pred_arr = pred_arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError("predictions are not numeric") from exc
    bad = ~np.isfinite(pred_arr)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(n, -1).any(axis=1))
        raise DataError(
            f"predictions contain NaN or infinite values in {len(rows)} of {n} rows "
            f"(first rows: {', '.join(map(str, rows[:5].tolist()))})",
            hint="the model produced invalid output; check the features of those rows",
        )
    if not task.is_classification:
        if pred_arr.ndim != 1:
            raise DataError(f"regression predictions must be 1-D, got shape {pred_arr.shape}")
        try:
            y_float = y_arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError("regression targets are not numeric") from exc
        if not np.isfinite(y_float).all():
            raise DataError(f"targets contain {int((~np.isfinite(y_float)).sum())} missing values")
        return y_float, pred_arr

    k = task.n_classes
    if pred_arr.ndim != 2 or pred_arr.shape[1] != k:
        raise DataError(
            f"classification predictions must be ({n}, {k}) class probabilities, got shape {pred_arr.shape}"
        )
    if pred_arr.min() < -_PROBA_TOLERANCE or pred_arr.max() > 1 + _PROBA_TOLERANCE:
        raise DataError(
            f"predicted probabilities must lie in [0, 1], found [{pred_arr.min():.4g}, {pred_arr.max():.4g}]"
        )
    is_index = (
        np.issubdtype(y_arr.dtype, np.integer)
        or y_arr.dtype == np.bool_
        or (np.issubdtype(y_arr.dtype, np.floating) and bool(np.all(np.mod(y_arr, 1) == 0)))
    )
    if not is_index or y_arr.min() < 0 or y_arr.max() >= k:
        raise DataError(
            f"classification targets must be class indices 0..{k - 1} (encode them with "
            "forgeml.tasks.encode_target; missing targets cannot be scored)"
        )
    return y_arr.astype(np.int64), np.clip(pred_arr, 0.0, 1.0)


def _scored(
    y: np.ndarray, pred: np.ndarray, subtype: str, threshold: float, notes: list[str]
) -> dict[str, float]:
    """Every metric for ``subtype``; one that raises is NaN and one that warns keeps its
    value; either way the reason goes to ``notes`` instead of stopping the run."""
    out: dict[str, float] = {}
    for name, metric in METRICS.items():
        if subtype not in metric.subtypes:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = score(name, y, pred, subtype, threshold)
            except ValueError as exc:
                value = float("nan")
                notes.append(f"{name} is undefined on this set: {exc}")
        for w in caught:
            notes.append(f"{name}: {w.message}")
        out[name] = value
    return out


def _mean_auc(curves: list[Curve]) -> float:
    """Macro average over the classes that have a curve (NaN when none has)."""
    return float(np.mean([c.auc for c in curves])) if curves else float("nan")


def _label(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _evaluate_classification(
    y: np.ndarray,
    pred: np.ndarray,
    task: TaskInfo,
    threshold: float,
    sample_limit: int,
    calibration_strategy: Strategy,
    notes: list[str],
) -> Evaluation:
    subtype, labels = task.subtype, task.classes
    present = np.unique(y)
    absent = [labels[i] for i in sorted(set(range(task.n_classes)) - set(present.tolist()))]
    row_sums = pred.sum(axis=1)
    if np.abs(row_sums - 1).max() > 1e-3:
        notes.append("predicted probabilities do not sum to 1 in every row")

    roc = roc_curves(y, pred, labels=labels, sample_limit=sample_limit)
    pr = pr_curves(y, pred, labels=labels, sample_limit=sample_limit)
    if absent:
        # sklearn warns (or fails) on absent classes; the notes carry one clear sentence.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics = _scored(y, pred, subtype, threshold, [])
        names = ", ".join(_label(a) for a in absent)
        if subtype == "binary":
            metrics["roc_auc"] = metrics["pr_auc"] = float("nan")
            notes.append(
                f"only one class is present in the test set (no {names}): roc_auc and "
                "pr_auc are undefined and per-class values for the absent class are NaN"
            )
        else:
            metrics["roc_auc"] = _mean_auc(roc)
            metrics["pr_auc"] = _mean_auc(pr)
            notes.append(
                f"class(es) {names} absent from the test set: roc_auc, pr_auc and "
                f"balanced_accuracy average over the {len(present)} present classes; their "
                "per-class recall is NaN"
            )
    else:
        metrics = _scored(y, pred, subtype, threshold, notes)

    yhat = hard_labels(pred, subtype, threshold)
    cm = confusion(y, yhat, labels=labels)
    if subtype == "binary":
        calibration = calibration_bins(
            y, pred[:, 1], strategy=calibration_strategy, what="positive"
        )
    else:
        calibration = calibration_bins(
            yhat == y, pred.max(axis=1), strategy=calibration_strategy, what="top_label"
        )
    if np.ptp(pred, axis=0).max() == 0:
        notes.append("all predictions are identical: the model does not rank rows")
    detail = ClassificationDetail(
        confusion=cm,
        per_class=tuple(per_class(cm)),
        roc=tuple(roc),
        pr=tuple(pr),
        calibration=calibration,
    )
    return Evaluation(
        subtype=subtype,
        n_rows=len(y),
        metrics=metrics,
        threshold=float(threshold) if subtype == "binary" else None,
        classification=detail,
        notes=tuple(notes),
    )


def _evaluate_regression(
    y: np.ndarray, pred: np.ndarray, scatter_limit: int, notes: list[str]
) -> Evaluation:
    metrics = _scored(y, pred, "regression", 0.5, notes)
    if np.ptp(pred) == 0:
        notes.append("all predictions are identical")
    if not np.isfinite(metrics["mape"]):
        notes.append("mape is undefined: every target is 0")
    elif (y == 0).any():
        notes.append(f"mape leaves out the {int((y == 0).sum())} rows whose target is 0")
    residuals = y - pred
    detail = RegressionDetail(
        residual_quantiles=residual_quantiles(residuals),
        residual_histogram=histogram(residuals),
        sample=scatter_sample(y, pred, limit=scatter_limit),
    )
    return Evaluation(
        subtype="regression", n_rows=len(y), metrics=metrics, regression=detail, notes=tuple(notes)
    )
