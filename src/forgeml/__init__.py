"""forgeml: from a raw table to a tuned, evaluated, versioned model — in one light package.

The public API is exactly ``__all__``. Heavy modules load on first use, so
``import forgeml`` stays fast::

    import forgeml
    result = forgeml.run("forgeml.yaml")              # validate -> features -> tune -> register
    model = forgeml.load_model("churn@champion")      # a scikit-learn compatible estimator
    model.predict_proba(frame)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from forgeml.errors import ForgeError
from forgeml.version import __version__

__all__ = ["ForgeError", "__version__", "load_model", "load_spec", "predict", "run"]

_LAZY = {
    "run": ("forgeml.workflow.api", "run"),
    "predict": ("forgeml.workflow.api", "predict"),
    "load_model": ("forgeml.workflow.api", "load_model"),
    "load_spec": ("forgeml.config.loader", "load_spec"),
}

if TYPE_CHECKING:
    from forgeml.config.loader import load_spec
    from forgeml.workflow.api import load_model, predict, run


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'forgeml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
