"""``forgeml monitor drift`` against a registered model's profile: files and served traffic."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from tests.serving.conftest import make_client


@pytest.fixture(scope="module")
def scored_rows(served_registry: Path, flights_rows: pl.DataFrame) -> pl.DataFrame:
    return flights_rows.head(300)


def test_a_file_that_matches_training_does_not_drift_and_a_shifted_one_does(
    cli, served_registry: Path, scored_rows: pl.DataFrame, tmp_path: Path
) -> None:
    same = tmp_path / "same.parquet"
    scored_rows.write_parquet(same)
    result = cli(
        "monitor", "drift", "flights@1", str(same), "--registry", str(served_registry), "-O", "json"
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["rows"] == 300 and summary["drifted"] == []
    shifted = tmp_path / "shifted.csv"
    scored_rows.with_columns(pl.col("dep_delay") + 90).write_csv(shifted)
    result = cli("monitor", "drift", "flights@1", str(shifted), "--registry", str(served_registry))
    assert result.code == 0, result.err
    assert "drifted: dep_delay" in result.out


def test_served_traffic_from_the_prediction_log(
    cli, served_registry: Path, scored_rows: pl.DataFrame, tmp_path: Path
) -> None:
    rows = json.loads(scored_rows.write_json())
    folder = tmp_path / "log"
    with make_client(served_registry, ["flights"], prediction_log=str(folder)) as client:
        for start in range(0, 300, 50):
            response = client.post("/predict", json={"records": rows[start : start + 50]})
            assert response.status_code == 200
    result = cli(
        "monitor", "drift", "flights", str(folder), "--from-log",
        "--registry", str(served_registry), "-O", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["rows"] == 300
    methods = {(f["feature"], f["method"]) for f in summary["features"]}
    assert ("__prediction__", "psi") in methods and ("dep_delay", "ks") in methods


def test_clear_errors(cli, served_registry: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(
        "monitor", "drift", "flights", str(empty), "--from-log", "--registry", str(served_registry)
    )
    assert result.code == 2 and "no prediction log files" in result.err
    result = cli("monitor", "drift", "nope", str(empty), "--registry", str(served_registry))
    assert result.code == 2 and "nope" in result.err
    missing = tmp_path / "missing.csv"
    result = cli("monitor", "drift", "flights", str(missing), "--registry", str(served_registry))
    assert result.code == 2 and "missing.csv" in result.err
