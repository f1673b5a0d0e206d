"""Regression residuals: quantiles, a histogram and a bounded sample for scatter plots.

A residual is ``y - pred`` (observed minus predicted): positive means the model
predicted too low.

>>> import numpy as np
>>> y = np.arange(10.0)
>>> residual_quantiles(y - (y + 1.0))["p50"]
-1.0
>>> sample = scatter_sample(y, y, limit=4)
>>> len(sample.y), sample.n_total
(4, 10)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from forgeml.evaluation._json import json_safe

__all__ = ["Histogram", "ScatterSample", "histogram", "residual_quantiles", "scatter_sample"]

QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}


@dataclass(frozen=True)
class Histogram:
    """``counts[i]`` values fall in ``[edges[i], edges[i + 1])`` (the last bin is closed)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        return cls(edges=tuple(map(float, data["edges"])), counts=tuple(map(int, data["counts"])))


@dataclass(frozen=True)
class ScatterSample:
    """A deterministic sample of ``(y, pred)`` pairs out of ``n_total`` rows."""

    y: tuple[float, ...]
    pred: tuple[float, ...]
    n_total: int

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScatterSample:
        return cls(
            y=tuple(map(float, data["y"])),
            pred=tuple(map(float, data["pred"])),
            n_total=int(data["n_total"]),
        )


def residual_quantiles(residuals: np.ndarray) -> dict[str, float]:
    """``min``, ``p01`` ... ``p99``, ``max``, ``mean`` and ``std`` of the residuals."""
    values = np.quantile(residuals, list(QUANTILES.values()))
    out = {"min": float(np.min(residuals))}
    out.update({name: float(v) for name, v in zip(QUANTILES, values, strict=True)})
    out.update(
        max=float(np.max(residuals)), mean=float(np.mean(residuals)), std=float(np.std(residuals))
    )
    return out


def histogram(values: np.ndarray, *, max_bins: int = 40) -> Histogram:
    """Equal-width bins: about ``sqrt(n)`` of them, between 10 and ``max_bins``."""
    n_bins = int(np.clip(np.sqrt(len(values)), 10, max_bins))
    counts, edges = np.histogram(values, bins=n_bins)
    return Histogram(edges=tuple(edges.tolist()), counts=tuple(int(c) for c in counts))


def scatter_sample(
    y: np.ndarray, pred: np.ndarray, *, limit: int = 2000, seed: int = 0
) -> ScatterSample:
    """All rows when there are at most ``limit``; else the 1% of ``limit`` rows with the
    largest absolute residuals (outliers stay visible) plus a seeded uniform sample of
    the rest, in their original row order."""
    n = len(y)
    if n <= limit:
        keep = np.arange(n)
    else:
        n_extreme = max(limit // 100, 1)
        extreme = np.argsort(-np.abs(y - pred), kind="stable")[:n_extreme]
        rest = np.setdiff1d(np.arange(n), extreme, assume_unique=True)
        rng = np.random.default_rng(seed)
        keep = np.sort(
            np.concatenate([extreme, rng.choice(rest, size=limit - n_extreme, replace=False)])
        )
    return ScatterSample(y=tuple(y[keep].tolist()), pred=tuple(pred[keep].tolist()), n_total=n)
