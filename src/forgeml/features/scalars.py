"""One raw value brought to its canonical type, exactly as :mod:`forgeml.features.inputs`
casts a whole column.

The record fast path reads JSON-like values one at a time. Each reader here gives what the
Polars path gives a one-row column holding that value with its natural dtype (``str`` ->
String, ``int`` -> Int64, ``float`` -> Float64, ``bool`` -> Boolean, ``datetime`` ->
Datetime, ``date`` -> Date, ``None`` -> Null):

* :func:`to_number` (int/float/bool columns): numbers and booleans as floats; strings
  stripped of whitespace and read with Polars' grammar (ASCII digits, optional sign,
  fraction and exponent: no ``1_000``, no non-ASCII digits), or for ``bool`` columns looked
  up among the boolean words; NaN, +-inf, unreadable strings, dates and any other type:
  None (missing, imputed later).
* :func:`to_text` (string/categorical/text columns): strings as they are; booleans as
  ``true``/``false``; integers in decimal; floats as Polars prints them (``NaN``, ``inf``,
  shortest round-trip digits, scientific below 1e-5 and from 1e16 with an unpadded
  exponent); datetimes as ``YYYY-MM-DD HH:MM:SS.ffffff`` (zone-aware ones with their
  offset), dates as ``YYYY-MM-DD``.
* :func:`to_timestamp` (datetime columns): microseconds since the epoch, UTC, from ISO
  strings (:func:`~forgeml.features.timestamps.parse_iso`) and ``datetime``/``date``
  objects; numbers and booleans are not timestamps: None.

>>> to_number(" 4.5e1 ", boolean=False), to_number("1_000", boolean=False), to_number("Yes", boolean=True)
(45.0, None, 1.0)
>>> to_text(2.5e-5), to_text(1e-7), to_text(True), to_text(float("nan"))
('0.000025', '1e-7', 'true', 'NaN')
>>> to_timestamp("1970-01-01T00:00:01Z"), to_timestamp(1.0)
(1000000, None)
"""

from __future__ import annotations

import datetime as dt
import math
import re
from numbers import Integral, Real
from typing import Any

from forgeml.features.inputs import BOOL_WORDS
from forgeml.features.timestamps import (
    US_PER_SECOND,
    WHITESPACE,
    calendar,
    datetime_micros,
    parse_iso,
)

__all__ = ["float_text", "to_number", "to_text", "to_timestamp"]

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def to_number(value: Any, *, boolean: bool) -> float | None:
    """The Float64 value of ``value`` in a numeric column (``boolean``: a bool column).

    >>> to_number(3, boolean=False), to_number("nan", boolean=False), to_number("No", boolean=True)
    (3.0, None, 0.0)
    """
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str:
        text = value.strip(WHITESPACE)
        if boolean:
            return BOOL_WORDS.get(text.lower())
        return _finite(float(text)) if _NUMBER.fullmatch(text) else None
    if kind is bool:
        return 1.0 if value else 0.0
    if kind is not int:
        if value is None or isinstance(value, dt.date):
            return None
        if isinstance(value, str):
            return to_number(str(value), boolean=boolean)
        if not isinstance(value, Integral | Real):  # a list, a dict, ...: no number
            return None
    try:  # an int (exactly rounded, as Polars casts), or a number from another library
        return _finite(float(value))
    except OverflowError:  # an int beyond float64: Polars cannot hold it either
        return None


def float_text(x: float) -> str:
    """``x`` as Polars casts a Float64 to String.

    >>> [float_text(v) for v in (1.0, 1e16, 1.5e-5, 2e-4, -float("inf"))]
    ['1.0', '1e+16', '0.000015', '0.0002', '-inf']
    """
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    text = repr(x)
    if "e" not in text:  # repr is positional for 1e-4 <= |x| < 1e16, as Polars
        return text
    mantissa, _, exponent = text.partition("e")
    power = int(exponent)
    if power == -5:  # Polars is positional from 1e-5, repr from 1e-4
        sign = "-" if mantissa.startswith("-") else ""
        return f"{sign}0.0000{mantissa.lstrip('-').replace('.', '')}"
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def _datetime_text(value: dt.datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat(sep=" ", timespec="microseconds")
    if getattr(value.tzinfo, "key", None) is None:
        # Polars stores a fixed-offset datetime in UTC.
        micros = datetime_micros(value)
        seconds, fraction = divmod(micros, US_PER_SECOND)
        y, mo, d, _, _, h, mi = calendar(micros)
        # chrono's %Y: four digits, a sign outside 0..9999 (UTC can leave Python's range).
        year = f"{y:04d}" if 0 <= y <= 9999 else (f"+{y}" if y > 0 else f"-{-y:04d}")
        return f"{year}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{seconds % 60:02d}.{fraction:06d}+00:00"
    # A named zone (zoneinfo) keeps its wall clock, printed with the offset rounded to
    # minutes (chrono's %:z; local mean times have seconds).
    offset = value.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    sign, seconds = ("-", -seconds) if seconds < 0 else ("+", seconds)
    minutes = (seconds + 30) // 60
    wall = value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return f"{wall}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def to_text(value: Any) -> str | None:
    """The String value of ``value`` in a string, categorical or text column.

    >>> to_text(7), to_text(1e20), to_text(dt.datetime(2024, 1, 2, 3, 4)), to_text(None)
    ('7', '1e+20', '2024-01-02 03:04:00.000000', None)
    """
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return float_text(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime):
        return _datetime_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        return float_text(float(value))
    return None


def to_timestamp(value: Any) -> int | None:
    """Microseconds since the epoch (UTC) of ``value`` in a datetime column.

    >>> to_timestamp(dt.date(1970, 1, 2)), to_timestamp(" 1970-01-01 00:01 "), to_timestamp(60)
    (86400000000, 60000000, None)
    """
    if type(value) is str:
        return parse_iso(value.strip(WHITESPACE))
    if isinstance(value, dt.date):
        return datetime_micros(value)
    if isinstance(value, str):
        return parse_iso(str(value).strip(WHITESPACE))
    return None
