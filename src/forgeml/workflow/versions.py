"""Versions of the libraries a run depends on, recorded with every run for reproducibility."""

from __future__ import annotations

import platform
from importlib import metadata

__all__ = ["library_versions"]

_PACKAGES = (
    "forgeml",
    "numpy",
    "scipy",
    "pandas",
    "polars",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "torch",
    "optuna",
    "skops",
    "sqlalchemy",
)


def library_versions() -> dict[str, str]:
    """``{package: version}`` for the installed packages that matter, plus Python.

    >>> "python" in library_versions()
    True
    """
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
