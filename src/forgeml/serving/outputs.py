"""Predictions out, in each protocol's shape, with the model's name and version.

The raw model output is class probabilities (classification) or values (regression); the
label is taken with the same decision threshold as ``forgeml predict`` and
``load_model(...).predict``, so every route answers exactly what batch scoring writes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.tasks.metrics import hard_labels

__all__ = ["columns_of", "labels", "mlflow_body", "plain_body", "v2_body"]


def labels(model: Any, raw: np.ndarray) -> list[Any]:
    """The predicted label of each row (the same threshold as ``forgeml predict``)."""
    return _labels(model, raw)


def _labels(model: Any, raw: np.ndarray) -> list[Any]:
    task = model.task
    return task.decode(hard_labels(raw, task.subtype, model.bundle.threshold)).tolist()


def columns_of(model: Any, raw: np.ndarray) -> dict[str, list[Any]]:
    """``prediction`` plus ``proba_<class>`` columns, as ``forgeml predict`` writes them."""
    if model.task.kind == "regression":
        return {"prediction": np.asarray(raw, dtype=np.float64).tolist()}
    out: dict[str, list[Any]] = {"prediction": _labels(model, raw)}
    for i, label in enumerate(model.classes):
        out[f"proba_{label}"] = raw[:, i].astype(np.float64).tolist()
    return out


def plain_body(model: Any, raw: np.ndarray) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model.name, "version": model.version}
    if model.task.kind == "regression":
        body["predictions"] = np.asarray(raw, dtype=np.float64).tolist()
        return body
    body["predictions"] = _labels(model, raw)
    body["classes"] = list(model.classes)
    body["probabilities"] = np.asarray(raw, dtype=np.float64).tolist()
    return body


def mlflow_body(model: Any, raw: np.ndarray) -> dict[str, Any]:
    """The MLflow scoring server's shape: one object per row (the pyfunc frame's records)."""
    columns = columns_of(model, raw)
    names = list(columns)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return {"predictions": rows, "model": model.name, "version": model.version}


def _datatype(values: list[Any]) -> str:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "BOOL"
    if isinstance(sample, int):
        return "INT64"
    if isinstance(sample, float):
        return "FP64"
    return "BYTES"


def v2_body(
    model: Any, raw: np.ndarray, request_id: str | None, wanted: list[str] | None
) -> dict[str, Any]:
    """An Open Inference Protocol v2 ``infer`` response: one output tensor per column."""
    columns = columns_of(model, raw)
    outputs = [
        {"name": name, "datatype": _datatype(values), "shape": [len(values)], "data": values}
        for name, values in columns.items()
        if wanted is None or name in wanted
    ]
    body: dict[str, Any] = {
        "model_name": model.name,
        "model_version": str(model.version),
        "parameters": {"content_type": "pd"},
        "outputs": outputs,
    }
    if request_id is not None:
        body["id"] = request_id
    return body
