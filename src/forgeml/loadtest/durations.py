"""Durations as people type them: ``20s``, ``1m``, ``500ms``, ``1m30s`` or plain seconds.

>>> parse_duration("20s"), parse_duration("1m30s"), parse_duration("500ms"), parse_duration(2)
(20.0, 90.0, 0.5, 2.0)
>>> parse_duration("soon")
Traceback (most recent call last):
...
forgeml.errors.UsageError: duration: 'soon' is not a duration (use e.g. 20s, 1m, 500ms)
"""

from __future__ import annotations

import math
import re

from forgeml.errors import UsageError

__all__ = ["parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_duration(value: str | float, *, name: str = "duration") -> float:
    """Seconds in ``value``: a number of seconds, or parts with units ``ms``, ``s``, ``m``, ``h``.

    ``name`` is the option the value came from; it starts the error message. Negative,
    infinite and unit-less text other than a plain number raise :class:`UsageError`.

    >>> parse_duration("1.5s"), parse_duration("0"), parse_duration("2h")
    (1.5, 0.0, 7200.0)
    >>> parse_duration("-1s", name="--warmup")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: --warmup: '-1s' is not a duration (use e.g. 20s, 1m, 500ms)
    """
    if isinstance(value, bool):
        raise UsageError(f"{name}: {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise UsageError(f"{name}: {value!r} is not a duration (seconds must be >= 0)")
        return seconds
    text = value.strip().lower().replace(" ", "")
    if _NUMBER.fullmatch(text):
        return float(text)
    if not _WHOLE.fullmatch(text):
        raise UsageError(f"{name}: {value!r} is not a duration (use e.g. 20s, 1m, 500ms)")
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))
