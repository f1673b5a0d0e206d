"""A/B experiments: sticky traffic splits and statistics that survive repeated looks."""

from __future__ import annotations

from forgeml.experiments.assignment import TrafficSplit, unit_point
from forgeml.experiments.stats import (
    Decision,
    Effect,
    SequentialTest,
    SRMResult,
    Summary,
    always_valid_p,
    decide,
    srm_check,
    two_proportions,
    welch,
)

__all__ = [
    "Decision",
    "Effect",
    "SRMResult",
    "SequentialTest",
    "Summary",
    "TrafficSplit",
    "always_valid_p",
    "decide",
    "srm_check",
    "two_proportions",
    "unit_point",
    "welch",
]
