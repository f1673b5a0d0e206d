"""Per-column summaries gathered while validating: type, null fraction, distinct count.

Distinct counts are estimated with a k-minimum-values sketch (exact below ``k`` distinct
values, within a few percent above), so memory stays fixed however long the input is.

>>> sketch = DistinctSketch()
>>> sketch.update(pl.Series(range(100))); sketch.update(pl.Series(range(50, 150)))
>>> sketch.estimate()
150
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["ColumnStats", "ColumnSummary", "DistinctSketch"]


@dataclass(frozen=True)
class ColumnSummary:
    """What the report says about one column."""

    type: str
    null_fraction: float
    n_unique: int


class DistinctSketch:
    """k-minimum-values estimate of the number of distinct non-null values."""

    def __init__(self, k: int = 4096) -> None:
        self.k = k
        self._mins = np.empty(0, dtype=np.uint64)

    def update(self, series: pl.Series) -> None:
        hashes = series.drop_nulls().hash(seed=0).unique().to_numpy()
        if len(hashes) > self.k:
            hashes = np.partition(hashes, self.k - 1)[: self.k]
        self._mins = np.unique(np.concatenate([self._mins, hashes]))[: self.k]

    def estimate(self) -> int:
        if len(self._mins) < self.k:
            return len(self._mins)
        kth = float(self._mins[-1]) / 2.0**64
        return round((self.k - 1) / kth)


class ColumnStats:
    """Running null count (of input values) and distinct sketch (of valid values)."""

    def __init__(self) -> None:
        self.nulls = 0
        self.sketch = DistinctSketch()

    def summary(self, kind: str, n_rows: int) -> ColumnSummary:
        fraction = self.nulls / n_rows if n_rows else 0.0
        return ColumnSummary(kind, round(fraction, 6), self.sketch.estimate())
