"""The feature pipeline fitted from batches equals the in-memory fit on the same rows.

Exact for counts, categories, encoders, quantiles (clip bounds, medians), minima and
maxima and classification target encoding; means and standard deviations within a
relative 1e-9 (summation order differs). Checked on real flights data in several batch
sizes and spec variants, on adversarial numeric columns (heavy ties, a value repeated more
often than a bin holds, negative zero, huge ranges) and on the error paths.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from forgeml.config.spec import ColumnType, FeaturesSpec
from forgeml.errors import ConfigError, DataError
from forgeml.features import FeaturePipeline, FittedFeatures, streaming
from forgeml.features.streaming import StreamingFitter, fit_streamed, parquet_batches
from forgeml.tasks.info import TaskInfo, encode_target

from .conftest import FLIGHTS_TYPES, Flights

REL = 1e-9


def chunks(frame: pl.DataFrame, size: int) -> Any:
    return lambda: (frame.slice(i, size) for i in range(0, frame.height, size))


def assert_same(
    streamed: FittedFeatures, in_memory: FittedFeatures, *, exact_moments=False
) -> None:
    a, b = streamed.to_dict(), in_memory.to_dict()
    assert a["feature_names"] == b["feature_names"]
    assert a["input_columns"] == b["input_columns"]
    for x, y in zip(a["blocks"], b["blocks"], strict=True):
        assert x.keys() == y.keys(), x["column"]
        for key in x:
            where = f"{x['column']}.{key}"
            approximate = {"center", "scale", "centers", "scales", "target"}
            if x.get("impute") == "mean":
                approximate |= {"fill", "fills"}
            if key in approximate and not exact_moments:
                assert _close(x[key], y[key]), (where, x[key], y[key])
            else:
                assert x[key] == y[key], (where, x[key], y[key])


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)
    return bool(a == b)


@pytest.fixture(scope="module")
def flights_frame(flights: Flights) -> tuple[pl.DataFrame, np.ndarray, TaskInfo]:
    return flights


@pytest.mark.parametrize("size", [997, 4096, 20_000])
def test_default_spec_equals_in_memory_fit_on_real_flights(flights_frame, size) -> None:
    frame, y, task = flights_frame
    pipe = FeaturePipeline(FeaturesSpec(), FLIGHTS_TYPES, task)
    in_memory = pipe.fit(frame, y)
    streamed = fit_streamed(pipe, chunks(frame, size))
    assert_same(streamed, in_memory)
    # target encoding of a binary task is exact: integer counts and sums
    te = [b for b in streamed.to_dict()["blocks"] if b.get("target")]
    assert te, "tailnum/dest should be target-encoded"
    mem = {b["column"]: b for b in in_memory.to_dict()["blocks"]}
    for block in te:
        assert block["target"] == mem[block["column"]]["target"]
    # and the matrices agree to float32 rounding
    X_s, X_m = streamed.transform(frame), in_memory.transform(frame)
    np.testing.assert_allclose(X_s, X_m, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "spec",
    [
        FeaturesSpec(numeric={"impute": "mean", "scale": "standard"}),
        FeaturesSpec(
            numeric={"impute": "median", "scale": "minmax", "clip_quantiles": [0.05, 0.9]}
        ),
        FeaturesSpec(numeric={"impute": "zero", "scale": "none", "clip_quantiles": None}),
        FeaturesSpec(
            numeric={"missing_indicator": False},
            categorical={"onehot_max_cardinality": 4, "min_frequency": 50, "target_smoothing": 0},
            columns={"origin": {"encoders": ["frequency", "target", "hash"]}},
        ),
    ],
    ids=["mean-standard", "median-minmax-clip", "zero-none", "encoders"],
)
def test_spec_variants_equal_in_memory(flights_frame, spec: FeaturesSpec) -> None:
    frame, y, task = flights_frame
    pipe = FeaturePipeline(spec, FLIGHTS_TYPES, task)
    streamed = fit_streamed(pipe, chunks(frame, 3001))
    exact = spec.numeric.scale != "standard" and spec.numeric.impute != "mean"
    assert_same(streamed, pipe.fit(frame, y), exact_moments=exact)


def test_multiclass_and_regression_targets(flights_frame) -> None:
    frame, _, _ = flights_frame
    spec = FeaturesSpec(categorical={"onehot_max_cardinality": 2})
    types = {c: t for c, t in FLIGHTS_TYPES.items() if c != "late"} | {"origin": "string"}
    # multiclass: the origin airport predicted from the rest (3 classes)
    y, task = encode_target(frame["origin"].to_numpy(), "classification", target="origin")
    pipe = FeaturePipeline(spec, types, task)
    assert_same(fit_streamed(pipe, chunks(frame, 5000)), pipe.fit(frame, y))
    # regression: departure delay (nulls are not targets)
    y, task = encode_target(frame["dep_delay"].to_numpy(), "regression", target="dep_delay")
    pipe = FeaturePipeline(spec, types, task)
    assert_same(fit_streamed(pipe, chunks(frame, 5000)), pipe.fit(frame, y))


def test_parquet_batches_round_trip_and_saved_form(flights_frame, tmp_path: Path) -> None:
    frame, y, task = flights_frame
    path = tmp_path / "train.parquet"
    frame.write_parquet(path, row_group_size=3000)
    pipe = FeaturePipeline(FeaturesSpec(), FLIGHTS_TYPES, task)
    result = StreamingFitter(pipe).fit(parquet_batches(path, chunk_rows=2500))
    assert result.n_rows == frame.height
    assert 2 <= result.passes <= 4
    again = FittedFeatures.from_dict(json.loads(json.dumps(result.fitted.to_dict())))
    assert_same(again, pipe.fit(frame, y))


def test_adversarial_numeric_columns_give_exact_quantiles(monkeypatch) -> None:
    """Ties, a value repeated more often than a bin may hold (forcing the histogram to
    refine down to the last bits), signed zeros, infinities and huge ranges."""
    monkeypatch.setattr(streaming, "COLLECT", 64)
    rng = np.random.default_rng(7)
    n = 20_000
    frame = pl.DataFrame(
        {
            "ties": rng.integers(0, 3, n).astype(np.float64),
            "mostly_zero": np.where(rng.random(n) < 0.97, 0.0, rng.normal(size=n)),
            "signed_zero": np.where(rng.random(n) < 0.5, -0.0, 0.0)
            + np.where(rng.random(n) < 0.01, 1.0, 0.0),
            "wide": rng.standard_cauchy(n) * 1e200,
            "tiny": rng.normal(size=n) * 1e-300,
            "with_inf": np.where(rng.random(n) < 0.01, np.inf, rng.normal(size=n)),
            "close": 1.0 + rng.integers(0, 5, n) * np.finfo(np.float64).eps,
            "nulls": pl.Series(rng.normal(size=n)).scatter(
                np.flatnonzero(rng.random(n) < 0.9), None
            ),
            "all_null": pl.Series([None] * n, dtype=pl.Float64),
            "flag": rng.random(n) < 0.3,
        }
    )
    types: dict[str, ColumnType] = dict.fromkeys(frame.columns, "float") | {"flag": "bool"}
    for spec in (
        FeaturesSpec(),
        FeaturesSpec(numeric={"clip_quantiles": [0.0, 1.0], "scale": "minmax"}),
        FeaturesSpec(numeric={"clip_quantiles": [0.4999, 0.5001], "scale": "minmax"}),
    ):
        pipe = FeaturePipeline(spec, types, TaskInfo("regression"))
        streamed = fit_streamed(pipe, chunks(frame, 1777))
        assert_same(
            streamed, pipe.fit(frame, np.zeros(n)), exact_moments=spec.numeric.scale == "minmax"
        )


def test_datetime_columns_and_unsorted_categories() -> None:
    times = pl.datetime_range(
        pl.datetime(2023, 1, 1), pl.datetime(2024, 12, 31), "7h", eager=True
    ).shuffle(seed=1)
    n = len(times)
    frame = pl.DataFrame(
        {
            "t": times.to_list()[: n - 50] + [None] * 50,
            "city": (["zürich", "Ärhus", "b", "a", "ß"] * n)[:n],
        }
    )
    pipe = FeaturePipeline(
        FeaturesSpec(), {"t": "datetime", "city": "string"}, TaskInfo("regression")
    )
    streamed = fit_streamed(pipe, chunks(frame, 333))
    assert_same(streamed, pipe.fit(frame, np.zeros(n)))


def test_errors_name_the_problem(flights_frame) -> None:
    frame, _, task = flights_frame
    pipe = FeaturePipeline(FeaturesSpec(), FLIGHTS_TYPES, task)
    with pytest.raises(DataError, match="target column 'late'"):
        fit_streamed(pipe, chunks(frame.drop("late"), 5000))
    with pytest.raises(DataError, match="carrier"):
        fit_streamed(pipe, chunks(frame.drop("carrier"), 5000))
    with pytest.raises(DataError, match="empty"):
        fit_streamed(pipe, lambda: iter([frame.head(0)]))
    text = FeaturePipeline(FeaturesSpec(), {"review": "text"}, TaskInfo("regression"))
    with pytest.raises(ConfigError, match="review"):
        fit_streamed(text, chunks(pl.DataFrame({"review": ["a b"]}), 1))
    with pytest.raises(DataError, match="nonexistent"):
        parquet_batches("/nonexistent/x.parquet")
