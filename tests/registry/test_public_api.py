"""The public surface is exactly ``__all__``, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import forgeml.registry as registry_pkg


def test_all_names_resolve() -> None:
    for name in registry_pkg.__all__:
        assert getattr(registry_pkg, name) is not None
    assert sorted(registry_pkg.__all__) == sorted(dir(registry_pkg))


def test_unknown_attribute() -> None:
    try:
        registry_pkg.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_import_is_light() -> None:
    code = (
        "import sys\n"
        "import forgeml.registry\n"
        "from forgeml.registry import RunRecord, NewVersion, ModelVersion\n"
        "print(sorted(m for m in ('sqlalchemy', 'mlflow', 'pydantic') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
