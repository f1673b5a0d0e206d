"""Every protocol answers exactly what ``forgeml predict`` writes for the same rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from forgeml.workflow.predict import predict_file


@pytest.fixture(scope="module")
def batch_scored(
    served_registry: Path, flights_rows: pl.DataFrame, tmp_path_factory
) -> pl.DataFrame:
    folder = tmp_path_factory.mktemp("scored")
    rows = flights_rows.head(40)
    rows.write_parquet(folder / "rows.parquet")
    predict_file(
        "flights@champion",
        str(folder / "rows.parquet"),
        folder / "out.parquet",
        registry=str(served_registry),
    )
    return pl.read_parquet(folder / "out.parquet")


def _json_rows(frame: pl.DataFrame) -> list[dict]:
    return json.loads(frame.write_json())


def test_predict_route(client, flights_rows, batch_scored) -> None:
    rows = _json_rows(flights_rows.head(40))
    r = client.post("/predict", json={"model": "flights", "records": rows})
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["version"]) == ("flights", 1)
    assert r.headers["x-forgeml-model"] == "flights" and r.headers["x-forgeml-model-version"] == "1"
    np.testing.assert_allclose(
        np.array(body["probabilities"])[:, 1], batch_scored["proba_1"].to_numpy()
    )
    assert body["predictions"] == batch_scored["prediction"].to_list()


def test_v2_infer_one_input_per_column(client, flights_rows, batch_scored) -> None:
    rows = flights_rows.head(40)
    kinds = {pl.Int64: "INT64", pl.Float64: "FP64", pl.String: "BYTES"}
    payload = {
        "id": "req-1",
        "parameters": {"content_type": "pd"},
        "inputs": [
            {
                "name": c,
                "shape": [rows.height],
                "datatype": kinds.get(rows.schema[c], "BYTES"),
                "data": rows[c].to_list(),
            }
            for c in rows.columns
        ],
    }
    r = client.post("/v2/models/flights/infer", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["model_name"] == "flights" and body["model_version"] == "1" and body["id"] == "req-1"
    )
    out = {o["name"]: o for o in body["outputs"]}
    assert out["proba_1"]["datatype"] == "FP64" and out["proba_1"]["shape"] == [40]
    np.testing.assert_allclose(out["proba_1"]["data"], batch_scored["proba_1"].to_numpy())
    assert out["prediction"]["data"] == batch_scored["prediction"].to_list()
    versioned = client.post(
        "/v2/models/flights/versions/1/infer", json={**payload, "outputs": [{"name": "proba_1"}]}
    )
    assert [o["name"] for o in versioned.json()["outputs"]] == ["proba_1"]


@pytest.mark.parametrize(
    "shape",
    ["dataframe_split", "dataframe_records", "instances", "instances_lists", "inputs", "csv"],
)
def test_mlflow_invocations(client, flights_rows, batch_scored, shape: str) -> None:
    rows = flights_rows.head(40)
    records = _json_rows(rows)
    schema = client.get("/v2/models/flights").json()["inputs"]
    columns = [i["name"] for i in schema]
    params = {"model": "flights"}
    if shape == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(rows.columns)
        for rec in records:
            writer.writerow(["" if rec[c] is None else rec[c] for c in rows.columns])
        r = client.post(
            "/invocations",
            params=params,
            content=buffer.getvalue(),
            headers={"content-type": "text/csv"},
        )
    else:
        payload = {
            "dataframe_split": {
                "columns": rows.columns,
                "data": [list(rec.values()) for rec in records],
            },
            "dataframe_records": records,
            "instances": records,
            "instances_lists": [[rec[c] for c in columns] for rec in records],
            "inputs": {c: rows[c].to_list() for c in rows.columns},
        }[shape]
        key = "instances" if shape == "instances_lists" else shape
        r = client.post("/invocations", params=params, json={key: payload})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    np.testing.assert_allclose(
        [p["proba_1"] for p in predictions], batch_scored["proba_1"].to_numpy()
    )
    assert [p["prediction"] for p in predictions] == batch_scored["prediction"].to_list()


def test_regression_model_and_metadata(client, diabetes) -> None:
    rows = _json_rows(diabetes.drop("progression").head(5))
    r = client.post("/predict", json={"model": "diabetes", "records": rows})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 5
    assert all(isinstance(v, float) for v in r.json()["predictions"])
    meta = client.get("/v2/models/diabetes").json()
    assert meta["parameters"]["task"] == "regression" and len(meta["inputs"]) == 10
    server = client.get("/v2").json()
    assert server["name"] == "forgeml" and {m["name"] for m in server["models"]} == {
        "flights",
        "diabetes",
    }
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/ping").status_code == 200 and client.get("/health").status_code == 200
    assert client.get("/v2/models/flights/versions/1/ready").json()["ready"] is True


def test_training_columns_the_model_ignores_are_accepted(client, flights_sample) -> None:
    # rownames (an id) and late (the target) were in the training data: known, ignored.
    rows = _json_rows(flights_sample.drop("arr_delay", "arr_time", "air_time").head(3))
    r = client.post("/predict", json={"model": "flights", "records": rows})
    assert r.status_code == 200, r.text
