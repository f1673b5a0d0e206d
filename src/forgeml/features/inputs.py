"""Bring an input frame to the column types the feature transforms were fitted on.

Each column type has one canonical Polars dtype (:data:`CANONICAL`). At prediction time a
column can arrive as another dtype (numbers as strings from a JSON request, a pandas
``object`` column, a time-zone-aware timestamp); it is cast with ``strict=False`` so values
that cannot be read become null and are then imputed like any missing value. A column that
is absent, or has a dtype that cannot be cast at all (a list, a struct), is treated as
all-null and reported as missing. Non-finite numbers (NaN, +-inf) count as missing too.

>>> frame = pl.DataFrame({"age": ["41", "x", None], "plan": [1, 2, None]})
>>> exprs, missing = canonical_columns(frame.schema, {"age": "int", "plan": "string", "t": "datetime"})
>>> out = frame.select(exprs)
>>> out["age"].to_list(), out["plan"].to_list(), missing
([41.0, None, None], ['1', '2', None], ['t'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from forgeml.config.spec import ColumnType
from forgeml.data import frame as data_frame
from forgeml.errors import DataError, DataSourceError

__all__ = ["BOOL_WORDS", "CANONICAL", "canonical_columns", "to_polars"]

DATETIME = pl.Datetime("us")
CANONICAL: dict[ColumnType, pl.DataType] = {
    "int": pl.Float64(),
    "float": pl.Float64(),
    "bool": pl.Float64(),
    "string": pl.String(),
    "categorical": pl.String(),
    "text": pl.String(),
    "datetime": DATETIME,
}
_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
BOOL_WORDS = {"true": 1.0, "false": 0.0, "t": 1.0, "f": 0.0, "yes": 1.0, "no": 0.0}
BOOL_WORDS |= {"1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}


def _is_texty(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.String | pl.Categorical | pl.Enum)


def _numeric(col: pl.Expr, dtype: pl.DataType, ctype: ColumnType) -> pl.Expr | None:
    if dtype.is_numeric() or isinstance(dtype, pl.Boolean | pl.Null):
        x = col.cast(pl.Float64)
    elif _is_texty(dtype):
        words = col.cast(pl.String).str.strip_chars()
        if ctype == "bool":
            x = words.str.to_lowercase().replace_strict(
                BOOL_WORDS, default=None, return_dtype=pl.Float64
            )
        else:
            x = words.cast(pl.Float64, strict=False)
    else:
        return None
    return pl.when(x.is_finite()).then(x)


def _string(col: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    if (
        _is_texty(dtype)
        or dtype.is_numeric()
        or dtype.is_temporal()
        or isinstance(dtype, pl.Boolean | pl.Null)
    ):
        return col.cast(pl.String)
    return None


def _parse_iso(text: pl.Expr) -> pl.Expr:
    # Fixed ISO-8601 formats, not Polars' inference (which reads the format off the first
    # value): a row's result must not depend on the other rows of its batch.
    text = text.str.strip_chars()
    parsed = pl.coalesce(
        text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
        for fmt in _ISO_FORMATS
    )
    return parsed.dt.replace_time_zone(None)


def _datetime(col: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            # One clock for training and serving, whatever zone a request uses: UTC.
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return col.cast(DATETIME)
    if isinstance(dtype, pl.Date | pl.Null):
        return col.cast(DATETIME)
    if _is_texty(dtype):
        # Timestamps as strings (every JSON request): parse each distinct string once.
        # Both sides of the mapping see the same ordered distinct values.
        text = col.cast(pl.String)
        distinct = text.drop_nulls().unique(maintain_order=True)
        return text.replace_strict(
            distinct, _parse_iso(distinct), default=None, return_dtype=DATETIME
        )
    return None


def canonical_columns(
    schema: Mapping[str, pl.DataType], columns: dict[str, ColumnType]
) -> tuple[list[pl.Expr], list[str]]:
    """Expressions giving each of ``columns`` its canonical dtype, and the columns missing.

    They depend on the input's ``schema`` only, not on its values, so a caller may keep
    them for every frame of that schema. A missing (or uncastable) column becomes an
    all-null column of the right dtype and length, so every transform downstream sees the
    same schema.
    """
    exprs: list[pl.Expr] = []
    missing: list[str] = []
    for name, ctype in columns.items():
        expr: pl.Expr | None = None
        dtype = schema.get(name)
        if dtype is not None:
            col = pl.col(name)
            if ctype in ("int", "float", "bool"):
                expr = _numeric(col, dtype, ctype)
            elif ctype == "datetime":
                expr = _datetime(col, dtype)
            else:
                expr = _string(col, dtype)
        if expr is None:
            missing.append(name)
            expr = pl.repeat(None, pl.len(), dtype=CANONICAL[ctype])
        exprs.append(expr.alias(name))
    return exprs, missing


def _pandas_by_column(frame: Any) -> pl.DataFrame:
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"input frame has duplicate column names: {', '.join(dupes)}")
    return pl.DataFrame([_pandas_column(frame.iloc[:, i], n) for i, n in enumerate(names)])


def _pandas_column(col: Any, name: str) -> pl.Series:
    try:
        return pl.from_pandas(col, nan_to_null=True).alias(name)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        # An object column mixing numbers and strings (a JSON request): read it as
        # strings; the canonical casts then sort the values out.
        return pl.from_pandas(col.astype("string"), nan_to_null=True).alias(name)


def to_polars(frame: Any) -> pl.DataFrame:
    """A Polars frame from anything :func:`forgeml.data.frame.to_polars` accepts, plus
    pandas frames with mixed-type ``object`` columns (converted column by column).

    >>> import pandas as pd
    >>> to_polars(pd.DataFrame({"a": [1, "2", None]}, dtype=object)).to_dict(as_series=False)
    {'a': ['1', '2', None]}
    """
    if isinstance(frame, pl.DataFrame):
        return frame
    try:
        return data_frame.to_polars(frame)
    except DataSourceError:
        if not type(frame).__module__.startswith("pandas"):
            raise
    return _pandas_by_column(frame)
