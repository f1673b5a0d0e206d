"""ROC and precision-recall curves, one-vs-rest per class, downsampled for plots and JSON.

A :class:`Curve` is plain data: points ordered along the curve, the score threshold at
each point, its area and the positive rate (the no-skill level of a PR curve). Curves are
computed at full resolution (the area comes from that) and then downsampled to at most
``sample_limit`` points spread evenly along the curve's length, which keeps its corners.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1])
>>> (curve,) = roc_curves(y, np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]]), labels=("no", "yes"))
>>> curve.label, curve.auc, curve.x[0], curve.y[-1]
('yes', 0.75, 0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from forgeml.errors import UsageError
from forgeml.evaluation._json import json_safe, nan_if_none

__all__ = ["Curve", "downsample_curve", "pr_curves", "roc_curves"]

CurveKind = Literal["roc", "pr"]


@dataclass(frozen=True)
class Curve:
    """One ROC (x = false positive rate, y = true positive rate) or PR curve
    (x = recall, y = precision) for the class ``label`` against the rest.

    ``thresholds[i]`` is the score at or above which rows count as positive to reach
    point ``i``; ``None`` marks the end point no threshold reaches (nothing predicted
    positive). ``auc`` is the ROC area, or the average precision for PR curves.
    """

    kind: CurveKind
    label: Any
    x: tuple[float, ...]
    y: tuple[float, ...]
    thresholds: tuple[float | None, ...]
    auc: float
    prevalence: float

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        return cls(
            kind=data["kind"],
            label=data["label"],
            x=tuple(map(float, data["x"])),
            y=tuple(map(float, data["y"])),
            thresholds=tuple(None if t is None else float(t) for t in data["thresholds"]),
            auc=nan_if_none(data["auc"]),
            prevalence=float(data["prevalence"]),
        )


def downsample_curve(x: np.ndarray, y: np.ndarray, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` points spread evenly along the curve's length.

    The first and last points are always kept and the order is preserved, so a monotone
    curve stays monotone.

    >>> x = np.linspace(0, 1, 1001)
    >>> idx = downsample_curve(x, x**2, 11)
    >>> len(idx), int(idx[0]), int(idx[-1])
    (11, 0, 1000)
    """
    if limit < 2:
        raise UsageError(f"sample_limit must be at least 2, got {limit}")
    n = len(x)
    if n <= limit:
        return np.arange(n)
    steps = np.hypot(np.diff(x), np.diff(y))
    length = np.concatenate([[0.0], np.cumsum(steps)])
    if length[-1] <= 0:
        return np.array([0, n - 1])
    targets = np.linspace(0.0, length[-1], limit)
    idx = np.searchsorted(length, targets, side="left")
    idx = np.unique(np.clip(idx, 0, n - 1))
    idx[0], idx[-1] = 0, n - 1
    return np.asarray(idx)


def _one_vs_rest(
    y: np.ndarray, proba: np.ndarray, labels: Sequence[Any]
) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """(label, is_positive, score) per class; binary tasks have one curve, class index 1.

    Classes absent from ``y`` (or the only class present) have no curve: a ROC curve
    needs both positives and negatives.
    """
    columns = [1] if proba.shape[1] == 2 else list(range(proba.shape[1]))
    out = []
    for c in columns:
        positive = y == c
        if positive.any() and not positive.all():
            out.append((labels[c], positive, proba[:, c]))
    return out


def _finite(thresholds: np.ndarray) -> tuple[float | None, ...]:
    return tuple(float(t) if np.isfinite(t) else None for t in thresholds)


def roc_curves(
    y: np.ndarray, proba: np.ndarray, *, labels: Sequence[Any], sample_limit: int = 200
) -> list[Curve]:
    """ROC curves: one for a binary task (the positive class), else one per class
    present in ``y`` against the rest. ``y`` holds class indices, ``proba`` is ``(n, k)``.
    """
    from sklearn.metrics import auc, roc_curve

    curves = []
    for label, positive, scores in _one_vs_rest(y, proba, labels):
        fpr, tpr, thresholds = roc_curve(positive, scores)
        area = float(auc(fpr, tpr))
        keep = downsample_curve(fpr, tpr, sample_limit)
        curves.append(
            Curve(
                kind="roc",
                label=label,
                x=tuple(fpr[keep].tolist()),
                y=tuple(tpr[keep].tolist()),
                thresholds=_finite(thresholds[keep]),
                auc=area,
                prevalence=float(positive.mean()),
            )
        )
    return curves


def pr_curves(
    y: np.ndarray, proba: np.ndarray, *, labels: Sequence[Any], sample_limit: int = 200
) -> list[Curve]:
    """Precision-recall curves (recall increasing), with the average precision as area.

    >>> y = np.array([0, 1, 1, 0])
    >>> (curve,) = pr_curves(y, np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]]), labels=(0, 1))
    >>> curve.x, curve.thresholds, round(curve.auc, 3)
    ((0.0, 0.5, 0.5, 1.0, 1.0), (None, 0.7, 0.5, 0.4, 0.2), 0.833)
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    curves = []
    for label, positive, scores in _one_vs_rest(y, proba, labels):
        precision, recall, thresholds = precision_recall_curve(positive, scores)
        # sklearn orders by increasing threshold and appends (recall 0, precision 1)
        # without a threshold; reverse so recall increases along the curve.
        precision, recall = precision[::-1], recall[::-1]
        thresholds = np.concatenate([[np.inf], thresholds[::-1]])
        keep = downsample_curve(recall, precision, sample_limit)
        curves.append(
            Curve(
                kind="pr",
                label=label,
                x=tuple(recall[keep].tolist()),
                y=tuple(precision[keep].tolist()),
                thresholds=_finite(thresholds[keep]),
                auc=float(average_precision_score(positive, scores)),
                prevalence=float(positive.mean()),
            )
        )
    return curves
