"""Exact percentiles and the result's accounting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.loadtest.connection import CONNECTION, PROTOCOL, STALE, TIMEOUT
from forgeml.loadtest.stats import LatencySummary, LoadResult, Recorder, percentile


@given(
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from([50, 90, 95, 99, 99.9, 100, 0.1]),
)
def test_percentile_is_nearest_rank(samples: list[float], q: float) -> None:
    ordered = sorted(samples)
    expected = np.percentile(np.asarray(ordered), q, method="inverted_cdf")
    assert percentile(ordered, q) == expected


def test_percentile_has_no_float_off_by_one() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert [percentile(ordered, q) for q in (50, 90, 95, 99, 100)] == [50, 90, 95, 99, 100]
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_in_milliseconds() -> None:
    summary = LatencySummary.from_seconds([0.003, 0.001, 0.002, 0.010])
    assert summary == LatencySummary(
        p50=2.0, p90=10.0, p95=10.0, p99=10.0, max=10.0, min=1.0, mean=4.0
    )
    assert LatencySummary.from_seconds([]) is None


def test_result_accounting_and_json() -> None:
    recorder = Recorder()
    for code in (200, 200, 201, 404, 503, 503, TIMEOUT, CONNECTION, STALE, PROTOCOL):
        recorder.record(code, 0.004)
    recorder.not_sent = 3
    recorder.lags.extend([0.0, 0.002])
    result = LoadResult.from_recorder(
        recorder,
        url="http://127.0.0.1:1/",
        method="POST",
        mode="open",
        concurrency=None,
        rate=100.0,
        duration_s=2.0,
        warmup_s=0.0,
        rows_per_request=4,
    )
    assert (result.sent, result.completed, result.ok) == (10, 6, 3)
    assert result.errors == {
        "http_404": 1,
        "http_503": 2,
        "timeout": 1,
        "connection": 2,
        "protocol": 1,
        "not_sent": 3,
    }
    assert result.n_errors == 10
    assert result.throughput_rps == 3.0 and result.rows_per_s == 6.0
    data = json.loads(json.dumps(result.to_dict()))
    assert data["status_codes"] == {"200": 2, "201": 1, "404": 1, "503": 2}
    assert data["latency_ms"]["p99"] == 4.0 and data["dispatch_lag_ms"] == {"p99": 2.0, "max": 2.0}
    assert data["throughput_rps"] == 3.0 and data["rows_per_s"] == 6.0
