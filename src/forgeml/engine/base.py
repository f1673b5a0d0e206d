"""The executor seam: where tuning trials (and later batch work) run.

Tuning code sees only this small interface — share arrays once, submit picklable
top-level functions, get :class:`concurrent.futures.Future` objects back — so the local
process pool and the Ray backend are interchangeable without touching the callers. No
backend object crosses the seam: shared data travels as a :class:`SharedHandle` that each
backend knows how to resolve inside its workers.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["Executor", "SharedHandle", "cpu_count"]

R = TypeVar("R")


def cpu_count() -> int:
    """CPUs this process may use (respects affinity masks and cgroup-limited containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SharedHandle:
    """A picklable reference to arrays shared with workers; resolve it with ``load()``.

    ``backend`` names the backend that created it and ``ref`` is that backend's own
    reference (a folder for the local backend, an object reference for Ray).
    """

    backend: str
    ref: Any
    keys: tuple[str, ...] = field(default=())

    def load(self) -> dict[str, Any]:
        """The shared arrays, by key (memory-mapped where the backend can)."""
        if self.backend == "local":
            from forgeml.engine.shared_files import load_shared

            return load_shared(str(self.ref))
        if self.backend == "inline":
            return dict(self.ref)
        if self.backend == "ray":
            from forgeml.engine.ray_backend import load_ray_shared

            return load_ray_shared(self.ref)
        raise ValueError(f"unknown executor backend {self.backend!r}")


class Executor(ABC):
    """Runs independent tasks on ``n_workers`` workers; use as a context manager."""

    kind: str = "abstract"

    def __init__(self, n_workers: int, threads_per_worker: int) -> None:
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker

    @abstractmethod
    def share(self, arrays: Mapping[str, Any]) -> SharedHandle:
        """Make arrays (NumPy or SciPy CSR) available to every worker, once."""

    @abstractmethod
    def submit(self, fn: Callable[..., R], /, *args: Any) -> Future[R]:
        """Run ``fn(*args)`` on a worker; ``fn`` must be a module-level function."""

    @abstractmethod
    def abort(self) -> None:
        """Stop every running task now (their futures never complete); the executor stays
        usable for new submissions."""

    @abstractmethod
    def close(self) -> None:
        """Stop workers and free shared data."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
