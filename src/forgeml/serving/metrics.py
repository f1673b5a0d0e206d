"""Prometheus metrics of one server, in a registry of its own (no module-level state).

Names follow Prometheus conventions and are the ones the shipped Grafana dashboard and
alert rules use: ``forgeml_requests_total{model,version,route,code}``,
``forgeml_request_duration_seconds{route}``, ``forgeml_stage_duration_seconds{stage}``
(parse, features, predict), ``forgeml_batch_size`` (rows per model call),
``forgeml_inflight_requests``, ``forgeml_model_info{model,version,alias}`` and
``forgeml_prediction_value{model}``. Routes are label values by template
(``/v2/models/{name}/infer``), never raw paths, so label cardinality stays bounded.

>>> m = ServerMetrics()
>>> m.requests.labels(model="churn", version="3", route="/predict", code="200").inc()
>>> b"forgeml_requests_total" in m.render()[0]
True
"""

from __future__ import annotations

from typing import Any

from forgeml._optional import require

__all__ = ["ServerMetrics"]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
# Fine between 0 and 1 (probabilities), then decades both ways (regression values).
_VALUES = (
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
    0.8,
    0.9,
    0.95,
    1.0,
    10.0,
    100.0,
    1e3,
    1e4,
    1e5,
)


class ServerMetrics:
    """The server's collectors; :meth:`render` gives the ``/metrics`` body."""

    def __init__(self) -> None:
        prom = require("prometheus_client", extra="serve", feature="server metrics")
        self._prom = prom
        self.registry = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = prom.Counter(
            "forgeml_requests",
            "Requests answered.",
            ["model", "version", "route", "code"],
            registry=r,
        )
        self.duration = prom.Histogram(
            "forgeml_request_duration_seconds",
            "Time from request to response.",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.stage = prom.Histogram(
            "forgeml_stage_duration_seconds",
            "Time per stage of a prediction (parse, features, predict).",
            ["stage"],
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_size = prom.Histogram(
            "forgeml_batch_size", "Rows per model call.", buckets=_BATCH, registry=r
        )
        self.inflight = prom.Gauge(
            "forgeml_inflight_requests", "Requests being served.", registry=r
        )
        self.model_info = prom.Gauge(
            "forgeml_model_info",
            "Models served (1 per model version and alias).",
            ["model", "version", "alias"],
            registry=r,
        )
        self.prediction = prom.Histogram(
            "forgeml_prediction_value",
            "Predicted values (regression) or positive-class probabilities (binary).",
            ["model"],
            buckets=_VALUES,
            registry=r,
        )
        self.queue_rows = prom.Gauge(
            "forgeml_queue_rows", "Rows waiting for the model.", registry=r
        )

    def set_models(self, models: list[Any]) -> None:
        """Replace ``forgeml_model_info`` with the models served now."""
        self.model_info.clear()
        for model in models:
            for alias in model.aliases or [""]:
                self.model_info.labels(
                    model=model.name, version=str(model.version), alias=alias
                ).set(1)

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
