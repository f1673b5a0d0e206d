"""The Ray executor: runs the same work as the local pool, with the same tuning results.

One local Ray instance serves the module (starting one takes seconds); the shutdown test
starts and stops its own.
"""

from __future__ import annotations

import json
import operator
import socket
import sys
from collections.abc import Iterator
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


def test_ray_tuning_gives_the_local_results(tmp_path, ray_executor) -> None:
    """Same seed and trial budget: the same trials, best configuration and metrics."""
    from sklearn.datasets import load_breast_cancer
    from tests.workflow.conftest import small_spec

    import forgeml

    frame = load_breast_cancer(as_frame=True).frame
    results = {}
    for kind in ("local", "ray"):
        spec = small_spec(
            None,
            tmp_path / kind,
            name="cancer",
            target="target",
            tuning={"budget": {"trials": 4}},
            engine={"kind": kind, "workers": 2},
        )
        results[kind] = forgeml.run(spec, data=frame)
    local, on_ray = results["local"], results["ray"]
    assert on_ray.best == local.best
    assert on_ray.cv_score == local.cv_score
    assert on_ray.test_metrics == local.test_metrics
    assert on_ray.trials == local.trials and sum(local.trials.values()) == 4

    def trials(result: Any) -> list[tuple[Any, ...]]:
        rows = _summary(result)["leaderboard"]
        assert len(rows) == 4
        return sorted(
            (r["number"], r["model"], json.dumps(r["params"], sort_keys=True), r["value"])
            for r in rows
        )

    assert trials(on_ray) == trials(local)
    assert ray.is_initialized()  # the run used the module's Ray and left it running


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
