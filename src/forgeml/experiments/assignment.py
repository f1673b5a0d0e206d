"""Sticky traffic split: a unit (user, session, account) always gets the same variant.

A unit's variant is a pure function of the experiment's name and the unit id: BLAKE2b of
both (not Python's per-process ``hash``) mapped to a point in [0, 1), then to the variant
whose cumulative weight interval holds it. Replaying the same ids gives the same split on
any machine, and two experiments split independently of each other.

>>> split = TrafficSplit.parse("churn-2026-11", "champion:0.9,challenger:0.1")
>>> split.assign("user-42") == split.assign("user-42")
True
>>> split.weights
{'champion': 0.9, 'challenger': 0.1}
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

from forgeml.errors import UsageError

__all__ = ["TrafficSplit", "unit_point"]

_SCALE = float(2**64)
_TOLERANCE = 1e-6


def unit_point(experiment: str, unit: str) -> float:
    """The unit's fixed point in [0, 1) for this experiment."""
    digest = hashlib.blake2b(
        unit.encode("utf-8"), digest_size=8, key=experiment.encode("utf-8")[:64]
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class TrafficSplit:
    """Variants with weights summing to 1, split by a deterministic hash of the unit id."""

    experiment: str
    weights: dict[str, float]
    _bounds: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.experiment:
            raise UsageError("an experiment needs a name")
        if len(self.weights) < 2:
            raise UsageError(f"an experiment needs at least 2 variants, got {len(self.weights)}")
        for name, weight in self.weights.items():
            if not name:
                raise UsageError("variant names must not be empty")
            if not (isinstance(weight, int | float) and math.isfinite(weight) and weight > 0):
                raise UsageError(
                    f"variant '{name}': weight must be a positive number, got {weight!r}"
                )
        total = sum(self.weights.values())
        if abs(total - 1.0) > _TOLERANCE:
            listed = ", ".join(f"{n}:{w:g}" for n, w in self.weights.items())
            raise UsageError(f"variant weights must sum to 1, got {total:g} ({listed})")
        bounds = list(accumulate(self.weights.values()))[:-1]  # the last interval ends at 1
        object.__setattr__(self, "_bounds", bounds)

    @classmethod
    def parse(cls, experiment: str, text: str) -> TrafficSplit:
        """``"champion:0.9,challenger:0.1"`` (what ``--variants`` takes)."""
        weights: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",")):
            name, sep, value = part.partition(":")
            if not sep or not name.strip():
                raise UsageError(f"--variants: expected NAME:WEIGHT, got {part!r}")
            try:
                weight = float(value)
            except ValueError:
                raise UsageError(
                    f"--variants: weight of '{name}' is not a number: {value!r}"
                ) from None
            if name.strip() in weights:
                raise UsageError(f"--variants: '{name.strip()}' is listed twice")
            weights[name.strip()] = weight
        return cls(experiment, weights)

    @property
    def variants(self) -> list[str]:
        return list(self.weights)

    def assign(self, unit: str) -> str:
        """The variant of ``unit`` (the same every time)."""
        point = unit_point(self.experiment, unit)
        return self.variants[bisect_right(self._bounds, point)]
