"""Calibration (reliability) bins: mean predicted probability against the observed rate.

For a binary task the probability is the positive-class column and the outcome is "the
row is positive"; for a multiclass task it is the top-label confidence and the outcome
is "the top label is right". Quantile bins (the default) hold about the same number of
rows each, so no bin rests on a handful of rows; tied scores never straddle a bin edge.

>>> import numpy as np
>>> p = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
>>> cal = calibration_bins(np.array([0, 0, 1, 0, 1, 1, 0, 1]), p, n_bins=4)
>>> [b.count for b in cal.bins], [b.observed_rate for b in cal.bins]
([2, 2, 2, 2], [0.0, 0.5, 1.0, 0.5])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from forgeml.errors import UsageError
from forgeml.evaluation._json import json_safe

__all__ = ["Calibration", "CalibrationBin", "calibration_bins"]

Strategy = Literal["quantile", "uniform"]


@dataclass(frozen=True)
class CalibrationBin:
    """Rows whose probability lies in ``[lower, upper]`` (upper open except the last)."""

    lower: float
    upper: float
    mean_predicted: float
    observed_rate: float
    count: int


@dataclass(frozen=True)
class Calibration:
    """Non-empty bins in increasing probability; ``what`` says which probability is binned
    (``positive`` class or ``top_label`` confidence)."""

    what: Literal["positive", "top_label"]
    strategy: Strategy
    bins: tuple[CalibrationBin, ...]

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            what=data["what"],
            strategy=data["strategy"],
            bins=tuple(CalibrationBin(**b) for b in data["bins"]),
        )


def calibration_bins(
    outcome: np.ndarray,
    prob: np.ndarray,
    *,
    n_bins: int = 10,
    strategy: Strategy = "quantile",
    what: Literal["positive", "top_label"] = "positive",
) -> Calibration:
    """Bin ``prob`` (in [0, 1]) and compare each bin's mean with the rate of ``outcome``.

    Empty bins are dropped, so the counts always sum to ``len(prob)``; with constant
    predictions there is one bin.
    """
    if n_bins < 1:
        raise UsageError(f"n_bins must be at least 1, got {n_bins}")
    prob = np.asarray(prob, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    if strategy == "quantile":
        edges = np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise UsageError(f"unknown calibration strategy {strategy!r} (use 'quantile' or 'uniform')")
    edges = np.unique(edges)
    # Inner edges only: rows equal to an edge go to the upper bin, the maximum to the last.
    which = np.searchsorted(edges[1:-1], prob, side="right")
    n_edges = max(len(edges) - 1, 1)
    counts = np.bincount(which, minlength=n_edges)
    sum_prob = np.bincount(which, weights=prob, minlength=n_edges)
    sum_outcome = np.bincount(which, weights=outcome, minlength=n_edges)
    lower = edges[:-1] if len(edges) > 1 else edges
    upper = edges[1:] if len(edges) > 1 else edges
    bins = tuple(
        CalibrationBin(
            lower=float(lower[i]),
            upper=float(upper[i]),
            mean_predicted=float(sum_prob[i] / counts[i]),
            observed_rate=float(sum_outcome[i] / counts[i]),
            count=int(counts[i]),
        )
        for i in range(n_edges)
        if counts[i] > 0
    )
    return Calibration(what=what, strategy=strategy, bins=bins)
