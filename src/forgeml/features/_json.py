"""Typed, path-aware reading of a saved feature pipeline.

A saved pipeline is plain JSON that may have been edited, truncated or produced by another
version; every field is read through :class:`Fields` so a malformed file fails with an
:class:`~forgeml.errors.ArtifactIntegrityError` that names the offending field instead of a
``KeyError`` deep inside a transform.

>>> f = Fields({"mean": 1.5, "names": ["a"]}, "blocks[0]")
>>> f.number("mean"), f.strings("names")
(1.5, ['a'])
>>> f.number("std")
Traceback (most recent call last):
...
forgeml.errors.ArtifactIntegrityError: feature pipeline: blocks[0].std: missing
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from forgeml.errors import ArtifactIntegrityError

__all__ = ["Fields", "finite"]


def finite(value: float) -> float:
    """A Python float for JSON; non-finite statistics (an all-null column) become 0.0."""
    value = float(value)
    return value if math.isfinite(value) else 0.0


class Fields:
    """Read typed values out of one JSON object, reporting errors with their path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise self._error(path, f"expected an object, got {type(data).__name__}")
        self._data: dict[str, Any] = data
        self.path = path

    @staticmethod
    def _error(path: str, problem: str) -> ArtifactIntegrityError:
        return ArtifactIntegrityError(f"feature pipeline: {path}: {problem}")

    def fail(self, key: str, problem: str) -> ArtifactIntegrityError:
        """An error about ``key`` of this object, for checks the typed getters cannot make."""
        return self._error(f"{self.path}.{key}", problem)

    def _get(self, key: str) -> Any:
        if key not in self._data:
            raise self.fail(key, "missing")
        return self._data[key]

    def raw_keys(self) -> list[str]:
        """The keys of this object, in stored order."""
        return list(self._data)

    def raw(self, key: str) -> Any:
        """The value of ``key`` as stored (it must be present)."""
        return self._get(key)

    def string(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r:.60}")
        return value

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true/false, got {value!r:.60}")
        return value

    def integer(self, key: str, *, minimum: int = 0) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value!r:.60}")
        return value

    def number(self, key: str) -> float:
        value = self._get(key)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise self.fail(key, f"expected a finite number, got {value!r:.60}")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        return None if self._get(key) is None else self.number(key)

    def strings(self, key: str) -> list[str]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of strings")
        return list(value)

    def array(self, key: str, *, ndim: int = 1, integer: bool = False) -> np.ndarray:
        """A list (or list of lists) of finite numbers as a float64 (or int64) array."""
        value = self._get(key)
        if not isinstance(value, list):
            raise self.fail(key, "expected a list of numbers")
        if integer and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self.fail(key, "expected a list of integers")
        try:
            arr = np.array(value, dtype=np.int64 if integer else np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(key, "expected a list of numbers") from exc
        if arr.ndim != ndim:
            raise self.fail(key, f"expected {ndim} dimension(s), got {arr.ndim}")
        if not integer and not np.isfinite(arr).all():
            raise self.fail(key, "contains a non-finite number")
        return arr

    def child(self, key: str) -> Fields:
        return Fields(self._get(key), f"{self.path}.{key}")

    def children(self, key: str) -> list[Fields]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self.fail(key, "expected a list of objects")
        return [Fields(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)]
