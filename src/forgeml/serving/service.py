"""The request handlers and the one table of routes and who may call them.

:data:`ROUTES` lists every route with its method, template, role (``public`` or
``admin``) and summary; the app, the OpenAPI document and the auth test are all built from
it, so a route cannot exist without being listed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from forgeml.errors import ConfigError, ForgeError, RequestError, ServiceError
from forgeml.serving import inputs, outputs
from forgeml.serving.auth import AdminKey
from forgeml.serving.batching import BatchStats, MicroBatcher
from forgeml.serving.catalog import ModelCatalog, ServedModel
from forgeml.serving.config import ServeConfig
from forgeml.serving.driftwatch import DriftWatch
from forgeml.serving.experiments import ExperimentRouter, Routed
from forgeml.serving.feedback import (
    Entry,
    FeedbackItem,
    LiveWindow,
    RecentRequests,
    check_label,
    parse_feedback,
)
from forgeml.serving.http import content_type, json_response, read_body
from forgeml.serving.metrics import ServerMetrics
from forgeml.serving.predlog import PredictionLog
from forgeml.serving.recommending import parse_id, parse_interactions, parse_k, parse_recommend
from forgeml.version import __version__

__all__ = ["ROUTES", "PredictionService", "RouteSpec"]

shadow_logger = logging.getLogger("forgeml.server")


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    role: str  # "public" | "admin"
    handler: str  # name of the PredictionService method
    summary: str
    body: str | None = None  # request body kind, for the OpenAPI document


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        "GET", "/v2", "public", "server_metadata", "Server metadata (Open Inference Protocol v2)."
    ),
    RouteSpec("GET", "/v2/health/live", "public", "live", "The process is up."),
    RouteSpec(
        "GET",
        "/v2/health/ready",
        "public",
        "ready",
        "Models are loaded and the server is not draining.",
    ),
    RouteSpec(
        "GET",
        "/v2/models/{name}",
        "public",
        "model_metadata",
        "Metadata of a model's default version.",
    ),
    RouteSpec(
        "GET",
        "/v2/models/{name}/versions/{version}",
        "public",
        "model_metadata",
        "Metadata of a model version.",
    ),
    RouteSpec(
        "GET", "/v2/models/{name}/ready", "public", "model_ready", "Whether a model is ready."
    ),
    RouteSpec(
        "GET",
        "/v2/models/{name}/versions/{version}/ready",
        "public",
        "model_ready",
        "Whether a model version is ready.",
    ),
    RouteSpec(
        "POST",
        "/v2/models/{name}/infer",
        "public",
        "v2_infer",
        "Predict (OIP v2, one input per column).",
        "v2",
    ),
    RouteSpec(
        "POST",
        "/v2/models/{name}/versions/{version}/infer",
        "public",
        "v2_infer",
        "Predict with a version (OIP v2).",
        "v2",
    ),
    RouteSpec(
        "POST",
        "/invocations",
        "public",
        "invocations",
        "Predict (MLflow scoring protocol: JSON or CSV).",
        "mlflow",
    ),
    RouteSpec("GET", "/ping", "public", "ping", "MLflow health check."),
    RouteSpec("GET", "/health", "public", "ping", "MLflow health check."),
    RouteSpec("POST", "/predict", "public", "predict", "Predict from JSON records.", "plain"),
    RouteSpec(
        "POST",
        "/v2/feedback",
        "public",
        "feedback",
        "Delayed ground truth: labels for served predictions, or experiment outcomes.",
        "feedback",
    ),
    RouteSpec(
        "POST",
        "/v1/recommend",
        "public",
        "recommend",
        "Top-k items for a user (or a list of users) of a recommendation model.",
        "recommend",
    ),
    RouteSpec(
        "POST",
        "/v1/similar-items",
        "public",
        "similar_items",
        "The items most similar to an item (recommendation models).",
        "similar",
    ),
    RouteSpec(
        "POST",
        "/v1/interactions",
        "public",
        "interactions",
        "New user-item interactions: the users' next recommendations include them.",
        "interactions",
    ),
    RouteSpec("GET", "/metrics", "public", "metrics_page", "Prometheus metrics."),
    RouteSpec("GET", "/openapi.json", "public", "openapi", "This API's OpenAPI document."),
    RouteSpec("GET", "/docs", "public", "docs", "A page listing the routes."),
    RouteSpec(
        "POST",
        "/admin/reload",
        "admin",
        "reload",
        "Resolve aliases again and load new versions.",
        "empty",
    ),
    RouteSpec("GET", "/admin/experiments", "admin", "experiments", "Running experiments.", None),
    RouteSpec(
        "POST",
        "/admin/experiments",
        "admin",
        "start_experiment",
        "Start an A/B experiment on a served model.",
        "experiment",
    ),
    RouteSpec(
        "PUT",
        "/admin/experiments/{name}/weights",
        "admin",
        "experiment_weights",
        "Change a running experiment's traffic weights.",
        "weights",
    ),
    RouteSpec(
        "POST",
        "/admin/experiments/{name}/conclude",
        "admin",
        "conclude_experiment",
        "Conclude an experiment: promote a variant (moves the alias) or roll back.",
        "conclude",
    ),
)

Handler = Callable[[Request], Awaitable[Response]]
# Batches up to this many rows run on the event loop itself: handing them to the model
# thread costs more than computing them (a few hundred microseconds at most), and the GIL
# would make the loop wait for that thread anyway. Larger batches go to the thread.
INLINE_ROWS = 32


class PredictionService:
    """Holds the models, limits, metrics and keys; one method per route."""

    def __init__(self, config: ServeConfig, *, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.admin_key = AdminKey.from_env(env if env is not None else dict(os.environ))
        if config.admin and not self.admin_key.configured:
            raise ConfigError(
                "serve: admin routes are enabled but no admin key is configured "
                "(set FORGEML_ADMIN_KEY or FORGEML_ADMIN_KEY_FILE, or drop --admin)"
            )
        self.admin_enabled = (
            self.admin_key.configured if config.admin is None else bool(config.admin)
        )
        self.catalog = ModelCatalog(
            config.models,
            registry=config.registry,
            artifacts=config.artifacts,
            model_threads=config.model_threads,
            interactions=config.interactions,
        )
        self.metrics = ServerMetrics()
        self.metrics.queue_rows = lambda: sum(b.queued_rows for b in self._batchers)
        self.predlog = (
            PredictionLog(config.prediction_log, input_fraction=config.log_inputs)
            if config.prediction_log
            else None
        )
        self.recent = RecentRequests()
        self.live_windows: dict[tuple[str, str, str], LiveWindow] = {}
        self.drift = DriftWatch(
            self.metrics, self.catalog.defaults, seconds=config.drift_seconds,
            rows=config.drift_rows,
        )  # fmt: skip
        if self.predlog is not None:
            log = self.predlog
            log.on_take = self.drift.add_logged
            self.drift.refresh = log.take
            self.metrics.log_written = lambda: log.written
            self.metrics.log_dropped = lambda: log.dropped
            self.metrics.log_errors = lambda: log.errors
        self.metrics.live = self._live_metrics
        self.router = ExperimentRouter()
        self.draining = False
        self._poller: asyncio.Task[None] | None = None
        self._batchers: list[MicroBatcher] = []
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        if self.predlog is not None:
            self.predlog.start()
        await self.catalog.reload()
        self._attach_batchers()
        _freeze_heap()
        if self.predlog is not None and self.config.drift_seconds:
            self.drift.start()
        if self.config.poll_seconds:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        self.draining = True
        if self._poller is not None:
            self._poller.cancel()
        await self.drift.stop()
        for batcher in self._batchers:
            await batcher.stop()
        if self.predlog is not None:
            await self.predlog.close()

    async def _poll(self) -> None:
        assert self.config.poll_seconds is not None
        while True:
            await asyncio.sleep(self.config.poll_seconds)
            try:
                await self._reload()
            except ForgeError:
                continue  # a registry hiccup must not stop serving what is loaded

    async def _reload(self) -> list[str]:
        changes = await self.catalog.reload()
        self._attach_batchers()
        if changes:
            _freeze_heap()
        return changes

    def _attach_batchers(self) -> None:
        for model in self.catalog.models():
            if model.batcher is None and not model.is_recommender:
                model.bundle.estimator.set_predict_threads(self.config.model_threads)
                stats = BatchStats(on_batch=self._on_batch)
                model.batcher = MicroBatcher(
                    _predictor(model, self.metrics),
                    batch_rows=self.config.batch_rows,
                    batch_wait_ms=self.config.batch_wait_ms,
                    max_queue_rows=self.config.max_queue_rows,
                    inline_rows=INLINE_ROWS,
                    stats=stats,
                )
                model.batcher.start()
                self._batchers.append(model.batcher)
        self.router.update(self.catalog)
        self.metrics.set_models(self.catalog.models())
        served = {id(m.batcher) for m in self.catalog.models()}
        stale = [b for b in self._batchers if id(b) not in served]
        for batcher in stale:  # versions no longer served: retire them gracefully
            self._batchers.remove(batcher)
            asyncio.get_running_loop().create_task(self._retire(batcher))

    async def _retire(self, batcher: MicroBatcher) -> None:
        """Stop a replaced version's batcher once no request can still reach it: a request
        that picked the old version just before the swap submits within its timeout."""
        await asyncio.sleep(self.config.timeout_seconds)
        await batcher.stop()

    def _on_batch(self, rows: int, requests: int, seconds: float) -> None:
        self.metrics.batch_size.observe(rows)

    # --- prediction core -----------------------------------------------------------------
    async def _predict(
        self, request: Request, model: ServedModel, records: list[dict[str, Any]]
    ) -> np.ndarray:
        state = request.scope["state"]  # read by the app for metrics and the access log
        model = model.tabular()
        running = self.router.get(model.name)
        routed = None
        if running is not None and self.catalog.is_default(model):
            routed = self.router.route(running, records, request.scope)
            model, records = routed.model, routed.records
            state["routed"] = routed
        state["model"] = model
        state["rows"] = len(records)
        checked = self._check(model, records)
        raw = await self._submit(model, checked)
        if self.predlog is not None:
            state["log"] = (records, raw)  # written by the app once the answer is out
            if routed is not None and routed.shadows:
                state["shadow"] = checked
        if model.task.is_binary or model.task.kind == "regression":
            observe = self.metrics.predictions(model.name).observe
            for value in (raw[:, 1] if model.task.is_binary else raw).tolist():
                observe(value)
        return raw

    def _check(self, model: ServedModel, records: list[dict[str, Any]]) -> list[Any]:
        return inputs.check_records(
            records,
            model.schema,
            allow_extra=self.config.allow_extra_columns,
            max_rows=self.config.max_batch_rows,
            datetime_formats=model.bundle.datetime_formats,
            known=model.bundle.ignored_columns or (),
        )

    async def _submit(self, model: ServedModel, checked: list[Any]) -> np.ndarray:
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                raw: np.ndarray = await model.batcher.submit(checked)
        except TimeoutError:
            raise ServiceError(
                f"the prediction took longer than {self.config.timeout_seconds:g} s",
                retry_after=1.0,
            ) from None
        return raw

    def _model(self, request: Request) -> ServedModel:
        params = request.scope.get("path_params") or {}
        name, version = params.get("name"), params.get("version")
        if request.scope.get("query_string"):
            query = request.query_params
            name = name or query.get("model")
            version = version or query.get("version")
        return self.catalog.get(name, version)

    async def _json(self, request: Request) -> Any:
        started = time.perf_counter()
        body = await self._body(request)
        data = inputs.parse_json(body, max_depth=self.config.max_json_depth)
        self.metrics.stages["parse"].observe(time.perf_counter() - started)
        return data

    async def _body(self, request: Request) -> bytes:
        """The body, which must arrive within the request timeout: a client trickling its
        bytes gets 408 instead of holding a connection and a slot for ever."""
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                return await read_body(request, self.config.max_body_bytes)
        except TimeoutError:
            raise RequestError(
                f"the request body did not arrive within {self.config.timeout_seconds:g} s",
                status=408,
            ) from None

    def log_predictions(self, state: dict[str, Any], request_id: str, seconds: float) -> None:
        """Queue a successful request's rows in the prediction log (never blocks). The
        request's hot path: positional calls, no objects kept per request that the
        garbage collector would have to walk (see :class:`PredictionLog`)."""
        log = self.predlog
        if log is None or "log" not in state:
            return
        records, raw = state["log"]
        model = state["model"]
        routed: Routed | None = state.get("routed")
        variant = unit = None
        if routed is not None:
            variant, unit = routed.variant, routed.unit
        log.record(
            request_id, model.name, model.version, records, raw, _decoder(model), seconds * 1000,
            variant, unit,
        )  # fmt: skip
        self.recent.add(request_id, model.name, model.version, variant, raw)
        if routed is not None and "shadow" in state:
            for name, shadow in routed.shadows:
                task = asyncio.get_running_loop().create_task(
                    self._shadow(shadow, name, routed, records, state["shadow"], request_id)
                )
                self._shadow_tasks.add(task)
                task.add_done_callback(self._shadow_tasks.discard)

    def log_error(self, state: dict[str, Any]) -> None:
        """Count a server error (5xx: overload, timeout, a bug) of an experiment's variant:
        the error-rate guardrail of ``forgeml ab status`` reads these."""
        routed: Routed = state["routed"]
        if self.predlog is not None and routed.variant is not None:
            self.predlog.count_event(routed.model.name, "request_error", 1, routed.variant)

    async def _shadow(
        self,
        model: ServedModel,
        variant: str,
        routed: Routed,
        records: list[dict[str, Any]],
        checked: list[Any],
        request_id: str,
    ) -> None:
        """Score a request with a shadow variant after its answer went out; log, never
        return. A failure here is counted, never seen by the client."""
        assert self.predlog is not None
        started = time.perf_counter()
        try:
            raw = await self._submit(model, checked)
        except ForgeError as exc:
            shadow_logger.warning("shadow %s@%s failed: %s", model.name, model.version, exc)
            return
        elapsed = (time.perf_counter() - started) * 1000
        self.predlog.record(
            request_id, model.name, model.version, records, raw, _decoder(model), elapsed,
            variant, routed.unit, shadow=True,
        )  # fmt: skip
        self.recent.add_shadow(request_id, (model.name, model.version, variant, raw, len(records)))

    @staticmethod
    def _headers(model: ServedModel, request: Request | None = None) -> dict[str, str]:
        headers = {"X-Forgeml-Model": model.name, "X-Forgeml-Model-Version": str(model.version)}
        routed = request.scope["state"].get("routed") if request is not None else None
        if routed is not None and routed.variant is not None:
            headers["X-Forgeml-Variant"] = routed.variant
        return headers

    # --- routes: recommendations ---------------------------------------------------------
    async def _recommender(self, request: Request) -> tuple[Any, dict[str, Any], Any]:
        """The body, the served model it names (or the only one) and its recommender.
        ``curl -d '{...}'`` works as is (its default form content type is accepted: the
        body must still be JSON)."""
        _require_json(request, form_ok=True)
        data = await self._json(request)
        if not isinstance(data, dict):
            raise RequestError("the body must be a JSON object", status=422)
        model = self.catalog.get(data.get("model"), data.get("version"))
        request.scope["state"]["model"] = model  # for the metrics and the access log
        return model, data, model.recommender()

    async def recommend(self, request: Request) -> Response:
        model, data, served = await self._recommender(request)
        query = parse_recommend(data)
        request.scope["state"]["rows"] = len(query.users)
        results = await served.call(served.recommend, query)
        head = {"model": model.name, "version": model.version}
        body = {**head, "results": results} if query.batch else {**head, **results[0]}
        return json_response(body, headers=self._headers(model))

    async def similar_items(self, request: Request) -> Response:
        model, data, served = await self._recommender(request)
        if "item" not in data:
            raise RequestError('the body needs "item" (an item id)', status=422)
        item = parse_id(data["item"], "item")
        k = parse_k(data.get("k", 10))
        result = await served.call(served.similar, item, k)
        body = {"model": model.name, "version": model.version, **result}
        return json_response(body, headers=self._headers(model))

    async def interactions(self, request: Request) -> Response:
        model, data, served = await self._recommender(request)
        events = parse_interactions(data)
        request.scope["state"]["rows"] = len(events)
        result = await served.call(served.add, events)
        body = {"model": model.name, "version": model.version, **result}
        return json_response(body, headers=self._headers(model))

    # --- routes: predictions -------------------------------------------------------------
    async def predict(self, request: Request) -> Response:
        _require_json(request)
        data = await self._json(request)
        records = inputs.parse_plain(data)
        if isinstance(data, dict) and ("model" in data or "version" in data):
            model = self.catalog.get(data.get("model"), data.get("version"))
        else:
            model = self._model(request)
        raw = await self._predict(request, model, records)
        model = request.scope["state"]["model"]
        return json_response(outputs.plain_body(model, raw), headers=self._headers(model, request))

    async def v2_infer(self, request: Request) -> Response:
        _require_json(request)
        model = self._model(request)
        data = await self._json(request)
        records, request_id, wanted = inputs.parse_v2(data)
        raw = await self._predict(request, model, records)
        model = request.scope["state"]["model"]
        body = outputs.v2_body(model, raw, request_id, wanted)
        return json_response(body, headers=self._headers(model, request))

    async def invocations(self, request: Request) -> Response:
        model = self._model(request).tabular()
        kind = content_type(request)
        if kind in ("text/csv", "application/csv"):
            body = await self._body(request)
            records = inputs.parse_csv(body, model.schema)
        elif kind in ("application/json", ""):
            records = inputs.parse_mlflow(await self._json(request), model.schema)
        else:
            raise RequestError(
                f"unsupported content type '{kind}' (use application/json or text/csv)",
                status=415,
            )
        raw = await self._predict(request, model, records)
        model = request.scope["state"]["model"]
        return json_response(outputs.mlflow_body(model, raw), headers=self._headers(model, request))

    # --- routes: feedback ----------------------------------------------------------------
    async def feedback(self, request: Request) -> Response:
        if self.predlog is None:
            raise RequestError(
                "feedback needs the prediction log: start the server with --prediction-log",
                status=404,
            )
        _require_json(request)
        items = parse_feedback(await self._json(request))
        rows: list[dict[str, Any]] = []
        live: list[tuple[str, Entry | None, int, Any]] = []
        claimed: set[tuple[str, int]] = set()
        statuses: list[tuple[str, str]] = []
        for item in items:
            if item.unit is not None:
                rows.append(self._outcome(item))
                statuses.append((rows[-1]["model"], "outcome"))
                continue
            for model_name, entry, row, label in await self._labels(item, claimed):
                rows.append(
                    {"model": model_name, "request_id": item.request_id, "row": row,
                     "label": _json_text(label), "event_id": item.event_id}
                )  # fmt: skip
                statuses.append((model_name, "matched"))
                live.append((str(item.request_id), entry, row, label))
        # Every item was valid: record them all, then update what this process shows.
        self.predlog.record_feedback(rows)
        for request_id, entry, row, label in live:
            self.recent.mark(request_id, row)
            if entry is not None:
                self._observe(entry, row, label)
                for shadow in self.recent.shadows(request_id):
                    self._observe(shadow, row, label)
        for model_name, status in statuses:
            self.metrics.count_feedback(model_name, status)
        outcomes = sum(1 for _, status in statuses if status == "outcome")
        return json_response(
            {"recorded": len(rows), "labels": len(rows) - outcomes, "outcomes": outcomes}
        )

    def _outcome(self, item: FeedbackItem) -> dict[str, Any]:
        """An experiment unit's outcome: the model must run an experiment here."""
        try:
            model = self.catalog.get(item.model)
        except RequestError as exc:
            raise RequestError(f"{item.where}: {exc}", status=exc.http_status) from None
        running = self.router.get(model.name)
        if running is None:
            raise RequestError(
                f"{item.where}: model '{model.name}' runs no experiment here; outcomes by "
                "unit_id count only in experiments (label predictions by request_id)",
                status=409,
            )
        return {
            "model": model.name,
            "unit": item.unit,
            "experiment": running.experiment.name,
            "label": _json_text(item.value),
            "event_id": item.event_id,
        }

    async def _labels(
        self, item: FeedbackItem, claimed: set[tuple[str, int]]
    ) -> list[tuple[str, Entry | None, int, Any]]:
        """``(model, the request's entry or None, row, label)`` per labelled row, or a
        404/409/422."""
        assert item.request_id is not None and item.labels is not None
        request_id = item.request_id
        entry = self.recent.get(request_id)
        if entry is not None:
            model, rows = self._served(entry), entry[4]
        else:  # an older request (or another worker's): the log store knows it
            found = await self._find_logged(request_id)
            if found is None:
                raise RequestError(
                    f"{item.where}: unknown request id '{request_id}' (no prediction "
                    "with this id was served or logged)",
                    status=404,
                )
            model, rows = found
        if model is None:
            raise RequestError(
                f"{item.where}: request '{request_id}' was answered by model "
                f"'{entry[0] if entry else '?'}', which this server no longer serves",
                status=409,
            )
        if item.model is not None and item.model != model.name:
            raise RequestError(
                f"{item.where}: request '{request_id}' was answered by model "
                f"'{model.name}', not '{item.model}'",
                status=409,
            )
        if item.row is not None:
            targets = [item.row]
        elif len(item.labels) == 1 and rows == 1:
            targets = [0]
        elif len(item.labels) == rows:
            targets = list(range(rows))
        else:
            raise RequestError(
                f"{item.where}: request '{request_id}' had {rows} rows: give labels "
                f"(one per row) or row with label, got {len(item.labels)} label(s)",
                status=422,
            )
        out: list[tuple[str, Entry | None, int, Any]] = []
        for row, label in zip(targets, item.labels, strict=True):
            if row >= rows:
                raise RequestError(
                    f"{item.where}.row: request '{request_id}' had {rows} rows "
                    f"(0 to {rows - 1}), got {row}",
                    status=422,
                )
            if self.recent.is_labelled(request_id, row) or (request_id, row) in claimed:
                raise RequestError(
                    f"{item.where}: request '{request_id}' row {row} already has its "
                    "label (feedback is recorded once; nothing was recorded now)",
                    status=409,
                )
            claimed.add((request_id, row))
            out.append((model.name, entry, row, check_label(model, label, item.where)))
        return out

    def _served(self, entry: Entry) -> ServedModel | None:
        """The model version of an entry (its name's default version when that version
        is no longer loaded: same task and classes), or None when the name is gone."""
        name, version = entry[0], entry[1]
        for wanted in (version, None):
            try:
                return self.catalog.get(name, wanted)
            except RequestError:
                continue
        return None

    async def _find_logged(self, request_id: str) -> tuple[ServedModel | None, int] | None:
        """A request no longer in memory, from the log store: its model and row count."""
        assert self.predlog is not None
        frame = await asyncio.to_thread(self.predlog.store.find, request_id)
        frame = frame.filter(~frame["shadow"]) if frame.height else frame
        if frame.height == 0:
            return None
        name, version = str(frame["model"][0]), str(frame["version"][0])
        number = int(version) if version.isdigit() else 0
        model = self._served((name, number, None, np.empty(0), 0))
        return model, frame.height

    def _observe(self, entry: Entry, row: int, label: Any) -> None:
        """Feed one labelled row to the live window of its version and variant."""
        target = self._served(entry)
        if target is None:
            return
        name, version, variant, raw, _ = entry
        key = (name, str(version), variant or "")
        window = self.live_windows.get(key)
        if window is None:
            window = self.live_windows[key] = LiveWindow(self.config.live_window_seconds)
        predictions, scores = _decoder(target)(raw[row : row + 1])
        window.add(label, predictions[0], None if scores is None else scores[0])

    def _live_metrics(self) -> dict[tuple[str, str, str], tuple[int, dict[str, float]]]:
        out = {}
        for key, window in list(self.live_windows.items()):
            try:
                model = self.catalog.get(key[0])
            except RequestError:
                continue
            task = model.task
            kind = "regression" if task.kind == "regression" else (
                "binary" if task.is_binary else "multiclass"
            )  # fmt: skip
            positive = model.classes[1] if task.is_binary else None
            out[key] = window.metrics(kind, positive)
        return out

    # --- routes: health and metadata -----------------------------------------------------
    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        ok = self.catalog.ready and not self.draining
        return json_response({"ready": ok}, status=200 if ok else 503)

    async def ping(self, request: Request) -> Response:
        ok = self.catalog.ready and not self.draining
        return PlainTextResponse("\n" if ok else "not ready\n", status_code=200 if ok else 503)

    async def server_metadata(self, request: Request) -> Response:
        return json_response(
            {
                "name": "forgeml",
                "version": __version__,
                "extensions": ["model_repository_reload", "mlflow_scoring", "metrics"],
                "models": [
                    {"name": m.name, "version": str(m.version), "aliases": m.aliases}
                    for m in self.catalog.models()
                ],
            }
        )

    async def model_metadata(self, request: Request) -> Response:
        model = self._model(request)
        if model.is_recommender:
            return json_response(
                {
                    "name": model.name,
                    "versions": [
                        str(m.version) for m in self.catalog.models() if m.name == model.name
                    ],
                    "platform": "forgeml-recommender",
                    "inputs": [],
                    "outputs": [],
                    "parameters": {
                        "version": str(model.version),
                        "aliases": model.aliases,
                        **model.bundle.describe(),
                    },
                },
                headers=self._headers(model),
            )
        kinds = {"int": "FP64", "float": "FP64", "bool": "BOOL"}
        body = {
            "name": model.name,
            "versions": [str(m.version) for m in self.catalog.models() if m.name == model.name],
            "platform": "forgeml",
            "inputs": [
                {
                    "name": col,
                    "datatype": kinds.get(kind, "BYTES"),
                    "shape": [-1],
                    "parameters": {"forgeml_type": kind},
                }
                for col, kind in model.schema.items()
            ],
            "outputs": [
                {
                    "name": name,
                    "datatype": "FP64" if name.startswith("proba_") else "BYTES",
                    "shape": [-1],
                }
                for name in (["prediction"] + [f"proba_{c}" for c in model.classes])
            ],
            "parameters": {
                "version": str(model.version),
                "aliases": model.aliases,
                "task": model.task.subtype,
            },
        }
        return json_response(body, headers=self._headers(model))

    async def model_ready(self, request: Request) -> Response:
        model = self._model(request)
        return json_response(
            {"name": model.name, "ready": not self.draining}, headers=self._headers(model)
        )

    async def metrics_page(self, request: Request) -> Response:
        content, media = self.metrics.render()
        return Response(content, media_type=media)

    async def openapi(self, request: Request) -> Response:
        from forgeml.serving.openapi import openapi_document

        return json_response(openapi_document(ROUTES))

    async def docs(self, request: Request) -> Response:
        from forgeml.serving.openapi import docs_page

        return Response(docs_page(ROUTES), media_type="text/html")

    # --- routes: admin -------------------------------------------------------------------
    async def reload(self, request: Request) -> Response:
        changes = await self._reload()
        models = [
            {"name": m.name, "version": m.version, "aliases": m.aliases}
            for m in self.catalog.models()
        ]
        return json_response({"changes": changes, "models": models})

    async def experiments(self, request: Request) -> Response:
        return json_response(
            {
                "experiments": [
                    {
                        **running.experiment.to_dict(),
                        "exposed_units_here": len(running.exposures),
                    }
                    for running in self.router.running()
                ]
            }
        )

    async def start_experiment(self, request: Request) -> Response:
        """Start an experiment on a served model (recorded in the registry), then serve it."""
        from forgeml.experiments import TrafficSplit
        from forgeml.experiments.spec import Experiment

        _require_json(request)
        data = await self._json(request)
        if not isinstance(data, dict):
            raise RequestError("expected a JSON object describing the experiment")
        model = self.catalog.get(data.get("model"))
        variants = data.get("variants")
        if isinstance(variants, str):
            variants = TrafficSplit.parse(model.name, variants).weights
        if not isinstance(variants, dict):
            raise RequestError('variants: expected {"champion": 0.9, "challenger": 0.1}')
        known = {"model", "variants", "unit", "metric", "kind", "name", "shadow", "alias",
                 "control", "alpha", "higher_is_better"}  # fmt: skip
        extra = sorted(set(data) - known)
        if extra:
            raise RequestError(f"unknown field(s) {', '.join(extra)}")
        for field_name in ("unit", "metric"):
            if not isinstance(data.get(field_name), str) or not data[field_name]:
                raise RequestError(f"{field_name}: expected a non-empty string")
        options = {
            k: data[k]
            for k in ("name", "shadow", "alias", "control", "alpha", "higher_is_better")
            if k in data
        }
        try:
            experiment = Experiment(
                model=model.name,
                variants=variants,
                unit=data["unit"],
                metric=data["metric"],
                metric_kind=data.get("kind", "binary"),
                **options,
            )
        except TypeError as exc:
            raise RequestError(f"invalid experiment: {exc}") from None

        def start() -> Any:
            with _registry(self.config) as registry:
                return registry.start_experiment(experiment)

        started = await asyncio.to_thread(start)
        await self._reload()
        return json_response({"experiment": started.to_dict()}, status=201)

    async def experiment_weights(self, request: Request) -> Response:
        from forgeml.experiments import TrafficSplit

        _require_json(request)
        model = self._model(request)
        data = await self._json(request)
        variants = data.get("variants") if isinstance(data, dict) else None
        if isinstance(variants, str):
            variants = TrafficSplit.parse(model.name, variants).weights
        if not isinstance(variants, dict):
            raise RequestError('variants: expected {"champion": 0.5, "challenger": 0.5}')

        def change() -> Any:
            with _registry(self.config) as registry:
                return registry.set_experiment_weights(model.name, variants)

        changed = await asyncio.to_thread(change)
        await self._reload()
        return json_response({"experiment": changed.to_dict()})

    async def conclude_experiment(self, request: Request) -> Response:
        """Promote a variant (its version takes the experiment's alias, atomically with
        the conclusion) or roll back; the server switches without dropping requests."""
        _require_json(request)
        model = self._model(request)
        data = await self._json(request)
        if not isinstance(data, dict) or set(data) - {"promote", "rollback"}:
            raise RequestError('expected {"promote": "<variant>"} or {"rollback": true}')
        promote, rollback = data.get("promote"), data.get("rollback", False)
        if promote is not None and not isinstance(promote, str):
            raise RequestError("promote: expected a variant name")
        if not isinstance(rollback, bool):
            raise RequestError("rollback: expected true or false")

        def conclude() -> Any:
            with _registry(self.config) as registry:
                return registry.conclude_experiment(model.name, promote=promote, rollback=rollback)

        experiment, change = await asyncio.to_thread(conclude)
        changes = await self._reload()
        moved = None
        if change is not None:
            moved = {"alias": change.alias, "from": change.from_version, "to": change.to_version}
        return json_response(
            {"experiment": experiment.to_dict(), "alias": moved, "changes": changes}
        )


def _registry(config: ServeConfig) -> Any:
    from forgeml.registry import Registry

    return Registry.open(config.registry, config.artifacts, create=False)


def _decoder(model: ServedModel) -> Callable[[np.ndarray], tuple[list[Any], list[float] | None]]:
    """Raw outputs of many rows -> their predictions (labels or values) and scores
    (positive-class probability, value, or none for multiclass), vectorised; made once
    per served model and kept on it."""
    if model.decoder is not None:
        return model.decoder

    def decode(raw: np.ndarray) -> tuple[list[Any], list[float] | None]:
        if model.task.kind == "regression":
            values = np.asarray(raw, dtype=np.float64).tolist()
            return values, values
        return outputs.labels(model, raw), raw[:, 1].tolist() if model.task.is_binary else None

    model.decoder = decode
    return decode


def _json_text(value: Any) -> str:
    import orjson

    return orjson.dumps(value, default=str).decode()


def _freeze_heap() -> None:
    """Move what is alive now (models, libraries) out of the garbage collector's sight.

    Requests allocate many short-lived objects, so collections run often; a full one
    would otherwise walk every object of the loaded models and libraries each time —
    tens of milliseconds added to some unlucky request's latency.
    """
    gc.collect()
    gc.freeze()


def _require_json(request: Request, *, form_ok: bool = False) -> None:
    """415 unless the body is declared JSON (or undeclared). ``form_ok``: also accept
    ``application/x-www-form-urlencoded``, what ``curl -d`` sends by default — the body is
    still parsed as JSON (a form body is a 4xx like any malformed JSON)."""
    kind = content_type(request)
    allowed = ("application/json", "", "application/x-www-form-urlencoded") if form_ok else (
        "application/json", "",
    )  # fmt: skip
    if kind not in allowed:
        raise RequestError(f"unsupported content type '{kind}' (use application/json)", status=415)


def _predictor(model: ServedModel, metrics: ServerMetrics) -> Callable[[list[Any]], np.ndarray]:
    """The batch function: raw rows to raw predictions, timing the two stages."""
    bundle = model.bundle
    features_stage = metrics.stages["features"]
    predict_stage = metrics.stages["predict"]

    def predict(rows: list[Any]) -> np.ndarray:
        started = time.perf_counter()
        matrix = bundle.records_matrix(rows)
        middle = time.perf_counter()
        raw: np.ndarray = bundle.estimator.predict(matrix)
        features_stage.observe(middle - started)
        predict_stage.observe(time.perf_counter() - middle)
        return raw

    return predict
