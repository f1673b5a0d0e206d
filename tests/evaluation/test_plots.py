"""Plots: inlinable SVG, deterministic bytes, small, safe with hostile labels, no leaks."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from forgeml.evaluation import evaluate, plots
from forgeml.evaluation._svg import namespace_ids
from forgeml.evaluation.residuals import histogram

HOSTILE = "<script>alert(1)</script>"
MAX_BYTES = 150_000


def _trials(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    models = ["lightgbm", "logistic", HOSTILE, "cost in $"]
    states = ["complete", "complete", "complete", "pruned", "failed"]
    return [
        {
            "number": i,
            "model": models[i % 4],
            "score": None if states[i % 5] == "failed" else float(rng.random()),
            "state": states[i % 5],
            "duration_s": float(rng.random()),
        }
        for i in range(n)
    ]


def _all_plots(binary_case, multiclass_case, regression_case) -> dict[str, Callable[[], str]]:
    b = evaluate(binary_case.y, binary_case.pred, binary_case.task).classification
    m = evaluate(multiclass_case.y, multiclass_case.pred, multiclass_case.task).classification
    r = evaluate(regression_case.y, regression_case.pred, regression_case.task).regression
    assert b is not None and m is not None and r is not None
    rng = np.random.default_rng(1)
    y_big = rng.normal(size=2000)
    pred_big = y_big + rng.normal(size=2000)
    names = [f"feature_{i}" for i in range(300)] + [HOSTILE, "price in $ (USD)", "a $x$ b"]
    values = np.abs(rng.normal(size=len(names)))
    values[-3:] = 10.0  # the hostile names are in the top bars
    return {
        "roc_binary": lambda: plots.roc_svg(b.roc, operating_point=(0.1, 0.9)),
        "roc_multi": lambda: plots.roc_svg(m.roc),
        "pr_binary": lambda: plots.pr_svg(b.pr, operating_point=(0.9, 0.95)),
        "pr_multi": lambda: plots.pr_svg(m.pr),
        "confusion": lambda: plots.confusion_svg(m.confusion),
        "calibration": lambda: plots.calibration_svg(b.calibration),
        "importance": lambda: plots.importance_svg(names, values.tolist()),
        "residuals": lambda: plots.residuals_svg(y_big, pred_big),
        "pred_vs_actual": lambda: plots.pred_vs_actual_svg(r.sample.y, r.sample.pred),
        "residual_hist": lambda: plots.residual_hist_svg(r.residual_histogram),
        "class_balance": lambda: plots.class_balance_svg([HOSTILE, "b", "c"], [5, 7, 9], [6, 6, 9]),
        "leaderboard": lambda: plots.leaderboard_svg(_trials(80), metric="roc_auc"),
        "leaderboard_big": lambda: plots.leaderboard_svg(
            _trials(1500), direction="minimize", x="elapsed"
        ),
    }


@pytest.fixture(scope="module")
def rendered(binary_case, multiclass_case, regression_case) -> dict[str, tuple[str, str]]:
    """Each plot drawn twice."""
    makers = _all_plots(binary_case, multiclass_case, regression_case)
    return {name: (make(), make()) for name, make in makers.items()}


def test_plots_are_inlinable_svg(rendered):
    for name, (svg, _) in rendered.items():
        assert svg.startswith("<svg"), name
        assert svg.rstrip().endswith("</svg>"), name
        assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<!--" not in svg, name
        assert re.search(r"<title>[^<]+</title>", svg), name
        assert "<metadata>" not in svg and "dc:date" not in svg, name


def test_plots_are_deterministic(rendered):
    for name, (first, second) in rendered.items():
        assert first == second, name


def test_plots_are_small(rendered):
    for name, (svg, _) in rendered.items():
        assert len(svg.encode()) < MAX_BYTES, (name, len(svg))


def test_big_scatters_are_rasterised(rendered):
    svg = rendered["residuals"][0]
    assert "data:image/png;base64," in svg
    assert svg.count("<use ") < 100  # not one marker element per point


def test_user_strings_are_never_markup(rendered):
    for name, (svg, _) in rendered.items():
        assert "<script" not in svg.lower(), name


def test_unbalanced_dollar_signs_do_not_break_plots():
    svg = plots.importance_svg(["$", "a $ b $ c $", r"\frac{1}{2}$"], [1.0, 2.0, 3.0])
    assert svg.startswith("<svg")


def test_no_figures_accumulate():
    from matplotlib.figure import Figure

    def live() -> int:
        gc.collect()
        # type(), not isinstance(): isinstance reads __class__, which some live objects
        # (torch's deprecated reduce_op, once torch is imported) answer with a warning
        return sum(issubclass(type(o), Figure) for o in gc.get_objects())

    before = live()
    for _ in range(5):
        plots.importance_svg(["a", "b"], [1.0, 2.0])
    assert live() <= before


def test_namespace_ids_makes_ids_unique_across_plots(rendered):
    a = namespace_ids(rendered["roc_binary"][0], "one")
    b = namespace_ids(rendered["pr_binary"][0], "two")
    ids_a = set(re.findall(r'\bid="([^"]+)"', a))
    ids_b = set(re.findall(r'\bid="([^"]+)"', b))
    assert ids_a and ids_b and not ids_a & ids_b
    for svg, ids in ((a, ids_a), (b, ids_b)):
        refs = set(re.findall(r'href="#([^"]+)"', svg)) | set(re.findall(r"url\(#([^)]+)\)", svg))
        assert refs <= ids  # every reference still resolves


def test_empty_and_degenerate_inputs():
    assert plots.leaderboard_svg([{"number": 0, "model": "x", "state": "failed"}]).startswith(
        "<svg"
    )
    assert plots.residuals_svg([1.0, 1.0], [1.0, 1.0]).startswith("<svg")
    assert plots.pred_vs_actual_svg([2.0], [2.0]).startswith("<svg")
    assert plots.residual_hist_svg(histogram(np.zeros(5))).startswith("<svg")
    assert plots.roc_svg([]).startswith("<svg")


def test_cheap_import_and_same_bytes_in_a_fresh_process(rendered):
    """Importing forgeml.evaluation loads no plotting, ML or template library; plotting
    never loads pyplot; and another process (other hash seed) draws identical bytes."""
    code = """
import sys
import forgeml.evaluation
heavy = [m for m in ("matplotlib", "sklearn", "jinja2", "scipy", "polars") if m in sys.modules]
assert not heavy, heavy
from forgeml.evaluation import plots
svg = plots.class_balance_svg(["<script>alert(1)</script>", "b", "c"], [5, 7, 9], [6, 6, 9])
assert "matplotlib.pyplot" not in sys.modules
sys.stdout.write(svg)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
        timeout=120,
    )
    assert out.stdout == rendered["class_balance"][0]
