"""Mirroring runs to MLflow when ``MLFLOW_TRACKING_URI`` is set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from forgeml.errors import RegistryError, UsageError
from forgeml.registry import mirror_run

# MLflow 3.17's SQL tracking store uses a loader strategy SQLAlchemy 2.1 deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


def test_unset_returns_none_without_importing_mlflow() -> None:
    code = (
        "import os, sys; os.environ.pop('MLFLOW_TRACKING_URI', None)\n"
        "from datetime import UTC, datetime\n"
        "from forgeml.registry import RunRecord, mirror_run\n"
        "print(mirror_run(RunRecord('r1', 'churn', 'finished', datetime.now(UTC))),"
        " 'mlflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["None", "False"]


def test_run_is_logged_and_read_back(
    workspace: Path, make_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    report = workspace / "report"
    report.mkdir()
    (report / "report.html").write_text("<html>ok</html>")
    (report / "summary.json").write_text('{"best": "lightgbm"}')
    run = make_run("churn", params={"lr": 0.1, "depth": 6, "balanced": True})

    mlflow_id = mirror_run(run, report)

    assert mlflow_id is not None
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    got = client.get_run(mlflow_id)
    assert got.data.params == {"lr": "0.1", "depth": "6", "balanced": "True"}
    assert got.data.metrics == pytest.approx(run.metrics)
    assert got.data.tags["forgeml.run_id"] == run.run_id
    assert got.data.tags["user"] == "ci"
    assert got.info.status == "FINISHED"
    assert got.info.start_time == int(run.started_at.timestamp() * 1000)
    assert client.get_experiment(got.info.experiment_id).name == "churn"
    files = {f.path for f in client.list_artifacts(mlflow_id)}
    assert {"report.html", "summary.json", "forgeml"} <= files
    local = Path(client.download_artifacts(mlflow_id, "forgeml/summary.json", str(workspace)))
    assert json.loads(local.read_text()) == run.summary

    # Mirroring again finds the same MLflow run instead of logging a duplicate.
    assert mirror_run(run, report) == mlflow_id
    # A failed run in a named experiment.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "nightly")
    failed = make_run("churn", status="failed")
    failed_id = mirror_run(failed)
    assert failed_id is not None
    got = client.get_run(failed_id)
    assert got.info.status == "FAILED"
    assert client.get_experiment(got.info.experiment_id).name == "nightly"


def test_mlflow_errors_become_registry_errors(
    workspace: Path, make_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run = make_run(params={"a/../b": 1})  # fine for forgeml, refused by MLflow
    with pytest.raises(
        RegistryError, match=f"could not mirror run '{run.run_id}' to MLflow"
    ) as info:
        mirror_run(run)
    assert "\n" not in str(info.value) and "a/../b" in str(info.value)
    # The half-logged MLflow run is removed, so a later mirror starts afresh.
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("churn")
    assert client.search_runs([experiment.experiment_id]) == []


def test_missing_report_folder_is_a_usage_error(workspace: Path, make_run) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        mirror_run(make_run(), workspace / "nope", tracking_uri="sqlite:///x.db")
