"""Run the app with uvicorn: one process, or ``workers`` processes sharing the port.

uvloop and httptools are used when installed (about twice the requests per second of
asyncio + h11). On SIGTERM uvicorn stops accepting connections and lets in-flight requests
finish (up to ``drain_seconds``) before the process exits; readiness turns false as soon
as draining starts, so a load balancer stops sending new requests.
"""

from __future__ import annotations

import importlib.util
import os

from forgeml._optional import require
from forgeml.serving.config import ENV_VAR, ServeConfig

__all__ = ["check_config", "serve"]


def _fastest(module: str, fast: str, fallback: str) -> str:
    return fast if importlib.util.find_spec(module) is not None else fallback


def check_config(config: ServeConfig) -> None:
    """Fail before binding a port: the admin key, and every model loads."""
    from forgeml.serving.service import PredictionService

    service = PredictionService(config)
    service.catalog.load()


def serve(config: ServeConfig) -> None:
    """Serve until SIGTERM/SIGINT."""
    uvicorn = require("uvicorn", extra="serve", feature="forgeml serve")
    check_config(config)
    options = {
        "host": config.host,
        "port": config.port,
        "loop": _fastest("uvloop", "uvloop", "asyncio"),
        "http": _fastest("httptools", "httptools", "h11"),
        "access_log": False,  # forgeml writes its own JSON access log
        "log_level": "warning",
        "timeout_graceful_shutdown": int(config.drain_seconds) or None,
        "server_header": False,
        "lifespan": "on",
    }
    if config.workers > 1:
        os.environ[ENV_VAR] = config.to_json()
        uvicorn.run(
            "forgeml.serving.app:create_app", factory=True, workers=config.workers, **options
        )
    else:
        from forgeml.serving.app import create_app

        app = create_app(config)
        service = app.state.service

        class _Server(uvicorn.Server):  # type: ignore[name-defined]
            def handle_exit(self, sig: int, frame: object) -> None:
                service.draining = True  # readiness fails from the first signal on
                super().handle_exit(sig, frame)

        _Server(uvicorn.Config(app, **options)).run()
