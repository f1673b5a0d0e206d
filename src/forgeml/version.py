"""The package version, in a leaf module so every layer can name it without importing the API."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
