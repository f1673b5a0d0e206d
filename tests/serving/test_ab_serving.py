"""A/B experiments through a real app: sticky variants, shadow mode, outcomes, conclusion."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import polars as pl
import pytest
from tests.serving.conftest import ADMIN_KEY, make_client

from forgeml.experiments import TrafficSplit
from forgeml.monitoring.store import open_store
from forgeml.registry import Registry

ADMIN = {"X-API-Key": ADMIN_KEY}
ENV = {"FORGEML_ADMIN_KEY": ADMIN_KEY}


@pytest.fixture
def registry(served_registry: Path, tmp_path: Path) -> Path:
    """A private copy: experiments and promotions must not touch the shared registry."""
    copy = tmp_path / "reg"
    shutil.copytree(served_registry, copy, ignore=shutil.ignore_patterns("logs"))
    return copy


@pytest.fixture
def record(flights_rows: pl.DataFrame) -> dict:
    return json.loads(flights_rows.head(1).write_json())[0]


def _start(client, **fields) -> dict:
    body = {"model": "flights", "variants": {"champion": 0.5, "challenger": 0.5},
            "unit": "user_id", "metric": "converted", **fields}  # fmt: skip
    response = client.post("/admin/experiments", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["experiment"]


def test_units_get_sticky_variants_and_outcomes_are_logged(
    registry: Path, record: dict, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    with make_client(registry, ["flights@champion"], env=ENV, prediction_log=str(log)) as client:
        experiment = _start(client, name="sticky")
        split = TrafficSplit.parse("sticky", "champion:0.5,challenger:0.5")
        seen: dict[str, str] = {}
        for i in range(120):
            unit = f"user-{i}"
            response = client.post(
                "/predict", json={"records": [record]}, headers={"X-Forgeml-Unit": unit}
            )
            assert response.status_code == 200, response.text
            variant = response.headers["X-Forgeml-Variant"]
            assert variant == split.assign(unit)
            version = experiment["versions"][variant]
            assert response.headers["X-Forgeml-Model-Version"] == str(version)
            seen[unit] = variant
        # The unit may also come as a column the model does not read: dropped, not a 422.
        again = client.post("/predict", json={"records": [{**record, "user_id": "user-7"}]})
        assert again.status_code == 200, again.text
        assert again.headers["X-Forgeml-Variant"] == seen["user-7"]
        # Without a unit: the control answers, and it is not an exposure.
        plain = client.post("/predict", json={"records": [record]})
        assert plain.status_code == 200 and "X-Forgeml-Variant" not in plain.headers
        outcome = client.post(
            "/v2/feedback", json={"unit_id": "user-3", "value": 1, "event_id": "e1"}
        )
        assert outcome.status_code == 200, outcome.text
        listed = client.get("/admin/experiments", headers=ADMIN).json()["experiments"]
        assert listed[0]["name"] == "sticky" and listed[0]["exposed_units_here"] == 120
    assert set(seen.values()) == {"champion", "challenger"}
    store = open_store(str(log), create=False)
    logged = store.read("predictions")
    exposures = logged.filter(pl.col("variant").is_not_null())
    assert exposures.height == 121 and exposures["unit"].null_count() == 0
    assert logged.filter(pl.col("variant").is_null()).height == 1
    feedback = store.read("feedback")
    assert feedback.select("unit", "experiment", "event_id").row(0) == ("user-3", "sticky", "e1")


def test_shadow_mode_answers_with_the_control_and_logs_the_challenger(
    registry: Path, record: dict, tmp_path: Path
) -> None:
    with make_client(
        registry, ["flights@champion"], env=ENV, prediction_log=str(tmp_path)
    ) as client:
        experiment = _start(client, shadow=True, variants={"champion": 0.9, "challenger": 0.1})
        for i in range(20):
            response = client.post(
                "/predict", json={"records": [record]}, headers={"X-Forgeml-Unit": f"u{i}"}
            )
            assert response.headers["X-Forgeml-Model-Version"] == str(
                experiment["versions"]["champion"]
            )
    logged = open_store(str(tmp_path), create=False).read("predictions")
    shadow = logged.filter(pl.col("shadow"))
    assert shadow.height == 20
    assert set(shadow["variant"]) == {"challenger"}
    assert set(shadow["version"]) == {str(experiment["versions"]["challenger"])}
    assert logged.filter(~pl.col("shadow")).height == 20


def test_bad_experiments_are_refused(registry: Path) -> None:
    with make_client(registry, ["flights@champion"], env=ENV) as client:
        base = {"model": "flights", "unit": "user_id", "metric": "converted"}
        cases = [
            ({**base, "variants": {"champion": 0.5, "challenger": 0.6}}, 400, "sum to 1"),
            ({**base, "variants": {"champion": 0.5, "nosuch": 0.5}}, 404, "nosuch"),
            ({**base, "variants": "champion:0.9"}, 400, "at least 2 variants"),
            ({**base, "model": "ghost", "variants": {"a": 0.5, "b": 0.5}}, 404, "ghost"),
            ({"model": "flights", "variants": {"champion": 0.5, "challenger": 0.5}}, 400, "unit"),
        ]
        for body, status, text in cases:
            response = client.post("/admin/experiments", json=body, headers=ADMIN)
            assert response.status_code == status, (body, response.text)
            assert text in response.json()["error"], response.json()
        anonymous = client.post("/admin/experiments", json=cases[0][0])
        assert anonymous.status_code == 401
        _start(client, name="first")
        second = client.post(
            "/admin/experiments",
            json={**base, "variants": {"champion": 0.5, "challenger": 0.5}},
            headers=ADMIN,
        )
        assert second.status_code == 409 and "first" in second.json()["error"]
        nothing = client.post(
            "/admin/experiments/flights/conclude", json={"promote": "x"}, headers=ADMIN
        )
        assert nothing.status_code in (400, 404, 409)


def test_concluding_promotes_atomically_without_dropping_requests(
    registry: Path, record: dict
) -> None:
    with make_client(registry, ["flights@champion"], env=ENV, poll_seconds=None) as client:
        experiment = _start(client)
        challenger = experiment["versions"]["challenger"]
        failures: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            i = 0
            while not stop.is_set():
                response = client.post(
                    "/predict", json={"records": [record]}, headers={"X-Forgeml-Unit": f"t{i}"}
                )
                if response.status_code != 200:
                    failures.append(response.status_code)
                i += 1

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            done = client.post(
                "/admin/experiments/flights/conclude", json={"promote": "challenger"}, headers=ADMIN
            )
        finally:
            stop.set()
            worker.join()
        assert done.status_code == 200, done.text
        assert done.json()["alias"] == {
            "alias": "champion", "from": experiment["versions"]["champion"], "to": challenger
        }  # fmt: skip
        after = client.post("/predict", json={"records": [record]}, headers={"X-Forgeml-Unit": "z"})
        assert after.headers["X-Forgeml-Model-Version"] == str(challenger)
        assert "X-Forgeml-Variant" not in after.headers  # the experiment is over
    assert failures == []
    with Registry.open(str(registry), create=False) as reg:
        assert reg.resolve("flights@champion").version == challenger


def test_the_whole_loop_with_a_real_server_and_the_cli(registry: Path, record: dict, cli) -> None:
    """forgeml serve (logging to the registry's log by default) + forgeml ab start, status,
    conclude: the server follows the registry through /admin/reload."""
    import httpx
    from tests.serving.test_server import Server

    reg = str(registry)
    server = Server(registry, "flights@champion")
    try:
        started = cli(
            "ab", "start", "flights", "--variants", "champion:0.5,challenger:0.5",
            "--unit", "user_id", "--metric", "converted", "--name", "loop", "--registry", reg,
        )  # fmt: skip
        assert started.code == 0, started.err
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/admin/reload", headers=ADMIN).status_code == 200
            split = TrafficSplit.parse("loop", "champion:0.5,challenger:0.5")
            for i in range(200):
                unit = f"user-{i}"
                answer = client.post("/predict", json={"records": [{**record, "user_id": unit}]})
                assert answer.status_code == 200, answer.text
                assert answer.headers["X-Forgeml-Variant"] == split.assign(unit)
                if i % 4 == 0:  # a quarter of the users convert
                    ok = client.post("/v2/feedback", json={"unit_id": unit, "value": True})
                    assert ok.status_code == 200, ok.text
        server.stop()  # the log is complete once the server has stopped
        status = cli("ab", "status", "flights", "--registry", reg, "-O", "json")
        assert status.code == 0, status.err
        data = json.loads(status.out)
        exposed = {v["name"]: v["exposures"] for v in data["variants"]}
        assert sum(exposed.values()) == 200
        assert exposed == {
            name: sum(1 for i in range(200) if split.assign(f"user-{i}") == name)
            for name in ("champion", "challenger")
        }
        assert data["outcomes"]["counted"] == 50
        done = cli("ab", "conclude", "flights", "--promote", "challenger", "--registry", reg)
        assert done.code == 0, done.err
    finally:
        server.stop()
    with Registry.open(reg, create=False) as opened:
        assert opened.resolve("flights@champion").version == 2
