"""The HTML model report: one self-contained file (inline CSS and SVG, no scripts, no
external resources) that reads well on screen and in print.

:class:`ReportContext` is plain data gathered by the workflow; :func:`render_report`
turns it into HTML through the Jinja2 template shipped in ``templates/`` with
autoescaping on, so column names, class labels and parameter values always show as
text. :func:`write_report` writes the file atomically.

>>> from forgeml.tasks import TaskInfo
>>> html = render_report(ReportContext(task=TaskInfo("regression", target="price"), model_name="houses"))
>>> html.startswith("<!DOCTYPE html>") and "houses" in html
True
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.evaluation import plots
from forgeml.evaluation._format import fmt_number, fmt_percent, fmt_seconds, fmt_value
from forgeml.evaluation._svg import namespace_ids
from forgeml.evaluation.evaluate import Evaluation
from forgeml.tasks import METRICS, TaskInfo, default_metric
from forgeml.tasks.metrics import Direction

if TYPE_CHECKING:
    import jinja2

__all__ = ["ReportContext", "render_report", "write_report"]

TEMPLATE = "report.html.j2"
LEADERBOARD_ROWS = 50
IMPORTANCE_ROWS = 50
TOP_REASONS = 10

_HEADLINE = {
    "binary": ("roc_auc", "pr_auc", "f1", "accuracy"),
    "multiclass": ("accuracy", "f1", "log_loss", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}
_SUBTYPE_NAMES = {
    "binary": "Binary classification",
    "multiclass": "Multiclass classification",
    "regression": "Regression",
}


@dataclass
class ReportContext:
    """Everything the report shows, as plain data; all but ``task`` may be left out and
    the matching section is then omitted.

    * ``metric``: the metric tuning optimised (default: the task's default metric);
      ``cv_score``: its ``(mean, std)`` across folds.
    * ``leaderboard``: one mapping per trial with ``number``, ``model``, ``params``,
      ``score``, ``state`` (``complete``/``pruned``/``failed``) and ``duration_s``.
    * ``feature_importance``: ``(feature name, importance)`` pairs.
    * ``features``: one mapping per input column with ``column``, ``kind``,
      ``encoders`` and ``outputs`` (a count or the output feature names).
    * ``validation``: ``n_input``, ``n_valid``, ``n_quarantined``, ``reasons``
      (reason -> rows), ``warnings`` and ``quarantine_path``.
    * ``timings``: seconds per stage; ``versions``: library -> version; ``registry``:
      where the model version lives (URI, name, version, aliases...).
    """

    task: TaskInfo
    title: str = "Model report"
    model_name: str = ""
    version: int | None = None
    run_id: str | None = None
    created_at: datetime | str | None = None
    target: str | None = None
    metric: str | None = None
    best_model: str | None = None
    evaluation: Evaluation | None = None
    cv_score: tuple[float, float] | None = None
    leaderboard: list[Mapping[str, Any]] = field(default_factory=list)
    best_params: Mapping[str, Any] = field(default_factory=dict)
    feature_importance: list[tuple[str, float]] = field(default_factory=list)
    features: list[Mapping[str, Any]] = field(default_factory=list)
    validation: Mapping[str, Any] | None = None
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    spec_yaml: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    registry: Mapping[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def render_report(ctx: ReportContext) -> str:
    """The report as one HTML document (a string)."""
    template = _environment().get_template(TEMPLATE)
    return template.render(**_view(ctx))


def write_report(ctx: ReportContext, path: Path) -> Path:
    """Render and write the report to ``path`` atomically (a temporary file in the same
    folder, fsynced, then ``os.replace``): a reader sees the old file or the new one,
    never half of one. Returns ``path``."""
    return write_text_atomically(render_report(ctx), path)


def write_text_atomically(text: str, path: Path, *, mode: int | None = None) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder (fsynced,
    then ``os.replace``): a reader sees the old file or the new one, never half of one,
    and a failure leaves nothing behind. ``mode``: the file's permissions (mkstemp's
    0600 otherwise)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _load_template(name: str) -> str:
    return resources.files("forgeml.evaluation").joinpath("templates", name).read_text("utf-8")


def jinja_environment(load: Callable[[str], str], **filters: Any) -> jinja2.Environment:
    """The HTML reports' Jinja2 environment: autoescaped, strict about undefined names,
    with the number filters (``num``, ``pct``, ``secs``, ``val``) and ``filters``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_number, pct=fmt_percent, secs=fmt_seconds, val=fmt_value, **filters)
    return env


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja_environment(_load_template)


def _svg(svg: str, prefix: str) -> Any:
    """A plot forgeml drew itself, marked safe for inlining (matplotlib escapes the text
    it writes), with ids made unique within the page."""
    from markupsafe import Markup

    return Markup(namespace_ids(svg, prefix))  # noqa: S704 - our own SVG, not user input


def _view(ctx: ReportContext) -> dict[str, Any]:
    subtype = ctx.task.subtype
    metric = ctx.metric or default_metric(subtype)
    known = METRICS.get(metric)
    direction: Direction = known.direction if known else "maximize"
    ev = ctx.evaluation
    notes = [*ctx.notes, *(ev.notes if ev else ())]
    view: dict[str, Any] = {
        "ctx": ctx,
        "subtype": subtype,
        "subtype_name": _SUBTYPE_NAMES[subtype],
        "target": ctx.target or ctx.task.target,
        "classes": [str(c) for c in ctx.task.classes],
        "metric": metric,
        "direction": direction,
        "created_at": fmt_value(ctx.created_at) if ctx.created_at is not None else None,
        "notes": notes,
        "headline": _headline(ev, metric, subtype),
        "metric_rows": _metric_rows(ev, metric),
        "plots": _evaluation_plots(ev),
        "importance": _importance(ctx.feature_importance),
        "tuning": _tuning(ctx.leaderboard, direction, metric),
        "validation": _validation(ctx.validation),
        "features": [_feature_row(f) for f in ctx.features],
        "timings": _timings(ctx.timings),
    }
    view["sections"] = [
        (key, name)
        for key, name, present in (
            ("metrics", "Test metrics", ev is not None),
            ("plots", "Plots", bool(view["plots"])),
            ("importance", "Feature importance", view["importance"] is not None),
            ("tuning", "Tuning", view["tuning"] is not None or bool(ctx.best_params)),
            ("data", "Data validation", view["validation"] is not None),
            ("features", "Features", bool(ctx.features)),
            ("lineage", "Lineage", True),
            ("spec", "Spec", bool(ctx.spec_yaml)),
        )
        if present
    ]
    return view


def _headline(ev: Evaluation | None, metric: str, subtype: str) -> list[dict[str, Any]]:
    if ev is None:
        return []
    names = [metric, *(m for m in _HEADLINE[subtype] if m != metric)]
    return [
        {"name": n, "value": ev.metrics[n], "tuned": n == metric} for n in names if n in ev.metrics
    ][:4]


def _metric_rows(ev: Evaluation | None, metric: str) -> list[dict[str, Any]]:
    if ev is None:
        return []
    return [
        {
            "name": name,
            "value": value,
            "better": "higher" if METRICS[name].direction == "maximize" else "lower",
            "tuned": name == metric,
        }
        for name, value in ev.metrics.items()
        if name in METRICS
    ]


def _evaluation_plots(ev: Evaluation | None) -> list[dict[str, Any]]:
    if ev is None:
        return []
    out: list[tuple[str, str, str]] = []  # (id, title, svg)
    if ev.classification is not None:
        c = ev.classification
        counts = c.confusion.as_array()
        roc_point = pr_point = None
        if ev.subtype == "binary" and ev.threshold is not None:
            (tn, fp), (fn, tp) = counts.tolist()
            if tp + fn and fp + tn:
                roc_point = (fp / (fp + tn), tp / (tp + fn))
            if tp + fp and tp + fn:
                pr_point = (tp / (tp + fn), tp / (tp + fp))
        if c.roc:
            out.append(("roc", "ROC curve", plots.roc_svg(c.roc, operating_point=roc_point)))
        if c.pr:
            out.append(("pr", "Precision–recall", plots.pr_svg(c.pr, operating_point=pr_point)))
        title = "Confusion matrix"
        if ev.threshold is not None:
            title += f" (threshold {ev.threshold:.3g})"
        out.append(("confusion", "Confusion matrix", plots.confusion_svg(c.confusion, title=title)))
        out.append(("calibration", "Calibration", plots.calibration_svg(c.calibration)))
        out.append(
            (
                "balance",
                "Class balance",
                plots.class_balance_svg(
                    c.confusion.labels, counts.sum(axis=1).tolist(), counts.sum(axis=0).tolist()
                ),
            )
        )
    if ev.regression is not None:
        r = ev.regression
        out.append(
            ("pva", "Predicted vs actual", plots.pred_vs_actual_svg(r.sample.y, r.sample.pred))
        )
        out.append(("residuals", "Residuals", plots.residuals_svg(r.sample.y, r.sample.pred)))
        out.append(
            ("rhist", "Residual distribution", plots.residual_hist_svg(r.residual_histogram))
        )
    return [{"id": i, "title": t, "svg": _svg(svg, f"fig-{i}")} for i, t, svg in out]


def _importance(pairs: list[tuple[str, float]]) -> dict[str, Any] | None:
    if not pairs:
        return None
    ranked = sorted(pairs, key=lambda p: -abs(float(p[1])))
    names, values = zip(*ranked, strict=True)
    total = sum(abs(float(v)) for v in values) or 1.0
    return {
        "svg": _svg(plots.importance_svg(names, values), "fig-importance"),
        "rows": [
            {"name": n, "value": float(v), "share": abs(float(v)) / total}
            for n, v in ranked[:IMPORTANCE_ROWS]
        ],
        "max_share": abs(float(values[0])) / total or 1.0,
        "n_total": len(ranked),
    }


def _score_key(trial: Mapping[str, Any], direction: Direction) -> tuple[int, float]:
    raw = trial.get("score")
    score = float(raw) if raw is not None else math.nan
    if trial.get("state", "complete") != "complete" or not math.isfinite(score):
        return (1, 0.0)
    return (0, -score if direction == "maximize" else score)


def _params_text(params: Any, limit: int = 140) -> str:
    if not isinstance(params, Mapping):
        return fmt_value(params) if params else ""
    text = ", ".join(f"{k}={fmt_value(v)}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tuning(
    trials: list[Mapping[str, Any]], direction: Direction, metric: str
) -> dict[str, Any] | None:
    if not trials:
        return None
    ranked = sorted(trials, key=lambda t: _score_key(t, direction))
    states = Counter(str(t.get("state", "complete")) for t in trials)
    rows = []
    for rank, t in enumerate(ranked[:LEADERBOARD_ROWS], start=1):
        complete = _score_key(t, direction)[0] == 0
        rows.append(
            {
                "rank": rank if complete else None,
                "number": t.get("number"),
                "model": t.get("model", ""),
                "score": t.get("score"),
                "state": str(t.get("state", "complete")),
                "duration_s": t.get("duration_s"),
                "params": _params_text(t.get("params")),
                "best": rank == 1 and complete,
            }
        )
    svg = plots.leaderboard_svg(trials, direction=direction, metric=metric)
    return {
        "svg": _svg(svg, "fig-leaderboard"),
        "rows": rows,
        "n_total": len(trials),
        "states": dict(sorted(states.items())),
        "total_s": sum(float(t.get("duration_s") or 0.0) for t in trials),
    }


def _validation(v: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if v is None:
        return None
    n_input, n_valid, n_bad = (int(v.get(k) or 0) for k in ("n_input", "n_valid", "n_quarantined"))
    reasons = sorted(dict(v.get("reasons") or {}).items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return {
        "n_input": n_input,
        "n_valid": n_valid,
        "n_quarantined": n_bad,
        "unaccounted": n_input - n_valid - n_bad,
        "valid_share": n_valid / n_input if n_input else math.nan,
        "quarantined_share": n_bad / n_input if n_input else math.nan,
        "reasons": [
            {"reason": r, "rows": int(c), "share": int(c) / n_bad if n_bad else math.nan}
            for r, c in reasons[:TOP_REASONS]
        ],
        "more_reasons": max(len(reasons) - TOP_REASONS, 0),
        "warnings": [str(w) for w in v.get("warnings") or ()],
        "quarantine_path": v.get("quarantine_path"),
    }


def _feature_row(f: Mapping[str, Any]) -> dict[str, Any]:
    encoders = f.get("encoders") or ()
    outputs = f.get("outputs")
    if isinstance(outputs, list | tuple):
        n_out: Any = len(outputs)
        shown = ", ".join(map(str, outputs[:5])) + (" …" if len(outputs) > 5 else "")
    else:
        n_out, shown = outputs, ""
    return {
        "column": f.get("column", ""),
        "kind": f.get("kind", ""),
        "encoders": encoders if isinstance(encoders, str) else ", ".join(map(str, encoders)),
        "n_outputs": n_out,
        "outputs": shown,
    }


def _timings(timings: Mapping[str, float]) -> dict[str, Any] | None:
    if not timings:
        return None
    total = sum(float(s) for s in timings.values())
    shares = [float(s) / total if total > 0 else 0.0 for s in timings.values()]
    rows = [
        {"stage": stage, "seconds": float(s), "share": share}
        for (stage, s), share in zip(timings.items(), shares, strict=True)
    ]
    return {"rows": rows, "total": total, "max_share": max(shares) or 1.0}
