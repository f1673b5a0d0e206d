"""Executors: where independent work (tuning trials) runs.

``local`` is a process pool on this machine (the default, one worker per core); ``inline``
runs in the calling process; ``ray`` (issue 6) will run on a Ray cluster. Nothing outside
this package knows which one is in use, and nothing outside it imports ray.

>>> with get_executor("inline") as ex:
...     ex.submit(sum, [1, 2, 3]).result()
6
"""

from __future__ import annotations

from forgeml.engine.base import Executor, SharedHandle, cpu_count
from forgeml.engine.local import InlineExecutor, LocalExecutor
from forgeml.errors import ConfigError

__all__ = [
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "SharedHandle",
    "cpu_count",
    "get_executor",
]


def get_executor(kind: str = "local", workers: int | None = None) -> Executor:
    """An executor of ``kind`` with ``workers`` workers (default: one per available CPU).

    Each worker gets ``cpu_count() // workers`` native threads (at least one).
    """
    cpus = cpu_count()
    n = workers or cpus
    threads = max(1, cpus // n)
    if kind == "local":
        return InlineExecutor(1, threads) if n == 1 else LocalExecutor(n, threads)
    if kind == "inline":
        return InlineExecutor(1, cpus)
    if kind == "ray":
        raise ConfigError(
            "engine.kind: the Ray backend is not available yet in this version (use 'local')"
        )
    raise ConfigError(f"engine.kind: expected 'local' or 'ray', got {kind!r}")
