"""The confusion matrix and per-class precision, recall, F1 and support.

Rows are the true class, columns the predicted class, both in ``TaskInfo.classes`` order.
A per-class value that is undefined (recall of a class absent from the test set,
precision of a class never predicted) is NaN, not a misleading zero.

>>> import numpy as np
>>> cm = confusion(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), labels=("a", "b", "c"))
>>> cm.counts
((1, 0, 0), (0, 1, 1), (0, 0, 1))
>>> [round(r.recall, 2) for r in per_class(cm)]
[1.0, 0.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from forgeml.evaluation._json import json_safe, nan_if_none

__all__ = ["ClassReport", "ConfusionMatrix", "confusion", "per_class"]


@dataclass(frozen=True)
class ConfusionMatrix:
    """``counts[i][j]``: rows of true class ``labels[i]`` predicted as ``labels[j]``."""

    labels: tuple[Any, ...]
    counts: tuple[tuple[int, ...], ...]

    def as_array(self) -> np.ndarray:
        return np.array(self.counts, dtype=np.int64).reshape(len(self.labels), len(self.labels))

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfusionMatrix:
        return cls(labels=tuple(data["labels"]), counts=tuple(tuple(row) for row in data["counts"]))


@dataclass(frozen=True)
class ClassReport:
    """Precision, recall and F1 of one class against the rest; ``support`` true rows."""

    label: Any
    precision: float
    recall: float
    f1: float
    support: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassReport:
        return cls(
            label=data["label"],
            precision=nan_if_none(data["precision"]),
            recall=nan_if_none(data["recall"]),
            f1=nan_if_none(data["f1"]),
            support=int(data["support"]),
        )


def confusion(y: np.ndarray, yhat: np.ndarray, *, labels: Sequence[Any]) -> ConfusionMatrix:
    """Count (true, predicted) pairs of class indices ``0..k-1`` (vectorised bincount)."""
    k = len(labels)
    flat = np.bincount(np.asarray(y) * k + np.asarray(yhat), minlength=k * k)
    counts = flat.reshape(k, k)
    return ConfusionMatrix(
        labels=tuple(labels), counts=tuple(tuple(int(c) for c in row) for row in counts)
    )


def per_class(cm: ConfusionMatrix) -> list[ClassReport]:
    """One :class:`ClassReport` per class, read off the confusion matrix."""
    counts = cm.as_array().astype(np.float64)
    tp = np.diag(counts)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    return [
        ClassReport(
            label=label,
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=int(support[i]),
        )
        for i, label in enumerate(cm.labels)
    ]
