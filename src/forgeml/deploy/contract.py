"""What the deployment files assume about ``forgeml serve``: one place to match the server.

The Dockerfile, the Kubernetes manifests and the docs take every port, route, flag and
environment variable from here, so a change to the server is a change to this module
(and a test that compares it with the server's route table).

>>> serve_args("/models/churn")
['/models/churn', '--host', '0.0.0.0', '--port', '8080']
>>> READY_PATH, LIVE_PATH, METRICS_PATH
('/v2/health/ready', '/v2/health/live', '/metrics')
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = [
    "ADMIN_KEY_DIR",
    "ADMIN_KEY_FILE_ENV",
    "ADMIN_KEY_SECRET_KEY",
    "BASE_IMAGE",
    "CONFIG_DIR",
    "CONFIG_FILES",
    "ENTRYPOINT",
    "LIVE_PATH",
    "METRICS_PATH",
    "MODELS_DIR",
    "PORT",
    "READY_PATH",
    "RUNTIME_UID",
    "model_path",
    "serve_args",
]

#: The container port the server listens on (``--port``).
PORT = 8080
#: Process up: the liveness probe.
LIVE_PATH = "/v2/health/live"
#: Models loaded: the startup and readiness probes.
READY_PATH = "/v2/health/ready"
#: Prometheus exposition, scraped without credentials.
METRICS_PATH = "/metrics"
#: Names the file that holds the admin API key (a mounted Secret).
ADMIN_KEY_FILE_ENV = "FORGEML_ADMIN_KEY_FILE"
#: Where the admin-key Secret is mounted, and the key inside the Secret.
ADMIN_KEY_DIR = "/var/run/secrets/forgeml"
ADMIN_KEY_SECRET_KEY = "admin-key"  # noqa: S105 - a key name, not a key
#: Where the optional config Secret is mounted: each key a file, named to the server by an
#: environment variable (the prediction log's and the interaction store's URLs).
CONFIG_DIR = "/var/run/secrets/forgeml-config"
CONFIG_FILES = {
    "prediction-log": "FORGEML_PREDICTION_LOG_FILE",
    "interactions": "FORGEML_INTERACTIONS_FILE",
}
#: Model folders baked into an image live under this folder, one per model name.
MODELS_DIR = "/models"
#: The image's entry point; the arguments (:func:`serve_args`) are its ``CMD``.
ENTRYPOINT = ("forgeml", "serve")
#: The numeric user the image runs as (numeric, so Kubernetes can verify it is not root).
RUNTIME_UID = 10001
#: Both Dockerfile stages use this base, so the venv built in the first runs in the second.
BASE_IMAGE = "python:3.11.14-slim-bookworm"


def model_path(name: str) -> str:
    """The folder a model called ``name`` is baked into.

    >>> model_path("churn")
    '/models/churn'
    """
    return str(PurePosixPath(MODELS_DIR) / name)


def serve_args(model: str) -> list[str]:
    """The arguments after ``forgeml serve`` for a model folder in the image, on all
    interfaces (the server's default is 127.0.0.1, unreachable from outside the pod)."""
    return [model, "--host", "0.0.0.0", "--port", str(PORT)]  # noqa: S104 - inside the pod
