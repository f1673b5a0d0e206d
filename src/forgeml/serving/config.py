"""Settings of a prediction server, as one plain dataclass.

The CLI builds it from flags; worker processes (``--workers N``) receive it as JSON in an
environment variable, so every worker runs the same configuration.

>>> config = ServeConfig(models=["churn@champion"])
>>> ServeConfig.from_json(config.to_json()) == config
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from forgeml.errors import ConfigError

__all__ = [
    "ENV_VAR",
    "INTERACTIONS_FILE_ENV",
    "PREDICTION_LOG_FILE_ENV",
    "ServeConfig",
    "location_from_file",
]

ENV_VAR = "FORGEML_SERVE_CONFIG"
# Name files holding --prediction-log and --interactions (URLs that may carry a password:
# a mounted Kubernetes Secret rather than a flag, which process listings would show).
PREDICTION_LOG_FILE_ENV = "FORGEML_PREDICTION_LOG_FILE"
INTERACTIONS_FILE_ENV = "FORGEML_INTERACTIONS_FILE"


def location_from_file(env: Mapping[str, str], name: str) -> str | None:
    """The location in the file the environment variable ``name`` names; None when the
    variable is unset, the file does not exist (an optional Secret that was not created)
    or it is empty.

    >>> location_from_file({}, PREDICTION_LOG_FILE_ENV) is None
    True
    """
    path = env.get(name)
    if not path or not Path(path).exists():
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"serve: cannot read {name}={path}: {reason}") from exc
    return text or None


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``forgeml serve`` can be told.

    ``models``: registry references (``churn@champion``, ``churn@3``, ``churn``) or model
    folders (a path holding ``forgeml-model.json``). Limits: ``max_body_bytes`` (413),
    ``max_batch_rows`` per request (413), ``max_json_depth`` (400), ``timeout_seconds`` per
    request (504), ``max_queue_rows`` waiting for inference before shedding (503 with
    ``Retry-After``). Micro-batching: requests that arrive while a batch is computed join
    the next one, up to ``batch_rows``; ``batch_wait_ms`` > 0 lets a batch wait that long
    for company when the server is busy. ``model_threads`` per model call: 1 by default,
    since a server's many small calls gain nothing from a thread pool that then spins
    against the event loop; more cores are used with ``workers``.
    """

    models: list[str]
    registry: str = ".forgeml"
    artifacts: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    batch_rows: int = 256
    batch_wait_ms: float = 0.0
    model_threads: int = 1
    max_queue_rows: int = 4096
    max_body_bytes: int = 10 * 1024 * 1024
    max_batch_rows: int = 10_000
    max_json_depth: int = 32
    timeout_seconds: float = 10.0
    poll_seconds: float | None = None
    admin: bool | None = None  # None: on when an admin key is configured
    allow_extra_columns: bool = False
    access_log: bool = True
    prediction_log: str | None = None  # a folder or PostgreSQL URL: every prediction
    log_inputs: float = 1.0  # the fraction of requests whose input rows are logged too
    drift_seconds: float = 60.0  # how often logged traffic is checked for drift (0: never)
    drift_rows: int = 5_000  # the sliding window of rows each drift check looks at
    live_window_seconds: float = 3600.0  # live metrics from feedback over this window
    interactions: str | None = None  # recommenders' new interactions: memory, or redis://
    drain_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError(
                "serve: name at least one model (name@alias, name@version or a folder)"
            )
        checks = {
            "port": 0 < self.port < 65536,
            "workers": self.workers >= 1,
            "batch_rows": self.batch_rows >= 1,
            "batch_wait_ms": self.batch_wait_ms >= 0,
            "model_threads": self.model_threads >= 1,
            "max_queue_rows": self.max_queue_rows >= 1,
            "max_body_bytes": self.max_body_bytes >= 1024,
            "max_batch_rows": self.max_batch_rows >= 1,
            "max_json_depth": self.max_json_depth >= 4,
            "timeout_seconds": self.timeout_seconds > 0,
            "drain_seconds": self.drain_seconds >= 0,
            "drift_seconds": self.drift_seconds >= 0,
            "log_inputs": 0 <= self.log_inputs <= 1,
            "drift_rows": self.drift_rows >= 100,
            "live_window_seconds": self.live_window_seconds > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"serve: invalid {', '.join(bad)}")
        if self.poll_seconds is not None and self.poll_seconds < 1:
            raise ConfigError("serve: --poll-seconds must be at least 1")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
