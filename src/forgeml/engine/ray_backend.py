"""The Ray backend: tuning trials as Ray tasks, on a cluster or on a local Ray instance.

With ``RAY_ADDRESS`` set (``host:port`` of a running cluster, ``ray://host:port`` for Ray
Client, or ``auto``) the executor connects to that cluster; otherwise it starts a local Ray
instance with ``n_workers`` CPUs and no dashboard, and shuts it down on ``close``. A Ray
already initialised by the caller is used as it is and left running.

Shared arrays are put into Ray's object store once (``ray.put``); a :class:`SharedHandle`
with ``backend="ray"`` carries the object reference to the workers, which read the arrays
from the store without copying them. Each submitted function runs as a Ray task needing one
CPU, and its result comes back as a :class:`concurrent.futures.Future`.

A task whose worker process dies (killed, out of memory, a crash in native code) is run
again by Ray up to ``max_retries`` times (Ray's task retries; exceptions raised by the
function itself are never retried); after that its future raises Ray's
``WorkerCrashedError`` (or ``OutOfMemoryError``). Aborted tasks are not retried.

Ray is imported only here (an import-linter contract), and only when the executor is made,
so ``forgeml`` works without the ``ray`` extra.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from forgeml._optional import require
from forgeml.engine.base import Executor, SharedHandle
from forgeml.errors import ConfigError

__all__ = ["RayExecutor", "load_ray_shared"]

R = TypeVar("R")

_PROBE_TIMEOUT_S = 5.0


def _ray() -> Any:
    return require("ray", extra="ray", feature="the Ray engine (engine.kind: ray)")


def load_ray_shared(ref: Any) -> dict[str, Any]:
    """The arrays behind an object reference made by :meth:`RayExecutor.share` (run inside
    a Ray worker; NumPy arrays are read-only views of the object store)."""
    arrays: dict[str, Any] = _ray().get(ref)
    return arrays


def _call(fn: Callable[..., R], *args: Any) -> R:
    """Runs in a Ray worker: ``fn`` may be any picklable callable, builtins included
    (``ray.remote`` itself takes only Python functions)."""
    return fn(*args)


def _probe(address: str) -> None:
    """Fail fast with a :class:`ConfigError` when ``host:port`` does not accept connections
    (``ray.init`` would otherwise retry for minutes)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms: ray.init reports them itself
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), _PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ConfigError(
            f"RAY_ADDRESS: cannot reach the Ray cluster at {address!r} ({exc}); "
            "start it (ray start --head) or unset RAY_ADDRESS to run on a local Ray"
        ) from exc


class RayExecutor(Executor):
    """Runs tasks on Ray: the cluster at ``address`` (default ``$RAY_ADDRESS``) or a local
    Ray instance with ``n_workers`` CPUs. Ray is started (or connected to) on first use, not
    when the executor is made.

    Raises :class:`~forgeml.errors.MissingExtraError` when ray is not installed and
    :class:`~forgeml.errors.ConfigError` when the cluster cannot be reached (a ``host:port``
    address is probed when the executor is made, so the error comes before any work).
    """

    kind = "ray"

    def __init__(
        self,
        n_workers: int,
        threads_per_worker: int = 1,
        address: str | None = None,
        max_retries: int = 1,
    ) -> None:
        super().__init__(n_workers, threads_per_worker)
        self.max_retries = max_retries
        self._ray_module = _ray()
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS") or None
        if self.address and not self._ray_module.is_initialized():
            _probe(self.address)  # before any data is read: `forgeml config check` says it
        self.started_ray = False  # True while this executor holds a Ray it initialised
        self._remote: Any = None  # _call as a Ray remote function
        self._shared: list[Any] = []  # object references kept alive until close
        self._pending: set[Any] = set()

    def ensure_ray(self) -> Any:
        """The ``ray`` module, connected to ``RAY_ADDRESS`` or to a local Ray started now
        (once); the other Ray modules of the engine (Ray Data, Ray Train) start Ray
        through this so every backend follows the same conventions."""
        ray = self._ray_module
        if ray.is_initialized():
            return ray
        common = {"log_to_driver": False, "logging_level": "WARNING"}
        if self.address and self.address != "local":
            try:
                ray.init(address=self.address, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(
                    f"RAY_ADDRESS: cannot connect to the Ray cluster at {self.address!r}: {exc}"
                ) from exc
        else:
            ray.init(
                address="local",  # a fresh instance, never some other process's cluster
                num_cpus=self.n_workers,
                include_dashboard=False,
                **common,
            )
        self.started_ray = True
        return ray

    def share(self, arrays: Mapping[str, Any]) -> SharedHandle:
        ref = self.ensure_ray().put(dict(arrays))
        self._shared.append(ref)
        return SharedHandle(backend="ray", ref=ref, keys=tuple(arrays))

    def submit(self, fn: Callable[..., R], /, *args: Any) -> Future[R]:
        ray = self.ensure_ray()
        if self._remote is None:
            self._remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(_call)
        ref = self._remote.remote(fn, *args)
        self._pending.add(ref)
        future: Future[R] = ref.future()
        future.add_done_callback(lambda _: self._pending.discard(ref))
        return future

    def abort(self) -> None:
        if self._pending and self._ray_module.is_initialized():
            for ref in list(self._pending):
                self._ray_module.cancel(ref, force=True)
        self._pending.clear()

    def close(self) -> None:
        self.abort()
        self._shared.clear()
        self._remote = None
        if self.started_ray:
            self._ray_module.shutdown()  # stops a local Ray; only disconnects from a cluster
            self.started_ray = False
