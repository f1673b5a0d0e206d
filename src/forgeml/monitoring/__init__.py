"""Monitoring: reference profiles of training data and drift of live data against them."""

from __future__ import annotations

from forgeml.monitoring.drift import THRESHOLDS, FeatureDrift, detect_drift, psi
from forgeml.monitoring.profile import (
    PREDICTION_COLUMN,
    PROFILE_FILE,
    CategoricalProfile,
    NumericProfile,
    Profile,
)

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
