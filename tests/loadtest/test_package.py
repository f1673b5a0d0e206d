"""The package's shape: its public surface, its place as a leaf, and a light import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import forgeml.loadtest as loadtest

PACKAGE = Path(loadtest.__file__).parent


def test_public_surface() -> None:
    assert loadtest.__all__ == sorted(loadtest.__all__)
    for name in loadtest.__all__:
        assert getattr(loadtest, name) is not None
    assert set(dir(loadtest)) >= set(loadtest.__all__)


def test_is_a_leaf_importing_only_errors_from_forgeml() -> None:
    for file in PACKAGE.glob("*.py"):
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("forgeml"):
                    assert name == "forgeml.errors" or name.startswith("forgeml.loadtest"), (
                        file.name,
                        name,
                    )


def test_import_and_cli_registration_stay_light() -> None:
    code = (
        "import sys, forgeml.loadtest, forgeml.cli.loadtest_cmd; "
        "print(','.join(m for m in ('asyncio', 'pyarrow', 'uvloop', 'polars') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
