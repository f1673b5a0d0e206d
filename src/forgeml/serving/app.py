"""The ASGI application: routes from the table, errors as JSON, metrics and access logs.

The app dispatches on the route table itself — a dictionary lookup for fixed paths, a
regular expression per templated one — with no middleware stack in between, so the
single-request path stays short. Every response, success or failure, gets a request id
(``X-Request-ID``, the client's own when it sent one), is counted in
``forgeml_requests_total`` under its route *template*, timed, and written as one JSON
access log line. Handlers raise :class:`~forgeml.errors.ForgeError`; the app turns them
into ``{"error": ...}`` with their status. An unexpected exception is logged with its
traceback and answered 500 — a bug to fix, never a user's mistake. Unknown routes get
404 and known routes with the wrong method 405, both as JSON.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from forgeml.errors import ForgeError, RequestError
from forgeml.serving.accesslog import AccessLog
from forgeml.serving.config import ServeConfig
from forgeml.serving.http import error_response, json_response
from forgeml.serving.service import ROUTES, PredictionService, RouteSpec

__all__ = ["ServingApp", "build_app", "create_app"]

error_logger = logging.getLogger("forgeml.server")

Endpoint = Callable[[Request], Awaitable[Response]]
_TEMPLATE_PART = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class CompiledRoute:
    """One row of the route table, ready to match."""

    spec: RouteSpec
    pattern: re.Pattern[str] | None  # None: a fixed path
    endpoint: Endpoint

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def methods(self) -> set[str]:
        return {self.spec.method}


def _compile(template: str) -> re.Pattern[str] | None:
    """``/v2/models/{name}/infer`` -> a pattern with a named group per ``{part}``."""
    if "{" not in template:
        return None
    pieces = _TEMPLATE_PART.split(template)  # literal, name, literal, name, ..., literal
    regex = "".join(
        f"(?P<{piece}>[^/]+)" if i % 2 else re.escape(piece) for i, piece in enumerate(pieces)
    )
    return re.compile(regex + "$")


def _endpoint(service: PredictionService, spec: RouteSpec) -> Endpoint:
    method = getattr(service, spec.handler)

    async def endpoint(request: Request) -> Response:
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


class ServingApp:
    """The prediction server as an ASGI application (HTTP and lifespan)."""

    def __init__(self, service: PredictionService, access_log: AccessLog | None = None) -> None:
        self.service = service
        self.access_log = access_log
        self.state = SimpleNamespace(service=service)
        self.routes = [
            CompiledRoute(spec, _compile(spec.path), _endpoint(service, spec)) for spec in ROUTES
        ]
        self._fixed: dict[str, dict[str, CompiledRoute]] = {}
        self._templated: list[tuple[re.Pattern[str], dict[str, CompiledRoute]]] = []
        by_pattern: dict[str, dict[str, CompiledRoute]] = {}
        for route in self.routes:
            if route.pattern is None:
                self._fixed.setdefault(route.path, {})[route.spec.method] = route
            else:
                if route.path not in by_pattern:
                    by_pattern[route.path] = {}
                    self._templated.append((route.pattern, by_pattern[route.path]))
                by_pattern[route.path][route.spec.method] = route

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets: not spoken here
            await send({"type": "websocket.close", "code": 1000})

    # --- lifespan ------------------------------------------------------------------------
    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.service.start()
                    if self.access_log is not None:
                        self.access_log.start()
                except Exception as exc:  # uvicorn reports it and exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.service.stop()
                if self.access_log is not None:
                    await self.access_log.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- requests ------------------------------------------------------------------------
    def _match(self, scope: dict[str, Any]) -> tuple[str, Endpoint | None, Response | None]:
        """The route template and endpoint for a request, or the 404/405 answer."""
        path: str = scope["path"]
        method: str = scope["method"]
        methods = self._fixed.get(path)
        if methods is None:
            for pattern, candidates in self._templated:
                found = pattern.match(path)
                if found is not None:
                    methods = candidates
                    scope["path_params"] = found.groupdict()
                    break
        if methods is None:
            return "unmatched", None, json_response({"error": f"unknown route {path}"}, 404)
        route = methods.get("GET" if method == "HEAD" else method)
        if route is None:
            allowed = ", ".join(sorted(methods))
            answer = json_response(
                {"error": f"method {method} is not allowed on {path} (allowed: {allowed})"},
                status=405,
                headers={"Allow": allowed},
            )
            return next(iter(methods.values())).path, None, answer
        return route.path, route.endpoint, None

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        metrics = self.service.metrics
        started = time.perf_counter()
        request_id = _request_id(scope)
        id_header = (b"x-request-id", request_id.encode())
        status = 500
        state = scope.setdefault("state", {})

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        metrics.inflight += 1
        route = "unmatched"
        try:
            route, endpoint, response = self._match(scope)
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
            assert response is not None
            await response(scope, receive, send_with_id)
        except Exception:  # a bug: answer 500 if nothing was sent yet, and log it
            error_logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if status == 500:
                answer = json_response({"error": "internal server error"}, status=500)
                await answer(scope, receive, send_with_id)
        finally:
            metrics.inflight -= 1
            elapsed = time.perf_counter() - started
            model = state.get("model")
            name = model.name if model is not None else ""
            version = str(model.version) if model is not None else ""
            metrics.count(name, version, route, status, elapsed)
            if status == 200 and "log" in state:
                self.service.log_predictions(state, request_id, elapsed)
            elif status >= 500 and "routed" in state:
                self.service.log_error(state)
            if self.access_log is not None:
                self.access_log.write(
                    {
                        "ts": round(time.time(), 3),
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 3),
                        "model": name or None,
                        "version": version or None,
                        "rows": state.get("rows"),
                        "client": (scope.get("client") or [None])[0],
                    }
                )


def _request_id(scope: dict[str, Any]) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return os.urandom(16).hex()


def build_app(service: PredictionService, *, access_stream: Any = None) -> ServingApp:
    """An ASGI app serving ``service`` (its models load at start-up). Access log lines go
    to ``access_stream`` (a binary stream; default standard output) when the service's
    configuration asks for them."""
    log = None
    if service.config.access_log:
        log = AccessLog(access_stream if access_stream is not None else sys.stdout.buffer)
    return ServingApp(service, log)


def create_app(config: ServeConfig | None = None) -> ServingApp:
    """The app for ``config`` — or, in a ``--workers`` child, for the configuration in
    ``$FORGEML_SERVE_CONFIG`` (what ``uvicorn --factory`` calls)."""
    from forgeml.serving.config import ENV_VAR

    if config is None:
        config = ServeConfig.from_json(os.environ[ENV_VAR])
    return build_app(PredictionService(config))
