"""Bad requests get a 4xx with {"error": ...} naming the problem — never a 5xx."""

from __future__ import annotations

import json

import polars as pl
import pytest


def _rows(frame: pl.DataFrame, n: int = 2) -> list[dict]:
    return json.loads(frame.head(n).write_json())


def _error(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_malformed_json_and_content_type(client) -> None:
    _error(
        client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "malformed JSON",
    )
    _error(
        client.post("/predict", content=b"", headers={"content-type": "application/json"}),
        400,
        "empty",
    )
    _error(
        client.post("/predict", content=b"a,b\n1,2", headers={"content-type": "text/csv"}),
        415,
        "text/csv",
    )
    _error(
        client.post(
            "/invocations?model=flights", content=b"x", headers={"content-type": "application/xml"}
        ),
        415,
        "application/xml",
    )
    _error(client.post("/predict", json={"rows": []}), 400, "records")
    _error(
        client.post(
            "/predict",
            content=b'{"records": [1, NaN]}',
            headers={"content-type": "application/json"},
        ),
        400,
        "malformed JSON",
    )


def test_column_problems(client, flights_rows) -> None:
    rows = _rows(flights_rows)
    missing = [{k: v for k, v in r.items() if k != "carrier"} for r in rows]
    _error(
        client.post("/predict", json={"model": "flights", "records": missing}),
        422,
        "missing column(s) carrier",
    )
    extra = [{**r, "colour": "red"} for r in rows]
    _error(
        client.post("/predict", json={"model": "flights", "records": extra}),
        422,
        "unknown column(s) colour",
    )
    wrong = [{**rows[0]}, {**rows[1], "dep_delay": "late"}]
    _error(
        client.post("/predict", json={"model": "flights", "records": wrong}),
        422,
        "row 1, column 'dep_delay'",
        "expected a number",
    )
    nested = [{**rows[0], "carrier": {"code": "UA"}}]
    _error(
        client.post("/predict", json={"model": "flights", "records": nested}),
        422,
        "column 'carrier'",
        "single value",
    )
    when = [{**rows[0], "time_hour": "yesterday"}]
    _error(
        client.post("/predict", json={"model": "flights", "records": when}),
        422,
        "column 'time_hour'",
        "date-time",
    )
    csv_nan = "dep_delay\nnan\n"
    _error(
        client.post(
            "/invocations?model=diabetes", content=csv_nan, headers={"content-type": "text/csv"}
        ),
        422,
    )


def test_nulls_are_missing_values_not_errors(client, flights_rows) -> None:
    rows = _rows(flights_rows)
    rows[0] = dict.fromkeys(rows[0])
    r = client.post("/predict", json={"model": "flights", "records": rows})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2


def test_sizes_and_depth(client, flights_rows, served_registry) -> None:
    _error(client.post("/predict", json={"model": "flights", "records": []}), 400, "no rows")
    deep = b'{"records": ' + b"[" * 200 + b"]" * 200 + b"}"
    _error(
        client.post("/predict", content=deep, headers={"content-type": "application/json"}),
        400,
        "nested deeper",
    )
    from tests.serving.conftest import make_client

    with make_client(served_registry, ["flights"], max_batch_rows=3, max_body_bytes=4096) as small:
        rows = _rows(flights_rows, 4)
        _error(small.post("/predict", json={"records": rows}), 413, "4 rows", "3 allowed")
        huge = json.dumps({"records": _rows(flights_rows, 60)})
        _error(
            small.post("/predict", content=huge, headers={"content-type": "application/json"}),
            413,
            "4096-byte limit",
        )


def test_unknown_things(client, flights_rows) -> None:
    rows = _rows(flights_rows)
    # Found by the fuzzer: a model "name" that is an object used to crash the lookup.
    _error(
        client.post("/predict", json={"model": {}, "records": rows}),
        400,
        "model must be a model name",
    )
    _error(
        client.post("/predict", json={"model": "flights", "version": True, "records": rows}),
        400,
        "version",
    )
    _error(
        client.post("/predict", json={"model": "nope", "records": rows}),
        404,
        "model 'nope' is not served",
    )
    _error(
        client.post(
            "/v2/models/flights/versions/9/infer",
            json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]},
        ),
        404,
        "no version 9",
    )
    _error(client.post("/v2/models/flights/versions/x/infer", json={"inputs": []}), 400)
    _error(client.post("/predict", json={"records": rows}), 400, "several models are served")
    _error(client.get("/no/such/route"), 404, "unknown route /no/such/route")
    _error(client.get("/predict"), 405, "method GET is not allowed")
    _error(
        client.post(
            "/v2/models/flights/infer",
            json={
                "inputs": [{"name": "carrier", "shape": [2], "datatype": "BYTES", "data": ["UA"]}]
            },
        ),
        400,
        "shape [2]",
    )
    _error(
        client.post(
            "/v2/models/flights/infer",
            json={
                "parameters": {"content_type": "np"},
                "inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}],
            },
        ),
        400,
        "content_type",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"{}",
        b"null",
        b"1",
        b'"x"',
        b'{"records": {}}',
        b'{"records": [[]]}',
        b'{"inputs": 3}',
    ],
)
def test_shapeless_bodies(client, body: bytes) -> None:
    for route in (
        "/predict?model=flights",
        "/v2/models/flights/infer",
        "/invocations?model=flights",
    ):
        r = client.post(route, content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (route, body, r.status_code, r.text)
        assert "error" in r.json()
