"""Executors: where independent work (tuning trials) runs.

``local`` is a process pool on this machine (the default, one worker per core); ``inline``
runs in the calling process; ``ray`` runs trials as Ray tasks on the cluster named by
``RAY_ADDRESS`` or on a local Ray instance (it imports ray only when one is made). Nothing
outside this package knows which one is in use, and nothing outside it imports ray.

>>> with get_executor("inline") as ex:
...     ex.submit(sum, [1, 2, 3]).result()
6
"""

from __future__ import annotations

from forgeml.engine.base import Executor, SharedHandle, cpu_count
from forgeml.engine.local import InlineExecutor, LocalExecutor
from forgeml.engine.ray_backend import RayExecutor
from forgeml.errors import ConfigError

__all__ = [
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "RayExecutor",
    "SharedHandle",
    "cpu_count",
    "get_executor",
]


def get_executor(kind: str = "local", workers: int | None = None) -> Executor:
    """An executor of ``kind`` with ``workers`` workers (default: one per available CPU).

    Each worker gets ``cpu_count() // workers`` native threads (at least one). For ``ray``
    the workers are Ray tasks of one CPU each; ``workers`` also sets the CPUs of the local
    Ray instance started when ``RAY_ADDRESS`` is not set.
    """
    cpus = cpu_count()
    n = workers or cpus
    threads = max(1, cpus // n)
    if kind == "local":
        return InlineExecutor(1, threads) if n == 1 else LocalExecutor(n, threads)
    if kind == "inline":
        return InlineExecutor(1, cpus)
    if kind == "ray":
        return RayExecutor(n, threads)
    raise ConfigError(f"engine.kind: expected 'local' or 'ray', got {kind!r}")
