"""Numeric (and boolean) columns: clip, impute, missing indicator, scale.

Fitted on training rows, in this order: quantile clipping bounds (``clip_quantiles``), the
imputation value of the clipped column (median, mean or zero), then the scaling of the
clipped, imputed column (standard or min-max), so training outputs have exactly mean 0 /
std 1 (or range 0..1). A constant column gets scale 1 instead of dividing by zero. A
``name__missing`` 0/1 column is added when ``missing_indicator`` is on and the column had
nulls (or NaN/inf) in training. Booleans become 0/1, imputed but neither clipped nor scaled.

>>> from forgeml.config.spec import NumericSpec
>>> x = pl.Series("age", [20.0, None, 40.0, 60.0])
>>> block = NumericBlock.fit("age", x, NumericSpec(clip_quantiles=None))
>>> block.names(), block.fill, round(block.scale, 4)
(['age', 'age__missing'], 40.0, 14.1421)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import polars as pl

from forgeml.config.spec import NumericSpec
from forgeml.features._json import Fields, finite
from forgeml.features.base import F32_MAX, RowWriter, Sink, part

__all__ = ["NumericBlock", "impute_value"]

Impute = Literal["median", "mean", "zero"]


def impute_value(values: pl.Series, strategy: Impute) -> float:
    """The fill value for nulls of ``values`` (0.0 for an all-null column).

    >>> impute_value(pl.Series([1.0, None, 5.0, 6.0]), "median")
    5.0
    """
    if strategy == "zero":
        return 0.0
    stat = values.median() if strategy == "median" else values.mean()
    return finite(stat) if isinstance(stat, int | float) else 0.0


def _as_float(value: Any) -> float:
    return finite(value) if isinstance(value, int | float) else 0.0


@dataclass(frozen=True)
class NumericBlock:
    """Fitted clip bounds, fill value, scaling and missing indicator of one column."""

    kind: ClassVar[str] = "numeric"
    column: str
    clip: tuple[float, float] | None
    fill: float
    center: float
    scale: float
    indicator: bool
    impute: str = "median"
    scaling: str = "standard"

    @classmethod
    def fit(
        cls, column: str, values: pl.Series, spec: NumericSpec, *, boolean: bool = False
    ) -> NumericBlock:
        """Fit on the canonical (Float64, nulls for missing) training values."""
        clip: tuple[float, float] | None = None
        x = values
        if spec.clip_quantiles is not None and not boolean and x.null_count() < len(x):
            lo = _as_float(x.quantile(spec.clip_quantiles[0], "linear"))
            hi = _as_float(x.quantile(spec.clip_quantiles[1], "linear"))
            clip = (lo, max(lo, hi))
            x = x.clip(*clip)
        fill = impute_value(x, spec.impute)
        scaling = "none" if boolean else spec.scale
        filled = x.fill_null(fill)
        center, scale = 0.0, 1.0
        if scaling == "standard" and len(filled):
            center, scale = _as_float(filled.mean()), _as_float(filled.std(ddof=0))
        elif scaling == "minmax" and len(filled):
            center = _as_float(filled.min())
            scale = _as_float(filled.max()) - center
        if not scale > 0.0 or scale == float("inf"):
            scale = 1.0
        return cls(
            column=column,
            clip=clip,
            fill=fill,
            center=center,
            scale=scale,
            indicator=spec.missing_indicator and values.null_count() > 0,
            impute=spec.impute,
            scaling=scaling,
        )

    def names(self) -> list[str]:
        return [self.column] + ([f"{self.column}__missing"] if self.indicator else [])

    def parts(self, source: pl.Expr, key: str) -> list[pl.Expr]:
        x = source if self.clip is None else source.clip(*self.clip)
        # Times the reciprocal, not "/ scale": Polars divides a one-row column exactly but
        # multiplies a longer one by the reciprocal, which could round differently; an
        # explicit product keeps every row's output independent of its batch.
        value = ((x.fill_null(self.fill) - self.center) * (1.0 / self.scale)).clip(
            -F32_MAX, F32_MAX
        )
        exprs = [value.cast(pl.Float32).alias(part(key, 0))]
        if self.indicator:
            exprs.append(source.is_null().cast(pl.Float32).alias(part(key, 1)))
        return exprs

    def write(self, parts: pl.DataFrame, key: str, sink: Sink, start: int) -> None:
        for i in range(len(self.names())):
            sink.column(start + i, parts.get_column(part(key, i)).to_numpy())

    def row_writer(self, start: int) -> RowWriter:
        lo, hi = self.clip if self.clip is not None else (-math.inf, math.inf)
        center, inverse = self.center, 1.0 / self.scale  # the arithmetic of parts()
        imputed = min(max((self.fill - center) * inverse, -F32_MAX), F32_MAX)
        flag = start + 1 if self.indicator else -1

        def write(x: float | None, row: list[float]) -> None:
            if x is None:
                row[start] = imputed
                if flag >= 0:
                    row[flag] = 1.0
                return
            x = lo if x < lo else (hi if x > hi else x)
            value = (x - center) * inverse
            row[start] = -F32_MAX if value < -F32_MAX else (F32_MAX if value > F32_MAX else value)

        return write

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "column": self.column,
            "clip": None if self.clip is None else list(self.clip),
            "fill": self.fill,
            "center": self.center,
            "scale": self.scale,
            "indicator": self.indicator,
            "impute": self.impute,
            "scaling": self.scaling,
        }

    @classmethod
    def from_dict(cls, fields: Fields) -> NumericBlock:
        clip = None
        if fields.raw("clip") is not None:
            bounds = fields.array("clip")
            if bounds.shape != (2,) or bounds[0] > bounds[1]:
                raise fields.fail("clip", "expected [low, high] with low <= high")
            clip = (float(bounds[0]), float(bounds[1]))
        scale = fields.number("scale")
        if scale <= 0.0:
            raise fields.fail("scale", "must be > 0")
        return cls(
            column=fields.string("column"),
            clip=clip,
            fill=fields.number("fill"),
            center=fields.number("center"),
            scale=scale,
            indicator=fields.boolean("indicator"),
            impute=fields.string("impute"),
            scaling=fields.string("scaling"),
        )

    def describe(self) -> dict[str, Any]:
        encoders = ["clip"] if self.clip is not None else []
        encoders.append(f"impute:{self.impute}")
        if self.scaling != "none":
            encoders.append(f"scale:{self.scaling}")
        if self.indicator:
            encoders.append("missing_indicator")
        return {"kind": self.kind, "encoders": encoders, "n_outputs": len(self.names())}
