"""The pipeline on real data, and its defined behaviour at prediction time."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest

from forgeml.config.spec import FeaturesSpec, TaskKind
from forgeml.errors import DataError, DataSourceError
from forgeml.features import FeaturePipeline, FittedFeatures
from forgeml.tasks.info import TaskInfo, encode_target

from .conftest import FLIGHTS_TYPES, Flights, typed

FlightsFit = tuple[pl.DataFrame, np.ndarray, FittedFeatures, np.ndarray]


@pytest.fixture(scope="module")
def flights_fit(flights: Flights) -> FlightsFit:
    frame, y, task = flights
    fitted, X = FeaturePipeline(FeaturesSpec(), FLIGHTS_TYPES, task, seed=0).fit_transform(frame, y)
    return frame, y, fitted, X


def test_flights_layout_and_values(flights_fit: FlightsFit) -> None:
    frame, _, fitted, X = flights_fit
    assert "rownames" not in fitted.input_columns and "late" not in fitted.input_columns
    names = fitted.feature_names
    assert len(names) == len(set(names)) == X.shape[1]
    assert {"carrier=UA", "origin=JFK", "tailnum__hash_0", "tailnum__freq", "tailnum__te"} <= set(
        names
    )
    assert {"dest__te", "time_hour__hour", "time_hour__dayofweek", "dep_time__missing"} <= set(
        names
    )
    assert X.dtype == np.float32 and X.flags.c_contiguous and X.shape[0] == frame.height
    assert np.isfinite(X).all()
    kinds = {d["column"]: (d["kind"], d["encoders"]) for d in fitted.describe()}
    assert kinds["carrier"] == ("categorical", ["onehot"])
    assert kinds["tailnum"] == ("categorical", ["hash", "frequency", "target"])
    assert kinds["time_hour"][0] == "datetime"
    assert sum(d["n_outputs"] for d in fitted.describe()) == X.shape[1]
    # hour of the (UTC) timestamp parsed from strings
    # Parts are standardised like numerics: undo it with the fitted center and scale.
    hours = frame["time_hour"].str.slice(11, 2).cast(pl.Float64).to_numpy()
    block = next(b for b in fitted.blocks if getattr(b, "column", None) == "time_hour")
    i = block.part_names.index("hour")
    got = X[:, names.index("time_hour__hour")] * block.scales[i] + block.centers[i]
    np.testing.assert_allclose(got, hours, atol=1e-4)
    assert abs(float(X[:, names.index("time_hour__hour")].mean())) < 1e-3


def test_flights_fit_transform_equals_transform_except_target_encoding(
    flights_fit: FlightsFit,
) -> None:
    frame, _, fitted, X = flights_fit
    T = fitted.transform(frame)
    te = [i for i, n in enumerate(fitted.feature_names) if "__te" in n]
    rest = [i for i in range(T.shape[1]) if i not in te]
    assert te and not np.array_equal(T[:, te], X[:, te])
    np.testing.assert_array_equal(T[:, rest], X[:, rest])


def test_flights_json_round_trip_is_exact(flights_fit: FlightsFit) -> None:
    frame, _, fitted, _ = flights_fit
    text = json.dumps(fitted.to_dict(), allow_nan=False)
    again = FittedFeatures.from_dict(json.loads(text))
    assert again.feature_names == fitted.feature_names
    assert again.input_columns == fitted.input_columns
    np.testing.assert_array_equal(again.transform(frame), fitted.transform(frame))


def test_prediction_time_inputs(flights_fit: FlightsFit) -> None:
    frame, _, fitted, _ = flights_fit
    rows = frame.head(50)
    want = fitted.transform(rows)
    # extra columns ignored, column order irrelevant
    shuffled = rows.with_columns(extra=pl.lit("x")).select(["extra", *reversed(rows.columns)])
    np.testing.assert_array_equal(fitted.transform(shuffled), want)
    # pandas input
    np.testing.assert_array_equal(fitted.transform(rows.to_pandas()), want)
    # numbers as strings (a JSON request) are cast
    as_text = rows.with_columns(pl.col("dep_delay", "distance").cast(pl.String))
    np.testing.assert_array_equal(fitted.transform(as_text), want)
    # empty frame
    assert fitted.transform(rows.head(0)).shape == (0, len(fitted.feature_names))
    # unseen categories
    odd = rows.with_columns(carrier=pl.lit("ZZ"), tailnum=pl.lit("N-NEVER"), dest=pl.lit("XXX"))
    out = fitted.transform(odd)
    names = fitted.feature_names
    carrier = [i for i, n in enumerate(names) if n.startswith("carrier=")]
    assert (out[:, carrier] == 0).all() and np.isfinite(out).all()
    # unseen target-encoded categories get the prior: the mean target of the training rows
    _, y, _, _ = flights_fit
    prior = np.float32(y[y >= 0].mean())
    np.testing.assert_array_equal(out[:, names.index("tailnum__te")], prior)


def test_missing_column_is_all_null_and_reported(flights_fit: FlightsFit) -> None:
    frame, _, fitted, _ = flights_fit
    rows = frame.head(20).drop("dep_delay", "tailnum")
    assert fitted.missing_columns(rows) == ["dep_delay", "tailnum"]
    out = fitted.transform(rows)
    with pytest.raises(DataError, match=r"lacks .* column\(s\): dep_delay, tailnum"):
        fitted.transform(rows, strict=True)
    names = fitted.feature_names
    nulls = frame.head(20).with_columns(
        pl.lit(None, pl.Float64).alias("dep_delay"), pl.lit(None, pl.String).alias("tailnum")
    )
    np.testing.assert_array_equal(out, fitted.transform(nulls))
    assert (out[:, names.index("dep_delay__missing")] == 1).all()
    assert (out[:, [i for i, n in enumerate(names) if n.startswith("tailnum__hash")]] == 0).all()


@pytest.mark.parametrize(
    ("fixture", "target"),
    [("breast_cancer", "diagnosis"), ("wine", "cultivar"), ("diabetes", "progression")],
)
def test_sklearn_datasets(request: pytest.FixtureRequest, fixture: str, target: str) -> None:
    frame: pl.DataFrame = request.getfixturevalue(fixture)
    kind: TaskKind = "regression" if fixture == "diabetes" else "classification"
    y, task = encode_target(frame[target].to_numpy(), kind, target=target)
    fitted, X = FeaturePipeline(FeaturesSpec(), typed(frame, target), task).fit_transform(frame, y)
    assert X.shape == (frame.height, frame.width - 1)
    assert fitted.feature_names == [c for c in frame.columns if c != target]
    assert np.isfinite(X).all()
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_array_equal(fitted.transform(frame), X)


def test_spec_drop_and_id_columns_are_not_features() -> None:
    frame = pl.DataFrame({"id": [1, 2], "a": [1.0, 2.0], "b": [3.0, 4.0]})
    pipe = FeaturePipeline(
        FeaturesSpec(drop=["b"]), {"id": "id", "a": "float", "b": "float"}, TaskInfo("regression")
    )
    fitted = pipe.fit(frame, np.zeros(2))
    assert fitted.input_columns == {"a": "float"} and fitted.feature_names == ["a"]
    assert fitted.transform(frame.select("a")).shape == (2, 1)


@pytest.mark.parametrize(
    ("frame", "y", "message"),
    [
        (pl.DataFrame({"a": [1.0]}), np.zeros(2), "expected 1 targets"),
        (pl.DataFrame({"a": []}, schema={"a": pl.Float64}), np.zeros(0), "empty frame"),
        (pl.DataFrame({"b": [1.0]}), np.zeros(1), "lacks .* a"),
        (pl.DataFrame({"a": [[1.0]]}), np.zeros(1), "cannot cast"),
    ],
)
def test_fit_errors(frame: pl.DataFrame, y: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        FeaturePipeline(FeaturesSpec(), {"a": "float"}, TaskInfo("regression")).fit(frame, y)


def test_pandas_frames_with_awkward_columns() -> None:
    pipe = FeaturePipeline(FeaturesSpec(), {"a": "float", "c": "string"}, TaskInfo("regression"))
    fitted = pipe.fit(pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"]}), np.zeros(2))
    mixed = pd.DataFrame({"a": [1, "2", None, "oops"], "c": ["x", 3, None, "y"]}, dtype=object)
    out = fitted.transform(mixed)
    assert out.shape == (4, len(fitted.feature_names)) and np.isfinite(out).all()
    with pytest.raises(DataError, match="duplicate column names: a"):
        fitted.transform(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]))
    with pytest.raises(DataSourceError, match="cannot use a 'list' as a table"):
        fitted.transform([{"a": 1.0}])
    assert fitted.transform(pl.DataFrame({"a": [1.0], "c": ["x"]}).to_arrow()).shape == (1, 3)


def test_feature_names_are_unique_even_when_columns_collide() -> None:
    frame = pl.DataFrame({"a": [1.0, None], "a__missing": [0.0, 1.0]})
    pipe = FeaturePipeline(
        FeaturesSpec(), {"a": "float", "a__missing": "float"}, TaskInfo("regression")
    )
    fitted = pipe.fit(frame, np.zeros(2))
    assert fitted.feature_names == ["a", "a__missing", "a__missing~2"]
    again = FittedFeatures.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again.feature_names == fitted.feature_names
