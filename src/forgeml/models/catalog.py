"""The built-in candidates by name, and loading a saved estimator by its metadata.

>>> builtin_names()
['lightgbm', 'linear', 'xgboost', 'random_forest', 'mlp']
>>> get_adapter("linear").name
'linear'
>>> get_adapter("lgbm")
Traceback (most recent call last):
...
forgeml.errors.ConfigError: models.candidates: unknown model 'lgbm' (known: lightgbm, linear, xgboost, random_forest, mlp; did you mean 'lightgbm'?)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from forgeml.errors import ArtifactIntegrityError, ConfigError, UsageError
from forgeml.models._inputs import SUBTYPES
from forgeml.models.base import FittedEstimator, ModelAdapter
from forgeml.models.forest import RandomForestAdapter
from forgeml.models.lightgbm_model import LightGBMAdapter
from forgeml.models.linear import LinearAdapter
from forgeml.models.torch_mlp import TorchMLPAdapter
from forgeml.models.xgboost_model import XGBoostAdapter

__all__ = ["ADAPTERS", "available_names", "builtin_names", "get_adapter", "load_estimator"]

# Catalog order is the order of the first, default-configuration trials of an ``auto``
# search: the usually strongest candidate first, then the cheap baseline, so even a budget
# of two trials compares a boosted model against a linear one. Candidates that are not
# ``in_auto`` (the ``mlp``) come last and run only when listed by name.
ADAPTERS: Mapping[str, type[ModelAdapter]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            LightGBMAdapter,
            LinearAdapter,
            XGBoostAdapter,
            RandomForestAdapter,
            TorchMLPAdapter,
        )
    }
)


def builtin_names() -> list[str]:
    """Every built-in candidate, installed or not, in catalog order."""
    return list(ADAPTERS)


def available_names(subtype: str) -> list[str]:
    """The candidates an ``auto`` search tries: installed, supporting ``subtype`` and
    ``in_auto`` (the ``mlp`` runs only when listed by name).

    >>> "linear" in available_names("regression"), "mlp" in available_names("regression")
    (True, False)
    """
    if subtype not in SUBTYPES:
        raise UsageError(f"unknown task subtype '{subtype}' (known: {', '.join(SUBTYPES)})")
    return [
        name
        for name, cls in ADAPTERS.items()
        if cls.in_auto and subtype in cls.subtypes and cls.available()
    ]


def get_adapter(name: str, *, field: str = "models.candidates") -> ModelAdapter:
    """The adapter called ``name``.

    Raises :class:`ConfigError` (message starting with ``field``) for an unknown name,
    and :class:`MissingExtraError` naming the extra when its library is not installed.
    """
    cls = ADAPTERS.get(name)
    if cls is None:
        known = ", ".join(ADAPTERS)
        close = difflib.get_close_matches(str(name), list(ADAPTERS), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{field}: unknown model '{name}' (known: {known}{hint})")
    adapter = cls()
    if not cls.available():  # checked without importing: looking up a model stays cheap
        adapter.require()
    return adapter


def load_estimator(directory: Path, meta: dict[str, Any]) -> FittedEstimator:
    """Load the estimator that ``FittedEstimator.save(directory)`` wrote and ``to_meta`` described.

    Every file's sha256 is checked against ``meta`` and its content validated before the
    model library parses it; anything wrong raises :class:`ArtifactIntegrityError`.

    >>> import tempfile
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    >>> est = get_adapter("linear").fit(X, np.array([0.0, 1.0, 2.0, 3.0]),
    ...                                 subtype="regression", n_classes=0, params={}, seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = est.save(Path(tmp))
    ...     again = load_estimator(Path(tmp), est.to_meta())
    >>> files, bool(np.array_equal(again.predict(X), est.predict(X)))
    (['estimator.linear.json'], True)
    """
    name = meta.get("adapter") if isinstance(meta, dict) else None
    if name == "ensemble":
        from forgeml.models.ensemble import FittedEnsemble

        return FittedEnsemble.load(directory, meta)
    cls = ADAPTERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ArtifactIntegrityError(f"{directory}: unknown estimator adapter {name!r}")
    return cls.estimator.load(directory, meta)
