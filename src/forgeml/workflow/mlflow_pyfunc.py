"""The MLflow ``python_function`` loader for exported forgeml models.

An exported model's ``MLmodel`` names this module as its ``loader_module``; MLflow calls
:func:`_load_pyfunc` with the model's data folder. Loading goes through
:func:`forgeml.models.bundle.load_bundle` — manifest check, sha256 of every file, no pickle —
so a model served by MLflow, MLServer or KServe behaves exactly as ``forgeml predict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ForgePyfunc"]


class ForgePyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: ``predict(frame) -> pandas.DataFrame``."""

    def __init__(self, bundle: Any) -> None:
        self.bundle = bundle

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self.bundle.predict_frame(model_input).to_pandas()


def _load_pyfunc(data_path: str) -> ForgePyfunc:
    from forgeml.models.bundle import load_bundle

    return ForgePyfunc(load_bundle(Path(data_path)))
