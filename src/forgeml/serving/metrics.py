"""Prometheus metrics of one server, kept in plain Python and rendered on scrape.

Names follow Prometheus conventions and are the ones the docs, dashboards and alert rules
use: ``forgeml_requests_total{model,version,route,code}``,
``forgeml_request_duration_seconds{route}``, ``forgeml_stage_duration_seconds{stage}``
(parse, features, predict), ``forgeml_batch_size`` (rows per model call),
``forgeml_inflight_requests``, ``forgeml_queue_rows``, ``forgeml_model_info{model,version,
alias}``, ``forgeml_prediction_value{model}``, ``forgeml_feature_drift_score{model,
feature,method}``, ``forgeml_feature_drifted{model,feature}``,
``forgeml_prediction_log_written_total``, ``forgeml_prediction_log_dropped_total``,
``forgeml_prediction_log_errors_total``, ``forgeml_feedback_total{model,status}``,
``forgeml_live_metric{model,version,variant,metric}`` and
``forgeml_live_labels{model,version,variant}``. Routes are label values by template
(``/v2/models/{name}/infer``), never raw paths, so label cardinality stays bounded.

Recording is on the request path, so it is a dictionary lookup and a list increment — no
locks, no per-call label resolution; ``prometheus_client`` only formats the page. Each
series has one writer (the event loop, or the model thread for the features and predict
stages), so the increments need no lock under the GIL.

>>> m = ServerMetrics()
>>> m.count("churn", "3", "/predict", 200, 0.002)
>>> page = m.render()[0].decode()
>>> 'forgeml_requests_total{code="200",model="churn",route="/predict",version="3"} 1.0' in page
True
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from forgeml._optional import require

__all__ = ["Histogram", "ServerMetrics"]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
# Fine between 0 and 1 (probabilities), then decades both ways (regression values).
_VALUES: tuple[float, ...] = (
    -1e4,
    -1e3,
    -100.0,
    -10.0,
    -1.0,
    0.0,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
)
_VALUES += (0.8, 0.9, 0.95, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
STAGES = ("parse", "features", "predict")


class Histogram:
    """Counts per bucket (``value <= bound``) plus a last ``+Inf`` bucket, and the sum.

    >>> h = Histogram((1.0, 2.0))
    >>> for v in (0.5, 1.0, 1.5, 9.0):
    ...     h.observe(v)
    >>> h.cumulative(), h.sum
    ([('1.0', 2), ('2.0', 3), ('+Inf', 4)], 12.0)
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, count in zip(
            [*(repr(float(b)) for b in self.bounds), "+Inf"], self.counts, strict=True
        ):
            total += count
            out.append((bound, total))
        return out


class ServerMetrics:
    """The server's series; :meth:`render` gives the ``/metrics`` body."""

    def __init__(self) -> None:
        self._prom = require("prometheus_client", extra="serve", feature="server metrics")
        self.requests: dict[tuple[str, str, str, int], int] = {}
        self.durations: dict[str, Histogram] = {}
        self.stages = {stage: Histogram(_LATENCY) for stage in STAGES}
        self.batch_size = Histogram(_BATCH)
        self.prediction: dict[str, Histogram] = {}
        self.inflight = 0
        self.models: list[tuple[str, str, str]] = []
        self.queue_rows: Callable[[], int] = lambda: 0
        self.drift: dict[tuple[str, str, str], float] = {}
        self.drifted: dict[tuple[str, str], float] = {}
        self.log_written: Callable[[], int] = lambda: 0
        self.log_dropped: Callable[[], int] = lambda: 0
        self.log_errors: Callable[[], int] = lambda: 0
        self.feedback: dict[tuple[str, str], int] = {}
        # (model, version, variant) -> (labels in the window, {metric: value}), on scrape
        self.live: Callable[[], dict[tuple[str, str, str], tuple[int, dict[str, float]]]] = dict

    # --- recording -----------------------------------------------------------------------
    def count(self, model: str, version: str, route: str, code: int, seconds: float) -> None:
        """One answered request: ``forgeml_requests_total`` and its duration."""
        key = (model, version, route, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.durations.get(route)
        if histogram is None:
            histogram = self.durations[route] = Histogram(_LATENCY)
        histogram.observe(seconds)

    def predictions(self, model: str) -> Histogram:
        """The ``forgeml_prediction_value`` histogram of one model."""
        histogram = self.prediction.get(model)
        if histogram is None:
            histogram = self.prediction[model] = Histogram(_VALUES)
        return histogram

    def set_models(self, models: list[Any]) -> None:
        """``forgeml_model_info``: one series per model version and alias served now."""
        self.models = [
            (model.name, str(model.version), alias)
            for model in models
            for alias in (model.aliases or [""])
        ]

    def count_feedback(self, model: str, status: str, n: int = 1) -> None:
        """``forgeml_feedback_total{model,status}``: matched, duplicate, unknown, outcome."""
        key = (model, status)
        self.feedback[key] = self.feedback.get(key, 0) + n

    def set_drift(self, model: str, feature: str, method: str, score: float) -> None:
        """``forgeml_feature_drift_score``: the latest drift score of one feature."""
        self.drift[(model, feature, method)] = score

    # --- the page ------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        prom = self._prom
        from prometheus_client import core

        registry = prom.CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, core))
        return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST


class _Collector:
    """Turns :class:`ServerMetrics` into metric families at scrape time."""

    def __init__(self, metrics: ServerMetrics, core: Any) -> None:
        self.metrics = metrics
        self.core = core

    def collect(self) -> Iterator[Any]:
        m, core = self.metrics, self.core
        requests = core.CounterMetricFamily(
            "forgeml_requests", "Requests answered.", labels=["model", "version", "route", "code"]
        )
        for (model, version, route, code), value in list(m.requests.items()):
            requests.add_metric([model, version, route, str(code)], value)
        yield requests
        yield self._histograms(
            "forgeml_request_duration_seconds",
            "Time from request to response.",
            "route",
            m.durations,
        )
        yield self._histograms(
            "forgeml_stage_duration_seconds",
            "Time per stage of a prediction (parse, features, predict).",
            "stage",
            m.stages,
        )
        batch = core.HistogramMetricFamily("forgeml_batch_size", "Rows per model call.")
        _add_histogram(batch, core, {}, m.batch_size)
        yield batch
        yield core.GaugeMetricFamily(
            "forgeml_inflight_requests", "Requests being served.", value=m.inflight
        )
        yield core.GaugeMetricFamily(
            "forgeml_queue_rows", "Rows waiting for the model.", value=m.queue_rows()
        )
        info = core.GaugeMetricFamily(
            "forgeml_model_info",
            "Models served (1 per model version and alias).",
            labels=["model", "version", "alias"],
        )
        for labels in m.models:
            info.add_metric(list(labels), 1)
        yield info
        yield core.CounterMetricFamily(
            "forgeml_prediction_log_written",
            "Prediction rows written to the prediction log's store.",
            value=m.log_written(),
        )
        yield core.CounterMetricFamily(
            "forgeml_prediction_log_dropped",
            "Predictions not logged because the prediction log's queue was full.",
            value=m.log_dropped(),
        )
        yield core.CounterMetricFamily(
            "forgeml_prediction_log_errors",
            "Prediction log writes that failed (full disk, lost database).",
            value=m.log_errors(),
        )
        feedback = core.CounterMetricFamily(
            "forgeml_feedback",
            "Feedback items received, by outcome (matched, duplicate, unknown, outcome).",
            labels=["model", "status"],
        )
        for (model, status), value in list(m.feedback.items()):
            feedback.add_metric([model, status], value)
        yield feedback
        live = core.GaugeMetricFamily(
            "forgeml_live_metric",
            "Metrics of labelled predictions over the live window (delayed ground truth).",
            labels=["model", "version", "variant", "metric"],
        )
        labelled = core.GaugeMetricFamily(
            "forgeml_live_labels",
            "Labelled predictions in the live window.",
            labels=["model", "version", "variant"],
        )
        for (model, version, variant), (count, values) in m.live().items():
            labelled.add_metric([model, version, variant], count)
            for metric, number in values.items():
                live.add_metric([model, version, variant, metric], number)
        yield live
        yield labelled
        drift = core.GaugeMetricFamily(
            "forgeml_feature_drift_score",
            "Latest drift score per feature and method (PSI, KS, JS) against the reference.",
            labels=["model", "feature", "method"],
        )
        for labels, score in list(m.drift.items()):
            drift.add_metric(list(labels), score)
        yield drift
        drifted = core.GaugeMetricFamily(
            "forgeml_feature_drifted",
            "1 when the feature drifted at the latest check (effect size and significance).",
            labels=["model", "feature"],
        )
        for pair, flag in list(m.drifted.items()):
            drifted.add_metric(list(pair), flag)
        yield drifted
        yield self._histograms(
            "forgeml_prediction_value",
            "Predicted values (regression) or positive-class probabilities (binary).",
            "model",
            m.prediction,
        )

    def _histograms(self, name: str, doc: str, label: str, series: dict[str, Histogram]) -> Any:
        family = self.core.HistogramMetricFamily(name, doc, labels=[label])
        for value, histogram in list(series.items()):
            _add_histogram(family, self.core, {label: value}, histogram)
        return family


def _add_histogram(family: Any, core: Any, labels: dict[str, str], histogram: Histogram) -> None:
    """Buckets, ``_count`` and ``_sum`` (``prometheus_client`` leaves the last two out when
    a bucket bound is negative, as the prediction histogram's are)."""
    buckets = histogram.cumulative()
    family.add_metric(list(labels.values()), buckets, None)
    family.samples.append(core.Sample(f"{family.name}_count", labels, buckets[-1][1]))
    family.samples.append(core.Sample(f"{family.name}_sum", labels, histogram.sum))
