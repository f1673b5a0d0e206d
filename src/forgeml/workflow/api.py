"""The Python API: the same flow as the CLI, from Python.

>>> import forgeml
>>> callable(forgeml.run) and callable(forgeml.load_model)
True
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from forgeml.config.spec import Spec
from forgeml.workflow.reporting import Reporter
from forgeml.workflow.run import RunResult, run_spec

__all__ = ["load_model", "predict", "run"]


def run(
    spec: str | Path | Mapping[str, Any] | Spec,
    data: Any = None,
    *,
    test_data: Any = None,
    overrides: Iterable[str] = (),
    reporter: Reporter | None = None,
) -> RunResult:
    """Run a pipeline: a spec file, a dict or a :class:`Spec`; ``data`` may be a pandas,
    Polars or Arrow frame instead of ``data.source``, and ``test_data`` an explicit
    held-out test set instead of ``data.test_source``."""
    return run_spec(spec, data=data, test_data=test_data, overrides=overrides, reporter=reporter)


def load_model(ref: str, *, registry: str | None = None) -> Any:
    """Load a registered model (``name@alias``, ``name@version`` or ``name``) as a
    scikit-learn compatible estimator, after verifying its artifacts' sha256."""
    from forgeml.workflow.models import load_bundle_ref

    return load_bundle_ref(ref, registry or os.environ.get("FORGEML_REGISTRY") or ".forgeml")


def predict(ref: str, data: Any, *, registry: str | None = None) -> Any:
    """Score an in-memory frame; returns a Polars frame of predictions (one row per input)."""
    return load_model(ref, registry=registry).predict_frame(data)
