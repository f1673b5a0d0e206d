"""Helpers for the feature tests: typed real-data frames and a fit shortcut."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from forgeml.config.spec import ColumnType, FeaturesSpec
from forgeml.features import FeaturePipeline, FittedFeatures
from forgeml.tasks.info import TaskInfo, encode_target

FLIGHTS_TYPES: dict[str, ColumnType] = {
    "rownames": "id",
    "year": "int",
    "month": "int",
    "day": "int",
    "dep_time": "float",
    "sched_dep_time": "int",
    "dep_delay": "float",
    "sched_arr_time": "int",
    "carrier": "string",
    "flight": "int",
    "tailnum": "string",
    "origin": "string",
    "dest": "string",
    "distance": "int",
    "hour": "int",
    "minute": "int",
    "time_hour": "datetime",
    "late": "int",
}


Flights = tuple[pl.DataFrame, np.ndarray, TaskInfo]


@pytest.fixture(scope="session")
def flights(flights_sample: pl.DataFrame) -> Flights:
    """Flights with the leaking columns dropped. Cancelled flights (null ``late``, encoded
    -1) are kept for their real nulls in ``dep_time``/``tailnum``: target statistics skip
    them. ``time_hour`` stays a string, as in a JSON request, and is parsed by the pipeline."""
    frame = flights_sample.drop("arr_delay", "arr_time", "air_time")
    y, task = encode_target(frame["late"].to_numpy(), "classification", target="late")
    return frame, y, task


def typed(frame: pl.DataFrame, target: str) -> dict[str, ColumnType]:
    """Column types of an all-numeric sklearn fixture (the target is typed too: ignored)."""
    return {c: ("float" if c != target else "string") for c in frame.columns}


def fit(
    frame: pl.DataFrame,
    y: np.ndarray,
    types: dict[str, ColumnType],
    task: TaskInfo,
    spec: FeaturesSpec | None = None,
    seed: int = 0,
) -> FittedFeatures:
    return FeaturePipeline(spec or FeaturesSpec(), types, task, seed).fit(frame, y)
