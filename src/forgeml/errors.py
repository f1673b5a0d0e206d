"""The one exception hierarchy of forgeml.

Every error a user can cause or meet is a :class:`ForgeError`. Each class carries the
process exit code the CLI uses and the HTTP status the server answers with, so neither
the CLI nor the server keeps its own mapping::

    ForgeError                      exit 1, HTTP 500   something failed while running
    ├── UsageError                  exit 2, HTTP 400   the user asked for something invalid
    │   ├── ConfigError                                forgeml.yaml (or an override) is invalid
    │   ├── MissingExtraError                          an optional dependency is not installed
    │   └── DataSourceError                            a data source is missing or unreadable
    ├── DataError                   exit 1, HTTP 422   the data cannot be used as it is
    │   └── ValidationFailed                           too many rows failed the declared rules
    ├── TrainingError               exit 1             no candidate could be trained
    ├── RegistryError               exit 1             the registry cannot do what was asked
    │   ├── ModelNotFound           exit 2, HTTP 404   no such model, version or alias
    │   ├── RegistryNotWritable     exit 2             the registry location cannot be written
    │   └── ArtifactIntegrityError  exit 1             an artifact is missing or its sha256 differs
    └── ServiceError                HTTP 503           the server cannot take the request now
        (RequestError, a UsageError: HTTP 4xx set per instance — malformed or refused request)

Library errors are re-raised as one of these with ``raise ... from exc`` so the cause
stays in the chain for debugging while the user sees one line.

>>> err = ConfigError("models.candidates[0]: unknown model 'lgbm'")
>>> (err.exit_code, err.http_status, str(err))
(2, 400, "models.candidates[0]: unknown model 'lgbm'")
"""

from __future__ import annotations

__all__ = [
    "ArtifactIntegrityError",
    "ConfigError",
    "DataError",
    "DataSourceError",
    "ForgeError",
    "MissingExtraError",
    "ModelNotFound",
    "RegistryError",
    "RegistryNotWritable",
    "RequestError",
    "ServiceError",
    "TrainingError",
    "UsageError",
    "ValidationFailed",
]


class ForgeError(Exception):
    """Root of every error forgeml raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class UsageError(ForgeError):
    """The user asked for something that cannot work as asked."""

    exit_code = 2
    http_status = 400


class ConfigError(UsageError):
    """The pipeline spec or a CLI override is invalid; the message names the field path."""


class MissingExtraError(UsageError):
    """An optional dependency is missing; the message names the extra that provides it."""

    def __init__(self, module: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the optional package '{module}', which is not installed",
            hint=f"pip install 'forgeml[{extra}]'",
        )
        self.module = module
        self.extra = extra


class DataSourceError(UsageError):
    """A data source is missing, unreadable, or not in the format the spec says."""


class DataError(ForgeError):
    """The data was read but cannot be used as it is (empty, one class, all-null...)."""

    http_status = 422


class ValidationFailed(DataError):
    """More rows failed validation than the spec allows; the run stops."""


class TrainingError(ForgeError):
    """Training or tuning failed for every candidate."""


class RegistryError(ForgeError):
    """The model registry cannot do what was asked."""


class ModelNotFound(RegistryError):
    """No model, version or alias by that name."""

    exit_code = 2
    http_status = 404


class RegistryNotWritable(RegistryError):
    """The registry location cannot be created or written."""

    exit_code = 2


class ArtifactIntegrityError(RegistryError):
    """An artifact is missing or its content does not match the recorded sha256."""


class RequestError(UsageError):
    """An HTTP request the server refuses; ``http_status`` is set per error (400, 401, 404,
    405, 413, 415, 422...)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.http_status = status


class ServiceError(ForgeError):
    """The server cannot serve the request now (overloaded, timed out, draining); clients
    should retry after ``retry_after`` seconds."""

    http_status = 503

    def __init__(self, message: str, *, status: int = 503, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.http_status = status
        self.retry_after = retry_after
