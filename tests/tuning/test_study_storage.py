"""The Optuna study in shared storage (SQLite, PostgreSQL) and trials whose worker dies.

A seeded search with a trial budget gives the same trials with the study in a database as
in memory, and every told trial is in the database. A worker process killed mid-trial (the
trial's own process dies for real, with SIGKILL, before it reports) costs a retry, not the
trial; a trial whose retry dies too is failed, in the results and in the study. A resumed
study keeps its finished trials and goes on to the trial budget.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import polars as pl
import pytest
from sklearn.model_selection import StratifiedKFold

from forgeml.config.spec import CandidateSpec
from forgeml.engine import LocalExecutor
from forgeml.errors import ConfigError
from forgeml.models import get_adapter
from forgeml.tasks import encode_target, resolve_metric
from forgeml.tuning import SearchResult, build_space, search
from forgeml.tuning.search import storage_url
from forgeml.tuning.space import suggest_params

TRIALS = 6


@pytest.fixture(scope="module")
def cancer() -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = np.ascontiguousarray(data.data.astype(np.float32))
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    y, info = encode_target(data.target, "classification")
    folds = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(X, y))
    candidates = []
    for name in ("lightgbm", "linear"):
        adapter = get_adapter(name)
        candidates.append(
            build_space(
                CandidateSpec(name=name),
                adapter.search_space(info.subtype, 500),
                adapter.default_params(info.subtype),
                field_path="models.candidates",
            )
        )
    return {
        "X": X,
        "y": y,
        "folds": folds,
        "subtype": info.subtype,
        "n_classes": info.n_classes,
        "candidates": candidates,
        "metric": resolve_metric(None, info.subtype),
        "seed": 0,
        "max_trials": TRIALS,
        "max_seconds": None,
        "startup_trials": 2,
    }


def _search(cancer: dict[str, Any], executor: Any, **kw: Any) -> SearchResult:
    return search(**{**cancer, "executor": executor, **kw})


def _rows(result: SearchResult) -> list[dict[str, Any]]:
    return [t.to_dict() | {"duration_s": 0, "finished_at_s": 0} for t in result.trials]


@pytest.fixture(scope="module")
def in_memory(cancer: dict[str, Any]) -> SearchResult:
    with LocalExecutor(n_workers=2) as executor:
        return _search(cancer, executor)


def _assert_study_holds(
    url: str, name: str, result: SearchResult, interrupted: frozenset[int] = frozenset()
) -> None:
    """Every trial of ``result`` is in the stored study, with its state and value; the
    study holds no other trial but the ``interrupted`` ones, failed."""
    rdb = optuna.storages.RDBStorage(storage_url(url))
    try:
        study = optuna.load_study(study_name=name, storage=rdb)
        stored = {t.number: t for t in study.get_trials(deepcopy=False)}
    finally:
        rdb.engine.dispose()
    assert sorted(stored) == sorted([t.number for t in result.trials] + list(interrupted))
    assert all(stored[n].state.name == "FAIL" for n in interrupted)
    states = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
    for record in result.trials:
        trial = stored[record.number]
        assert trial.state.name == states[record.state]
        assert trial.user_attrs["model"] == record.model
        assert trial.user_attrs["fold_values"] == record.fold_values
        if record.state == "complete":
            assert trial.value == record.value
        if record.state == "failed":
            assert trial.user_attrs["error"] == record.error


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_stored_study_gives_the_in_memory_results(
    backend: str, cancer, in_memory: SearchResult, tmp_path: Path, request
) -> None:
    url = f"sqlite:///{tmp_path}/studies/optuna.db"
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    with LocalExecutor(n_workers=2) as executor:
        stored = _search(cancer, executor, storage=url, study_name=f"cancer-{backend}")
    assert stored.mode == "ordered" and len(stored.trials) == TRIALS
    assert _rows(stored) == _rows(in_memory)
    np.testing.assert_array_equal(stored.best_oof, in_memory.best_oof)
    assert stored.study_name == f"cancer-{backend}" and stored.storage is not None
    assert in_memory.storage is None
    _assert_study_holds(url, f"cancer-{backend}", stored)


def test_a_taken_study_name_is_a_config_error(cancer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(storage=url, study_name="taken")
    with (
        LocalExecutor(n_workers=1) as executor,
        pytest.raises(ConfigError, match="already holds a study named 'taken'"),
    ):
        _search(cancer, executor, storage=url, study_name="taken", max_trials=1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bad_storage_urls_are_config_errors(cancer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tuning\.storage: unsupported.*mysql://u:\*\*\*@h"):
        storage_url("mysql://u:secret@h/db")
    with pytest.raises(ConfigError, match=r"tuning\.storage: .*names no file"):
        storage_url("sqlite:///:memory:")
    down = f"postgresql://ml:secret@127.0.0.1:{_closed_port()}/optuna"
    with LocalExecutor(n_workers=1) as executor, pytest.raises(ConfigError) as caught:
        _search(cancer, executor, storage=down, study_name="x", max_trials=1)
    assert "tuning.storage: cannot open" in str(caught.value)
    assert "secret" not in str(caught.value) and "ml:***@" in str(caught.value)


def test_storage_urls_are_normalised(tmp_path: Path) -> None:
    assert storage_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    url = storage_url("sqlite:///deep/er/s.db", base_dir=tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve()}/deep/er/s.db"
    assert (tmp_path / "deep" / "er").is_dir()


# --- resuming a study ------------------------------------------------------------------------


def _leave_a_trial_running(url: str, name: str, cancer: dict[str, Any]) -> dict[str, Any]:
    """What a run that died mid-trial leaves behind: a RUNNING trial with its parameters."""
    rdb = optuna.storages.RDBStorage(storage_url(url))
    try:
        study = optuna.load_study(study_name=name, storage=rdb)
        trial = study.ask()
        spaces = {c.name: c for c in cancer["candidates"]}
        suggest_params(trial, spaces, class_weights=None)
        return dict(trial.params)
    finally:
        rdb.engine.dispose()


@pytest.mark.slow
def test_a_resumed_study_continues_where_it_stopped(cancer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    with LocalExecutor(n_workers=2) as executor:
        first = _search(cancer, executor, storage=url, study_name="resumable", max_trials=3)
    orphan = _leave_a_trial_running(url, "resumable", cancer)  # trial 3
    with LocalExecutor(n_workers=2) as executor:
        resumed = _search(
            cancer, executor, storage=url, study_name="resumable", resume=True, max_trials=6
        )
    # Trials 0-2 are kept (and count), 3 died with its run: failed and queued again as 4.
    assert [t.number for t in resumed.trials] == [0, 1, 2, 4, 5, 6]
    kept = [{k: v for k, v in row.items() if k != "note"} for row in _rows(resumed)[:3]]
    assert kept == [{k: v for k, v in row.items() if k != "note"} for row in _rows(first)]
    assert all(t.note == "from an earlier run of this study" for t in resumed.trials[:3])
    rdb = optuna.storages.RDBStorage(storage_url(url))
    try:
        stored = optuna.load_study(study_name="resumable", storage=rdb).get_trials()
    finally:
        rdb.engine.dispose()
    assert stored[3].state.name == "FAIL" and stored[4].params == orphan
    _assert_study_holds(url, "resumable", resumed, interrupted=frozenset({3}))
    # The best earlier trials were cross-validated again: the same values and predictions.
    assert resumed.best.value is not None and first.best.value is not None
    assert resumed.best.value >= first.best.value
    assert first.best.number in resumed.oofs or resumed.best.number > 2
    if resumed.best.number == first.best.number:
        np.testing.assert_array_equal(resumed.best_oof, first.best_oof)


def test_resuming_needs_the_stored_study(cancer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(storage=url, study_name="other")
    with LocalExecutor(n_workers=1) as executor:
        with pytest.raises(ConfigError, match=r"holds no study named 'gone' \(latest: other\)"):
            _search(cancer, executor, storage=url, study_name="gone", resume=True)
        with pytest.raises(ConfigError, match="needs the storage that holds it"):
            _search(cancer, executor, study_name="other", resume=True)
        maximize = _search(cancer, executor, storage=url, study_name="auc", max_trials=1)
        assert maximize.metric.direction == "maximize"
        loss = resolve_metric("log_loss", "binary")
        with pytest.raises(ConfigError, match="tuned to maximize its metric"):
            _search(cancer, executor, storage=url, study_name="auc", resume=True, metric=loss)


# --- workers that die ------------------------------------------------------------------------


def _die_then_run(folder: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)``; when a ``die-<trial>-<k>`` file is there to claim, the process
    then kills itself before it can report (the trial's work is lost with it)."""
    number = args[0].number
    for marker in sorted(Path(folder).glob(f"die-{number}-*")):
        try:
            marker.rename(marker.with_name(f"died-{number}-{marker.name.rsplit('-', 1)[1]}"))
        except FileNotFoundError:
            continue  # another attempt claimed it
        fn(*args)
        os.kill(os.getpid(), signal.SIGKILL)
    return fn(*args)


class _DyingExecutor(LocalExecutor):
    """The local pool, with trials run through :func:`_die_then_run`."""

    def __init__(self, folder: Path, deaths: dict[int, int], n_workers: int = 2) -> None:
        super().__init__(n_workers)
        self.folder = folder
        for number, times in deaths.items():
            for k in range(times):
                (folder / f"die-{number}-{k}").touch()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return super().submit(_die_then_run, str(self.folder), fn, *args)

    def deaths(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("died-*"))


def test_a_trial_whose_worker_dies_is_retried(cancer, in_memory, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    with _DyingExecutor(tmp_path, {3: 1}) as executor:
        result = _search(cancer, executor, storage=url, study_name="killed")
        assert executor.deaths() == ["died-3-0"]
    # The retry ran the same configuration: nothing differs from an undisturbed search.
    assert _rows(result) == _rows(in_memory)
    assert result.counts["complete"] + result.counts["pruned"] == TRIALS
    _assert_study_holds(url, "killed", result)


@pytest.mark.slow
def test_a_trial_whose_retry_dies_too_is_failed(cancer, in_memory, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    # One worker: on the local pool a death breaks the whole pool, so a trial running
    # beside the dying one is retried too (and could be lost to a second death).
    with _DyingExecutor(tmp_path, {2: 2}, n_workers=1) as executor:
        result = _search(cancer, executor, storage=url, study_name="killed-twice")
        assert executor.deaths() == ["died-2-0", "died-2-1"]
    assert len(result.trials) == TRIALS
    failed = [t for t in result.trials if t.state == "failed"]
    assert [t.number for t in failed] == [2]
    assert failed[0].error is not None and "worker was lost" in failed[0].error
    assert "TerminatedWorkerError" in failed[0].error
    assert result.counts["complete"] + result.counts["pruned"] == TRIALS - 1
    # The trials told before the loss are the undisturbed search's; none is lost.
    assert _rows(result)[:2] == _rows(in_memory)[:2]
    _assert_study_holds(url, "killed-twice", result)


@pytest.mark.slow
def test_run_keeps_its_study_in_the_storage_given_on_the_command_line(
    cli, workspace: Path, breast_cancer: pl.DataFrame
) -> None:
    import yaml
    from tests.workflow.conftest import small_spec

    breast_cancer.write_csv(workspace / "cancer.csv")
    spec = small_spec("cancer.csv", workspace / "reg", name="cancer", target="diagnosis")
    (workspace / "forgeml.yaml").write_text(yaml.safe_dump(spec))
    result = cli(
        "run", "forgeml.yaml", "--study-storage", "sqlite:///studies/optuna.db", "--output", "json"
    )
    assert result.code == 0, result.err
    run_id = json.loads(result.out)["run_id"]
    url = f"sqlite:///{workspace}/studies/optuna.db"  # relative to where the command ran
    study = optuna.load_study(study_name=f"cancer-{run_id}", storage=url)
    assert len(study.get_trials()) == 3
    assert {t.user_attrs["model"] for t in study.trials} <= {"lightgbm", "linear"}

    args = ["--study-storage", "sqlite:///studies/optuna.db", "--resume-study", f"cancer-{run_id}"]
    result = cli("run", "forgeml.yaml", *args, "-s", "tuning.budget.trials=5", "--output", "json")
    assert result.code == 0, result.err
    summary = json.loads(Path(json.loads(result.out)["summary"]).read_text())
    assert sorted(r["number"] for r in summary["leaderboard"]) == [0, 1, 2, 3, 4]
    assert len(optuna.load_study(study_name=f"cancer-{run_id}", storage=url).trials) == 5


def test_an_unsupported_storage_fails_the_run_with_a_config_error(
    cli, workspace: Path, breast_cancer: pl.DataFrame
) -> None:
    import yaml
    from tests.workflow.conftest import small_spec

    breast_cancer.write_csv(workspace / "cancer.csv")
    spec = small_spec("cancer.csv", workspace / "reg", name="cancer", target="diagnosis")
    spec["tuning"]["storage"] = "redis://u:pw@h:6379/0"
    (workspace / "forgeml.yaml").write_text(yaml.safe_dump(spec))
    result = cli("run", "forgeml.yaml")
    assert result.code == 2 and "Traceback" not in result.err
    assert "tuning.storage: unsupported study storage 'redis://u:***@h:6379/0'" in result.err
    assert "u:pw@" not in result.err
