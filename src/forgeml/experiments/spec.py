"""An A/B experiment between versions of one model: what is compared, on what, and where it
stands.

An :class:`Experiment` is a plain record. The registry stores it (one JSON document per
experiment), resolves its variants to versions when it starts and moves its alias when it
concludes; the server reads the running ones to route requests; ``forgeml ab status``
analyses its exposures and outcomes. A variant names an alias of the model (``champion``,
``challenger``) or a version (``"3"`` or ``"v3"``); the versions it resolved to at start are
kept in ``versions`` and never change while it runs, even when the alias moves.

>>> exp = Experiment(model="churn", name="churn-nov", unit="user_id", metric="converted",
...                  variants={"champion": 0.9, "challenger": 0.1})
>>> exp.control, exp.alias, exp.split().weights
('champion', 'champion', {'champion': 0.9, 'challenger': 0.1})
>>> Experiment.from_dict(exp.to_dict()) == exp
True
>>> Experiment(model="churn", unit="user_id", metric="converted",
...            variants={"champion": 0.9, "challenger": 0.2})
Traceback (most recent call last):
...
forgeml.errors.UsageError: variant weights must sum to 1, got 1.1 (champion:0.9, challenger:0.2)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from forgeml.config.spec import NAME_PATTERN
from forgeml.errors import UsageError
from forgeml.experiments.assignment import TrafficSplit

__all__ = ["METRIC_KINDS", "STATUSES", "Experiment", "variant_version"]

METRIC_KINDS = ("binary", "continuous")
STATUSES = ("running", "concluded")
_NAME = re.compile(NAME_PATTERN)
_VERSION = re.compile(r"^v?([0-9]{1,9})$")
_TIMES = ("started_at", "weights_since", "concluded_at")


def variant_version(variant: str) -> int | None:
    """The version a variant names (``"3"`` or ``"v3"``), or None when it names an alias.

    >>> variant_version("v3"), variant_version("3"), variant_version("challenger")
    (3, 3, None)
    """
    match = _VERSION.fullmatch(variant)
    return int(match.group(1)) if match else None


def default_name(model: str, at: datetime) -> str:
    """``<model>-<UTC timestamp>``, kept within the 64 characters a name may have.

    >>> default_name("churn", datetime(2026, 11, 26, 18, 22, 51, tzinfo=UTC))
    'churn-20261126-182251'
    """
    return f"{model[:48]}-{at.astimezone(UTC):%Y%m%d-%H%M%S}"


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """One experiment on ``model``; see the module docstring.

    ``variants`` maps each variant to its share of traffic (in order: the order fixes the
    hash intervals of :class:`~forgeml.experiments.TrafficSplit`); ``control`` is the
    variant the others are compared with (default: the first). ``unit`` is the field that
    identifies a unit of assignment in requests and feedback (``user_id``); ``metric`` is the
    outcome analysed, ``metric_kind`` ``binary`` (converted or not) or ``continuous``
    (revenue). With ``shadow`` the control answers every request and the other variants
    score the same traffic without answering. ``alias`` is the alias the server splits and
    that concluding with a promotion moves. ``state`` holds the sequential test of each
    treatment variant between looks (``{variant: {tau, p_value, looks, history}}``).
    An empty ``name`` becomes ``<model>-<UTC timestamp>``.
    """

    model: str
    variants: dict[str, float]
    unit: str
    metric: str
    name: str = ""
    metric_kind: str = "binary"
    control: str = ""
    alias: str = "champion"
    higher_is_better: bool = True
    shadow: bool = False
    alpha: float = 0.05
    status: str = "running"
    versions: dict[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    weights_since: datetime | None = None
    concluded_at: datetime | None = None
    conclusion: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not _NAME.fullmatch(self.model):
            raise UsageError(f"invalid model name {self.model!r}: it must match {NAME_PATTERN}")
        if not self.name:
            object.__setattr__(self, "name", default_name(self.model, datetime.now(UTC)))
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise UsageError(f"invalid experiment name {self.name!r}: it must match {NAME_PATTERN}")
        if not isinstance(self.variants, dict):
            raise UsageError(f"variants must be a mapping of name to weight, got {self.variants!r}")
        object.__setattr__(self, "variants", {str(k): v for k, v in self.variants.items()})
        self.split()  # weights: positive, summing to 1, at least two variants
        if not self.control:
            object.__setattr__(self, "control", next(iter(self.variants)))
        if self.control not in self.variants:
            raise UsageError(
                f"control {self.control!r} is not a variant (variants: {', '.join(self.variants)})"
            )
        for what in ("unit", "metric", "alias"):
            value = getattr(self, what)
            if not isinstance(value, str) or not value.strip():
                raise UsageError(f"experiment {what} must be a non-empty name, got {value!r}")
        if self.metric_kind not in METRIC_KINDS:
            raise UsageError(
                f"metric kind must be one of {', '.join(METRIC_KINDS)}, got {self.metric_kind!r}"
            )
        if not (isinstance(self.alpha, int | float) and 0 < self.alpha < 1):
            raise UsageError(f"alpha must be between 0 and 1, got {self.alpha!r}")
        if self.status not in STATUSES:
            raise UsageError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        unknown = sorted(set(self.versions) - set(self.variants))
        if unknown:
            raise UsageError(f"versions name unknown variants: {', '.join(unknown)}")

    # -- derived ------------------------------------------------------------------------

    def split(self) -> TrafficSplit:
        """The sticky split the server assigns units with."""
        return TrafficSplit(self.name, dict(self.variants))

    @property
    def treatments(self) -> list[str]:
        """Every variant but the control, in order."""
        return [v for v in self.variants if v != self.control]

    @property
    def running(self) -> bool:
        return self.status == "running"

    # -- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (timestamps as ISO 8601 text)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        """The inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown experiment fields: {', '.join(unknown)}")
        values = dict(data)
        for key in _TIMES:
            if isinstance(values.get(key), str):
                values[key] = _parse_time(key, values[key])
        if isinstance(values.get("versions"), dict):
            values["versions"] = {str(k): int(v) for k, v in values["versions"].items()}
        try:
            return cls(**values)
        except TypeError as exc:  # a missing required field
            raise UsageError(f"invalid experiment record: {exc}") from None


def _parse_time(key: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"experiment {key}: not an ISO 8601 timestamp: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
