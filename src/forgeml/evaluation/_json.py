"""JSON-safe conversion: NumPy scalars to Python values, non-finite floats to ``None``.

Strict JSON has no NaN or infinity; an undefined metric is written as ``null`` and read
back as NaN by the ``from_dict`` constructors.

>>> import numpy as np
>>> json_safe({"a": np.float64("nan"), "b": [np.int64(3), float("inf")], "c": (1.5,)})
{'a': None, 'b': [3, None], 'c': [1.5]}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["json_safe", "nan_if_none"]


def json_safe(value: Any) -> Any:
    """A copy of ``value`` made of dicts, lists, str, int, finite float, bool and None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def nan_if_none(value: float | None) -> float:
    """The inverse of :func:`json_safe` for one float: ``None`` reads back as NaN."""
    return float("nan") if value is None else float(value)
