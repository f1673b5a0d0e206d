"""Datetime columns: calendar and clock parts as numbers.

Parts (``spec.datetime.parts``): ``year``, ``month`` (1-12), ``day`` (1-31), ``dayofweek``
(0 = Monday .. 6 = Sunday, as in pandas), ``dayofyear`` (1-366), ``hour``, ``minute``,
``is_weekend`` (0/1) and ``epoch`` (days since 1970-01-01 as a float). Times are read as
naive wall-clock times; zone-aware inputs are converted to UTC first.

Missing timestamps are imputed like numerics: each part gets the ``numeric.impute``
statistic of its training values, and one ``name__missing`` column is added when
``numeric.missing_indicator`` is on and the column had nulls in training. Parts are then
scaled like numerics (``numeric.scale``): tree models do not care, but a linear model fed
``dayofyear`` in 1..366 next to standardised columns converges orders of magnitude slower.

>>> import datetime as dt
>>> from forgeml.config.spec import NumericSpec
>>> x = pl.Series("t", [dt.datetime(2024, 3, 2, 10), None], dtype=pl.Datetime("us"))
>>> block = DatetimeBlock.fit("t", x, ["dayofweek", "is_weekend"], NumericSpec())
>>> block.names()
['t__dayofweek', 't__is_weekend', 't__missing']
>>> pl.DataFrame({"t": x}).select(block.parts(pl.col("t"), "k")).rows()
[(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from forgeml.config.spec import DatetimePart, NumericSpec
from forgeml.features._json import Fields
from forgeml.features.base import RowWriter, Sink, part
from forgeml.features.numeric import Impute, _as_float, impute_value
from forgeml.features.timestamps import calendar

__all__ = ["PARTS", "ROW_PARTS", "DatetimeBlock"]

_US_PER_DAY = 86_400_000_000.0
# Scaling multiplies by reciprocals, never divides by a literal: Polars divides a one-row
# column exactly but multiplies longer ones by the reciprocal, so a division would make a
# row's output depend on its batch (see NumericBlock.parts).
_DAYS_PER_US = 1.0 / _US_PER_DAY

PARTS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "year": lambda t: t.dt.year(),
    "month": lambda t: t.dt.month(),
    "day": lambda t: t.dt.day(),
    "dayofweek": lambda t: t.dt.weekday() - 1,
    "dayofyear": lambda t: t.dt.ordinal_day(),
    "hour": lambda t: t.dt.hour(),
    "minute": lambda t: t.dt.minute(),
    "is_weekend": lambda t: t.dt.weekday() >= 6,
    "epoch": lambda t: t.dt.epoch("us") * _DAYS_PER_US,
}


# The same parts of one timestamp (integer microseconds) and its calendar fields, in plain
# Python for the record path: ``(micros, (year, month, day, iso_weekday, ordinal, hour,
# minute)) -> float``.
ROW_PARTS: dict[str, Callable[[int, tuple[int, ...]], float]] = {
    "year": lambda us, c: float(c[0]),
    "month": lambda us, c: float(c[1]),
    "day": lambda us, c: float(c[2]),
    "dayofweek": lambda us, c: float(c[3] - 1),
    "dayofyear": lambda us, c: float(c[4]),
    "hour": lambda us, c: float(c[5]),
    "minute": lambda us, c: float(c[6]),
    "is_weekend": lambda us, c: 1.0 if c[3] >= 6 else 0.0,
    "epoch": lambda us, c: us * _DAYS_PER_US,
}


def _scaling(values: pl.Series, how: str) -> tuple[float, float]:
    """``(center, scale)`` as the numeric block fits them; scale 1 for constant parts."""
    center, scale = 0.0, 1.0
    if values.len() and how == "standard":
        center, scale = _as_float(values.mean()), _as_float(values.std(ddof=0))
    elif values.len() and how == "minmax":
        center = _as_float(values.min())
        scale = _as_float(values.max()) - center
    if not scale > 0.0 or scale == float("inf"):
        scale = 1.0
    return center, scale


def _part(source: pl.Expr, name: str) -> pl.Expr:
    return PARTS[name](source).cast(pl.Float64)


@dataclass(frozen=True)
class DatetimeBlock:
    """Fitted parts, per-part fill values and missing indicator of one datetime column."""

    kind: ClassVar[str] = "datetime"
    column: str
    part_names: tuple[str, ...]
    fills: tuple[float, ...]
    indicator: bool
    impute: str = "median"
    centers: tuple[float, ...] = ()
    scales: tuple[float, ...] = ()

    @classmethod
    def fit(
        cls, column: str, values: pl.Series, parts: list[DatetimePart], spec: NumericSpec
    ) -> DatetimeBlock:
        """Fit on the canonical (naive ``Datetime("us")``) training values."""
        names = tuple(dict.fromkeys(parts))  # a part listed twice is computed once
        frame = pl.DataFrame({"t": values}).select(_part(pl.col("t"), p).alias(p) for p in names)
        strategy: Impute = spec.impute
        fills = tuple(impute_value(frame.get_column(p), strategy) for p in names)
        centers, scales = [], []
        for p, fill in zip(names, fills, strict=True):
            center, scale = _scaling(frame.get_column(p).fill_null(fill), spec.scale)
            centers.append(center)
            scales.append(scale)
        return cls(
            column=column,
            part_names=names,
            fills=fills,
            indicator=spec.missing_indicator and values.null_count() > 0,
            impute=spec.impute,
            centers=tuple(centers),
            scales=tuple(scales),
        )

    def _center_scale(self, i: int) -> tuple[float, float]:
        if not self.centers:
            return 0.0, 1.0
        return self.centers[i], self.scales[i]

    def names(self) -> list[str]:
        out = [f"{self.column}__{p}" for p in self.part_names]
        return out + ([f"{self.column}__missing"] if self.indicator else [])

    def parts(self, source: pl.Expr, key: str) -> list[pl.Expr]:
        exprs = []
        for i, (p, fill) in enumerate(zip(self.part_names, self.fills, strict=True)):
            center, scale = self._center_scale(i)
            value = (_part(source, p).fill_null(fill) - center) * (1.0 / scale)
            exprs.append(value.cast(pl.Float32).alias(part(key, i)))
        if self.indicator:
            missing = source.is_null().cast(pl.Float32)
            exprs.append(missing.alias(part(key, len(self.part_names))))
        return exprs

    def write(self, parts: pl.DataFrame, key: str, sink: Sink, start: int) -> None:
        for i in range(len(self.names())):
            sink.column(start + i, parts.get_column(part(key, i)).to_numpy())

    def row_writer(self, start: int) -> RowWriter:
        steps = []
        for i, (p, fill) in enumerate(zip(self.part_names, self.fills, strict=True)):
            center, scale = self._center_scale(i)
            inverse = 1.0 / scale
            steps.append((start + i, ROW_PARTS[p], center, inverse, (fill - center) * inverse))
        flag = start + len(self.part_names) if self.indicator else -1

        def write(micros: int | None, row: list[float]) -> None:
            if micros is None:
                for at, _, _, _, imputed in steps:
                    row[at] = imputed
                if flag >= 0:
                    row[flag] = 1.0
                return
            fields = calendar(micros)
            for at, get, center, inverse, _ in steps:
                row[at] = (get(micros, fields) - center) * inverse

        return write

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "column": self.column,
            "parts": list(self.part_names),
            "fills": list(self.fills),
            "indicator": self.indicator,
            "impute": self.impute,
            "centers": list(self.centers),
            "scales": list(self.scales),
        }

    @classmethod
    def from_dict(cls, fields: Fields) -> DatetimeBlock:
        names = fields.strings("parts")
        unknown = [p for p in names if p not in PARTS]
        if unknown:
            raise fields.fail("parts", f"unknown datetime part(s): {', '.join(unknown)}")
        fills = fields.array("fills")
        if len(fills) != len(names):
            raise fields.fail("fills", f"expected {len(names)} values, got {len(fills)}")
        centers, scales = fields.array("centers"), fields.array("scales")
        if len(centers) != len(names) or len(scales) != len(names):
            raise fields.fail("scales", f"expected {len(names)} centers and scales")
        if any(not float(v) > 0.0 for v in scales):
            raise fields.fail("scales", "scales must be positive")
        return cls(
            column=fields.string("column"),
            part_names=tuple(names),
            fills=tuple(float(v) for v in fills),
            indicator=fields.boolean("indicator"),
            impute=fields.string("impute"),
            centers=tuple(float(v) for v in centers),
            scales=tuple(float(v) for v in scales),
        )

    def describe(self) -> dict[str, Any]:
        encoders = [f"parts:{','.join(self.part_names)}", f"impute:{self.impute}"]
        if self.indicator:
            encoders.append("missing_indicator")
        return {"kind": self.kind, "encoders": encoders, "n_outputs": len(self.names())}
