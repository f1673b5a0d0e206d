"""Categorical encoders: one-hot, hashing, frequency, and what odd values become."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from forgeml.config.spec import CategoricalSpec, ColumnFeatureSpec, FeaturesSpec, NumericSpec
from forgeml.errors import ConfigError
from forgeml.features import FeaturePipeline
from forgeml.features.hashing import signed_buckets
from forgeml.tasks.info import TaskInfo

from .conftest import fit

REG = TaskInfo("regression")


def test_onehot_values_unseen_and_null() -> None:
    train = pl.DataFrame({"plan": ["pro", "free", "pro", None]})
    fitted = fit(train, np.zeros(4), {"plan": "string"}, REG)
    assert fitted.feature_names == ["plan=free", "plan=pro", "plan__missing"]
    out = fitted.transform(pl.DataFrame({"plan": ["free", "pro", "enterprise", None]}))
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]])


def test_min_frequency_folds_rare_and_unseen_into_other() -> None:
    train = pl.DataFrame({"c": ["a"] * 5 + ["b"] * 5 + ["rare"]})
    spec = FeaturesSpec(categorical=CategoricalSpec(min_frequency=2))
    fitted = fit(train, np.zeros(11), {"c": "categorical"}, REG, spec)
    assert fitted.feature_names == ["c=a", "c=b", "c=__other__"]
    out = fitted.transform(pl.DataFrame({"c": ["a", "rare", "never-seen", None]}))
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0]])


def test_high_cardinality_gets_hash_frequency_and_target(flights_sample: pl.DataFrame) -> None:
    frame = flights_sample.select("tailnum")
    y = flights_sample["late"].fill_null(0).to_numpy()
    task = TaskInfo("classification", classes=(0, 1))
    assert frame["tailnum"].null_count() > 0
    fitted = fit(frame.select("tailnum"), y, {"tailnum": "string"}, task)
    names = fitted.feature_names
    assert names[:32] == [f"tailnum__hash_{i}" for i in range(32)]
    assert names[32:] == ["tailnum__freq", "tailnum__te", "tailnum__missing"]
    out = fitted.transform(frame.select("tailnum"))
    hashed = out[:, :32]
    present = frame["tailnum"].is_not_null().to_numpy()
    # exactly one signed +-1 entry per non-null row, none for nulls
    np.testing.assert_array_equal(np.abs(hashed).sum(axis=1), present.astype(np.float32))
    counts = frame["tailnum"].value_counts().to_dict(as_series=False)
    share = dict(zip(counts["tailnum"], np.array(counts["count"]) / frame.height, strict=True))
    expected = np.array([share[v] if v is not None else 0.0 for v in frame["tailnum"]], np.float32)
    np.testing.assert_allclose(out[:, 32], expected, rtol=1e-6)


def test_hash_is_stable_golden_values() -> None:
    # These numbers are part of the saved format: a model trained anywhere must put the
    # same category in the same bucket everywhere. Change them only with HASH_VERSION.
    assert signed_buckets(["N14228", "JFK", "", "ünïcode", "plan=pro"], 32).tolist() == [
        -1,
        7,
        22,
        9,
        2,
    ]
    assert signed_buckets(["JFK"], 1 << 20).tolist() == [889479]


def test_unseen_values_hash_like_training_values() -> None:
    spec = FeaturesSpec(categorical=CategoricalSpec(onehot_max_cardinality=1, hash_buckets=8))
    spec.columns = {"c": ColumnFeatureSpec(encoders=["hash"])}
    train = pl.DataFrame({"c": ["a", "b", "c"]})
    fitted = fit(train, np.zeros(3), {"c": "string"}, REG, spec)
    other = fit(pl.DataFrame({"c": ["x", "y", "z"]}), np.zeros(3), {"c": "string"}, REG, spec)
    probe = pl.DataFrame({"c": ["a", "z", "b", "q", "a"]})
    # Whether a value was seen in training must not change its bucket.
    np.testing.assert_array_equal(fitted.transform(probe), other.transform(probe))
    row = fitted.transform(pl.DataFrame({"c": ["q"]}))[0]
    code = int(signed_buckets(["q"], 8)[0])
    assert row[abs(code) - 1] == np.sign(code) and np.count_nonzero(row) == 1


def test_encoder_override_and_spec_flags() -> None:
    frame = pl.DataFrame({"c": ["a", "b", "a"], "d": ["x", "y", "x"]})
    spec = FeaturesSpec(
        categorical=CategoricalSpec(
            onehot_max_cardinality=1, frequency=False, target_encoding=False
        ),
        columns={"c": ColumnFeatureSpec(encoders=["frequency", "onehot"])},
    )
    fitted = fit(frame, np.zeros(3), {"c": "string", "d": "string"}, REG, spec)
    assert fitted.feature_names[:3] == ["c=a", "c=b", "c__freq"]
    assert fitted.feature_names[3:] == [f"d__hash_{i}" for i in range(32)]
    desc = {d["column"]: d for d in fitted.describe()}
    assert desc["c"]["encoders"] == ["onehot", "frequency"] and desc["c"]["n_outputs"] == 3
    assert desc["d"] == {
        "column": "d",
        "type": "string",
        "kind": "categorical",
        "encoders": ["hash"],
        "n_outputs": 32,
        "cardinality": 2,
        "missing_indicator": False,
    }


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"x": ColumnFeatureSpec(encoders=["hash"])}, "features.columns.x: encoders apply"),
        ({"nope": ColumnFeatureSpec(encoders=["hash"])}, "features.columns.nope: no such column"),
        ({"key": ColumnFeatureSpec(encoders=["hash"])}, "features.columns.key: not a feature"),
        ({"gone": ColumnFeatureSpec(encoders=["hash"])}, "features.columns.gone: .* features.drop"),
    ],
)
def test_bad_overrides_are_config_errors(
    columns: dict[str, ColumnFeatureSpec], message: str
) -> None:
    pipe = FeaturePipeline(
        FeaturesSpec(columns=columns, drop=["gone"]),
        {"x": "float", "c": "string", "key": "id", "gone": "string"},
        REG,
    )
    with pytest.raises(ConfigError, match=message):
        pipe.fit(pl.DataFrame({"x": [1.0], "c": ["a"], "key": [1]}), np.zeros(1))


def test_categorical_dtype_and_numbers_are_read_as_strings() -> None:
    train = pl.DataFrame({"c": pl.Series(["1", "2", "1"], dtype=pl.Categorical)})
    fitted = fit(train, np.zeros(3), {"c": "categorical"}, REG)
    assert fitted.feature_names == ["c=1", "c=2"]
    np.testing.assert_array_equal(fitted.transform(pl.DataFrame({"c": [2, 1]})), [[0, 1], [1, 0]])


def test_missing_indicator_can_be_turned_off() -> None:
    spec = FeaturesSpec(numeric=NumericSpec(missing_indicator=False))
    fitted = fit(pl.DataFrame({"c": ["a", None]}), np.zeros(2), {"c": "string"}, REG, spec)
    assert fitted.feature_names == ["c=a"]


def test_awkward_column_names_and_values() -> None:
    # a column called like value_counts' own columns, values that look like feature names
    train = pl.DataFrame({"n": ["value", "n", "value"], "count": ["x=y", "__other__", "x=y"]})
    fitted = fit(train, np.zeros(3), {"n": "string", "count": "string"}, REG)
    assert fitted.feature_names == ["n=n", "n=value", "count=__other__", "count=x=y"]
    np.testing.assert_array_equal(fitted.transform(train[:1]), [[0, 1, 0, 1]])
