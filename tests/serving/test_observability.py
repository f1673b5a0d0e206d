"""Prometheus metrics with the documented names, request ids and JSON access logs."""

from __future__ import annotations

import io
import json

import polars as pl
from tests.serving.conftest import make_client


def test_metrics_names_and_labels(client, flights_rows: pl.DataFrame) -> None:
    rows = json.loads(flights_rows.head(3).write_json())
    assert client.post("/predict", json={"model": "flights", "records": rows}).status_code == 200
    assert client.post("/predict", json={"model": "flights", "records": [{}]}).status_code == 422
    text = client.get("/metrics").text
    for name in (
        'forgeml_requests_total{code="200",model="flights",route="/predict",version="1"} 1.0',
        'forgeml_requests_total{code="422",model="flights",route="/predict",version="1"} 1.0',
        "forgeml_request_duration_seconds_bucket",
        'forgeml_stage_duration_seconds_count{stage="parse"}',
        'forgeml_stage_duration_seconds_count{stage="features"}',
        'forgeml_stage_duration_seconds_count{stage="predict"}',
        "forgeml_batch_size_bucket",
        "forgeml_inflight_requests",
        'forgeml_model_info{alias="champion",model="flights",version="1"} 1.0',
        'forgeml_prediction_value_count{model="flights"} 3.0',
    ):
        assert name in text, name
    client.get("/no/such")
    assert 'route="unmatched"' in client.get("/metrics").text  # raw paths never become labels


def test_request_ids_and_access_log(served_registry, flights_rows) -> None:
    rows = json.loads(flights_rows.head(2).write_json())
    stream = io.BytesIO()
    with make_client(served_registry, ["flights"], access_stream=stream) as c:
        echoed = c.post("/predict", json={"records": rows}, headers={"X-Request-ID": "abc-123"})
        assert echoed.headers["x-request-id"] == "abc-123"
        fresh = c.get("/v2/health/ready")
        assert len(fresh.headers["x-request-id"]) == 32
        c.get("/no/such/route")
    # Lines are buffered and written at the latest when the server stops.
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    predict = next(line for line in lines if line["request_id"] == "abc-123")
    assert predict["route"] == "/predict" and predict["status"] == 200 and predict["rows"] == 2
    assert predict["model"] == "flights" and predict["version"] == "1" and predict["ms"] > 0
    assert predict["method"] == "POST" and predict["client"]
    ready = next(line for line in lines if line["route"] == "/v2/health/ready")
    assert ready["request_id"] == fresh.headers["x-request-id"] and ready["model"] is None
    unknown = next(line for line in lines if line["status"] == 404)
    assert unknown["route"] == "unmatched" and unknown["path"] == "/no/such/route"
