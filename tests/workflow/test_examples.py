"""The examples in ``examples/`` run as documented."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_python_api_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "python_api.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "registered cancer@1" in out and "69 unseen rows: accuracy" in out
    accuracy = float(out.split("accuracy ")[1].split(",")[0])
    assert accuracy > 0.85  # real signal on rows the model never saw
