"""Delayed ground truth: labels join served predictions; live metrics; bad feedback refused."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from tests.serving.conftest import make_client

from forgeml.monitoring.store import open_store


def _metric(page: str, name: str, **labels: str) -> float | None:
    for line in page.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def flights_with_labels(flights_sample: pl.DataFrame) -> tuple[list[dict], list[int]]:
    rows = flights_sample.drop("arr_delay", "arr_time", "air_time").filter(
        pl.col("late").is_not_null()
    )
    rows = rows.tail(60)
    labels = rows["late"].to_list()
    return json.loads(rows.drop("late").write_json()), labels


def test_labels_join_predictions_and_drive_live_metrics(
    served_registry: Path, flights_with_labels: tuple[list[dict], list[int]], tmp_path: Path
) -> None:
    records, labels = flights_with_labels
    log = tmp_path / "log"
    scores, predicted = [], []
    with make_client(served_registry, ["flights"], prediction_log=str(log)) as client:
        for i, record in enumerate(records):
            answer = client.post(
                "/predict", json={"records": [record]}, headers={"X-Request-ID": f"q{i}"}
            ).json()
            predicted.append(answer["predictions"][0])
            scores.append(answer["probabilities"][0][1])
        batch = {"feedback": [{"request_id": f"q{i}", "label": y} for i, y in enumerate(labels)]}
        response = client.post("/v2/feedback", json=batch)
        assert response.status_code == 200, response.text
        assert response.json() == {"recorded": 60, "labels": 60, "outcomes": 0}
        page = client.get("/metrics").text
    accuracy = _metric(page, "forgeml_live_metric", model="flights", metric="accuracy")
    assert accuracy is not None and math.isclose(accuracy, accuracy_score(labels, predicted))
    auc = _metric(page, "forgeml_live_metric", model="flights", metric="roc_auc")
    assert auc is not None and math.isclose(auc, roc_auc_score(labels, scores), rel_tol=1e-9)
    assert _metric(page, "forgeml_live_labels", model="flights") == 60
    assert _metric(page, "forgeml_feedback_total", model="flights", status="matched") == 60
    stored = open_store(str(log), create=False).read("feedback")
    assert stored.height == 60
    assert sorted(stored["request_id"].to_list()) == sorted(f"q{i}" for i in range(60))
    assert [json.loads(x) for x in stored.sort("request_id")["label"]] == [
        labels[int(r[1:])] for r in stored.sort("request_id")["request_id"]
    ]


def test_regression_labels_give_rmse(served_registry: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True)
    frame = bunch.frame.tail(20)
    records = json.loads(frame.drop(columns="target").to_json(orient="records"))
    with make_client(served_registry, ["diabetes"], prediction_log=str(tmp_path)) as client:
        answer = client.post("/predict", json={"records": records}, headers={"X-Request-ID": "d"})
        values = answer.json()["predictions"]
        truth = frame["target"].tolist()
        ok = client.post("/v2/feedback", json={"request_id": "d", "labels": truth})
        assert ok.status_code == 200, ok.text
        page = client.get("/metrics").text
    rmse = _metric(page, "forgeml_live_metric", model="diabetes", metric="rmse")
    assert rmse is not None
    assert math.isclose(rmse, math.sqrt(mean_squared_error(truth, values)), rel_tol=1e-9)


def test_bad_feedback_is_refused_and_records_nothing(
    served_registry: Path, flights_with_labels: tuple[list[dict], list[int]], tmp_path: Path
) -> None:
    records, _ = flights_with_labels
    with make_client(served_registry, ["flights"], prediction_log=str(tmp_path)) as client:
        client.post("/predict", json={"records": records[:1]}, headers={"X-Request-ID": "one"})
        client.post("/predict", json={"records": records[:3]}, headers={"X-Request-ID": "three"})
        cases = [
            ({"request_id": "nope", "label": 1}, 404, "unknown request id 'nope'"),
            ({"request_id": "one", "label": "maybe"}, 422, "not a class"),
            ({"request_id": "three", "label": 1}, 422, "had 3 rows"),
            ({"request_id": "three", "row": 3, "label": 1}, 422, "0 to 2"),
            ({"request_id": "one", "label": 1, "value": 1}, 400, "value goes with unit_id"),
            ({"unit_id": "u1", "value": 1}, 409, "runs no experiment"),
            ({"label": 1}, 400, "exactly one of request_id"),
            ({"request_id": "one", "labels": []}, 400, "non-empty list"),
            ({"request_id": "one", "label": {"a": 1}}, 400, "string, number or boolean"),
            ({"feedback": []}, 400, "non-empty list"),
            ([1, 2], 400, "expected an object"),
            (
                {"feedback": [{"request_id": "one", "label": 1}, {"request_id": "x", "label": 0}]},
                404,
                r"feedback\[1\]: unknown request id 'x'",
            ),
            (
                {
                    "feedback": [
                        {"request_id": "one", "label": 1},
                        {"request_id": "one", "label": 0},
                    ]
                },
                409,
                r"feedback\[1\]: request 'one' row 0 already has its label",
            ),
        ]
        for body, status, message in cases:
            response = client.post("/v2/feedback", json=body)
            assert response.status_code == status, (body, response.text)
            assert re.search(message, response.json()["error"]), (body, response.json())
        assert client.post("/v2/feedback", content=b"{", headers={
            "content-type": "application/json"}).status_code == 400  # fmt: skip
        # Nothing above was recorded: the first label for "one" is still free, once.
        assert (
            client.post("/v2/feedback", json={"request_id": "one", "label": 0}).status_code == 200
        )
        again = client.post("/v2/feedback", json={"request_id": "one", "label": 0})
        assert again.status_code == 409 and "already has its label" in again.json()["error"]
        page = client.get("/metrics").text
    assert _metric(page, "forgeml_live_labels", model="flights") == 1
    assert open_store(str(tmp_path), create=False).read("feedback").height == 1


def test_a_request_the_server_forgot_is_found_in_the_log(
    served_registry: Path, flights_with_labels: tuple[list[dict], list[int]], tmp_path: Path
) -> None:
    records, labels = flights_with_labels
    with make_client(served_registry, ["flights"], prediction_log=str(tmp_path)) as client:
        client.post("/predict", json={"records": records[:2]}, headers={"X-Request-ID": "old"})
    # A new process (a restart, another worker): only the log store knows "old".
    with make_client(served_registry, ["flights"], prediction_log=str(tmp_path)) as client:
        ok = client.post("/v2/feedback", json={"request_id": "old", "labels": labels[:2]})
        assert ok.status_code == 200, ok.text
        twice = client.post("/v2/feedback", json={"request_id": "old", "row": 1, "label": 1})
        assert twice.status_code == 409
    stored = open_store(str(tmp_path), create=False).read("feedback")
    assert sorted(stored["row"].to_list()) == [0, 1]


def test_feedback_needs_the_prediction_log(served_registry: Path) -> None:
    with make_client(served_registry, ["flights"]) as client:
        response = client.post("/v2/feedback", json={"request_id": "a", "label": 1})
    assert response.status_code == 404 and "--prediction-log" in response.json()["error"]


def test_drift_checks_fill_the_gauges(
    served_registry: Path, flights_sample: pl.DataFrame, tmp_path: Path
) -> None:
    """A shifted copy of real traffic raises the drift flag within one window; the
    unshifted traffic does not."""
    rows = flights_sample.drop("arr_delay", "arr_time", "air_time", "late").head(2_000)
    plain = json.loads(rows.write_json())
    shifted = json.loads(
        rows.with_columns(pl.col("distance") * 3 + 500, pl.lit("EV").alias("carrier")).write_json()
    )
    for traffic, expect in ((plain, False), (shifted, True)):
        with make_client(
            served_registry, ["flights"], prediction_log=str(tmp_path / str(expect)),
            drift_seconds=0, drift_rows=2_000,
        ) as client:  # fmt: skip
            for start in range(0, len(traffic), 500):
                response = client.post("/predict", json={"records": traffic[start : start + 500]})
                assert response.status_code == 200
            service = client.app.service
            client.portal.call(service.drift.check)  # one window, checked now
            page = client.get("/metrics").text
        flags = {
            feature: _metric(page, "forgeml_feature_drifted", model="flights", feature=feature)
            for feature in ("distance", "carrier")
        }
        assert flags == {"distance": float(expect), "carrier": float(expect)}, flags
        psi = _metric(
            page, "forgeml_feature_drift_score", model="flights", feature="distance", method="psi"
        )
        assert psi is not None and (psi > 0.2) is expect
        assert np.isfinite(psi)


@pytest.mark.postgres
def test_the_log_and_feedback_in_postgresql(
    served_registry: Path, flights_with_labels: tuple[list[dict], list[int]], pg_url: str
) -> None:
    """The same loop with the log store in PostgreSQL: a restarted server (or another
    worker) finds a request it never saw through the database."""
    import uuid

    records, labels = flights_with_labels
    rid = f"pg-{uuid.uuid4().hex}"
    with make_client(served_registry, ["flights"], prediction_log=pg_url) as client:
        assert client.post(
            "/predict", json={"records": records[:3]}, headers={"X-Request-ID": rid}
        ).status_code == 200  # fmt: skip
    with make_client(served_registry, ["flights"], prediction_log=pg_url) as client:
        ok = client.post("/v2/feedback", json={"request_id": rid, "labels": labels[:3]})
        assert ok.status_code == 200, ok.text
    store = open_store(pg_url, create=False)
    logged = store.find(rid)
    assert logged.height == 3 and set(logged["model"]) == {"flights"}
    labelled = store.read("feedback", model="flights").filter(pl.col("request_id") == rid)
    assert sorted(labelled["row"].to_list()) == [0, 1, 2]
    assert [json.loads(v) for v in labelled.sort("row")["label"]] == labels[:3]
    store.close()


@pytest.mark.parametrize("one_model", [False, True])
@pytest.mark.parametrize("sampled", [False, True])
def test_the_drift_window_pairs_every_row_with_its_own_score(
    one_model: bool, sampled: bool
) -> None:
    """Requests of several rows and models, shadow answers, requests logged without their
    inputs (--log-inputs) and a window smaller than the traffic: the window keeps the
    latest rows that have inputs, each with the score the model gave it."""
    from types import SimpleNamespace

    import orjson

    from forgeml.serving.driftwatch import DriftWatch

    watch = DriftWatch(None, dict, rows=100)
    binary = SimpleNamespace(name="a", task=SimpleNamespace(is_binary=True, kind="classification"))
    served_by_a: list[float] = []  # every row model "a" answered (not as a shadow), in order
    score = 0
    for batch in range(30):
        queue = SimpleNamespace(models=[], shadows=[], counts=[], rows=[], raws=[])
        for request in range(5):
            n = 1 + (batch + request) % 4
            model = "a" if request != 3 or one_model else "b"
            shadow = request == 4 and batch % 2 == 0 and not one_model
            without_inputs = sampled and (batch * 5 + request) % 7 == 2
            scores = [float(s) for s in range(score, score + n)]
            queue.models.append(model)
            queue.shadows.append(shadow)
            queue.counts.append(n)
            queue.rows += [None] * n if without_inputs else [orjson.dumps({"i": s}) for s in scores]
            queue.raws.append(np.column_stack([[-s for s in scores], scores]))
            if model == "a" and not shadow and not without_inputs:
                served_by_a += scores
            score += n
        watch.add_logged(queue)
    window = watch._windows["a"]
    rows = watch._rows(binary, (list(window.rows), list(window.raws)))
    assert [record["i"] for record, _ in rows] == served_by_a[-100:]
    assert all(record["i"] == value for record, value in rows)
