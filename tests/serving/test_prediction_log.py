"""Every served prediction lands in the prediction log, off the request path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.serving.conftest import make_client

from forgeml.errors import ConfigError
from forgeml.monitoring.store import open_store
from forgeml.serving.predlog import PredictionLog, _json_values

JSON_SCALARS = st.one_of(
    st.booleans(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False), st.sampled_from(["a", "1"]),
    st.none(), st.lists(st.integers(0, 2), max_size=2),
)  # fmt: skip


@given(st.lists(JSON_SCALARS, max_size=30))
def test_labels_encode_as_json_one_by_one_would(values: list[object]) -> None:
    """Distinct labels are encoded once and reused: ``True`` (== 1) still encodes as
    ``true``, ``1.0`` as ``1.0``, unhashable lists one by one."""
    assert _json_values(values) == [orjson.dumps(v) for v in values]


def test_served_predictions_are_logged_with_their_request_ids(
    served_registry: Path, flights_rows: pl.DataFrame, tmp_path: Path
) -> None:
    rows = json.loads(flights_rows.head(5).write_json())
    folder = tmp_path / "log"
    answers = []
    with make_client(served_registry, ["flights"], prediction_log=str(folder)) as client:
        for i in range(4):
            response = client.post(
                "/predict", json={"records": rows[: i + 1]}, headers={"X-Request-ID": f"r{i}"}
            )
            assert response.status_code == 200
            answers.append(response.json())
        assert client.post("/predict", json={"records": [{}]}).status_code == 422
    # Written at the latest when the server stops.
    logged = open_store(str(folder), create=False).read("predictions")
    assert logged.height == 1 + 2 + 3 + 4  # rows, not requests; the 422 is not logged
    assert sorted(set(logged["request_id"])) == ["r0", "r1", "r2", "r3"]
    last = logged.filter(pl.col("request_id") == "r3").sort("row")
    assert last["score"].to_list() == [p[1] for p in answers[3]["probabilities"]]
    assert [json.loads(p) for p in last["prediction"]] == answers[3]["predictions"]
    assert json.loads(last["inputs"][0]) == rows[0]
    assert set(logged["model"]) == {"flights"} and set(logged["version"]) == {"1"}
    assert (logged["latency_ms"] > 0).all()
    assert not list(folder.rglob(".*.tmp"))  # no half-written file left


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_a_fraction_of_requests_keeps_its_inputs_and_every_prediction_is_logged(
    tmp_path: Path, fraction: float
) -> None:
    log = PredictionLog(tmp_path, input_fraction=fraction, seed=11, max_queue_rows=10**6)
    requests = 2000
    for i in range(requests):
        n = 1 + i % 3
        records = [{"x": i, "k": k} for k in range(n)]
        log.record(
            f"r{i}", "m", 1, records, np.full(n, 0.5), lambda raw: (raw.tolist(), raw.tolist()), 1.0
        )
    log.flush()
    logged = open_store(str(tmp_path), create=False).read("predictions")
    assert logged.height == sum(1 + i % 3 for i in range(requests)) and log.dropped == 0
    per_request = logged.group_by("request_id").agg(
        kept=pl.col("inputs").is_not_null().all(), missing=pl.col("inputs").is_null().all()
    )
    assert (per_request["kept"] | per_request["missing"]).all()  # a whole request, or none of it
    share = per_request["kept"].mean()
    assert share == fraction if fraction in (0.0, 1.0) else abs(share - fraction) < 0.04
    for row in logged.filter(pl.col("inputs").is_not_null()).head(50).iter_rows(named=True):
        assert json.loads(row["inputs"]) == {"x": int(row["request_id"][1:]), "k": row["row"]}


def test_a_fraction_outside_0_to_1_is_a_config_error(tmp_path: Path, cli) -> None:
    with pytest.raises(ConfigError, match=r"--log-inputs must be between 0 and 1, not 1\.5"):
        PredictionLog(tmp_path, input_fraction=1.5)
    result = cli("serve", "flights@champion", "--log-inputs", "-0.1")
    assert result.code == 2 and "--log-inputs" in result.err


def test_the_server_logs_inputs_for_the_configured_fraction(
    served_registry: Path, flights_rows: pl.DataFrame, tmp_path: Path
) -> None:
    rows = json.loads(flights_rows.head(1).write_json())
    with make_client(
        served_registry, ["flights"], prediction_log=str(tmp_path), log_inputs=0.0
    ) as client:
        for _ in range(5):
            assert client.post("/predict", json={"records": rows}).status_code == 200
    logged = open_store(str(tmp_path), create=False).read("predictions")
    assert logged.height == 5 and logged["inputs"].null_count() == 5


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, max_queue_rows=5)
    row = {"x": 1}
    for i in range(4):
        log.record(
            request_id=f"r{i}", model="m", version=1, records=[row, row],
            raw=np.array([0.1, 0.9]), decode=lambda raw: (raw.tolist(), raw.tolist()),
            latency_ms=1.0,
        )  # fmt: skip
    assert log.dropped == 4  # the third and fourth requests did not fit
    log.flush()
    assert log.written == 4 and log.files == 1


def test_the_written_and_dropped_counts_are_exported(served_registry: Path, tmp_path: Path) -> None:
    with make_client(served_registry, ["flights"], prediction_log=str(tmp_path)) as client:
        client.app.service.predlog.dropped = 7
        client.app.service.predlog.written = 1234
        page = client.get("/metrics").text
    assert "forgeml_prediction_log_dropped_total 7.0" in page
    assert "forgeml_prediction_log_written_total 1234.0" in page


def test_an_unusable_log_folder_is_a_start_up_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="--prediction-log"):
        PredictionLog(blocker / "log")


def test_closing_while_a_flush_is_due_finishes_and_writes_everything(tmp_path: Path) -> None:
    """SIGTERM under load: the writer's wake-up is set (a flush is due) at the moment the
    log closes. Close must still finish — it once looped for ever — and write every row."""
    import asyncio

    async def run() -> int:
        log = PredictionLog(tmp_path, flush_rows=10)
        log.start()
        await asyncio.sleep(0.05)  # the writer loop is now waiting for its wake-up
        row = {"x": 1}
        for i in range(50):  # past flush_rows: the wake-up is set, the loop has not run
            log.record(
                request_id=f"r{i}", model="m", version=1, records=[row], raw=np.array([0.5]),
                decode=lambda raw: (raw.tolist(), raw.tolist()), latency_ms=1.0,
            )  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(log.close(), timeout=10)
        # Not a speed check: a close that hangs is only ended by the 10 s timeout above.
        assert loop.time() - started < 8, "close() hung until it was timed out"
        return log.written

    assert asyncio.run(run()) == 50
    assert open_store(str(tmp_path), create=False).read("predictions").height == 50


def test_logging_a_request_leaves_no_object_for_the_garbage_collector(tmp_path: Path) -> None:
    """Queued requests and the recent-request index hold only untracked objects (bytes,
    strings, numbers, arrays) in preallocated or growing lists: a tuple per request made
    a saturated server collect garbage dozens of times more often."""
    import gc

    from forgeml.serving.feedback import RecentRequests

    log = PredictionLog(tmp_path, max_queue_rows=10_000)
    recent = RecentRequests(capacity=500)
    records = [{"x": 1.5, "carrier": "UA", "when": "2013-01-01"}]
    raws = [np.array([[0.2, 0.8]]) for _ in range(2_000)]
    ids = [f"r{i}" for i in range(2_000)]

    def decode(raw: np.ndarray) -> tuple[list, list]:
        return raw.argmax(axis=1).tolist(), raw[:, 1].tolist()

    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for request_id, raw in zip(ids, raws, strict=True):
            log.record(request_id, "m", 1, records, raw, decode, 1.0)
            recent.add(request_id, "m", 1, None, raw)
        grown = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert grown < 20, f"{grown} tracked objects left behind by 2,000 logged requests"
    assert len(recent) == 500 and recent.get("r1999") is not None and recent.get("r0") is None
    log.flush()
    written = open_store(str(tmp_path), create=False).read("predictions")
    assert written.height == 2_000 and written["score"].to_list() == [0.8] * 2_000


def test_a_failing_take_hook_loses_no_logged_row(tmp_path: Path, caplog) -> None:
    """The hook that feeds the drift window runs when the log takes its queue; if it
    fails, the rows are still written (and the failure is logged)."""
    log = PredictionLog(tmp_path)

    def broken(queue: object) -> None:
        raise RuntimeError("drift window bug")

    log.on_take = broken
    for i in range(3):
        log.record(f"r{i}", "m", 1, [{"x": i}], np.array([[0.4, 0.6]]), lambda raw: (raw.argmax(axis=1).tolist(), raw[:, 1].tolist()), 2.0)  # fmt: skip
    log.flush()
    assert open_store(str(tmp_path), create=False).read("predictions").height == 3
    assert "on_take hook failed" in caplog.text
