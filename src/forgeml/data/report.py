"""The validation report: what happened to 100% of the input rows.

Invariant: ``n_valid + n_quarantined == n_input``, where ``n_input`` counts parsed rows
plus unreadable lines (``n_unreadable``, which are quarantined too).

>>> report = ValidationReport(source="t.csv", n_input=10, n_valid=8, n_quarantined=2,
...     reasons={"range:age": 2}, examples={"range:age": ["age: 150 is above max 120"]})
>>> report.bad_fraction
0.2
>>> report.failure(max_bad_fraction=0.05)
'20.0% of the rows of t.csv failed validation, more than the 5.0% allowed (validation.max_bad_fraction); top reasons: range:age (2, e.g. age: 150 is above max 120)'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.data.fingerprint import Fingerprint
from forgeml.data.summary import ColumnSummary

__all__ = ["ValidationReport"]


@dataclass
class ValidationReport:
    """Counts, reasons (code -> rows), a few example messages per reason, column
    summaries, warnings, column-rule errors and where the quarantined rows went."""

    source: str
    n_input: int = 0
    n_valid: int = 0
    n_quarantined: int = 0
    n_unreadable: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    columns: dict[str, ColumnSummary] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    column_errors: list[str] = field(default_factory=list)
    quarantine_path: str | None = None
    fingerprint: Fingerprint | None = None

    @property
    def bad_fraction(self) -> float:
        """Quarantined share of the input (0 for an empty input)."""
        return self.n_quarantined / self.n_input if self.n_input else 0.0

    @property
    def column_types(self) -> dict[str, str]:
        """Column name -> type, as validated."""
        return {name: summary.type for name, summary in self.columns.items()}

    def top_reasons(self, k: int = 3) -> list[tuple[str, int]]:
        """The ``k`` most frequent reason codes with their row counts."""
        return sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))[:k]

    def failure(self, max_bad_fraction: float) -> str | None:
        """The one-line reason this run must stop, or ``None`` if it may go on."""
        problems = []
        if self.bad_fraction > max_bad_fraction:
            reasons = ", ".join(
                f"{code} ({n}, e.g. {self.examples[code][0]})"
                if self.examples.get(code)
                else f"{code} ({n})"
                for code, n in self.top_reasons()
            )
            problems.append(
                f"{self.bad_fraction:.1%} of the rows of {self.source} failed validation, more "
                f"than the {max_bad_fraction:.1%} allowed (validation.max_bad_fraction); "
                f"top reasons: {reasons}"
            )
        problems.extend(self.column_errors)
        if not problems:
            return None
        where = f"; quarantined rows are in {self.quarantine_path}" if self.quarantine_path else ""
        return "; ".join(problems) + where

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of everything, plus ``bad_fraction``."""
        out = asdict(self)
        out["bad_fraction"] = self.bad_fraction
        return out
