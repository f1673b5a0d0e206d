"""Properties that hold for any data and any spec: JSON parity, row independence,
finite outputs, out-of-fold parity and determinism."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from forgeml.config.spec import CategoricalSpec, FeaturesSpec, NumericSpec, TextSpec
from forgeml.features import FeaturePipeline, FittedFeatures
from forgeml.tasks.info import TaskInfo

TYPES: dict[str, Any] = {
    "x": "float",
    "i": "int",
    "b": "bool",
    "small": "string",
    "wide": "categorical",
    "t": "datetime",
}
SCHEMA: dict[str, Any] = {
    "x": pl.Float64,
    "i": pl.Int64,
    "b": pl.Boolean,
    "small": pl.String,
    "wide": pl.String,
    "t": pl.Datetime("us"),
}
TASKS = [
    TaskInfo("regression"),
    TaskInfo("classification", classes=("no", "yes")),
    TaskInfo("classification", classes=("r", "g", "b")),
]


def columns(n: int) -> st.SearchStrategy[dict[str, list[Any]]]:
    def col(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
        return st.lists(st.one_of(st.none(), values), min_size=n, max_size=n)

    return st.fixed_dictionaries(
        {
            "x": col(st.one_of(st.floats(-1e6, 1e6), st.floats(width=64))),
            "i": col(st.integers(-(2**40), 2**40)),
            "b": col(st.booleans()),
            "small": col(st.sampled_from(["a", "b", "c", ""])),
            "wide": col(st.text(max_size=5)),
            "t": col(st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1))),
        }
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[FeaturePipeline, pl.DataFrame, np.ndarray, pl.DataFrame]:
    n = draw(st.integers(1, 25))
    frame = pl.DataFrame(draw(columns(n)), schema=SCHEMA)
    probe = pl.DataFrame(draw(columns(draw(st.integers(0, 10)))), schema=SCHEMA)
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
    )
    seed = draw(st.integers(0, 2**16))
    return FeaturePipeline(spec, TYPES, task, seed), frame, y, probe


def dense(matrix: Any) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else matrix


@given(cases(), st.randoms(use_true_random=False))
def test_transform_properties(case: Any, rnd: Any) -> None:
    pipe, frame, y, probe = case
    fitted, X = pipe.fit_transform(frame, y)
    both = pl.concat([frame, probe])
    out = fitted.transform(both)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert out.shape == (both.height, len(fitted.feature_names))
    assert np.isfinite(out).all() and np.isfinite(X).all()
    # JSON round trip: bit-identical, on training rows and on new values
    again = FittedFeatures.from_dict(json.loads(json.dumps(fitted.to_dict(), allow_nan=False)))
    np.testing.assert_array_equal(again.transform(both), out)
    # row independence: any subset, in any order
    rows = rnd.sample(range(both.height), rnd.randint(0, both.height))
    np.testing.assert_array_equal(fitted.transform(both[rows]), out[rows])
    # out-of-fold target encoding is the only difference from transform
    te = [j for j, name in enumerate(fitted.feature_names) if "__te" in name]
    rest = [j for j in range(out.shape[1]) if j not in te]
    np.testing.assert_array_equal(X[:, rest], out[: frame.height, rest])
    # determinism for a seed
    refit, X2 = pipe.fit_transform(frame, y)
    assert refit.to_dict() == fitted.to_dict()
    np.testing.assert_array_equal(X2, X)


words = st.lists(st.sampled_from(["red", "fox", "lazy", "dog", "RED", "über", "7"]), max_size=6)


@given(
    st.lists(st.one_of(st.none(), words.map(" ".join)), min_size=1, max_size=15),
    st.lists(st.one_of(st.none(), words.map(" ".join)), max_size=5),
    st.integers(1, 2),
    st.booleans(),
)
def test_text_properties(
    docs: list[str | None], new: list[str | None], min_df: int, lower: bool
) -> None:
    spec = FeaturesSpec(text=TextSpec(min_df=min_df, lowercase=lower, ngram_range=(1, 2)))
    frame = pl.DataFrame(
        {"d": docs, "x": [1.0] * len(docs)}, schema={"d": pl.String, "x": pl.Float64}
    )
    pipe = FeaturePipeline(spec, {"d": "text", "x": "float"}, TaskInfo("regression"))
    fitted, X = pipe.fit_transform(frame, np.zeros(len(docs)))
    probe = pl.concat([frame, pl.DataFrame({"d": new, "x": [2.0] * len(new)}, schema=frame.schema)])
    out = fitted.transform(probe)
    assert isinstance(out, sp.csr_matrix) and out.dtype == np.float32
    again = FittedFeatures.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_array_equal(dense(again.transform(probe)), dense(out))
    np.testing.assert_array_equal(dense(X), dense(out)[: len(docs)])
    np.testing.assert_array_equal(dense(fitted.transform(probe[::-1])), dense(out)[::-1])
