"""The Ray executor: runs the same work as the local pool, with the same tuning results.

One local Ray instance serves the module (starting one takes seconds); the shutdown test
starts and stops its own. Worker processes are killed for real (SIGKILL): from the test,
or by the trial's own process before it can report.
"""

from __future__ import annotations

import json
import operator
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from forgeml.engine import RayExecutor, SharedHandle, get_executor
from forgeml.errors import ConfigError

ray = pytest.importorskip("ray")
# Test-module functions travel by value: Ray workers cannot import this module by name.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.slow


def _total(handle: SharedHandle, key: str) -> float:
    return float(handle.load()[key].sum())


def _raise(message: str) -> None:
    raise ValueError(message)


def _worker_pid() -> int:
    import os

    return os.getpid()


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    executor = RayExecutor(n_workers=2)
    executor.submit(operator.add, 1, 1).result()  # starts the local Ray
    assert executor.started_ray
    yield executor
    executor.close()


def test_shutdown_stops_the_local_ray_it_started(monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    with get_executor("ray", workers=1) as executor:
        assert isinstance(executor, RayExecutor) and executor.n_workers == 1
        assert not ray.is_initialized()  # started on first use, not when made
        assert executor.submit(operator.mul, 6, 7).result() == 42
        assert ray.is_initialized() and executor.started_ray
        assert ray.cluster_resources()["CPU"] == 1
    assert not ray.is_initialized()
    assert not executor.started_ray


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("prefix", ["", "ray://"])
def test_unreachable_ray_address_is_a_config_error(monkeypatch, prefix: str) -> None:
    address = f"{prefix}127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert not ray.is_initialized()
    with pytest.raises(ConfigError, match=f"RAY_ADDRESS.*{address}"):
        get_executor("ray", workers=2)
    assert not ray.is_initialized()


def _cancer_spec_file(folder: Path, **sections: Any) -> Path:
    import yaml
    from sklearn.datasets import load_breast_cancer
    from tests.workflow.conftest import small_spec

    data = folder / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(data, index=False)
    spec = small_spec(str(data), folder / "reg", name="cancer", target="target", **sections)
    path = folder / "forgeml.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_config_check_names_an_unreachable_ray_address(cli, tmp_path, monkeypatch) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    spec = _cancer_spec_file(tmp_path, engine={"kind": "ray"})
    result = cli("config", "check", str(spec))
    assert result.code == 2 and "Traceback" not in result.err
    assert f"RAY_ADDRESS: cannot reach the Ray cluster at '{address}'" in result.err


def test_shared_arrays_reach_ray_workers(ray_executor: RayExecutor) -> None:
    dense = np.arange(12, dtype=np.float32).reshape(3, 4)
    sparse = sp.random(50, 20, density=0.1, format="csr", random_state=0, dtype=np.float32)
    handle = ray_executor.share({"dense": dense, "sparse": sparse})
    assert handle.backend == "ray" and handle.keys == ("dense", "sparse")
    futures = [ray_executor.submit(_total, handle, k) for k in ("dense", "sparse", "dense")]
    got = [f.result(timeout=60) for f in futures]
    assert got == pytest.approx([dense.sum(), sparse.sum(), dense.sum()], rel=1e-6)
    assert ray_executor.submit(_worker_pid).result(timeout=60) != __import__("os").getpid()
    with pytest.raises(ValueError, match="bad config"):
        ray_executor.submit(_raise, "bad config").result(timeout=60)


def test_an_executor_leaves_a_ray_it_did_not_start_running(ray_executor) -> None:
    with RayExecutor(n_workers=2) as other:
        assert other.submit(operator.add, 2, 3).result(timeout=60) == 5
        assert not other.started_ray
    assert ray.is_initialized()


def _summary(result: Any) -> dict[str, Any]:
    summary = json.loads(Path(result.summary_path).read_text())
    return summary


def _cancer_run(folder: Path, kind: str, **tuning: Any) -> Any:
    from sklearn.datasets import load_breast_cancer
    from tests.workflow.conftest import small_spec

    import forgeml

    spec = small_spec(
        None,
        folder / kind,
        name="cancer",
        target="target",
        tuning={"budget": {"trials": 4}, **tuning},
        engine={"kind": kind, "workers": 2},
    )
    return forgeml.run(spec, data=load_breast_cancer(as_frame=True).frame)


def _trials(result: Any) -> list[tuple[Any, ...]]:
    rows = _summary(result)["leaderboard"]
    assert len(rows) == 4
    return sorted(
        (r["number"], r["model"], json.dumps(r["params"], sort_keys=True), r["state"], r["value"])
        for r in rows
    )


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Any:
    """The seeded 4-trial run on the local pool every Ray run is compared with."""
    return _cancer_run(tmp_path_factory.mktemp("local"), "local")


def test_ray_tuning_gives_the_local_results(tmp_path, ray_executor, local_run) -> None:
    """Same seed and trial budget: the same trials, best configuration and metrics."""
    local, on_ray = local_run, _cancer_run(tmp_path, "ray")
    assert on_ray.best == local.best
    assert on_ray.cv_score == local.cv_score
    assert on_ray.test_metrics == local.test_metrics
    assert on_ray.trials == local.trials and sum(local.trials.values()) == 4
    assert _trials(on_ray) == _trials(local)
    assert ray.is_initialized()  # the run used the module's Ray and left it running


# --- workers that die ------------------------------------------------------------------------


def _hold(folder: str, tag: str) -> int:
    """Note this attempt's pid in ``<tag>-<attempt>.pid``, then wait for ``release``."""
    root = Path(folder)
    attempt = len(list(root.glob(f"{tag}-*.pid")))
    (root / f".{tag}.tmp").write_text(str(os.getpid()))
    (root / f".{tag}.tmp").rename(root / f"{tag}-{attempt}.pid")
    deadline = time.monotonic() + 120
    while not (root / "release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.02)
    return os.getpid()


def _pid(folder: Path, name: str, timeout: float = 60.0) -> int:
    path = folder / f"{name}.pid"
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{name} never started"
        time.sleep(0.02)
    return int(path.read_text())


def test_a_task_whose_ray_worker_is_killed_runs_again(tmp_path, ray_executor) -> None:
    retried = ray_executor.submit(_hold, str(tmp_path), "a")
    first = _pid(tmp_path, "a-0")
    os.kill(first, signal.SIGKILL)
    second = _pid(tmp_path, "a-1")  # Ray's retry, in another worker process
    assert second != first
    (tmp_path / "release").touch()
    assert retried.result(timeout=60) == second

    (tmp_path / "release").unlink()
    doomed = ray_executor.submit(_hold, str(tmp_path), "b")
    os.kill(_pid(tmp_path, "b-0"), signal.SIGKILL)
    os.kill(_pid(tmp_path, "b-1"), signal.SIGKILL)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        doomed.result(timeout=60)
    assert not (tmp_path / "b-2.pid").exists()
    assert ray_executor.submit(operator.add, 2, 3).result(timeout=60) == 5


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


def _dying_trials(monkeypatch, folder: Path, deaths: dict[int, int]) -> None:
    """Trial ``n``'s Ray worker dies ``deaths[n]`` times, each after doing the work."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, times in deaths.items():
        for k in range(times):
            (folder / f"die-{number}-{k}").touch()
    submit = RayExecutor.submit

    def dying_submit(self: RayExecutor, fn: Any, /, *args: Any) -> Any:
        return submit(self, _die_then_run, str(folder), fn, *args)

    monkeypatch.setattr(RayExecutor, "submit", dying_submit)


def _stored_trials(url: str, run: Any) -> dict[int, Any]:
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        study = optuna.load_study(study_name=f"cancer-{run.run_id}", storage=storage)
        return {t.number: t for t in study.get_trials(deepcopy=False)}
    finally:
        storage.engine.dispose()


def test_a_trial_whose_ray_worker_dies_is_retried_and_stored(
    tmp_path, monkeypatch, ray_executor, local_run
) -> None:
    marks = tmp_path / "marks"
    _dying_trials(monkeypatch, marks, {1: 1})
    url = f"sqlite:///{tmp_path}/optuna.db"
    on_ray = _cancer_run(tmp_path, "ray", storage=url)
    assert sorted(p.name for p in marks.glob("died-*")) == ["died-1-0"]
    assert _trials(on_ray) == _trials(local_run)  # the retry changed nothing
    assert on_ray.best == local_run.best
    stored = _stored_trials(url, on_ray)
    assert [(n, t.state.name, t.value) for n, t in sorted(stored.items())] == [
        (r[0], r[3].upper(), r[4] if r[3] == "complete" else None) for r in _trials(on_ray)
    ]


def test_a_trial_whose_ray_worker_dies_twice_is_failed(tmp_path, monkeypatch, ray_executor) -> None:
    marks = tmp_path / "marks"
    _dying_trials(monkeypatch, marks, {2: 2})
    url = f"sqlite:///{tmp_path}/optuna.db"
    on_ray = _cancer_run(tmp_path, "ray", storage=url)
    assert sorted(p.name for p in marks.glob("died-*")) == ["died-2-0", "died-2-1"]
    rows = {r["number"]: r for r in _summary(on_ray)["leaderboard"]}
    # Ray isolates workers: only the trial whose worker died is lost.
    assert {n for n, r in rows.items() if r["state"] == "failed"} == {2}
    assert "worker was lost (WorkerCrashedError" in rows[2]["error"]
    stored = _stored_trials(url, on_ray)
    assert stored[2].state.name == "FAIL" and "WorkerCrashedError" in stored[2].user_attrs["error"]
    assert all(stored[n].value == r["value"] for n, r in rows.items() if r["state"] == "complete")


def test_cli_engine_option_runs_on_ray(cli, tmp_path, monkeypatch, ray_executor) -> None:
    spec = _cancer_spec_file(tmp_path, tuning={"budget": {"trials": 2}})
    submitted: list[str] = []
    submit = RayExecutor.submit

    def counting_submit(self: RayExecutor, fn: Any, /, *args: Any) -> Any:
        submitted.append(fn.__name__)
        return submit(self, fn, *args)

    monkeypatch.setattr(RayExecutor, "submit", counting_submit)
    result = cli("run", str(spec), "--engine", "ray", "--output", "json", "--quiet")
    assert result.code == 0, result.err
    summary = json.loads(Path(json.loads(result.out)["summary"]).read_text())
    assert len(summary["leaderboard"]) == 2
    assert submitted == ["run_trial", "run_trial"]  # the trials went to Ray
