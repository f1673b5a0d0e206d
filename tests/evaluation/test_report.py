"""The HTML report: renders for every task subtype, is well formed, self-contained, and
shows every user string as text."""

from __future__ import annotations

import os
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from forgeml.evaluation import ReportContext, evaluate, render_report, write_report
from forgeml.tasks import TaskInfo

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class Checker(HTMLParser):
    """Balanced tags, unique ids, and every src/href that points somewhere."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name == "id" and value is not None:
                self.ids.append(value)
            if name in {"src", "href", "xlink:href", "action", "poster"} and value is not None:
                self.links.append(value)
            if name.startswith("on"):
                self.errors.append(f"event handler attribute {name} on <{tag}>")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(html: str) -> Checker:
    checker = Checker()
    checker.feed(html)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert checker.stack == [], checker.stack
    duplicates = {i for i in checker.ids if checker.ids.count(i) > 1}
    assert not duplicates, sorted(duplicates)[:5]
    return checker


def assert_self_contained(html: str, checker: Checker) -> None:
    for link in checker.links:
        assert link.startswith(("#", "data:")), link
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "@import" not in html and "url(http" not in html
    assert not {"script", "link", "iframe", "img", "object", "embed"} & checker.tags


def _trials(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    states = ["complete", "complete", "complete", "pruned", "failed"]
    return [
        {
            "number": i,
            "model": ["lightgbm", "logistic", HOSTILE][i % 3],
            "params": {"learning_rate": float(rng.random()), HOSTILE: HOSTILE, "leaves": 31},
            "score": None if states[i % 5] == "failed" else float(rng.random()),
            "state": states[i % 5],
            "duration_s": float(rng.random() * 5),
        }
        for i in range(n)
    ]


def full_context(case, *, metric: str, hostile_class: bool = False) -> ReportContext:
    task = case.task
    if hostile_class:  # a class label that is markup
        task = TaskInfo(task.kind, target=task.target, classes=(*task.classes[:-1], HOSTILE))
    ev = evaluate(case.y, case.pred, task)
    names = [*case.feature_names[:-1], HOSTILE]
    return ReportContext(
        task=task,
        title=f"Report for {HOSTILE}",
        model_name=HOSTILE,
        version=7,
        run_id=f"run-{HOSTILE}",
        created_at=datetime(2024, 6, 1, 12, 30),
        metric=metric,
        best_model="lightgbm",
        evaluation=ev,
        cv_score=(0.9, 0.01),
        leaderboard=_trials(70),
        best_params={"learning_rate": 0.05, HOSTILE: [1, HOSTILE], "nested": {"a": HOSTILE}},
        feature_importance=list(zip(names, np.linspace(1, 0, len(names)).tolist(), strict=True)),
        features=[
            {
                "column": HOSTILE,
                "kind": "categorical",
                "encoders": ["one_hot"],
                "outputs": [f"{HOSTILE}=a", "b"],
            },
            {"column": "age", "kind": "numeric", "encoders": "impute_median", "outputs": 1},
        ],
        validation={
            "n_input": 1000,
            "n_valid": 950,
            "n_quarantined": 50,
            "reasons": {f"{HOSTILE} is null": 30, **{f"rule {i}": 1 for i in range(20)}},
            "warnings": [f"column {HOSTILE} looks like an id"],
            "quarantine_path": f"runs/{HOSTILE}/quarantine.parquet",
        },
        fingerprint={"sha256": "0" * 64, "n_rows": 1000, "schema": {HOSTILE: "Utf8"}},
        seed=42,
        timings={"validate": 0.5, "tuning": 30.0, HOSTILE: 1.0},
        spec_yaml=f"target: {HOSTILE}\nseed: 42\n",
        versions={"forgeml": "0.1.0", "numpy": np.__version__},
        registry={"uri": "sqlite:///forgeml.db", "aliases": ["champion", HOSTILE]},
        notes=[f"note about {HOSTILE}"],
    )


@pytest.fixture(scope="module")
def reports(binary_case, multiclass_case, regression_case) -> dict[str, str]:
    return {
        "binary": render_report(full_context(binary_case, metric="roc_auc")),
        "multiclass": render_report(
            full_context(multiclass_case, metric="log_loss", hostile_class=True)
        ),
        "regression": render_report(full_context(regression_case, metric="rmse")),
    }


@pytest.mark.parametrize("subtype", ["binary", "multiclass", "regression"])
def test_report_is_well_formed_and_self_contained(reports, subtype):
    html = reports[subtype]
    assert html.startswith("<!DOCTYPE html>")
    checker = check_html(html)
    assert_self_contained(html, checker)
    assert html.count("<svg") >= 5  # evaluation plots + importance + leaderboard


@pytest.mark.parametrize("subtype", ["binary", "multiclass", "regression"])
def test_user_strings_are_escaped(reports, subtype):
    html = reports[subtype]
    assert HOSTILE not in html
    assert "<script" not in html.lower()
    assert html.count(ESCAPED) >= 10  # title, model, params, features, reasons, spec...


def test_sections_and_content(reports):
    binary, multiclass, regression = reports["binary"], reports["multiclass"], reports["regression"]
    for html in reports.values():
        for section in (
            "metrics",
            "plots",
            "importance",
            "tuning",
            "data",
            "features",
            "lineage",
            "spec",
        ):
            assert f'<section id="{section}">' in html
        assert "Every input row is accounted for." in html
        assert "top 50 of 70" in html
        assert "… and 11 more reasons" in html
        assert "2024-06-01 12:30:00" in html
    assert "ROC curve" in binary and "Calibration" in binary and "Confusion matrix" in binary
    assert "Per class" in multiclass and "Residual" not in multiclass
    assert "Predicted vs actual" in regression and "ROC curve" not in regression
    assert '<tr class="hl"><td>rmse</td>' in regression  # the tuned metric is highlighted


def test_leaderboard_is_ranked_by_metric_direction(regression_case):
    trials = [
        {"number": 0, "model": "a", "score": 5.0, "state": "complete", "duration_s": 1},
        {"number": 1, "model": "b", "score": 2.0, "state": "complete", "duration_s": 1},
        {"number": 2, "model": "c", "score": None, "state": "failed", "duration_s": 1},
        {"number": 3, "model": "d", "score": 9.0, "state": "complete", "duration_s": 1},
    ]
    ctx = ReportContext(task=regression_case.task, metric="rmse", leaderboard=trials)
    html = render_report(ctx)
    table = html[html.index("<caption>Leaderboard") :]
    rows = re.findall(
        r"<tr class=\"[^\"]*state-(\w+)\"><td class=\"num\">([^<]+)</td><td class=\"num\">(\d+)</td>",
        table,
    )
    assert [(state, trial) for state, _, trial in rows] == [
        ("complete", "1"),
        ("complete", "0"),
        ("complete", "3"),
        ("failed", "2"),
    ]
    assert rows[0][1] == "1" and rows[-1][1] == "–"


def test_minimal_context_renders(binary_case):
    html = render_report(ReportContext(task=binary_case.task))
    checker = check_html(html)
    assert_self_contained(html, checker)
    assert '<section id="lineage">' in html and '<section id="metrics">' not in html


def test_undefined_metrics_and_unaccounted_rows_are_visible():
    task = TaskInfo("classification", classes=("no", "yes"))
    ev = evaluate(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]), task)
    ctx = ReportContext(
        task=task,
        evaluation=ev,
        validation={"n_input": 10, "n_valid": 7, "n_quarantined": 2, "reasons": {}},
    )
    html = render_report(ctx)
    check_html(html)
    assert "n/a" in html  # roc_auc is undefined with one class
    assert "only one class is present" in html
    assert "1 rows are not accounted for" in html


def test_write_report_is_atomic(tmp_path: Path, binary_case, monkeypatch):
    target = tmp_path / "reports" / "model.html"
    ctx = ReportContext(task=binary_case.task, model_name="first")
    assert write_report(ctx, target) == target
    assert "first" in target.read_text(encoding="utf-8")
    assert [p.name for p in target.parent.iterdir()] == ["model.html"]

    def fail(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(ReportContext(task=binary_case.task, model_name="second"), target)
    assert "first" in target.read_text(encoding="utf-8")  # the old report is intact
    assert [p.name for p in target.parent.iterdir()] == ["model.html"]  # no temp file left


def test_rendering_is_deterministic(binary_case):
    ctx = full_context(binary_case, metric="f1")
    ctx.leaderboard = ctx.leaderboard[:5]
    assert render_report(ctx) == render_report(ctx)
