"""Timestamps as integer microseconds, computed in plain Python exactly as Polars does.

The record fast path (:mod:`forgeml.features.records`) reads one value at a time and must
give the same instant as :mod:`forgeml.features.inputs` gives a whole column:

* :func:`parse_iso` reads a string with the fixed ISO-8601 formats of
  ``inputs._ISO_FORMATS`` (tried in order; zone-aware ones are converted to UTC). Polars
  parses them with chrono, whose rules are lenient in specific ways that this module
  copies: numbers may be preceded by whitespace and have 1-2 digits (the year 1-4, or any
  number after a sign); a space in the format matches any run of whitespace, even none;
  ``%.f`` is optional, keeps 9 digits and skips the rest (truncating to microseconds);
  ``%#z`` accepts ``Z``, ``+hh``, ``+hhmm`` and ``+hh:mm`` with whitespace and colons
  between hours and minutes; second 60 (a leap second) rolls over into the next minute;
  dates must exist and lie within chrono's years -262143..262142. Each parser is a regular
  expression with possessive quantifiers, because chrono never backtracks.
* :func:`datetime_micros` converts ``datetime`` / ``date`` objects as Polars does: a naive
  value is wall-clock time; an aware one is shifted to UTC by its offset truncated to whole
  seconds.
* :func:`calendar` gives the calendar fields of a timestamp, for any year.

Whitespace is Unicode ``White_Space`` (Rust's ``char::is_whitespace``), which unlike
Python's ``str.isspace`` excludes the ASCII separators ``\\x1c``-``\\x1f``.

>>> parse_iso("2024-03-02T10:30:00+01:00") == datetime_micros(dt.datetime(2024, 3, 2, 9, 30))
True
>>> parse_iso("2024-3-2 9:30"), parse_iso("2024-02-30"), parse_iso("2024-03-02T10:30Z")
(1709371800000000, None, None)
>>> calendar(parse_iso("2024-03-02 09:30"))
(2024, 3, 2, 6, 62, 9, 30)
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["WHITESPACE", "calendar", "datetime_micros", "days_from_civil", "parse_iso"]

WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
MIN_YEAR, MAX_YEAR = -262_143, 262_142  # chrono's NaiveDate range

_W = "[" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]*+"
_NUM = _W + "([0-9]{1,2}+)"
_DATE = _W + "(?:([+-])([0-9]++)|([0-9]{1,4}+))-" + _NUM + "-" + _NUM
_HM = _NUM + ":" + _NUM
_HMS = _HM + ":" + _NUM + r"(?>\.([0-9]{1,9}+)[0-9]*+)?"
_ZONE = _W + "(?:[zZ]|([+-])([0-9]{2})[:" + _W[1:-3] + "]*+([0-5][0-9])?)"
# The formats of forgeml.features.inputs._ISO_FORMATS, in the same order.
_FORMATS = [
    re.compile(_DATE + "T" + _HMS + _ZONE),
    re.compile(_DATE + _W + _HMS + _ZONE),
    re.compile(_DATE + "T" + _HMS),
    re.compile(_DATE + _W + _HMS),
    re.compile(_DATE + "T" + _HM),
    re.compile(_DATE + _W + _HM),
    re.compile(_DATE),
]
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = _EPOCH.date()
_ONE_US = dt.timedelta(microseconds=1)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year; H. Hinnant's algorithm).

    >>> days_from_civil(1970, 1, 1), days_from_civil(2000, 3, 1), days_from_civil(-1, 12, 31)
    (0, 11017, -719529)
    """
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


_MIN_SECONDS = days_from_civil(MIN_YEAR, 1, 1) * 86_400
_MAX_SECONDS = days_from_civil(MAX_YEAR, 12, 31) * 86_400 + 86_399


def calendar(micros: int) -> tuple[int, int, int, int, int, int, int]:
    """``(year, month, day, iso_weekday 1-7, day_of_year, hour, minute)`` of a timestamp.

    >>> calendar(0)
    (1970, 1, 1, 4, 1, 0, 0)
    """
    days, rest = divmod(micros, US_PER_DAY)
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    ordinal = days - days_from_civil(year, 1, 1) + 1
    minutes = rest // (60 * US_PER_SECOND)
    return year, month, day, (days + 3) % 7 + 1, ordinal, minutes // 60, minutes % 60


def datetime_micros(value: dt.date) -> int:
    """Microseconds since the epoch of a ``date`` (midnight) or ``datetime``, as Polars
    stores it: an aware value moves to UTC by its offset truncated to whole seconds.

    >>> tz = dt.timezone(dt.timedelta(hours=-5, microseconds=-3))
    >>> datetime_micros(dt.datetime(2024, 1, 1, tzinfo=tz)) - datetime_micros(dt.datetime(2024, 1, 1))
    18000000000
    """
    if not isinstance(value, dt.datetime):
        return (value - _EPOCH_DATE).days * US_PER_DAY
    offset = value.utcoffset()
    micros = (value.replace(tzinfo=None) - _EPOCH) // _ONE_US
    if offset is None:
        return micros
    return micros - int(offset.total_seconds()) * US_PER_SECOND


def parse_iso(text: str) -> int | None:
    """Microseconds since the epoch (UTC) of an ISO-8601 string, or None where Polars'
    ``str.to_datetime`` with forgeml's formats gives null. ``text`` is already stripped.

    >>> parse_iso("1970-01-02"), parse_iso("1970-01-01T00:00:01.5-00:30"), parse_iso("1970-13-01")
    (86400000000, 1801500000, None)
    """
    for pattern in _FORMATS:
        match = pattern.fullmatch(text)
        if match is not None:
            return _micros(match.groups())
    return None


def _micros(groups: tuple[str | None, ...]) -> int | None:
    sign, signed_year, plain_year, month_s, day_s = groups[:5]
    digits = plain_year if plain_year is not None else (signed_year or "0").lstrip("0")
    if len(digits) > 6:  # beyond chrono's range (and Python's int parsing limit)
        return None
    year = int(digits or "0")
    if sign == "-":
        year = -year
    month, day = int(month_s or "0"), int(day_s or "0")
    if not (MIN_YEAR <= year <= MAX_YEAR and 1 <= month <= 12 and day >= 1):
        return None
    if day > _DAYS_IN_MONTH[month] + (month == 2 and _leap(year)):
        return None
    hour = minute = second = nanos = offset = 0
    if len(groups) > 5:
        hour, minute = int(groups[5] or "0"), int(groups[6] or "0")
    if len(groups) > 7:
        second = int(groups[7] or "0")
        nanos = int((groups[8] or "0").ljust(9, "0"))
    if len(groups) > 9 and groups[9] is not None:
        offset = int(groups[10] or "0") * 3600 + int(groups[11] or "0") * 60
        if offset >= 86_400:
            return None
        offset = -offset if groups[9] == "-" else offset
    if hour > 23 or minute > 59 or second > 60:
        return None
    if second == 60:  # a leap second: chrono keeps it as 59 s + 1e9 ns
        second, nanos = 59, nanos + 1_000_000_000
    seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    seconds -= offset
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        return None
    return seconds * US_PER_SECOND + nanos // 1000
