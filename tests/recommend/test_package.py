"""The public surface of forgeml.recommend is exactly ``__all__``, each name documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import forgeml.recommend as recommend


def test_public_names_are_exactly_all():
    public = {
        name
        for name, value in vars(recommend).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(recommend.__all__)
    for name in recommend.__all__:
        assert getattr(recommend, name).__doc__, name
    assert callable(recommend.evaluate) and not inspect.ismodule(recommend.evaluate)


def test_import_is_light():
    code = "import sys, forgeml.recommend; print(sorted({'polars', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
