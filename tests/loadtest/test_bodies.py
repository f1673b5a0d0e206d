"""Request bodies from real rows (sklearn's breast cancer table), in every protocol."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from forgeml.errors import DataSourceError, UsageError
from forgeml.loadtest import ServingProtocol, encode_bodies, read_rows
from forgeml.loadtest.bodies import MAX_BODIES


@pytest.fixture(scope="module")
def rows_files(tmp_path_factory, breast_cancer: pl.DataFrame) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rows")
    csv, parquet = folder / "cancer.csv", folder / "cancer.parquet"
    breast_cancer.write_csv(csv)
    breast_cancer.write_parquet(parquet)
    return {"csv": csv, "parquet": parquet}


def _frame_of(body: dict, protocol: str) -> pd.DataFrame:
    """What a server does with the body: the rows as a DataFrame."""
    if protocol == "predict":
        return pd.DataFrame(body["records"])
    if protocol == "mlflow":
        return pd.DataFrame(**body["dataframe_split"])
    assert body["parameters"] == {"content_type": "pd"}
    return pd.DataFrame({i["name"]: i["data"] for i in body["inputs"]})


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("protocol", ["predict", "v2", "mlflow"])
def test_bodies_carry_the_rows_exactly(rows_files, breast_cancer, kind: str, protocol: str) -> None:
    features = breast_cancer.drop("diagnosis").to_pandas()
    table = read_rows(rows_files[kind])
    bodies = encode_bodies(table, protocol, batch=4, drop=["diagnosis"])
    assert len(bodies) == math.ceil(len(features) / 4) == 143
    decoded = [json.loads(b) for b in bodies]
    first = _frame_of(decoded[0], protocol)
    assert list(first.columns) == list(features.columns)
    pd.testing.assert_frame_equal(first, features.iloc[:4].reset_index(drop=True))
    # the last body wraps around to the first rows, so every body has `batch` rows
    last = _frame_of(decoded[-1], protocol)
    expected = features.iloc[[568, 0, 1, 2]].reset_index(drop=True)
    pd.testing.assert_frame_equal(last, expected)
    assert len(set(bodies)) == len(bodies)  # requests differ


def test_v2_inputs_have_the_open_inference_shape(breast_cancer) -> None:
    body = json.loads(encode_bodies(breast_cancer, "v2", batch=3)[0])
    assert set(body) == {"inputs", "parameters"}
    inputs = {i["name"]: i for i in body["inputs"]}
    assert len(inputs) == 31
    for name, item in inputs.items():
        assert set(item) == {"name", "shape", "datatype", "data"}
        assert item["shape"] == [3] and len(item["data"]) == 3
        assert item["datatype"] == ("BYTES" if name == "diagnosis" else "FP64")


def test_types_and_missing_values() -> None:
    rows = {
        "n": [1, None, 3],
        "x": [0.5, float("nan"), float("inf")],
        "flag": [True, False, None],
        "city": pl.Series(["a", "b", "a"], dtype=pl.Categorical),
        "day": [dt.date(2024, 1, 2), None, dt.date(2024, 3, 4)],
        "at": [dt.datetime(2024, 1, 2, 3, 4, 5), None, None],
    }
    body = json.loads(encode_bodies(pl.DataFrame(rows), "v2", batch=3)[0])
    got = {i["name"]: (i["datatype"], i["data"]) for i in body["inputs"]}
    assert got == {
        "n": ("INT64", [1, None, 3]),
        "x": ("FP64", [0.5, None, None]),
        "flag": ("BOOL", [True, False, None]),
        "city": ("BYTES", ["a", "b", "a"]),
        "day": ("BYTES", ["2024-01-02", None, "2024-03-04"]),
        "at": ("BYTES", ["2024-01-02T03:04:05", None, None]),
    }


def test_limits_on_bodies_and_bytes(breast_cancer) -> None:
    assert len(encode_bodies(breast_cancer, "predict", max_bodies=10)) == 10
    one = len(encode_bodies(breast_cancer, "predict", batch=50)[0])
    assert len(encode_bodies(breast_cancer, "predict", batch=50, max_bytes=3 * one)) == 3
    assert len(encode_bodies(breast_cancer, "predict", batch=50, max_bytes=1)) == 1
    assert len(encode_bodies(breast_cancer.head(2), "mlflow", batch=5)) == 1


def test_read_rows_reads_only_the_head(rows_files) -> None:
    for path in rows_files.values():
        assert read_rows(path, limit=10).num_rows == 10
        assert read_rows(path).num_rows == 569
    assert MAX_BODIES >= 1000


def test_unusable_row_files(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="rows file not found"):
        read_rows(tmp_path / "missing.csv")
    (tmp_path / "rows.json").write_text("[]")
    with pytest.raises(DataSourceError, match=r"expected a \.csv or \.parquet file"):
        read_rows(tmp_path / "rows.json")
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(DataSourceError, match="has no rows"):
        read_rows(tmp_path / "empty.csv")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataSourceError, match="cannot be read"):
        read_rows(tmp_path / "broken.parquet")


def test_bad_encoding_arguments(breast_cancer) -> None:
    with pytest.raises(UsageError, match="--batch must be at least 1"):
        encode_bodies(breast_cancer, "predict", batch=0)
    with pytest.raises(UsageError, match="unknown protocol 'grpc'"):
        encode_bodies(breast_cancer, "grpc")
    with pytest.raises(UsageError, match="no column 'target'"):
        encode_bodies(breast_cancer, "predict", drop=["target"])
    with pytest.raises(UsageError, match="every column was dropped"):
        encode_bodies(breast_cancer.select("diagnosis"), "predict", drop=["diagnosis"])


def test_protocol_paths() -> None:
    assert ServingProtocol.predict.default_path() == "/predict"
    assert ServingProtocol.mlflow.default_path("ignored") == "/invocations"
    assert ServingProtocol.v2.default_path("churn model") == "/v2/models/churn%20model/infer"
