"""The ASGI application: routes from the table, errors as JSON, metrics and access logs.

Every response — success or failure — passes one middleware that gives it a request id
(``X-Request-ID``, taken from the request when the client sent one), counts it in
``forgeml_requests_total`` under its route *template*, times it, and writes one JSON access
log line. Handlers raise :class:`~forgeml.errors.ForgeError`; the app turns them into
``{"error": ...}`` with their status. An unexpected exception is logged with its traceback
and answered 500 — a bug to fix, never a user's mistake.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from forgeml.errors import ForgeError, RequestError
from forgeml.serving.config import ServeConfig
from forgeml.serving.http import error_response, json_response
from forgeml.serving.service import ROUTES, PredictionService, RouteSpec

__all__ = ["build_app", "create_app"]

access_logger = logging.getLogger("forgeml.access")
error_logger = logging.getLogger("forgeml.server")


def _endpoint(service: PredictionService, spec: RouteSpec) -> Any:
    method = getattr(service, spec.handler)

    async def endpoint(request: Request) -> Response:
        request.state.route = spec.path
        if spec.role == "admin":
            if not service.admin_enabled:
                return error_response(
                    RequestError("admin routes are disabled on this server", status=404)
                )
            if not service.admin_key.allows(request.headers):
                return error_response(
                    RequestError("this route needs the admin API key", status=401),
                    headers={"WWW-Authenticate": "Bearer"},
                )
        try:
            response: Response = await method(request)
        except ForgeError as exc:
            model = getattr(request.state, "model", None)
            headers = service._headers(model) if model is not None else None
            return error_response(exc, headers=headers)
        except Exception:
            error_logger.exception("unexpected error on %s %s", request.method, spec.path)
            return json_response({"error": "internal server error"}, status=500)
        return response

    return endpoint


class _Observe:
    """ASGI middleware: request id, in-flight gauge, request counter, latency, access log."""

    def __init__(self, app: Any, service: PredictionService, log: bool) -> None:
        self.app = app
        self.service = service
        self.log = log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.service.metrics
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500
        state = scope.setdefault("state", {})

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.inflight.dec()
            elapsed = time.perf_counter() - started
            route = state.get("route", "unmatched")
            model = state.get("model")
            name = model.name if model is not None else ""
            version = str(model.version) if model is not None else ""
            metrics.requests.labels(
                model=name, version=version, route=route, code=str(status)
            ).inc()
            metrics.duration.labels(route=route).observe(elapsed)
            if self.log:
                access_logger.info(
                    json.dumps(
                        {
                            "ts": round(time.time(), 3),
                            "request_id": request_id,
                            "method": scope.get("method"),
                            "path": scope.get("path"),
                            "route": route,
                            "status": status,
                            "ms": round(elapsed * 1000, 3),
                            "model": name or None,
                            "version": version or None,
                            "rows": state.get("rows"),
                            "client": (scope.get("client") or [None])[0],
                        },
                        separators=(",", ":"),
                    )
                )


def _request_id(scope: dict[str, Any]) -> str:
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return uuid.uuid4().hex


async def _not_found(request: Request, exc: Exception) -> Response:
    code = getattr(exc, "status_code", 404)
    if code == 405:
        return json_response(
            {"error": f"method {request.method} is not allowed on {request.url.path}"}, status=405
        )
    return json_response({"error": f"unknown route {request.url.path}"}, status=code)


def build_app(service: PredictionService) -> Starlette:
    """An ASGI app serving ``service`` (its models load at start-up)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    routes = [
        Route(
            spec.path,
            _endpoint(service, spec),
            methods=[spec.method],
            name=f"{spec.handler}:{spec.path}",
        )
        for spec in ROUTES
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.add_middleware(_Observe, service=service, log=service.config.access_log)
    app.state.service = service
    return app


def create_app(config: ServeConfig | None = None) -> Starlette:
    """The app for ``config`` — or, in a ``--workers`` child, for the configuration in
    ``$FORGEML_SERVE_CONFIG`` (what ``uvicorn --factory`` calls)."""
    import os

    from forgeml.serving.config import ENV_VAR

    if config is None:
        config = ServeConfig.from_json(os.environ[ENV_VAR])
    configure_logging(config.access_log)
    return build_app(PredictionService(config))


def configure_logging(access_log: bool) -> None:
    """Access lines are JSON on stdout; server errors go to stderr."""
    if access_log and not access_logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_logger.addHandler(handler)
        access_logger.setLevel(logging.INFO)
        access_logger.propagate = False
