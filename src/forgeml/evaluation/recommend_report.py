"""The HTML report of a recommendation run: one self-contained file (inline CSS and SVG,
no scripts), in the style of the tabular report (same stylesheet, plot style and number
formats).

:class:`RecommendReportContext` is plain data gathered by the workflow; it shows the
test metrics of the chosen model and of the best configuration of every other model, four
plots (metrics per model, NDCG@k and Recall@k against k, metrics per user segment, the
popularity of recommended items against the catalogue's and the interactions'), the
tuning leaderboard, the accounting of every input row and the run's lineage.

>>> html = render_recommend_report(RecommendReportContext(model_name="movies", k=10))
>>> html.startswith("<!DOCTYPE html>") and "movies" in html
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.evaluation._format import fmt_value
from forgeml.evaluation._svg import INK, MUTED, PALETTE, figure, plain, to_svg

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "RecommendReportContext",
    "curve_svg",
    "models_svg",
    "popularity_svg",
    "render_recommend_report",
    "segments_svg",
    "write_recommend_report",
]

TEMPLATE = "recommend_report.html.j2"
LEADERBOARD_ROWS = 50
_METRICS = ("ndcg", "recall", "map", "hit_rate")
_NAMES = {"ndcg": "NDCG", "recall": "Recall", "map": "MAP", "hit_rate": "Hit rate"}


@dataclass
class RecommendReportContext:
    """Everything the report shows; every field may be left out (its section is omitted).

    * ``metric``: what tuning optimised, e.g. ``ndcg@10``; ``validation_score``: its best
      value on the validation split (leave-last-one-out of train).
    * ``test_metrics``: the chosen model's test metrics (``ndcg@10``, ``coverage@10``...).
    * ``models``: one mapping per tuned model: ``name``, ``validation`` (best validation
      score), ``trials``, ``test`` (its test metrics) and ``curve`` (``k``/``ndcg``/
      ``recall`` lists); the chosen one has ``chosen: True``.
    * ``segments``: ``name``, ``users`` and ``metrics`` per user segment (chosen model).
    * ``user_features``: with a user table, ``cold_start`` (``users``,
      ``users_with_attributes``, and ``user_features``/``popularity`` metric dicts: the
      attribute fallback and plain popularity on test users scored as if new),
      ``by_attribute`` (per attribute: ``attribute``, ``unknown``, ``values`` rows with
      ``value``, ``users`` and metrics) and ``ignored`` (column -> reason).
    * ``popularity``: ``recommended``, ``interactions`` and ``catalogue`` shares per
      popularity decile (decile 1: the most popular tenth of the items).
    * ``events``: how the valid rows became train and test events (counts by name).
    * ``validation``: the :class:`~forgeml.data.ValidationReport` as a dict.
    """

    model_name: str = ""
    version: int | None = None
    run_id: str | None = None
    created_at: datetime | str | None = None
    k: int = 10
    metric: str | None = None
    best_model: str | None = None
    best_params: Mapping[str, Any] = field(default_factory=dict)
    validation_score: float | None = None
    test_metrics: Mapping[str, float] = field(default_factory=dict)
    models: Sequence[Mapping[str, Any]] = field(default_factory=list)
    segments: Sequence[Mapping[str, Any]] = field(default_factory=list)
    popularity: Mapping[str, Sequence[float]] = field(default_factory=dict)
    leaderboard: Sequence[Mapping[str, Any]] = field(default_factory=list)
    events: Mapping[str, Any] = field(default_factory=dict)
    columns: Mapping[str, Any] = field(default_factory=dict)
    split: str | None = None
    validation: Mapping[str, Any] | None = None
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    spec_yaml: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    registry: Mapping[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    user_features: Mapping[str, Any] | None = None


def render_recommend_report(ctx: RecommendReportContext) -> str:
    """The report as one HTML document (a string)."""
    return _environment().get_template(TEMPLATE).render(**_view(ctx))


def write_recommend_report(ctx: RecommendReportContext, path: Path) -> Path:
    """Render and write ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    from forgeml.evaluation.report import write_text_atomically

    return write_text_atomically(render_recommend_report(ctx), path, mode=0o644)


def _load_template(name: str) -> str:
    return resources.files("forgeml.evaluation").joinpath("templates", name).read_text("utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    from forgeml.evaluation.report import jinja_environment

    return jinja_environment(_load_template)


def _svg(svg: str, prefix: str) -> Any:
    from markupsafe import Markup

    from forgeml.evaluation._svg import namespace_ids

    return Markup(namespace_ids(svg, prefix))  # noqa: S704 - our own SVG, not user input


def _view(ctx: RecommendReportContext) -> dict[str, Any]:
    k = ctx.k
    metric = ctx.metric or f"ndcg@{k}"
    headline = [
        {"name": name, "value": ctx.test_metrics[name], "tuned": name == metric}
        for name in dict.fromkeys([metric, f"ndcg@{k}", f"recall@{k}", f"map@{k}", f"hit_rate@{k}"])
        if name in ctx.test_metrics
    ][:4]
    metric_rows = [
        {"name": name, "value": float(value), "tuned": name == metric}
        for name, value in ctx.test_metrics.items()
        if isinstance(value, int | float) and name != "users"
    ]
    plots = _plots(ctx, k)
    view: dict[str, Any] = {
        "ctx": ctx,
        "metric": metric,
        "created_at": fmt_value(ctx.created_at) if ctx.created_at is not None else None,
        "headline": headline,
        "metric_rows": metric_rows,
        "model_rows": _model_rows(ctx.models, k),
        "metric_names": [f"{m}@{k}" for m in _METRICS] + [f"coverage@{k}"],
        "plots": plots,
        "segments": _segment_rows(ctx.segments, k),
        "user_features": ctx.user_features or None,
        "tuning": _tuning(ctx.leaderboard),
        "validation": _validation(ctx.validation),
        "events": [{"name": name, "value": value} for name, value in ctx.events.items()],
        "timings": _timings(ctx.timings),
        "notes": list(ctx.notes),
    }
    view["sections"] = [
        (key, name)
        for key, name, present in (
            ("metrics", "Test metrics", bool(ctx.test_metrics)),
            ("plots", "Plots", bool(plots)),
            ("segments", "Segments", bool(view["segments"])),
            ("user-features", "User attributes", bool(view["user_features"])),
            ("tuning", "Tuning", view["tuning"] is not None),
            ("data", "Data", view["validation"] is not None or bool(ctx.events)),
            ("lineage", "Lineage", True),
            ("spec", "Spec", bool(ctx.spec_yaml)),
        )
        if present
    ]
    return view


def _plots(ctx: RecommendReportContext, k: int) -> list[dict[str, Any]]:
    out: list[tuple[str, str, str]] = []
    scored = [m for m in ctx.models if m.get("test")]
    if scored:
        out.append(("models", f"Test metrics @{k} per model", models_svg(scored, k)))
    curved = [m for m in ctx.models if m.get("curve") and m["curve"].get("k")]
    if curved:
        out.append(("curve", "NDCG@k and Recall@k against k", curve_svg(curved)))
    if any(s.get("users") for s in ctx.segments):
        out.append(("segments", "Metrics per user segment", segments_svg(ctx.segments, k)))
    if ctx.popularity.get("recommended"):
        out.append(
            ("popularity", "Popularity of recommended items", popularity_svg(ctx.popularity))
        )
    return [{"id": i, "title": t, "svg": _svg(svg, f"fig-{i}")} for i, t, svg in out]


def models_svg(models: Sequence[Mapping[str, Any]], k: int) -> str:
    """Grouped bars: NDCG, Recall, MAP and hit rate at ``k`` on test, one group per model."""
    names = [str(m["name"]) for m in models]
    metric_keys = [f"{m}@{k}" for m in _METRICS]
    width = 0.8 / len(metric_keys)
    title = f"Test metrics @{k}"
    with figure((5.6, 3.4)) as fig:
        ax = fig.add_subplot()
        positions = np.arange(len(names))
        for j, key in enumerate(metric_keys):
            values = [float(m["test"].get(key, math.nan)) for m in models]
            ax.bar(
                positions + (j - (len(metric_keys) - 1) / 2) * width,
                values,
                width=width * 0.95,
                color=PALETTE[j % len(PALETTE)],
                label=_NAMES[key.split("@")[0]],
            )
        labels = [
            plain(n + (" ★" if m.get("chosen") else ""), 18)
            for n, m in zip(names, models, strict=True)
        ]
        ax.set_xticks(positions, labels)
        ax.set(ylabel="Score (test)", title=title)
        ax.set_ylim(bottom=0)
        fig.legend(loc="outside right upper")
        return to_svg(fig, title)


def curve_svg(models: Sequence[Mapping[str, Any]]) -> str:
    """NDCG@k (solid) and Recall@k (dashed) against k, one colour per model."""
    title = "NDCG@k and Recall@k"
    with figure((5.6, 3.4)) as fig:
        ax = fig.add_subplot()
        for i, m in enumerate(models):
            curve = m["curve"]
            color = PALETTE[i % len(PALETTE)]
            ks = [float(v) for v in curve["k"]]
            ax.plot(
                ks,
                curve["ndcg"],
                marker="o",
                ms=3,
                lw=1.5,
                color=color,
                label=f"{plain(m['name'], 18)} NDCG",
            )
            ax.plot(
                ks,
                curve["recall"],
                ls="--",
                lw=1.2,
                color=color,
                label=f"{plain(m['name'], 18)} Recall",
            )
        ax.set_xscale("log")
        if models:
            ticks = [float(v) for v in models[0]["curve"]["k"]]
            ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
            ax.minorticks_off()
        ax.set(xlabel="k (list length)", ylabel="Score (test)", title=title)
        ax.set_ylim(bottom=0)
        fig.legend(loc="outside right upper")
        return to_svg(fig, title)


def segments_svg(segments: Sequence[Mapping[str, Any]], k: int) -> str:
    """NDCG and Recall at ``k`` per user segment (users by training items), with counts."""
    shown = [s for s in segments if s.get("users")]
    title = f"Per segment (training items per user), @{k}"
    with figure((5.2, 3.2)) as fig:
        ax = fig.add_subplot()
        positions = np.arange(len(shown))
        for j, key in enumerate((f"ndcg@{k}", f"recall@{k}")):
            values = [float(s["metrics"].get(key, math.nan)) for s in shown]
            ax.bar(
                positions + (j - 0.5) * 0.38,
                values,
                width=0.36,
                color=PALETTE[j],
                label=_NAMES[key.split("@")[0]],
            )
        ax.set_xticks(
            positions, [f"{plain(s['name'], 12)}\n{int(s['users']):,} users" for s in shown]
        )
        ax.set(ylabel="Score (test)", title=title)
        ax.set_ylim(bottom=0)
        fig.legend(loc="outside right upper")
        return to_svg(fig, title)


def popularity_svg(popularity: Mapping[str, Sequence[float]]) -> str:
    """Share per popularity decile of the catalogue, of the training interactions and of
    the recommendation slots (decile 1 holds the most popular tenth of the items)."""
    title = "Popularity: recommended vs catalogue"
    series = (
        ("catalogue", "catalogue items", MUTED),
        ("interactions", "training interactions", PALETTE[0]),
        ("recommended", "recommended slots", PALETTE[1]),
    )
    n = len(popularity.get("recommended", ()))
    with figure((5.6, 3.2)) as fig:
        ax = fig.add_subplot()
        positions = np.arange(1, n + 1)
        for j, (key, label, color) in enumerate(series):
            values = [100.0 * v for v in popularity.get(key, [0.0] * n)]
            ax.bar(positions + (j - 1) * 0.27, values, width=0.26, color=color, label=label)
        ax.set_xticks(positions, [str(p) for p in positions])
        ax.set(
            xlabel="Popularity decile (1 = most popular items)",
            ylabel="Share (%)",
            title=title,
        )
        ax.axhline(100.0 / max(n, 1), color=INK, lw=0.6, ls=":")
        fig.legend(loc="outside right upper")
        return to_svg(fig, title)


def _model_rows(models: Sequence[Mapping[str, Any]], k: int) -> list[dict[str, Any]]:
    rows = []
    for m in models:
        test = m.get("test") or {}
        rows.append(
            {
                "name": m.get("name", ""),
                "chosen": bool(m.get("chosen")),
                "validation": m.get("validation"),
                "trials": m.get("trials"),
                "cells": [test.get(f"{x}@{k}") for x in (*_METRICS, "coverage")],
                "error": m.get("error"),
            }
        )
    return rows


def _segment_rows(segments: Sequence[Mapping[str, Any]], k: int) -> list[dict[str, Any]]:
    return [
        {
            "name": s.get("name", ""),
            "users": int(s.get("users") or 0),
            "cells": [(s.get("metrics") or {}).get(f"{x}@{k}") for x in _METRICS],
        }
        for s in segments
    ]


def _params_text(params: Any, limit: int = 140) -> str:
    if not isinstance(params, Mapping):
        return fmt_value(params) if params else ""
    text = ", ".join(f"{key}={fmt_value(v)}" for key, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tuning(trials: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    if not trials:
        return None
    rows = []
    rank = 0
    for t in list(trials)[:LEADERBOARD_ROWS]:
        complete = t.get("state") == "complete"
        rank += complete
        rows.append(
            {
                "rank": rank if complete else None,
                "number": t.get("number"),
                "model": t.get("model", ""),
                "score": t.get("value"),
                "state": t.get("state", ""),
                "duration_s": t.get("duration_s"),
                "params": _params_text(t.get("params")) or (t.get("error") or ""),
                "best": complete and rank == 1,
            }
        )
    states: dict[str, int] = {}
    for t in trials:
        states[str(t.get("state"))] = states.get(str(t.get("state")), 0) + 1
    return {
        "rows": rows,
        "n_total": len(trials),
        "states": dict(sorted(states.items())),
        "total_s": sum(float(t.get("duration_s") or 0.0) for t in trials),
    }


def _validation(v: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if v is None:
        return None
    n_input, n_valid, n_bad = (
        int(v.get(key) or 0) for key in ("n_input", "n_valid", "n_quarantined")
    )
    reasons = sorted(dict(v.get("reasons") or {}).items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    examples = dict(v.get("examples") or {})
    return {
        "n_input": n_input,
        "n_valid": n_valid,
        "n_quarantined": n_bad,
        "unaccounted": n_input - n_valid - n_bad,
        "valid_share": n_valid / n_input if n_input else math.nan,
        "quarantined_share": n_bad / n_input if n_input else math.nan,
        "reasons": [
            {
                "reason": r,
                "rows": int(c),
                "share": int(c) / n_bad if n_bad else math.nan,
                "example": (examples.get(r) or [""])[0],
            }
            for r, c in reasons[:10]
        ],
        "quarantine_path": v.get("quarantine_path"),
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
