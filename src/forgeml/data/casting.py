"""Cast columns to their declared types, reporting each value that does not fit.

A cast never raises on data: a non-null input that cannot become the declared type
turns into null, and the returned ``failed`` frame marks it, so validation can quarantine
the row with a reason naming the column and the value.

Internal dtypes per :data:`ColumnType`: ``int`` Int64, ``float`` Float64, ``bool``
Boolean, ``datetime`` naive Datetime("us") (inputs with an offset or time zone are
converted to UTC first), ``string``/``categorical``/``text`` String, and ``id`` String
(identifiers are labels, whatever they arrived as).

>>> frame = pl.DataFrame({"age": ["31", "x", None, " 7 "], "ok": ["yes", "no", "maybe", None]})
>>> cast, failed = cast_to_schema(frame, {"age": ColumnSpec(type="int"), "ok": ColumnSpec(type="bool")})
>>> cast.rows()
[(31, True), (None, False), (None, None), (7, None)]
>>> failed.rows()
[(False, False), (True, False), (False, True), (False, False)]
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from forgeml.config.spec import ColumnSpec, ColumnType

__all__ = ["as_text", "cast_column", "cast_to_schema", "dtype_for"]

_BOOLS = {
    "true": True,
    "false": False,
    "t": True,
    "f": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "1": True,
    "0": False,
}
_DATETIME = pl.Datetime("us")
_DATETIME_PASSES = 3  # each pass infers one more format from the values still unparsed


def dtype_for(kind: ColumnType, source: pl.DataType) -> pl.DataType:
    """The internal dtype of a column of type ``kind`` that arrived as ``source``.

    >>> dtype_for("id", pl.Int32), dtype_for("id", pl.String), dtype_for("float", pl.String)
    (String, String, Float64)
    """
    # Identifiers are labels, not numbers: always text, so a CSV (read as text) and a
    # Parquet file (typed integers) give the same column.
    if kind == "int":
        return pl.Int64()
    if kind == "float":
        return pl.Float64()
    if kind == "bool":
        return pl.Boolean()
    if kind == "datetime":
        return _DATETIME
    return pl.String()


def cast_to_schema(
    frame: pl.DataFrame, columns: Mapping[str, ColumnSpec]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast every column that ``columns`` types; return ``(cast_frame, failed)``.

    ``cast_frame`` has the same columns in the same order (untyped columns unchanged);
    ``failed`` has one Boolean column per cast column, true where a non-null input
    could not be cast.

    >>> cast, failed = cast_to_schema(pl.DataFrame({"d": ["2024-05-01", "soon"]}), {"d": ColumnSpec(type="datetime")})
    >>> cast["d"].to_list(), failed["d"].to_list()
    ([datetime.datetime(2024, 5, 1, 0, 0), None], [False, True])
    """
    cast: list[pl.Series] = []
    failed: list[pl.Series] = []
    for name in frame.columns:
        spec = columns.get(name)
        series = frame[name]
        if spec is None or spec.type is None:
            cast.append(series)
            continue
        out = cast_column(series, spec.type, datetime_format=spec.datetime_format)
        cast.append(out)
        failed.append((series.is_not_null() & out.is_null()).alias(name))
    return pl.DataFrame(cast), pl.DataFrame(failed, schema=[s.name for s in failed] or None)


def cast_column(
    series: pl.Series, kind: ColumnType, *, datetime_format: str | None = None
) -> pl.Series:
    """``series`` as :func:`dtype_for` ``(kind)``; values that do not fit become null.

    >>> cast_column(pl.Series("x", [1.0, 2.5, None]), "int").to_list()
    [1, None, None]
    """
    target = dtype_for(kind, series.dtype)
    dtype = series.dtype
    if dtype == target and kind != "datetime":
        return series
    if kind == "datetime":
        return _to_datetime(series, datetime_format)
    if dtype == pl.Null:
        return series.cast(target)
    if target == pl.String:
        return as_text(series)
    if dtype == pl.String:
        return _parse(series.str.strip_chars(), target)
    if dtype.is_decimal():
        series = series.cast(pl.Float64)
        dtype = series.dtype
    if not (dtype.is_numeric() or dtype == pl.Boolean):
        return _parse(as_text(series).str.strip_chars(), target)
    if target == pl.Boolean:
        return (
            pl.select(pl.when(pl.lit(series) == 1).then(True).when(pl.lit(series) == 0).then(False))
            .to_series()
            .alias(series.name)
        )
    if target == pl.Int64 and dtype.is_float():
        whole = series.is_not_nan() & (series == series.floor())
        return pl.select(pl.when(pl.lit(whole)).then(pl.lit(series).cast(pl.Int64, strict=False)))[
            :, 0
        ].alias(series.name)
    return series.cast(target, strict=False)


def _parse(text: pl.Series, target: pl.DataType) -> pl.Series:
    if target == pl.Boolean:
        return text.str.to_lowercase().replace_strict(_BOOLS, default=None, return_dtype=pl.Boolean)
    return text.cast(target, strict=False)


def _to_datetime(series: pl.Series, fmt: str | None) -> pl.Series:
    dtype = series.dtype
    if dtype == pl.Date:
        return series.cast(_DATETIME)
    if isinstance(dtype, pl.Datetime):
        return _naive_utc(series)
    if dtype == pl.Null:
        return series.cast(_DATETIME)
    text = (series if dtype == pl.String else as_text(series)).str.strip_chars()
    if fmt is not None:
        return _naive_utc(text.str.to_datetime(fmt, strict=False))
    result = pl.Series(series.name, [None] * len(text), dtype=_DATETIME)
    for _ in range(_DATETIME_PASSES):
        todo = text.is_not_null() & result.is_null()
        if not todo.any():
            break
        try:
            parsed = _naive_utc(text.set(~todo, None).str.to_datetime(strict=False))
        except pl.exceptions.PolarsError:  # no format fits any remaining value
            break
        if parsed.null_count() == len(parsed):
            break
        result = result.zip_with(result.is_not_null(), parsed)
    return result


def _naive_utc(series: pl.Series) -> pl.Series:
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return series.cast(_DATETIME)


def as_text(series: pl.Series) -> pl.Series:
    """``series`` as strings, for messages and the quarantine file; nested values
    (lists, structs) become JSON.

    >>> as_text(pl.Series("x", [[1, 2], None])).to_list()
    ['[1,2]', None]
    """
    if series.dtype == pl.String:
        return series
    try:
        return series.cast(pl.String)
    except pl.exceptions.PolarsError:
        pass
    encoded = pl.DataFrame([series]).select(
        pl.when(pl.col(series.name).is_not_null())
        .then(pl.struct(pl.col(series.name).alias("v")).struct.json_encode())
        .str.slice(5)
        .str.head(-1)
    )
    return encoded.to_series().alias(series.name)
