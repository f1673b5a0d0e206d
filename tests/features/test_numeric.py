"""Numeric columns against scikit-learn, and the edge cases that must not divide by zero."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from forgeml.config.spec import FeaturesSpec, NumericSpec
from forgeml.tasks.info import TaskInfo

from .conftest import fit

REG = TaskInfo("regression")


@pytest.mark.parametrize(
    ("impute", "scale", "scaler"),
    [("median", "standard", StandardScaler()), ("mean", "minmax", MinMaxScaler())],
)
def test_matches_sklearn_impute_and_scale(
    diabetes: pl.DataFrame, impute: Any, scale: Any, scaler: Any
) -> None:
    rng = np.random.default_rng(0)
    frame = diabetes.drop("progression").with_columns(
        pl.when(pl.lit(rng.random(diabetes.height) < 0.2))
        .then(None)
        .otherwise(pl.col("bmi"))
        .alias("bmi")
    )
    spec = FeaturesSpec(numeric=NumericSpec(impute=impute, scale=scale, clip_quantiles=None))
    fitted = fit(
        frame, diabetes["progression"].to_numpy(), dict.fromkeys(frame.columns, "float"), REG, spec
    )
    ours = fitted.transform(frame)
    reference = make_pipeline(SimpleImputer(strategy=impute), scaler).fit_transform(
        frame.to_numpy()
    )
    value_cols = [fitted.feature_names.index(c) for c in frame.columns]
    np.testing.assert_allclose(ours[:, value_cols], reference, rtol=1e-5, atol=1e-5)
    assert fitted.feature_names.count("bmi__missing") == 1
    missing = ours[:, fitted.feature_names.index("bmi__missing")]
    np.testing.assert_array_equal(missing, frame["bmi"].is_null().to_numpy())


def test_clipping_to_training_quantiles() -> None:
    frame = pl.DataFrame({"x": np.arange(1000, dtype=np.float64)})
    spec = FeaturesSpec(numeric=NumericSpec(clip_quantiles=(0.1, 0.9), scale="none"))
    fitted = fit(frame, np.zeros(1000), {"x": "float"}, REG, spec)
    out = fitted.transform(pl.DataFrame({"x": [-1e9, 500.0, 1e9]}))
    np.testing.assert_allclose(out[:, 0], [99.9, 500.0, 899.1], rtol=1e-6)


def test_constant_and_all_null_columns_do_not_divide_by_zero() -> None:
    frame = pl.DataFrame({"c": [3.0] * 5, "n": pl.Series([None] * 5, dtype=pl.Float64)})
    for scale in ("standard", "minmax"):
        spec = FeaturesSpec(numeric=NumericSpec(scale=scale))
        fitted = fit(frame, np.zeros(5), {"c": "float", "n": "float"}, REG, spec)
        out = fitted.transform(frame)
        assert np.isfinite(out).all()
        assert fitted.feature_names == ["c", "n", "n__missing"]
        np.testing.assert_array_equal(out[:, 0], 0.0)
        np.testing.assert_array_equal(out[:, 2], 1.0)


def test_nan_and_inf_are_missing_and_huge_values_stay_finite() -> None:
    train = pl.DataFrame({"x": [1.0, 2.0, 3.0, float("nan")]})
    spec = FeaturesSpec(numeric=NumericSpec(clip_quantiles=None, scale="none", impute="zero"))
    fitted = fit(train, np.zeros(4), {"x": "float"}, REG, spec)
    out = fitted.transform(pl.DataFrame({"x": [float("inf"), -float("inf"), float("nan"), 1e300]}))
    assert fitted.feature_names == ["x", "x__missing"]
    np.testing.assert_array_equal(out[:3], [[0.0, 1.0]] * 3)
    assert out[3, 0] == np.finfo(np.float32).max and out[3, 1] == 0.0


def test_bool_is_zero_one_and_not_scaled() -> None:
    frame = pl.DataFrame({"b": [True, False, None, True]})
    fitted = fit(frame, np.zeros(4), {"b": "bool"}, REG)
    out = fitted.transform(frame)
    np.testing.assert_array_equal(out, [[1, 0], [0, 0], [1, 1], [1, 0]])
    # Booleans in a request may arrive as words.
    words = pl.DataFrame({"b": ["true", "No", "maybe"]})
    np.testing.assert_array_equal(fitted.transform(words)[:, 0], [1, 0, 1])


def test_no_indicator_when_training_had_no_nulls() -> None:
    fitted = fit(pl.DataFrame({"x": [1.0, 2.0]}), np.zeros(2), {"x": "float"}, REG)
    assert fitted.feature_names == ["x"]
    out = fitted.transform(pl.DataFrame({"x": [None]}, schema={"x": pl.Float64}))
    assert out.shape == (1, 1) and np.isfinite(out).all()
