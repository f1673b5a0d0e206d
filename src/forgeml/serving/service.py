"""The request handlers and the one table of routes and who may call them.

:data:`ROUTES` lists every route with its method, template, role (``public`` or
``admin``) and summary; the app, the OpenAPI document and the auth test are all built from
it, so a route cannot exist without being listed.
"""

from __future__ import annotations

import asyncio
import gc
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
from forgeml.serving.http import content_type, json_response, read_body
from forgeml.serving.metrics import ServerMetrics
from forgeml.serving.predlog import PredictionLog
from forgeml.version import __version__

__all__ = ["ROUTES", "PredictionService", "RouteSpec"]


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
            config.models, registry=config.registry, artifacts=config.artifacts
        )
        self.metrics = ServerMetrics()
        self.metrics.queue_rows = lambda: sum(b.queued_rows for b in self._batchers)
        self.predlog = PredictionLog(config.prediction_log) if config.prediction_log else None
        if self.predlog is not None:
            log = self.predlog
            self.metrics.log_dropped = lambda: log.dropped
        self.draining = False
        self._poller: asyncio.Task[None] | None = None
        self._batchers: list[MicroBatcher] = []

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        if self.predlog is not None:
            self.predlog.start()
        await self.catalog.reload()
        self._attach_batchers()
        _freeze_heap()
        if self.config.poll_seconds:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        self.draining = True
        if self._poller is not None:
            self._poller.cancel()
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
            if model.batcher is None:
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
        state["model"] = model
        state["rows"] = len(records)
        checked = inputs.check_records(
            records,
            model.schema,
            allow_extra=self.config.allow_extra_columns,
            max_rows=self.config.max_batch_rows,
            datetime_formats=model.bundle.datetime_formats,
            known=model.bundle.ignored_columns or (),
        )
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                raw: np.ndarray = await model.batcher.submit(checked)
        except TimeoutError:
            raise ServiceError(
                f"the prediction took longer than {self.config.timeout_seconds:g} s",
                retry_after=1.0,
            ) from None
        if self.predlog is not None:
            state["log"] = (records, raw)  # written by the app once the answer is out
        if model.task.is_binary or model.task.kind == "regression":
            observe = self.metrics.predictions(model.name).observe
            for value in (raw[:, 1] if model.task.is_binary else raw).tolist():
                observe(value)
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
        """Queue a successful request's rows in the prediction log (never blocks)."""
        if self.predlog is None or "log" not in state:
            return
        records, raw = state["log"]
        model = state["model"]
        if model.decoder is None:
            model.decoder = _decoder(model)
        self.predlog.record(
            request_id=request_id,
            model=model.name,
            version=model.version,
            records=records,
            raw=raw,
            decode=model.decoder,
            latency_ms=seconds * 1000,
        )

    @staticmethod
    def _headers(model: ServedModel) -> dict[str, str]:
        return {"X-Forgeml-Model": model.name, "X-Forgeml-Model-Version": str(model.version)}

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
        return json_response(outputs.plain_body(model, raw), headers=self._headers(model))

    async def v2_infer(self, request: Request) -> Response:
        _require_json(request)
        model = self._model(request)
        data = await self._json(request)
        records, request_id, wanted = inputs.parse_v2(data)
        raw = await self._predict(request, model, records)
        body = outputs.v2_body(model, raw, request_id, wanted)
        return json_response(body, headers=self._headers(model))

    async def invocations(self, request: Request) -> Response:
        model = self._model(request)
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
        return json_response(outputs.mlflow_body(model, raw), headers=self._headers(model))

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


def _decoder(model: ServedModel) -> Callable[[np.ndarray], tuple[list[Any], list[float] | None]]:
    """Raw outputs of many rows -> their predictions (labels or values) and scores
    (positive-class probability, value, or none for multiclass), vectorised."""

    def decode(raw: np.ndarray) -> tuple[list[Any], list[float] | None]:
        if model.task.kind == "regression":
            values = np.asarray(raw, dtype=np.float64).tolist()
            return values, values
        return outputs.labels(model, raw), raw[:, 1].tolist() if model.task.is_binary else None

    return decode


def _freeze_heap() -> None:
    """Move what is alive now (models, libraries) out of the garbage collector's sight.

    Requests allocate many short-lived objects, so collections run often; a full one
    would otherwise walk every object of the loaded models and libraries each time —
    tens of milliseconds added to some unlucky request's latency.
    """
    gc.collect()
    gc.freeze()


def _require_json(request: Request) -> None:
    kind = content_type(request)
    if kind not in ("application/json", ""):
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
