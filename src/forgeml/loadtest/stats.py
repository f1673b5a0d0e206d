"""What a load test measured: counts, throughput, exact latency percentiles, errors by kind.

Every latency sample is kept (8 bytes each: a million requests is 8 MB) and percentiles
are exact nearest-rank values over all of them: the p99 is a latency some request really
had, never an interpolation or a histogram bucket edge.

>>> summary = LatencySummary.from_seconds([0.001 * i for i in range(1, 101)])
>>> summary.p50, summary.p99, summary.max
(50.0, 99.0, 100.0)
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from forgeml.loadtest.connection import CONNECTION, PROTOCOL, STALE, TIMEOUT

__all__ = ["LatencySummary", "LoadResult", "Recorder", "percentile"]

_FAILURES = {
    TIMEOUT: "timeout",
    CONNECTION: "connection",
    STALE: "connection",
    PROTOCOL: "protocol",
}


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ascending ``ordered``: the smallest sample
    with at least ``q`` percent of the samples at or below it.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 51)
    (2.0, 3.0)
    >>> percentile([5.0], 99.9)
    5.0
    """
    if not ordered:
        raise ValueError("percentile of no samples")
    # Integer arithmetic: 0.99 * 100 samples must be rank 99, not 100 by float rounding.
    rank = -(-round(q * 1000) * len(ordered) // 100_000)
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Latency of the completed requests, in milliseconds."""

    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    min: float
    mean: float

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> LatencySummary | None:
        """Summary of ``samples`` (seconds, any order); None when there are none."""
        if not samples:
            return None
        ordered = sorted(samples)

        def ms(seconds: float) -> float:
            return round(seconds * 1000.0, 3)

        return cls(
            p50=ms(percentile(ordered, 50)),
            p90=ms(percentile(ordered, 90)),
            p95=ms(percentile(ordered, 95)),
            p99=ms(percentile(ordered, 99)),
            max=ms(ordered[-1]),
            min=ms(ordered[0]),
            mean=ms(sum(ordered) / len(ordered)),
        )


class Recorder:
    """Collects the outcome of each measured request; cheap enough to call per request."""

    __slots__ = ("failures", "lags", "latencies", "not_sent", "sent", "statuses")

    def __init__(self) -> None:
        self.latencies = array("d")
        self.lags = array("d")
        self.statuses: dict[int, int] = {}
        self.failures: dict[int, int] = {}
        self.sent = 0
        self.not_sent = 0

    def record(self, code: int, seconds: float) -> None:
        """One request ended: a status code with its latency, or a negative failure code."""
        self.sent += 1
        if code >= 0:
            self.latencies.append(seconds)
            self.statuses[code] = self.statuses.get(code, 0) + 1
        else:
            self.failures[code] = self.failures.get(code, 0) + 1

    def errors(self) -> dict[str, int]:
        """Errors by kind: ``http_<status>`` for statuses >= 400, ``timeout``,
        ``connection``, ``protocol``, and ``not_sent`` for open-loop arrivals dropped
        because too many requests were outstanding."""
        errors = {f"http_{code}": n for code, n in sorted(self.statuses.items()) if code >= 400}
        for code, n in self.failures.items():
            kind = _FAILURES[code]
            errors[kind] = errors.get(kind, 0) + n
        if self.not_sent:
            errors["not_sent"] = self.not_sent
        return errors


@dataclass(frozen=True)
class LoadResult:
    """The outcome of one load test (see :func:`forgeml.loadtest.run_load`).

    Counts cover the measured window only (after the warmup). ``sent`` requests each ended
    as ``completed`` (a response, whatever its status) or as a ``timeout``/``connection``/
    ``protocol`` error; open-loop arrivals that could not be sent are ``errors["not_sent"]``.
    ``duration_s`` is the measured window, shorter than asked when a request cap or an
    interrupt ended it. ``latency_ms`` covers completed requests (None when there were none);
    in open loop it runs from each request's scheduled time, so queueing in the client
    counts, and ``dispatch_lag_ms`` says how late the generator sent (p99 and max).
    ``client_cpu_percent`` is the CPU the generator's process used over the run (100 = one
    core), to tell how much of a shared machine the measurement itself took.
    """

    url: str
    method: str
    mode: str
    concurrency: int | None
    rate: float | None
    duration_s: float
    warmup_s: float
    sent: int
    completed: int
    ok: int
    errors: dict[str, int]
    status_codes: dict[int, int]
    latency_ms: LatencySummary | None
    rows_per_request: int | None = None
    dispatch_lag_ms: dict[str, float] | None = None
    interrupted: bool = False
    client_cpu_percent: float | None = None

    @property
    def throughput_rps(self) -> float:
        """Completed requests per second of the measured window."""
        return self.completed / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def rows_per_s(self) -> float | None:
        """Rows per second in successful (status < 400) responses; None without rows."""
        if self.rows_per_request is None or self.duration_s <= 0:
            return None
        return self.ok * self.rows_per_request / self.duration_s

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what ``--output json`` prints)."""
        data = asdict(self)
        data["status_codes"] = {str(k): v for k, v in sorted(self.status_codes.items())}
        data["throughput_rps"] = round(self.throughput_rps, 3)
        rows = self.rows_per_s
        data["rows_per_s"] = None if rows is None else round(rows, 3)
        data["duration_s"] = round(self.duration_s, 6)
        return data

    @classmethod
    def from_recorder(cls, recorder: Recorder, **fields: Any) -> LoadResult:
        """The result of a run whose measured requests ``recorder`` collected."""
        statuses = dict(recorder.statuses)
        lags = sorted(recorder.lags)
        lag = None
        if lags:
            lag = {
                "p99": round(percentile(lags, 99) * 1000, 3),
                "max": round(lags[-1] * 1000, 3),
            }
        return cls(
            sent=recorder.sent,
            completed=sum(statuses.values()),
            ok=sum(n for code, n in statuses.items() if code < 400),
            errors=recorder.errors(),
            status_codes=statuses,
            latency_ms=LatencySummary.from_seconds(recorder.latencies),
            dispatch_lag_ms=lag,
            **fields,
        )
