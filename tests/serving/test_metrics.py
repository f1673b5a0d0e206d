"""The server's own metric series render exactly as prometheus_client's would."""

from __future__ import annotations

import prometheus_client as prom
from hypothesis import given
from hypothesis import strategies as st

from forgeml.serving.metrics import _LATENCY, _VALUES, Histogram, ServerMetrics

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, max_size=60), st.sampled_from([_LATENCY, _VALUES, (0.0, 1.0)]))
def test_histogram_buckets_match_prometheus_client(values: list[float], bounds) -> None:
    ours = Histogram(bounds)
    registry = prom.CollectorRegistry()
    theirs = prom.Histogram("h", "h", buckets=bounds, registry=registry)
    for value in values:
        ours.observe(value)
        theirs.observe(value)
    expected = {
        s.labels["le"]: s.value
        for s in next(iter(registry.collect())).samples
        if s.name == "h_bucket"
    }
    assert {le: float(n) for le, n in ours.cumulative()} == expected
    assert abs(ours.sum - sum(values)) <= 1e-6 * (1 + sum(abs(v) for v in values))


def test_page_lists_every_documented_series() -> None:
    metrics = ServerMetrics()
    metrics.count("churn", "2", "/predict", 200, 0.003)
    metrics.count("churn", "2", "/predict", 200, 0.004)
    metrics.count("", "", "unmatched", 404, 0.0001)
    metrics.predictions("churn").observe(0.7)
    metrics.stages["parse"].observe(0.0001)
    metrics.batch_size.observe(8)
    metrics.inflight = 3
    metrics.queue_rows = lambda: 5
    metrics.set_drift("churn", "age", "psi", 0.25)
    page = metrics.render()[0].decode()
    for line in (
        'forgeml_requests_total{code="200",model="churn",route="/predict",version="2"} 2.0',
        'forgeml_requests_total{code="404",model="",route="unmatched",version=""} 1.0',
        'forgeml_request_duration_seconds_bucket{le="0.005",route="/predict"} 2.0',
        'forgeml_request_duration_seconds_count{route="/predict"} 2.0',
        'forgeml_stage_duration_seconds_count{stage="parse"} 1.0',
        'forgeml_batch_size_bucket{le="8.0"} 1.0',
        "forgeml_inflight_requests 3.0",
        "forgeml_queue_rows 5.0",
        'forgeml_prediction_value_bucket{le="0.7",model="churn"} 1.0',
        'forgeml_prediction_value_count{model="churn"} 1.0',
        'forgeml_feature_drift_score{feature="age",method="psi",model="churn"} 0.25',
    ):
        assert line in page, line
    # The page parses as the Prometheus text format.
    from prometheus_client.parser import text_string_to_metric_families

    names = {family.name for family in text_string_to_metric_families(page)}
    assert {"forgeml_requests", "forgeml_batch_size", "forgeml_model_info"} <= names
