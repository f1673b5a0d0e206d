"""The local backends: a process pool using the machine's cores, and an inline executor.

Workers are fresh interpreters started by loky (joblib's process executor): forking a
process that already runs OpenMP threads, as LightGBM does, can deadlock, and unlike the
standard library's ``spawn`` loky does not re-run the user's ``__main__`` module, so a plain
script calling ``forgeml.run`` works without an ``if __name__ == "__main__"`` guard. Each
worker limits its native thread pools to ``threads_per_worker`` so two workers on two cores
do not oversubscribe them.

A worker that dies mid-task (killed, out of memory, a crash in native code) breaks a loky
pool: every task running in it fails with ``TerminatedWorkerError``. The executor then
starts a fresh pool and runs each of those tasks once more (``max_retries``, as Ray's task
retries do); a task whose retries are spent too fails with that error, and the executor
stays usable for new submissions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import BrokenExecutor, Future, InvalidStateError
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

    A task whose worker process dies is run again on a fresh pool up to ``max_retries``
    times; after that its future raises loky's ``TerminatedWorkerError`` (a
    :class:`concurrent.futures.BrokenExecutor`).

    >>> import operator
    >>> with LocalExecutor(n_workers=2) as ex:
    ...     ex.submit(operator.add, 2, 3).result()
    5
    """

    kind = "local"

    def __init__(self, n_workers: int, threads_per_worker: int = 1, max_retries: int = 1) -> None:
        super().__init__(n_workers, threads_per_worker)
        self.max_retries = max_retries
        self._pool: Any = None
        self._dirs: list[str] = []
        self._lock = threading.RLock()
        # Bumped by abort() and close(): tasks submitted before are never retried.
        self._generation = 0

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

    def _drop_pool(self, pool: Any) -> None:
        """Forget ``pool`` (broken: one of its workers died) so the next task starts a
        fresh one; its surviving workers are stopped."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, kill_workers=True)

    def share(self, arrays: Mapping[str, Any]) -> SharedHandle:
        folder = tempfile.mkdtemp(prefix="forgeml-shared-")
        self._dirs.append(folder)
        keys = save_shared(folder, arrays)
        return SharedHandle(backend="local", ref=folder, keys=keys)

    def submit(self, fn: Callable[..., R], /, *args: Any) -> Future[R]:
        outer: Future[R] = Future()
        task = _Task(outer, fn, args, self.max_retries, self._generation)
        outer.add_done_callback(lambda f: task.cancel_inner() if f.cancelled() else None)
        self._start(task)
        return outer

    def _start(self, task: _Task) -> None:
        """Send ``task`` to the pool (a fresh one when the current one is broken)."""
        with self._lock:
            if task.outer.cancelled():
                return
            pool = self._ensure_pool()
            try:
                inner = pool.submit(task.fn, *task.args)
            except BrokenExecutor:  # broken by a worker's death not yet noticed here
                self._drop_pool(pool)
                pool = self._ensure_pool()
                inner = pool.submit(task.fn, *task.args)
            task.inner = inner
        inner.add_done_callback(lambda f: self._settle(task, pool, f))

    def _settle(self, task: _Task, pool: Any, inner: Future[Any]) -> None:
        """Runs in the pool's management thread when an attempt ends."""
        if inner.cancelled():
            task.outer.cancel()
            return
        exc = inner.exception()
        if exc is None:
            _set(task.outer, result=inner.result())
            return
        if (
            isinstance(exc, BrokenExecutor)
            and task.retries > 0
            and task.generation == self._generation
        ):
            task.retries -= 1
            # Not from this thread: it belongs to the broken pool being torn down.
            threading.Thread(
                target=self._retry, args=(task, pool), name="forgeml-retry", daemon=True
            ).start()
            return
        _set(task.outer, exc=exc)

    def _retry(self, task: _Task, broken: Any) -> None:
        try:
            self._drop_pool(broken)
            self._start(task)
        except BaseException as exc:  # the caller sees it through the future
            _set(task.outer, exc=exc)

    def abort(self) -> None:
        with self._lock:
            self._generation += 1
            if self._pool is not None:
                self._pool.shutdown(wait=False, kill_workers=True)
                self._pool = None

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, kill_workers=True)
        for folder in self._dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._dirs.clear()


class _Task:
    """One submitted task: the caller's future and the attempt now running."""

    def __init__(
        self,
        outer: Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        retries: int,
        generation: int,
    ) -> None:
        self.outer, self.fn, self.args = outer, fn, args
        self.retries, self.generation = retries, generation
        self.inner: Future[Any] | None = None

    def cancel_inner(self) -> None:
        if self.inner is not None:
            self.inner.cancel()


def _set(future: Future[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    """Settle ``future`` unless it already is (cancelled by the caller meanwhile)."""
    with contextlib.suppress(InvalidStateError):  # cancelled by the caller meanwhile
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


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
