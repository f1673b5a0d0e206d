"""Load tests of an HTTP prediction server: ``forgeml loadtest`` and its Python API.

A cheap load generator, because on a small machine it shares the cores with the server it
measures: prepared request bytes over raw asyncio keep-alive connections (uvloop when
installed), exact latency percentiles, errors by kind. Closed loop (``concurrency``
connections, each sending as soon as it is answered) or open loop (``rate`` arrivals per
second at fixed times, latency from the due time). See :mod:`forgeml.loadtest.runner`.

For benchmarks::

    from forgeml.loadtest import encode_bodies, read_rows, run_load

    bodies = encode_bodies(read_rows("adult.parquet", limit=5_000), "predict", drop=["income"])
    result = run_load("http://127.0.0.1:8000/predict", bodies=bodies, rows_per_request=1,
                      concurrency=16, duration="20s", warmup="2s")
    print(result.throughput_rps, result.latency_ms.p99, result.errors)

This package is a leaf: it imports nothing from forgeml but :mod:`forgeml.errors`.
Modules load on first use, so ``forgeml --help`` does not pay for asyncio.

>>> from forgeml.loadtest import LoadResult, run_load
>>> sorted(__all__) == __all__
True
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "LatencySummary",
    "LoadResult",
    "ServingProtocol",
    "encode_bodies",
    "parse_duration",
    "read_rows",
    "run_load",
    "run_load_async",
]

_LAZY = {
    "LatencySummary": "forgeml.loadtest.stats",
    "LoadResult": "forgeml.loadtest.stats",
    "ServingProtocol": "forgeml.loadtest.protocols",
    "encode_bodies": "forgeml.loadtest.bodies",
    "parse_duration": "forgeml.loadtest.durations",
    "read_rows": "forgeml.loadtest.bodies",
    "run_load": "forgeml.loadtest.runner",
    "run_load_async": "forgeml.loadtest.runner",
}

if TYPE_CHECKING:
    from forgeml.loadtest.bodies import encode_bodies, read_rows
    from forgeml.loadtest.durations import parse_duration
    from forgeml.loadtest.protocols import ServingProtocol
    from forgeml.loadtest.runner import run_load, run_load_async
    from forgeml.loadtest.stats import LatencySummary, LoadResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'forgeml.loadtest' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
