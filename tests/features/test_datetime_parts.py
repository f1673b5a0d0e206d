"""Datetime parts against Python's calendar, zones, strings and nulls."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import numpy as np
import polars as pl
import pytest

from forgeml.config.spec import DatetimePart, DatetimeSpec, FeaturesSpec, NumericSpec
from forgeml.tasks.info import TaskInfo

from .conftest import fit

ALL: list[DatetimePart] = [
    "year",
    "month",
    "day",
    "dayofweek",
    "dayofyear",
    "hour",
    "minute",
    "is_weekend",
    "epoch",
]
# Raw part values are checked here; scaling is the numeric block's rule, tested there.
SPEC = FeaturesSpec(datetime=DatetimeSpec(parts=ALL), numeric=NumericSpec(scale="none"))
REG = TaskInfo("regression")


def expected(t: dt.datetime) -> list[float]:
    epoch = (t - dt.datetime(1970, 1, 1)).total_seconds() / 86400
    return [
        t.year,
        t.month,
        t.day,
        t.weekday(),
        t.timetuple().tm_yday,
        t.hour,
        t.minute,
        float(t.weekday() >= 5),
        epoch,
    ]


def test_parts_match_python_calendar() -> None:
    times = [
        dt.datetime(2024, 2, 29, 23, 59),
        dt.datetime(1999, 12, 31, 0, 1),
        dt.datetime(2023, 7, 2, 12, 30),
    ]
    frame = pl.DataFrame({"t": times})
    fitted = fit(frame, np.zeros(3), {"t": "datetime"}, REG, SPEC)
    assert fitted.feature_names == [f"t__{p}" for p in ALL]
    np.testing.assert_allclose(fitted.transform(frame), [expected(t) for t in times], rtol=1e-6)


def test_dates_zones_and_strings_agree() -> None:
    naive = dt.datetime(2024, 3, 2, 10, 30)
    fitted = fit(pl.DataFrame({"t": [naive]}), np.zeros(1), {"t": "datetime"}, REG, SPEC)
    want = fitted.transform(pl.DataFrame({"t": [naive]}))
    aware = pl.DataFrame({"t": [naive]}).with_columns(
        pl.col("t").dt.replace_time_zone("UTC").dt.convert_time_zone("America/New_York")
    )
    for variant in (
        aware,
        pl.DataFrame({"t": ["2024-03-02 10:30:00"]}),
        pl.DataFrame({"t": ["2024-03-02T10:30"]}),
        pl.DataFrame({"t": ["2024-03-02T11:30:00+01:00"]}),
        pl.DataFrame({"t": ["2024-03-02T10:30:00Z"]}),
    ):
        np.testing.assert_array_equal(fitted.transform(variant), want)
    date_only = fitted.transform(pl.DataFrame({"t": [dt.date(2024, 3, 2)]}))
    assert date_only[0, ALL.index("hour")] == 0 and date_only[0, ALL.index("day")] == 2


@pytest.mark.parametrize("impute", ["median", "zero"])
def test_nulls_and_unparseable_strings_are_imputed(impute: Literal["median", "zero"]) -> None:
    times = [dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 3), dt.datetime(2020, 1, 5), None]
    spec = FeaturesSpec(
        datetime=DatetimeSpec(parts=["day", "hour"]),
        numeric=NumericSpec(impute=impute, scale="none"),
    )
    fitted = fit(pl.DataFrame({"t": times}), np.zeros(4), {"t": "datetime"}, REG, spec)
    assert fitted.feature_names == ["t__day", "t__hour", "t__missing"]
    out = fitted.transform(pl.DataFrame({"t": ["not a date", None, "2020-01-09"]}))
    fill = 3.0 if impute == "median" else 0.0
    np.testing.assert_array_equal(out, [[fill, 0, 1], [fill, 0, 1], [9, 0, 0]])
