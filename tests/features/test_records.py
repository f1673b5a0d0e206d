"""``transform_records`` is ``transform``: the record fast path gives, bit for bit, the rows
the Polars path gives, for every block kind and any mix of raw values."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, reject
from hypothesis import strategies as st

from forgeml.config.spec import (
    CategoricalSpec,
    DatetimeSpec,
    FeaturesSpec,
    NumericSpec,
    TaskKind,
    TextSpec,
)
from forgeml.errors import DataError
from forgeml.features import FeaturePipeline, FittedFeatures
from forgeml.features import categorical as categorical_module
from forgeml.features.datetime_parts import PARTS
from forgeml.features.numeric import NumericBlock
from forgeml.tasks.info import TaskInfo, encode_target

from .conftest import FLIGHTS_TYPES, Flights, fit, typed

TYPES: dict[str, Any] = {
    "x": "float",
    "i": "int",
    "b": "bool",
    "small": "string",
    "wide": "categorical",
    "t": "datetime",
    "d": "text",
}
SCHEMA: dict[str, Any] = {
    "x": pl.Float64,
    "i": pl.Int64,
    "b": pl.Boolean,
    "small": pl.String,
    "wide": pl.String,
    "t": pl.Datetime("us"),
    "d": pl.String,
}
TASKS = [
    TaskInfo("regression"),
    TaskInfo("classification", classes=("no", "yes")),
    TaskInfo("classification", classes=("r", "g", "b")),
]
SMALL = ["a", "b", "c", ""]
WIDE = ["JFK", "LGA", "EWR", " ", "é", "1.5", "true", "N1", "N2", "N3", "N4", "x y"]
WORDS = ["red", "fox", "lazy", "dog", "RED", "über", "7"]


def dense(matrix: Any) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else matrix


def one_row_frame(record: dict[str, Any]) -> pl.DataFrame:
    """A record as a one-row frame, each value with the dtype Polars infers for it (and a
    row number, so that an empty record is still a row)."""
    return pl.DataFrame([pl.Series("__row", [0]), *(pl.Series(k, [v]) for k, v in record.items())])


def reference(fitted: FittedFeatures, records: list[dict[str, Any]]) -> np.ndarray:
    """``transform`` of each record on its own (the contract of ``transform_records``)."""
    rows = []
    for record in records:
        try:
            frame = one_row_frame(record)
        except (TypeError, ValueError, OverflowError):
            reject()  # Polars cannot hold the value (a nonexistent zoned time, a huge int)
        rows.append(dense(fitted.transform(frame)))
    return np.vstack(rows) if rows else np.zeros((0, fitted.n_features), np.float32)


# --- fitting: every block kind, every encoder and option --------------------------------


def train_columns(n: int, text: bool) -> st.SearchStrategy[dict[str, list[Any]]]:
    def col(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
        return st.lists(st.one_of(st.none(), values), min_size=n, max_size=n)

    columns = {
        "x": col(st.floats(-1e6, 1e6)),
        "i": col(st.integers(-(2**40), 2**40)),
        "b": col(st.booleans()),
        "small": col(st.sampled_from(SMALL)),
        "wide": col(st.sampled_from(WIDE)),
        "t": col(st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2050, 1, 1))),
    }
    if text:
        columns["d"] = col(st.lists(st.sampled_from(WORDS), max_size=5).map(" ".join))
    return st.fixed_dictionaries(columns)


Case = tuple[FeaturePipeline, pl.DataFrame, np.ndarray]


@st.composite
def pipelines(draw: st.DrawFn) -> Case:
    """An unfitted pipeline with its training rows (fitted in the test: fitting inside a
    strategy would touch global random state)."""
    n = draw(st.integers(1, 25))
    text = draw(st.booleans())
    schema = {k: v for k, v in SCHEMA.items() if text or k != "d"}
    frame = pl.DataFrame(draw(train_columns(n, text)), schema=schema)
    task = draw(st.sampled_from(TASKS))
    if task.kind == "regression":
        y = np.array(draw(st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n)))
    else:
        y = np.array(draw(st.lists(st.integers(-1, task.n_classes - 1), min_size=n, max_size=n)))
    spec = FeaturesSpec(
        numeric=NumericSpec(
            impute=draw(st.sampled_from(["median", "mean", "zero"])),
            scale=draw(st.sampled_from(["standard", "minmax", "none"])),
            clip_quantiles=draw(st.sampled_from([None, (0.05, 0.95), (0.0, 1.0)])),
            missing_indicator=draw(st.booleans()),
        ),
        categorical=CategoricalSpec(
            onehot_max_cardinality=draw(st.integers(0, 4)),
            hash_buckets=draw(st.integers(2, 6)),
            min_frequency=draw(st.integers(1, 3)),
            target_smoothing=draw(st.sampled_from([0.0, 1.0, 20.0])),
            frequency=draw(st.booleans()),
            target_encoding=draw(st.booleans()),
        ),
        datetime=DatetimeSpec(
            parts=draw(st.lists(st.sampled_from(sorted(PARTS)), min_size=1, unique=True))
        ),
        text=TextSpec(min_df=1, ngram_range=(1, 2)),
    )
    types = {k: v for k, v in TYPES.items() if k in schema}
    return FeaturePipeline(spec, types, task, draw(st.integers(0, 2**16))), frame, y


# --- raw values: valid ones, wrong types, unseen categories, non-finite, odd timestamps ---

fixed_zones = st.timedeltas(-dt.timedelta(hours=23, minutes=59), dt.timedelta(hours=23, minutes=59))
timestamp_texts = st.sampled_from(
    [
        "2024-01-02",
        "2024-01-02T03:04:05Z",
        " 2024-1-2 3:04 ",
        "2024-01-02 03:04:05.123456789+05:30",
        "1999-12-31T23:59:60",
        "2024-02-30",
        "2024-01-02T03:04Z",
        "+12024-06-01",
        "2013-07-25T12:00:00",
    ]
)
raw_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.sampled_from(SMALL + WIDE + WORDS + ["unseen", "N999", "  JFK", "a "]),
    st.sampled_from(["1", " 2.5 ", "1e3", "1_000", "nan", "-inf", "true", "No", "T", "0.0"]),
    st.text(max_size=6),
    st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join),
    timestamp_texts,
    st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1)),
    st.datetimes(
        dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1), timezones=fixed_zones.map(dt.timezone)
    ),
    st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)),
    st.just([1, 2]),
)
records = st.lists(
    st.dictionaries(st.sampled_from([*TYPES, "extra", "other"]), raw_values, max_size=9),
    max_size=6,
)


@given(pipelines(), records)
def test_records_equal_transform_of_each_record(case: Case, rows: list[dict[str, Any]]) -> None:
    pipe, frame, y = case
    fitted = pipe.fit(frame, y)
    out = fitted.transform_records(rows)
    assert out.shape == (len(rows), fitted.n_features)
    assert out.dtype == np.float32
    if fitted.is_sparse:
        assert isinstance(out, sp.csr_matrix)
    else:
        assert isinstance(out, np.ndarray) and out.flags.c_contiguous
    np.testing.assert_array_equal(dense(out), reference(fitted, rows))


# One Python type per column (a client that sends consistent JSON): the batch frame built
# from the records gives the same rows, so transform_records(rows) == transform(frame).
typed_values: dict[str, tuple[st.SearchStrategy[Any], ...]] = {
    "x": (st.floats(), st.floats().map(repr)),
    "i": (st.integers(-(2**53), 2**53), st.sampled_from(["1", "x", " 7 ", "1e2"])),
    "b": (st.booleans(), st.sampled_from(["true", "F", "yes", "2", ""])),
    "small": (st.sampled_from([*SMALL, "z"]),),
    "wide": (st.sampled_from(WIDE), st.text(max_size=4)),
    "t": (timestamp_texts, st.datetimes(dt.datetime(1900, 1, 1))),
    "d": (st.lists(st.sampled_from([*WORDS, "new"]), max_size=4).map(" ".join),),
}


@st.composite
def typed_batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{} for _ in range(draw(st.integers(1, 8)))]
    for name, kinds in typed_values.items():
        values = draw(st.sampled_from(kinds))  # one kind of value per column
        for row in rows:
            if draw(st.integers(0, 4)):  # else the key is absent
                row[name] = draw(st.one_of(st.none(), values))
    return rows


@given(pipelines(), typed_batches())
def test_records_equal_transform_of_the_batch_frame(case: Case, rows: list[dict[str, Any]]) -> None:
    pipe, train, y = case
    fitted = pipe.fit(train, y)
    names = sorted({k for r in rows for k in r})
    columns = [pl.Series(k, [r.get(k) for r in rows]) for k in names]
    frame = pl.DataFrame([pl.Series("__row", range(len(rows))), *columns])
    np.testing.assert_array_equal(
        dense(fitted.transform_records(rows)), dense(fitted.transform(frame))
    )


# --- real data --------------------------------------------------------------------------


def test_flights_parity_on_5000_real_rows(flights: Flights) -> None:
    frame, y, task = flights
    spec = FeaturesSpec(datetime=DatetimeSpec(parts=["month", "dayofweek", "hour", "dayofyear"]))
    types = {**FLIGHTS_TYPES, "carrier": "categorical", "tailnum": "categorical"}
    fitted = fit(frame.head(15_000), y[:15_000], types, task, spec)
    kinds = {(d["kind"], tuple(d["encoders"])) for d in fitted.describe()}
    assert ("categorical", ("hash", "frequency", "target")) in kinds
    assert ("categorical", ("onehot",)) in kinds
    new = frame.tail(5_000)
    expected = fitted.transform(new)
    # as typed JSON would send them, and as strings (a CSV row, a form)
    np.testing.assert_array_equal(fitted.transform_records(new.to_dicts()), expected)
    as_text = new.select(pl.all().cast(pl.String)).to_dicts()
    np.testing.assert_array_equal(fitted.transform_records(as_text), expected)
    # and one record at a time, as a server calls it
    for i in range(0, 5_000, 97):
        np.testing.assert_array_equal(
            fitted.transform_records(as_text[i : i + 1]), expected[i : i + 1]
        )


@pytest.mark.parametrize(
    ("dataset", "target"),
    [("breast_cancer", "diagnosis"), ("wine", "cultivar"), ("diabetes", "progression")],
)
def test_sklearn_fixtures_parity(dataset: str, target: str, request: pytest.FixtureRequest) -> None:
    frame: pl.DataFrame = request.getfixturevalue(dataset)
    kind: TaskKind = "regression" if dataset == "diabetes" else "classification"
    y, task = encode_target(frame[target].to_numpy(), kind, target=target)
    fitted = fit(frame, y, typed(frame, target), task)
    records = frame.to_dicts()
    np.testing.assert_array_equal(fitted.transform_records(records), fitted.transform(frame))
    # as a JSON request: every value through text and back
    again = json.loads(json.dumps(records))
    np.testing.assert_array_equal(fitted.transform_records(again), fitted.transform(frame))


def test_text_block_gives_csr() -> None:
    frame = pl.DataFrame({"d": ["good food", "bad food", None], "x": [1.0, 2.0, 3.0]})
    spec = FeaturesSpec(text=TextSpec(min_df=1, ngram_range=(1, 1)))
    fitted = fit(frame, np.zeros(3), {"d": "text", "x": "float"}, TaskInfo("regression"), spec)
    out = fitted.transform_records([{"d": "good good"}, {"x": 2, "d": 5}, {}])
    assert isinstance(out, sp.csr_matrix) and out.dtype == np.float32
    probe = pl.DataFrame({"d": ["good good", "5", None], "x": [None, 2, None]})
    np.testing.assert_array_equal(out.toarray(), fitted.transform(probe).toarray())


# --- behaviour at the edges -------------------------------------------------------------


@pytest.fixture
def small_fitted() -> FittedFeatures:
    frame = pl.DataFrame({"age": [30, None, 50], "plan": ["pro", "free", "pro"]})
    return fit(
        frame, np.array([1.0, 2.0, 3.0]), {"age": "int", "plan": "string"}, TaskInfo("regression")
    )


def test_empty_and_iterables(small_fitted: FittedFeatures) -> None:
    empty = small_fitted.transform_records([])
    assert empty.shape == (0, 4) and empty.dtype == np.float32
    rows = [{"age": 41}, {"plan": "free"}]
    np.testing.assert_array_equal(
        small_fitted.transform_records(r for r in rows), small_fitted.transform_records(rows)
    )


def test_a_record_must_be_a_mapping(small_fitted: FittedFeatures) -> None:
    with pytest.raises(DataError, match="record 1 is a list"):
        small_fitted.transform_records([{"age": 1}, [1, "pro"]])  # type: ignore[list-item]


def test_reloaded_pipeline_gives_the_same_records_output(small_fitted: FittedFeatures) -> None:
    again = FittedFeatures.from_dict(json.loads(json.dumps(small_fitted.to_dict())))
    rows = [{"age": "41", "plan": "pro"}, {"age": None, "plan": "team"}, {}]
    np.testing.assert_array_equal(
        again.transform_records(rows), small_fitted.transform_records(rows)
    )


def test_unseen_bucket_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(categorical_module, "UNSEEN_CACHE", 4)
    frame = pl.DataFrame({"c": ["a", "b", "c", "d", "e"]})
    spec = FeaturesSpec(categorical=CategoricalSpec(onehot_max_cardinality=1, hash_buckets=8))
    fitted = fit(frame, np.zeros(5), {"c": "string"}, TaskInfo("regression"), spec)
    rows = [{"c": f"new{i}"} for i in range(50)]
    np.testing.assert_array_equal(
        fitted.transform_records(rows), fitted.transform(pl.DataFrame(rows))
    )
    block = fitted.blocks[0]
    assert len(block._unseen) <= 4


def test_a_row_does_not_depend_on_its_batch() -> None:
    # x / 3 and x * (1 / 3) round to different float32 values here. Polars divides a
    # one-row column but multiplies a longer one by the reciprocal, so dividing by the
    # scale made a request's features depend on how many rows came with it.
    x = 3.0495831370353703
    assert np.float32(x / 3.0) != np.float32(x * (1 / 3.0))
    block = NumericBlock("x", None, fill=0.0, center=0.0, scale=3.0, indicator=False)
    fitted = FittedFeatures([block], {"x": "float"})
    alone = fitted.transform(pl.DataFrame({"x": [x]}))
    batch = fitted.transform(pl.DataFrame({"x": [x, 1.0]}))[:1]
    np.testing.assert_array_equal(alone, batch)
    np.testing.assert_array_equal(fitted.transform_records([{"x": x}]), batch)
