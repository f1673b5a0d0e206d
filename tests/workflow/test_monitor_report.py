"""``forgeml monitor report`` end to end: a real flights model in a real registry, its
served traffic written to a real log store (synthetic timing, real rows and the model's
real predictions), real labels as feedback.

The first hour of the window carries unseen flights as they come; the second the same kind
of flights with distances scaled by 1.6 and the largest airline gone. The report flags the
second hour only, its live metrics equal scikit-learn's on the joined rows, and every
feedback row is accounted for.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sklearn import metrics as skm
from tests.workflow.conftest import small_spec

import forgeml
from forgeml.errors import DataError, ModelNotFound, UsageError
from forgeml.monitoring import PREDICTION_COLUMN
from forgeml.monitoring.store import open_store
from forgeml.workflow.monitor import logged_frame, monitor_report

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = timedelta(hours=1)
LEAKS = ("arr_delay", "arr_time", "air_time")


@pytest.fixture(scope="module")
def flights(flights_sample: pl.DataFrame) -> pl.DataFrame:
    """Real flights with a known label; the tail number (an identifier) left out."""
    return flights_sample.drop(*LEAKS, "tailnum").filter(pl.col("late").is_not_null())


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, flights: pl.DataFrame) -> Path:
    """``flights`` v1 and v2, trained on the first 3,000 rows."""
    folder = tmp_path_factory.mktemp("monitor") / "reg"
    data = flights.head(3_000)
    for seed in (0, 1):
        spec = small_spec(
            None,
            folder,
            models={"candidates": ["lightgbm"]},
            tuning={"budget": {"trials": 1}},
            seed=seed,
        )
        forgeml.run(spec, data=data)
    return folder


def _served(flights: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Unseen rows: as they come, and shifted (distance x 1.6, the largest airline gone)."""
    top = flights.head(3_000)["carrier"].mode().sort().to_list()[0]
    fair = flights.slice(3_000, 1_500)
    shifted = (
        flights.slice(4_500, 2_000)
        .filter(pl.col("carrier") != top)
        .with_columns(pl.col("distance") * 1.6)
        .head(1_200)
    )
    return fair, shifted


def _log_table(
    model: Any, rows: pl.DataFrame, *, version: str, start: datetime, prefix: str,
    per_request: int = 1, shadow: bool = False, variant: str | None = None,
) -> pa.Table:  # fmt: skip
    """What forgeml serve logs for ``rows``: one request per ``per_request`` rows, spread
    evenly over the 45 minutes from ``start``."""
    features = rows.drop("late")
    proba = model.predict_proba(features)[:, 1]
    labels = model.predict(features)
    n = rows.height
    requests = np.arange(n) // per_request
    seconds = requests * (2_700 / max(requests[-1], 1))
    latency = np.random.default_rng(len(prefix)).gamma(2.0, 4.0, requests[-1] + 1)[requests]
    return pa.table(
        {
            "request_id": [f"{prefix}-{r}" for r in requests],
            "ts": pa.array(
                [start + timedelta(seconds=float(s)) for s in seconds], pa.timestamp("us", "UTC")
            ),
            "model": ["flights"] * n,
            "version": [version] * n,
            "variant": [variant] * n,
            "shadow": [shadow] * n,
            "row": pa.array(np.arange(n) % per_request, pa.int32()),
            "inputs": features.write_ndjson().splitlines(),
            "prediction": [json.dumps(int(v)) for v in labels],
            "score": proba.tolist(),
            "latency_ms": latency.tolist(),
        }
    )


@pytest.fixture(scope="module")
def traffic(registry: Path, flights: pl.DataFrame) -> dict[str, Any]:
    """Two hours of traffic in the registry's default log store, with feedback and
    dropped-row events."""
    v1 = forgeml.load_model("flights@1", registry=str(registry))
    v2 = forgeml.load_model("flights@2", registry=str(registry))
    fair, shifted = _served(flights)
    # From 10 minutes into each hour: the CLI's window (its "now" is later) holds them too.
    first, second = NOW - 2 * HOUR + timedelta(minutes=10), NOW - HOUR + timedelta(minutes=10)
    store = open_store(str(registry / "logs"))
    tables = {
        "fair": _log_table(v1, fair, version="1", start=first, prefix="a"),
        "shifted": _log_table(v2, shifted, version="2", start=second, prefix="b", per_request=3),
        "shadow": _log_table(v2, fair.head(100), version="2", start=first, prefix="a", shadow=True),
        "old": _log_table(v1, fair.head(50), version="1", start=NOW - 5 * HOUR, prefix="old"),
    }
    for table in tables.values():
        store.write("predictions", table)
    # Labels: every third prediction of each hour, then noise to account for.
    labelled = []
    for name, rows in (("fair", fair), ("shifted", shifted)):
        table = tables[name]
        for i in range(0, rows.height, 3):
            labelled.append((table["request_id"][i].as_py(), table["row"][i].as_py(),
                             rows["late"][i]))  # fmt: skip
    received = NOW - timedelta(minutes=10)
    feedback = [(rid, row, label, received) for rid, row, label in labelled]
    feedback += [(rid, row, 1 - label, received + timedelta(minutes=1))  # later: ignored
                 for rid, row, label in labelled[:25]]  # fmt: skip
    feedback += [("old-0", 0, 1, received), ("nobody", 0, 1, received)]  # unmatched
    store.write(
        "feedback",
        pa.table(
            {
                "ts": pa.array([f[3] for f in feedback], pa.timestamp("us", "UTC")),
                "model": ["flights"] * len(feedback),
                "request_id": [f[0] for f in feedback],
                "row": pa.array([f[1] for f in feedback], pa.int32()),
                "label": [json.dumps(f[2]) for f in feedback],
            }
        ),
    )
    store.write(
        "feedback",
        pa.table({"ts": pa.array([received] * 4, pa.timestamp("us", "UTC")),
                  "model": ["flights"] * 4, "unit": ["u1", "u2", "u3", "u4"],
                  "label": ["1"] * 4}),
    )  # fmt: skip
    store.write(
        "events",
        pa.table(
            {
                "ts": pa.array([NOW - HOUR / 2] * 3 + [NOW - 3 * HOUR], pa.timestamp("us", "UTC")),
                "model": ["flights", None, "other", "flights"],
                "kind": ["log_dropped"] * 4,
                "count": [7, 3, 100, 1_000],
            }
        ),
    )
    store.close()
    return {"tables": tables, "labelled": labelled, "fair": fair, "shifted": shifted}


def test_a_shifted_hour_drifts_and_the_hour_before_it_does_not(registry, traffic) -> None:
    report = monitor_report("flights", registry=str(registry), window="2h", buckets=2, now=NOW)
    first, second = report.edges[0], report.edges[1]
    drifted = {(r["bucket"], r["feature"]) for r in report.drift_over_time if r["drifted"]}
    assert {b for b, _ in drifted} == {second}
    assert {"distance", "carrier"} <= {f for _, f in drifted}
    # The unshifted hour was checked, column by column, and passed; its scores came from
    # version 1, so they are not held against version 2's predictions.
    checked = {r["feature"] for r in report.drift_over_time if r["bucket"] == first}
    assert {"distance", "carrier", "dep_delay", "dest"} <= checked
    assert PREDICTION_COLUMN not in checked
    assert any(r["feature"] == PREDICTION_COLUMN for r in report.drift_over_time)
    # Over the whole window the shifted columns drift too.
    assert {"distance", "carrier"} <= set(report.drifted)
    assert report.distributions[0]["feature"] in report.drifted
    assert report.distributions[-1]["feature"] == PREDICTION_COLUMN


def test_the_report_counts_traffic_versions_drops_and_feedback(registry, traffic) -> None:
    report = monitor_report("flights", registry=str(registry), window="2h", buckets=4, now=NOW)
    fair, shifted = traffic["fair"], traffic["shifted"]
    assert report.rows == fair.height + shifted.height  # not the shadow, not the old
    assert report.shadow_rows == 100
    assert report.requests == fair.height + -(-shifted.height // 3)
    assert report.versions == ["1", "2"] and report.profile_version == 2
    assert any("2 versions served" in note for note in report.notes)
    assert {(t["version"], t["rows"]) for t in report.traffic} == {
        ("1", fair.height),
        ("2", shifted.height),
    }
    assert report.dropped == 10  # this model's and the server-wide ones in the window
    assert sum(v["requests"] for v in report.volume) == report.requests
    assert [v["bucket"] for v in report.volume] == report.edges[:-1]
    n = len(traffic["labelled"])
    assert report.feedback == {
        "received": n + 25 + 2 + 4,
        "joined": n,
        "duplicates": 25,
        "unmatched": 2,
        "unkeyed": 4,
    }


def test_live_metrics_equal_sklearn_on_the_joined_rows(registry, traffic) -> None:
    report = monitor_report("flights", registry=str(registry), window="2h", buckets=2, now=NOW)
    tables = traffic["tables"]
    scores = {
        (rid, row): (json.loads(pred), score)
        for name in ("fair", "shifted")
        for rid, row, pred, score in zip(
            *(tables[name][c].to_pylist() for c in ("request_id", "row", "prediction", "score")),
            strict=True,
        )
    }
    y = [label for _, _, label in traffic["labelled"]]  # the first label of each row
    pred = [scores[(rid, row)][0] for rid, row, _ in traffic["labelled"]]
    proba = [scores[(rid, row)][1] for rid, row, _ in traffic["labelled"]]
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, zero_division=0),
        "recall": skm.recall_score(y, pred, zero_division=0),
        "f1": skm.f1_score(y, pred, zero_division=0),
        "roc_auc": skm.roc_auc_score(y, proba),
        "log_loss": skm.log_loss(y, proba),
    }
    assert report.live_metrics == pytest.approx(expected, rel=1e-9)
    assert set(report.test_metrics) == {"accuracy", "roc_auc", "log_loss"}
    per_bucket = pl.DataFrame(report.live_over_time)
    assert per_bucket["rows"].unique().sum() == len(y)


def test_a_pinned_version_reports_its_own_traffic_and_profile(registry, traffic) -> None:
    report = monitor_report("flights@1", registry=str(registry), window="2h", now=NOW)
    assert report.versions == ["1"] and report.profile_version == 1
    assert report.rows == traffic["fair"].height
    assert not any("versions served" in note for note in report.notes)
    # Only the fair hour was served by version 1: nothing drifts, its scores included.
    assert report.drifted == []
    assert any(f["feature"] == PREDICTION_COLUMN for f in report.drift)


def test_at_most_max_rows_are_read_the_latest_ones(registry, traffic) -> None:
    report = monitor_report(
        "flights", registry=str(registry), window="2h", buckets=2, now=NOW, max_rows=500
    )
    assert report.truncated and report.rows + report.shadow_rows == 500
    assert any("only the latest 500" in note for note in report.notes)
    assert report.versions == ["2"]  # the shifted hour is the latest
    assert report.volume[0]["requests"] == 0


def test_drift_reads_the_predictions_logged_with_their_inputs(registry, traffic, tmp_path) -> None:
    """A server with --log-inputs below 1: the same traffic, two thirds of it logged
    without inputs. Drift sees the sample (same verdicts, no missing values made up);
    traffic counts see every prediction; the report says what it read."""
    sampled = tmp_path / "sampled"
    store = open_store(str(sampled))
    for name in ("fair", "shifted"):
        table = traffic["tables"][name]
        keep = pa.array([i % 3 == 0 for i in range(table.num_rows)])
        inputs = pa.compute.if_else(keep, table["inputs"], pa.nulls(table.num_rows, pa.string()))
        store.write(
            "predictions",
            table.set_column(table.schema.get_field_index("inputs"), "inputs", inputs),
        )
    store.close()
    full = monitor_report("flights", registry=str(registry), window="2h", buckets=2, now=NOW)
    report = monitor_report(
        "flights", registry=str(registry), log=str(sampled), window="2h", buckets=2, now=NOW
    )
    assert report.rows == full.rows and report.requests == full.requests
    without = report.rows - sum(-(-traffic["tables"][n].num_rows // 3) for n in ("fair", "shifted"))
    assert any(
        f"{without:,} of {report.rows:,} predictions were logged without" in n for n in report.notes
    )
    assert {"distance", "carrier"} <= set(report.drifted)
    second = report.edges[1]
    assert {
        r["feature"] for r in report.drift_over_time if r["drifted"] and r["bucket"] != second
    } == set()
    assert not any("without their inputs" in n for n in full.notes)


def test_an_empty_window_is_a_clear_data_error(registry, traffic) -> None:
    location = registry / "logs"
    with pytest.raises(DataError) as caught:
        monitor_report("flights", registry=str(registry), window="30m", now=NOW - 3 * HOUR)
    assert str(caught.value) == f"no predictions of model 'flights' in the last 30m in {location}"
    with pytest.raises(ModelNotFound, match="nope"):
        monitor_report("nope", registry=str(registry), now=NOW)
    with pytest.raises(UsageError, match="--window"):
        monitor_report("flights", registry=str(registry), window="1y")
    with pytest.raises(UsageError, match="--buckets"):
        monitor_report("flights", registry=str(registry), buckets=0)


def test_cli_writes_the_html_report_and_prints_json(cli, registry, traffic, tmp_path) -> None:
    target = tmp_path / "out" / "drift.html"
    # The CLI's window ends at the real now, which can be many minutes after NOW (the
    # module's import) on a busy machine: 3h holds both logged hours for over an hour
    # (the 2h window lost the first rows 10 minutes after NOW, and the test once failed).
    args = ("--registry", str(registry), "--window", "3h", "--buckets", "6")
    result = cli("monitor", "report", "flights", *args, "-o", str(target))
    assert result.code == 0, result.err
    assert "drifted: " in result.out and "distance" in result.out
    assert "10 prediction rows were dropped" in result.out
    html = target.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    titles = re.findall(r"<svg[^>]*>\s*<title>([^<]*)</title>", html)
    assert "Requests and latency per bucket" in titles
    assert "Drift over time (PSI per bucket)" in titles
    assert "Live metrics per bucket (labelled predictions)" in titles
    assert "distance: reference vs current" in titles
    assert "10 prediction rows were dropped" in html
    assert len(set(re.findall(r'\bid="([^"]+)"', html))) == len(re.findall(r'\bid="', html))
    assert [p.name for p in target.parent.iterdir()] == ["drift.html"]  # no temporary left

    result = cli("monitor", "report", "flights", *args, "-O", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["html"] is None and data["model"] == "flights"
    assert data["rows"] == traffic["fair"].height + traffic["shifted"].height
    assert {"distance", "carrier"} <= set(data["drifted"])
    assert data["feedback"]["duplicates"] == 25
    assert len(data["volume"]) == 6 and data["dropped"] == 10


def test_cli_errors_exit_with_their_code_and_write_nothing(cli, registry, traffic, tmp_path):
    target = tmp_path / "empty.html"
    result = cli(
        "monitor", "report", "flights@1", "--registry", str(registry), "--log",
        str(registry / "logs"), "--window", "30m", "-o", str(target),
    )  # fmt: skip
    assert result.code == 1
    assert "no predictions of model 'flights' version 1 in the last 30m in " in result.err
    assert "Traceback" not in result.err and not target.exists()
    result = cli("monitor", "report", "flights", "--registry", str(registry), "--window", "1y")
    assert result.code == 2 and "--window '1y'" in result.err
    missing = tmp_path / "nolog"
    result = cli("monitor", "report", "flights", "--registry", str(registry), "--log", str(missing))
    assert result.code == 2 and "no prediction log there" in result.err


def test_a_failed_render_leaves_the_old_report_alone(registry, traffic, tmp_path, monkeypatch):
    import forgeml.workflow.monitor_report as rendering

    report = monitor_report("flights@1", registry=str(registry), window="2h", now=NOW)
    target = tmp_path / "report.html"
    target.write_text("old")

    def broken(*args: Any) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(rendering, "render_html", broken)
    with pytest.raises(RuntimeError):
        report.write_html(target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_drift_from_log_reads_the_store(cli, registry, traffic) -> None:
    result = cli(
        "monitor", "drift", "flights", str(registry / "logs"), "--from-log",
        "--registry", str(registry), "-O", "json", "--max-rows", "1000",
    )  # fmt: skip
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["rows"] <= 1000 and summary["truncated"] is True
    assert "distance" in summary["drifted"]  # the latest rows are the shifted hour


def test_a_log_without_any_inputs_has_traffic_but_no_drift(
    cli, registry, traffic, tmp_path
) -> None:
    """--log-inputs 0: predictions only. The report has traffic and says why it has no
    drift; `monitor drift --from-log` has nothing to compare and says so."""
    bare = tmp_path / "bare"
    store = open_store(str(bare))
    table = traffic["tables"]["fair"]
    store.write("predictions", table.drop_columns(["inputs"]))
    store.close()
    report = monitor_report("flights", registry=str(registry), log=str(bare), window="3h", now=NOW)
    assert report.rows == table.num_rows and report.drift == [] and report.distributions == []
    assert any(f"{table.num_rows:,} of {table.num_rows:,} predictions" in n for n in report.notes)
    assert report.write_html(tmp_path / "r.html").read_text().count("without their inputs") >= 1
    result = cli(
        "monitor", "drift", "flights", str(bare), "--from-log", "--registry", str(registry)
    )
    assert result.code == 1 and "--log-inputs" in result.err and "Traceback" not in result.err


def test_logged_inputs_of_unexpected_types_decode_leniently(registry) -> None:
    from forgeml.monitoring import Profile

    profile = Profile.build(
        pl.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "f": [True, False, True]}),
        {"x": "float", "c": "categorical", "f": "bool"},
    ).with_numeric(PREDICTION_COLUMN, [0.1, 0.5, 0.9])
    logged = pl.DataFrame(
        {
            "ts": [NOW] * 4,
            "score": [0.2, None, 0.4, 0.5],
            "inputs": [
                '{"x": 1.5, "c": "a", "f": true}',
                '{"x": "NA", "c": 7, "f": false, "other": [1]}',
                '{"c": null}',
                "not json",
            ],
        }
    )
    frame = logged_frame(logged, profile)
    assert frame.schema["x"] == pl.Float64 and frame.schema["c"] == pl.String
    assert frame["x"].to_list() == [1.5, None, None, None]
    assert frame["c"].to_list() == ["a", "7", None, None]
    assert frame["f"].to_list() == [1.0, 0.0, None, None]
    assert frame[PREDICTION_COLUMN].to_list() == [0.2, None, 0.4, 0.5]
    # Every line JSON, some values of other types: decoded as text, then cast.
    assert logged_frame(logged.head(3), profile).rows() == frame.head(3).rows()
    clean = logged.head(1)
    assert logged_frame(clean, profile).row(0, named=True)["x"] == 1.5


@pytest.mark.postgres
def test_a_postgresql_log_is_read_like_a_folder(cli, registry, traffic, pg_url) -> None:
    store = open_store(pg_url)
    for name in ("fair", "shifted"):
        store.write("predictions", traffic["tables"][name])
    store.close()
    report = monitor_report("flights", registry=str(registry), log=pg_url, window="2h", now=NOW)
    assert report.rows == traffic["fair"].height + traffic["shifted"].height
    assert "postgresql" in report.location
    result = cli(
        "monitor", "drift", "flights", pg_url, "--from-log", "--registry", str(registry),
        "-O", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "distance" in json.loads(result.out)["drifted"]


def test_a_regression_model_gets_its_errors_as_live_metrics(tmp_path, diabetes) -> None:
    registry = tmp_path / "reg"
    spec = {
        "name": "diabetes",
        "task": "regression",
        "target": "progression",
        "models": {"candidates": ["linear"]},
        "tuning": {"budget": {"trials": 1}},
        "engine": {"workers": 1},
        "registry": {"uri": str(registry)},
    }
    forgeml.run(spec, data=diabetes.head(300))
    model = forgeml.load_model("diabetes", registry=str(registry))
    served = diabetes.tail(142)
    values = model.predict(served.drop("progression"))
    n = served.height
    store = open_store(str(registry / "logs"))
    store.write(
        "predictions",
        pa.table(
            {
                "request_id": [f"r{i}" for i in range(n)],
                "ts": pa.array(
                    [NOW - HOUR + timedelta(seconds=20 * i) for i in range(n)],
                    pa.timestamp("us", "UTC"),
                ),
                "model": ["diabetes"] * n,
                "version": ["1"] * n,
                "row": pa.array([0] * n, pa.int32()),
                "inputs": served.drop("progression").write_ndjson().splitlines(),
                "prediction": [json.dumps(float(v)) for v in values],
                "score": values.tolist(),
                "latency_ms": [2.0] * n,
            }
        ),
    )
    truth = served["progression"].to_list()
    store.write(
        "feedback",
        pa.table({"ts": pa.array([NOW - timedelta(minutes=1)] * n, pa.timestamp("us", "UTC")),
                  "model": ["diabetes"] * n, "request_id": [f"r{i}" for i in range(n)],
                  "label": [json.dumps(v) for v in truth]}),
    )  # fmt: skip
    report = monitor_report("diabetes", registry=str(registry), window="1h", buckets=3, now=NOW)
    assert report.task == "regression" and report.feedback["joined"] == n
    assert report.live_metrics == pytest.approx(
        {
            "rmse": skm.root_mean_squared_error(truth, values),
            "mae": skm.mean_absolute_error(truth, values),
            "r2": skm.r2_score(truth, values),
        },
        rel=1e-9,
    )
    assert set(report.test_metrics) == {"rmse", "mae", "r2"}
    assert {r["metric"] for r in report.live_over_time} == {"rmse", "mae", "r2"}
    html = report.write_html(tmp_path / "r.html").read_text()
    assert "Live metrics per bucket" in html and "rmse" in html
