"""The local backends: a process pool using the machine's cores, and an inline executor.

Workers are fresh interpreters started by loky (joblib's process executor): forking a
process that already runs OpenMP threads, as LightGBM does, can deadlock, and unlike the
standard library's ``spawn`` loky does not re-run the user's ``__main__`` module, so a plain
script calling ``forgeml.run`` works without an ``if __name__ == "__main__"`` guard. Each
worker limits its native thread pools to ``threads_per_worker`` so two workers on two cores
do not oversubscribe them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from forgeml.engine.base import Executor, SharedHandle
from forgeml.engine.shared_files import save_shared

__all__ = ["InlineExecutor", "LocalExecutor"]

R = TypeVar("R")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(threads: int) -> None:
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass


class LocalExecutor(Executor):
    """A pool of ``n_workers`` processes on this machine.

    >>> import operator
    >>> with LocalExecutor(n_workers=2) as ex:
    ...     ex.submit(operator.add, 2, 3).result()
    5
    """

    kind = "local"

    def __init__(self, n_workers: int, threads_per_worker: int = 1) -> None:
        super().__init__(n_workers, threads_per_worker)
        self._pool: Any = None
        self._dirs: list[str] = []

    def _ensure_pool(self) -> Any:
        if self._pool is None:
            from joblib.externals.loky.process_executor import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=self.n_workers,
                initializer=_init_worker,
                initargs=(self.threads_per_worker,),
                env={var: str(self.threads_per_worker) for var in _THREAD_VARS},
            )
        return self._pool

    def share(self, arrays: Mapping[str, Any]) -> SharedHandle:
        folder = tempfile.mkdtemp(prefix="forgeml-shared-")
        self._dirs.append(folder)
        keys = save_shared(folder, arrays)
        return SharedHandle(backend="local", ref=folder, keys=keys)

    def submit(self, fn: Callable[..., R], /, *args: Any) -> Future[R]:
        future: Future[R] = self._ensure_pool().submit(fn, *args)
        return future

    def abort(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, kill_workers=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, kill_workers=True)
            self._pool = None
        for folder in self._dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._dirs.clear()


class InlineExecutor(Executor):
    """Runs each task in the calling process when submitted (one worker; for debugging,
    tests, and machines where starting processes costs more than it saves).

    >>> import operator
    >>> InlineExecutor().submit(operator.mul, 6, 7).result()
    42
    """

    kind = "inline"

    def __init__(self, n_workers: int = 1, threads_per_worker: int = 1) -> None:
        super().__init__(1, threads_per_worker)

    def share(self, arrays: Mapping[str, Any]) -> SharedHandle:
        return SharedHandle(backend="inline", ref=dict(arrays), keys=tuple(arrays))

    def submit(self, fn: Callable[..., R], /, *args: Any) -> Future[R]:
        future: Future[R] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # the caller sees it through the future, as with a pool
            future.set_exception(exc)
        return future

    def abort(self) -> None:
        pass  # tasks ran to completion when they were submitted

    def close(self) -> None:
        pass
