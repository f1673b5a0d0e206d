"""Binary decision threshold tuning on out-of-fold positive-class scores.

Every distinct score is a candidate threshold (rows with ``score >= t`` are positive).
One sort plus cumulative sums give the confusion counts at every candidate at once, so
the search is O(n log n) with no per-row Python.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 0, 1, 1])
>>> best_threshold(y, np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9]), "f1")
0.25
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from forgeml.errors import ConfigError, DataError

__all__ = ["THRESHOLD_METRICS", "best_threshold", "threshold_scores"]

ThresholdMetric = Literal["f1", "balanced_accuracy"]
THRESHOLD_METRICS: tuple[str, ...] = ("f1", "balanced_accuracy")


def threshold_scores(
    y: np.ndarray, proba_pos: np.ndarray, metric: ThresholdMetric = "f1"
) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds, scores)``: the metric at every distinct score, thresholds decreasing.

    >>> t, s = threshold_scores(np.array([0, 1, 1]), np.array([0.2, 0.6, 0.9]))
    >>> t.tolist(), s.round(3).tolist()
    ([0.9, 0.6, 0.2], [0.667, 1.0, 0.8])
    """
    if metric not in THRESHOLD_METRICS:
        raise ConfigError(
            f"threshold metric '{metric}' is not supported (use one of: {', '.join(THRESHOLD_METRICS)})"
        )
    y = np.asarray(y)
    scores = np.asarray(proba_pos, dtype=np.float64)
    if y.ndim != 1 or scores.shape != y.shape:
        raise DataError(
            f"best_threshold needs 1-D labels and scores of the same length, got {y.shape} and {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise DataError(
            f"scores contain {int((~np.isfinite(scores)).sum())} NaN or infinite values"
        )
    positive = y == 1
    n_pos = int(positive.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DataError("threshold tuning needs both classes in y, found only one")

    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    tp = np.cumsum(positive[order])
    fp = np.arange(1, len(y) + 1) - tp
    # Rows tied on a score fall on the same side of any threshold: keep the last of each run.
    last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    thresholds, tp, fp = sorted_scores[last], tp[last], fp[last]
    if metric == "f1":
        values = 2 * tp / (2 * tp + fp + (n_pos - tp))
    else:
        values = 0.5 * (tp / n_pos + (n_neg - fp) / n_neg)
    return thresholds, values


def best_threshold(y: np.ndarray, proba_pos: np.ndarray, metric: ThresholdMetric = "f1") -> float:
    """The threshold that maximises ``metric`` (``f1`` of the positive class or
    ``balanced_accuracy``) on labels ``y`` (0/1) and positive-class scores ``proba_pos``.

    Among equally good thresholds the highest wins. The value returned lies midway
    between the winning score and the next lower one, so it splits the given rows exactly
    as the winning score does while leaving a margin for scores not seen yet.
    """
    thresholds, values = threshold_scores(y, proba_pos, metric)
    i = int(np.argmax(values))
    if i + 1 == len(thresholds):
        return float(thresholds[i])
    mid = 0.5 * (thresholds[i] + thresholds[i + 1])
    # Adjacent floats can have no midpoint strictly above the lower one.
    return float(mid) if mid > thresholds[i + 1] else float(thresholds[i])
