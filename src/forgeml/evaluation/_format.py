"""Number and value formatting for the HTML report (used as Jinja filters).

>>> fmt_number(0.912345), fmt_number(1.0), fmt_number(float("nan")), fmt_number(1234567.8)
('0.9123', '1.000', 'n/a', '1,234,568')
>>> fmt_number(0.00001234), fmt_number(42), fmt_number(True)
('1.234e-05', '42', 'yes')
>>> fmt_seconds(0.0123), fmt_seconds(75.0), fmt_seconds(7322.0)
('12 ms', '1 min 15 s', '2 h 2 min')
>>> fmt_value(0.05), fmt_value(1.0), fmt_value(True), fmt_value(["champion", "latest"])
('0.05', '1', 'true', 'champion, latest')
>>> fmt_value({"depth": 6, "lr": 0.05})
'{"depth": 6, "lr": 0.05}'
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np

__all__ = ["fmt_number", "fmt_percent", "fmt_seconds", "fmt_value"]


def fmt_number(value: Any, digits: int = 4) -> str:
    """Integers with thousands separators, floats to ``digits`` significant digits
    (trailing zeros kept so a column of metrics lines up; large values as whole numbers),
    NaN/None as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "n/a"
    if number == 0:
        return "0"
    if abs(number) >= 10 ** (digits - 1):
        return f"{number:,.0f}"
    return f"{number:#.{digits}g}"


def fmt_percent(value: Any, digits: int = 1) -> str:
    """A fraction as a percentage: ``0.1234`` -> ``12.3%``.

    >>> fmt_percent(0.1234), fmt_percent(None)
    ('12.3%', 'n/a')
    """
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return f"{100 * float(value):.{digits}f}%"


def fmt_seconds(value: Any) -> str:
    """A duration in seconds, in the largest sensible unit."""
    if value is None:
        return "n/a"
    s = float(value)
    if not math.isfinite(s):
        return "n/a"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def fmt_value(value: Any) -> str:
    """A parameter or metadata value as short text: numbers as written (floats to six
    significant digits), lists of scalars comma-separated, other containers as compact
    JSON, datetimes in ISO format, ``None`` as ``None``."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | np.integer):
        return str(value)
    if isinstance(value, float | np.floating):
        # Parameters are shown as written, not padded like a column of metrics.
        return f"{value:.6g}"
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(fmt_value(v) for v in value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)
