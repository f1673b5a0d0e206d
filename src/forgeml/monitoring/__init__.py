"""Monitoring: reference profiles of training data and drift of live data against them."""

from __future__ import annotations

from typing import Any

from forgeml.monitoring.drift import THRESHOLDS, FeatureDrift, detect_drift, psi
from forgeml.monitoring.profile import (
    PREDICTION_COLUMN,
    PROFILE_FILE,
    CategoricalProfile,
    NumericProfile,
    Profile,
)
from forgeml.monitoring.store import LOG_KINDS, LogStore, open_store

__all__ = [
    "PREDICTION_COLUMN",
    "PROFILE_FILE",
    "THRESHOLDS",
    "CategoricalProfile",
    "FeatureDrift",
    "NumericProfile",
    "Profile",
    "detect_drift",
    "psi",
]

# The log store (its Arrow schemas are built on first use: importing stays light).
__all__ += [
    "EVENTS_SCHEMA",
    "FEEDBACK_SCHEMA",
    "LOG_KINDS",
    "PREDICTIONS_SCHEMA",
    "LogStore",
    "open_store",
]


def __getattr__(name: str) -> Any:
    if name in ("PREDICTIONS_SCHEMA", "FEEDBACK_SCHEMA", "EVENTS_SCHEMA"):
        from forgeml.monitoring import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
