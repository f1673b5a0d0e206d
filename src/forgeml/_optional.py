"""Import optional dependencies with an error that names the extra to install.

>>> require("json", extra="core", feature="reading JSON").__name__
'json'
>>> require("no_such_module_xyz", extra="serve", feature="the HTTP server")
Traceback (most recent call last):
...
forgeml.errors.MissingExtraError: the HTTP server needs the optional package 'no_such_module_xyz', which is not installed (pip install 'forgeml[serve]')
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from forgeml.errors import MissingExtraError

__all__ = ["available", "require"]


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            # The package is there but one of *its* dependencies is broken: say so.
            raise MissingExtraError(exc.name, extra, feature) from exc
        raise MissingExtraError(module, extra, feature) from exc


def available(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
