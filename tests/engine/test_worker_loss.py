"""The local pool when a worker process dies mid-task: the task runs once more on a fresh
pool; a task whose retry dies too fails with loky's error; the pool stays usable.

Workers are killed for real, from the test, with SIGKILL.
"""

from __future__ import annotations

import operator
import os
import signal
import time
from concurrent.futures import BrokenExecutor
from pathlib import Path

import pytest

from forgeml.engine import LocalExecutor


def _hold(folder: str, tag: str) -> int:
    """Note this attempt's pid in ``<tag>-<attempt>.pid``, then wait for ``release``."""
    root = Path(folder)
    attempt = len(list(root.glob(f"{tag}-*.pid")))
    tmp = root / f".{tag}-{attempt}.tmp"
    tmp.write_text(str(os.getpid()))
    tmp.rename(root / f"{tag}-{attempt}.pid")
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


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_a_task_whose_worker_is_killed_runs_again(tmp_path: Path) -> None:
    with LocalExecutor(n_workers=2) as executor:
        killed = executor.submit(_hold, str(tmp_path), "a")
        neighbour = executor.submit(_hold, str(tmp_path), "b")
        first = _pid(tmp_path, "a-0")
        _pid(tmp_path, "b-0")
        os.kill(first, signal.SIGKILL)
        second = _pid(tmp_path, "a-1")  # the retry, in a new process
        assert second != first and _gone(first)
        (tmp_path / "release").touch()
        assert killed.result(timeout=60) == second
        # The pool broke under the neighbour too; it ran again as well.
        assert neighbour.result(timeout=60) == _pid(tmp_path, "b-1")
        assert executor.submit(operator.add, 2, 3).result(timeout=60) == 5


def test_a_task_killed_on_its_retry_too_fails_and_the_pool_recovers(tmp_path: Path) -> None:
    with LocalExecutor(n_workers=2) as executor:
        doomed = executor.submit(_hold, str(tmp_path), "a")
        os.kill(_pid(tmp_path, "a-0"), signal.SIGKILL)
        os.kill(_pid(tmp_path, "a-1"), signal.SIGKILL)
        with pytest.raises(BrokenExecutor, match="unexpectedly terminated"):
            doomed.result(timeout=60)
        assert not (tmp_path / "a-2.pid").exists()
        assert executor.submit(operator.mul, 6, 7).result(timeout=60) == 42


def test_no_retry_without_retries(tmp_path: Path) -> None:
    with LocalExecutor(n_workers=1, max_retries=0) as executor:
        doomed = executor.submit(_hold, str(tmp_path), "a")
        os.kill(_pid(tmp_path, "a-0"), signal.SIGKILL)
        with pytest.raises(BrokenExecutor):
            doomed.result(timeout=60)
        assert not (tmp_path / "a-1.pid").exists()


def test_aborted_tasks_are_not_retried(tmp_path: Path) -> None:
    with LocalExecutor(n_workers=1) as executor:
        executor.submit(_hold, str(tmp_path), "a")
        _pid(tmp_path, "a-0")
        executor.abort()  # kills the worker: not a loss to make up for
        time.sleep(1.0)
        assert not (tmp_path / "a-1.pid").exists()
        assert executor.submit(operator.add, 1, 1).result(timeout=60) == 2
