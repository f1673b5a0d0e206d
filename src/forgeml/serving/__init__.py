"""The prediction server: Open Inference Protocol v2, MLflow scoring and plain JSON routes,
micro-batching, limits, API-key admin routes, Prometheus metrics and JSON access logs.

Importing this package is cheap; the web stack loads when an app is built.
"""

from forgeml.serving.config import ServeConfig

__all__ = ["ServeConfig", "build_app", "serve"]


def __getattr__(name: str) -> object:
    if name == "build_app":
        from forgeml.serving.app import build_app

        return build_app
    if name == "serve":
        from forgeml.serving.server import serve

        return serve
    raise AttributeError(name)
