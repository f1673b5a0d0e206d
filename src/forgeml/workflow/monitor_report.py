"""The monitoring report as one self-contained HTML file: inline CSS and SVG, no scripts.

It looks like the training report (the same stylesheet, plot style and number formats,
from :mod:`forgeml.evaluation`) and shows one window of a model's served traffic: volume
and latency, versions and variants, dropped log rows, feedback and live metrics over
time, the drift table against the training profile, drift over time of the most drifted
features and of the prediction, and reference-versus-current distributions. The template
autoescapes, so feature names and labels always show as text; the file is written to a
temporary name and renamed, so no half-written report is ever left behind.

The sections' data (traffic, outcomes, drift, the distributions behind the plots) is
computed here too, by :func:`fill_traffic`, :func:`fill_outcomes` and :func:`fill_drift`,
for :func:`forgeml.workflow.monitor.monitor_report`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.evaluation._svg import MUTED, PALETTE, figure, namespace_ids, plain, to_svg

if TYPE_CHECKING:
    import jinja2

    from forgeml.monitoring import Profile
    from forgeml.workflow.monitor import MonitorReport

__all__ = ["fill_drift", "fill_outcomes", "fill_traffic", "render_html", "write_html"]

TEMPLATE = "monitor_report.html.j2"
TOP_FEATURES = 5  # features drawn in the drift-over-time plot (4 of them as distributions)
PREDICTION_LABEL = "prediction"
_SCORE_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall")  # all in [0, 1]
_WIDE = (7.6, 3.0)
MAX_CATEGORIES = 12  # categories drawn per distribution plot (the others pooled)


def render_html(report: MonitorReport) -> str:
    """The report as one HTML document (a string)."""
    return _environment().get_template(TEMPLATE).render(**_view(report))


def write_html(report: MonitorReport, path: Path) -> Path:
    """Render, then write ``path`` atomically (temporary file in the same folder, fsync,
    ``os.replace``): a reader sees the old file or the new one, never half of one. A
    failure while rendering leaves nothing behind."""
    from forgeml.evaluation.report import write_text_atomically

    # a report to share, not a secret: world-readable like any written file
    return write_text_atomically(render_html(report), path, mode=0o644)


def _load_template(name: str) -> str:
    package = "forgeml.evaluation" if name == "report.css" else "forgeml.workflow"
    return resources.files(package).joinpath("templates", name).read_text("utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    from forgeml.evaluation.report import jinja_environment

    return jinja_environment(_load_template, when=_when)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _svg(svg: str, prefix: str) -> Any:
    from markupsafe import Markup

    return Markup(namespace_ids(svg, prefix))  # noqa: S704 - our own SVG, not user input


def _feature_name(name: str) -> str:
    from forgeml.monitoring import PREDICTION_COLUMN

    return PREDICTION_LABEL if name == PREDICTION_COLUMN else name


def _view(report: MonitorReport) -> dict[str, Any]:
    from forgeml.monitoring import PREDICTION_COLUMN

    drift_rows = sorted(
        report.drift, key=lambda f: (not f["drifted"], f["feature"] == PREDICTION_COLUMN)
    )
    top = _top_features(report)
    plots: dict[str, Any] = {
        "volume": _svg(_volume_svg(report.volume), "fig-volume"),
        "drift": _svg(_drift_svg(report.drift_over_time, top, report.edges), "fig-drift")
        if report.drift_over_time
        else None,
        "live": _svg(_live_svg(report.live_over_time, report.task, report.edges), "fig-live")
        if report.live_over_time
        else None,
        "distributions": [
            {
                "feature": _feature_name(d["feature"]),
                "svg": _svg(_distribution_svg(d), f"fig-dist-{i}"),
            }
            for i, d in enumerate(report.distributions)
        ],
    }
    live = [
        {"name": name, "value": value, "test": report.test_metrics.get(name)}
        for name, value in report.live_metrics.items()
    ]
    return {
        "r": report,
        "drift_rows": [{**f, "feature": _feature_name(f["feature"])} for f in drift_rows],
        "drifted": [_feature_name(f) for f in report.drifted],
        "live": live,
        "plots": plots,
        "versions": ", ".join(report.versions),
        "created_at": _when(report.created_at),
    }


def _top_features(report: MonitorReport) -> list[str]:
    """The distributions' features (the most drifted first), then the prediction."""
    from forgeml.monitoring import PREDICTION_COLUMN

    names = [d["feature"] for d in report.distributions if d["feature"] != PREDICTION_COLUMN]
    if any(f["feature"] == PREDICTION_COLUMN for f in report.drift):
        names.append(PREDICTION_COLUMN)
    return names


def _time_axis(ax: Any, edges: Sequence[datetime]) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlim(_naive(edges[0]), _naive(edges[-1]))


def _naive(moment: datetime) -> datetime:
    """UTC wall time without a zone: matplotlib then labels the axis in UTC."""
    return moment.replace(tzinfo=None)


def _mids(edges: Sequence[datetime]) -> list[Any]:  # Any: matplotlib's stubs want numbers
    return [_naive(a + (b - a) / 2) for a, b in itertools.pairwise(edges)]


def _volume_svg(volume: list[dict[str, Any]]) -> str:
    """Requests per bucket (bars) above latency p50 and p99 per bucket (lines)."""
    edges = [v["bucket"] for v in volume]
    width = (edges[1] - edges[0]) * 0.85 if len(edges) > 1 else None
    ends = [*edges, edges[-1] + (edges[1] - edges[0])] if len(edges) > 1 else edges
    title = "Requests and latency per bucket"
    with figure((_WIDE[0], 4.0)) as fig:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1))
        mids = _mids(ends) if len(ends) > 1 else [_naive(e) for e in edges]
        top.bar(mids, [v["requests"] for v in volume], width=width, color=PALETTE[0], alpha=0.7)
        top.set(ylabel="Requests", title=title)
        for key, label, color in (
            ("latency_p50_ms", "p50", PALETTE[0]),
            ("latency_p99_ms", "p99", PALETTE[1]),
        ):
            points = [(m, v[key]) for m, v in zip(mids, volume, strict=True) if v[key] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                bottom.plot(xs, ys, "o-", ms=3, lw=1.4, color=color, label=label)
        bottom.set(ylabel="Latency (ms)")
        if bottom.get_legend_handles_labels()[0]:
            bottom.legend(loc="upper left")
        if len(ends) > 1:
            _time_axis(bottom, ends)
        return to_svg(fig, title)


def _drift_svg(rows: list[dict[str, Any]], features: list[str], edges: list[datetime]) -> str:
    """PSI per bucket of each feature in ``features`` (drifted buckets marked), with the
    0.2 threshold."""
    from forgeml.monitoring import PREDICTION_COLUMN, THRESHOLDS

    mids = _mids(edges)
    starts = {e: i for i, e in enumerate(edges[:-1])}
    title = "Drift over time (PSI per bucket)"
    with figure(_WIDE) as fig:
        ax = fig.add_subplot()
        ax.axhline(THRESHOLDS["psi"], ls="--", lw=0.9, color=MUTED, label="threshold")
        for i, name in enumerate(features):
            mine = [r for r in rows if r["feature"] == name and r["method"] == "psi"]
            points = sorted((starts[r["bucket"]], r["score"], r["drifted"]) for r in mine)
            if not points:
                continue
            xs = [mids[b] for b, _, _ in points]
            color = PALETTE[i % len(PALETTE)]
            label = plain(_feature_name(name), 28)
            style = ":" if name == PREDICTION_COLUMN else "-"
            ax.plot(xs, [s for _, s, _ in points], style, lw=1.5, color=color, label=label)
            hot = [(x, s) for x, (_, s, d) in zip(xs, points, strict=True) if d]
            if hot:
                ax.plot(*zip(*hot, strict=True), "o", ms=5, color=color)
        ax.set(ylabel="PSI", title=title)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", ncols=2)
        _time_axis(ax, edges)
        return to_svg(fig, title)


def _live_svg(rows: list[dict[str, Any]], task: str, edges: list[datetime]) -> str:
    """Live metrics per bucket: the [0, 1] scores for classification, the errors for
    regression."""
    mids = _mids(edges)
    starts = {e: i for i, e in enumerate(edges[:-1])}
    names = ("rmse", "mae") if task == "regression" else _SCORE_METRICS
    title = "Live metrics per bucket (labelled predictions)"
    with figure(_WIDE) as fig:
        ax = fig.add_subplot()
        for i, name in enumerate(n for n in names if any(r["metric"] == n for r in rows)):
            points = sorted((starts[r["bucket"]], r["value"]) for r in rows if r["metric"] == name)
            ax.plot([mids[b] for b, _ in points], [v for _, v in points], "o-", ms=3, lw=1.4,
                    color=PALETTE[i % len(PALETTE)], label=name)  # fmt: skip
        if task != "regression":
            ax.set_ylim(-0.02, 1.02)
        ax.set(ylabel="Value", title=title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", ncols=3)
        _time_axis(ax, edges)
        return to_svg(fig, title)


def _shown_bins(dist: dict[str, Any]) -> tuple[list[str], list[float], list[float]]:
    """A categorical column's :data:`MAX_CATEGORIES` largest categories (in either
    distribution), the rest pooled into "other"; numeric bins as they are."""
    bins, ref, cur = list(dist["bins"]), list(dist["reference"]), list(dist["current"])
    if dist["kind"] != "categorical" or len(bins) <= MAX_CATEGORIES + 1:
        return bins, ref, cur
    named = sorted(range(len(bins) - 1), key=lambda i: -max(ref[i], cur[i]))[:MAX_CATEGORIES]
    keep = sorted(named)
    rest = [i for i in range(len(bins)) if i not in named]
    return (
        [bins[i] for i in keep] + ["all others"],
        [ref[i] for i in keep] + [sum(ref[i] for i in rest)],
        [cur[i] for i in keep] + [sum(cur[i] for i in rest)],
    )


def _distribution_svg(dist: dict[str, Any]) -> str:
    """Reference and current shares over the profile's bins or categories."""
    import numpy as np

    names, reference, current = _shown_bins(dist)
    bins = [plain(b, 18) for b in names]
    x = np.arange(len(bins))
    name = _feature_name(dist["feature"])
    title = plain(f"{name}: reference vs current", 60)
    with figure((4.4, 3.4)) as fig:
        ax = fig.add_subplot()
        ax.bar(x - 0.2, reference, width=0.4, color=MUTED, label="training")
        ax.bar(x + 0.2, current, width=0.4, color=PALETTE[0], label="served")
        crowded = sum(len(b) for b in bins) > 40
        ax.set_xticks(x, bins, rotation=45 if crowded else 0, ha="right" if crowded else "center")
        ax.grid(axis="x", visible=False)
        ax.set(ylabel="Share of rows", title=title)
        fig.legend(loc="outside lower center", ncols=2)
        return to_svg(fig, title)


# --- the sections' data (computed once, shown as HTML or JSON) --------------------------
def fill_traffic(report: MonitorReport, served: Any, edges: list[datetime]) -> None:
    import polars as pl

    from forgeml.monitoring.windows import bucket_of

    report.traffic = (
        served.group_by("version", "variant")
        .agg(pl.len().alias("rows"), pl.col("request_id").n_unique().alias("requests"))
        .sort("rows", "version", descending=[True, False], nulls_last=True)
        .to_dicts()
    )
    requests = served.unique("request_id", keep="first", maintain_order=True)
    per_bucket = (
        requests.with_columns(bucket=pl.Series(bucket_of(requests["ts"], edges)))
        .group_by("bucket")
        .agg(
            pl.len().alias("requests"),
            pl.col("latency_ms").quantile(0.5, "linear").alias("latency_p50_ms"),
            pl.col("latency_ms").quantile(0.99, "linear").alias("latency_p99_ms"),
        )
    )
    rows = served.with_columns(bucket=pl.Series(bucket_of(served["ts"], edges)))
    rows_per_bucket = dict(rows.group_by("bucket").len().iter_rows())
    stats = {r["bucket"]: r for r in per_bucket.to_dicts()}
    report.volume = [
        {
            "bucket": edges[b],
            "rows": int(rows_per_bucket.get(b, 0)),
            "requests": int(stats.get(b, {}).get("requests", 0)),
            "latency_p50_ms": stats.get(b, {}).get("latency_p50_ms"),
            "latency_p99_ms": stats.get(b, {}).get("latency_p99_ms"),
        }
        for b in range(len(edges) - 1)
    ]


# Test-set metrics defined as the live ones are (binary precision/recall/f1 are macro
# averages in training's metrics, the positive class's here: not comparable).
_COMPARABLE = {
    "binary": ("accuracy", "roc_auc", "log_loss"),
    "multiclass": ("accuracy", "f1"),
    "regression": ("rmse", "mae", "r2"),
}


def fill_outcomes(
    report: MonitorReport,
    served: Any,
    feedback: Any,
    task: dict[str, Any],
    registered: dict[str, float],
    edges: list[datetime],
) -> None:
    from forgeml.monitoring.outcomes import (
        join_feedback,
        json_values,
        live_metrics_over_time,
        outcome_metrics,
    )

    kind, positive = task["subtype"], task["positive"]
    joined = join_feedback(served, feedback)
    report.feedback = joined.counts()
    rows = joined.rows
    if rows.height:
        report.live_metrics = outcome_metrics(
            kind,
            json_values(rows.get_column("label").to_list()),
            json_values(rows.get_column("prediction").to_list()),
            rows.get_column("score").to_list() if kind == "binary" else None,
            positive=positive,
        )
        over_time = live_metrics_over_time(
            rows if kind == "binary" else rows.drop("score"), kind, edges, positive=positive
        )
        report.live_over_time = over_time.to_dicts()
    report.test_metrics = {
        name: float(registered[name]) for name in _COMPARABLE[kind] if name in registered
    }
    if joined.unmatched:
        report.notes.append(
            f"{joined.unmatched:,} labels received since the window began match no "
            "prediction in it (labels for older predictions, most likely)"
        )


def fill_drift(report: MonitorReport, served: Any, profile: Profile, edges: list[datetime]) -> None:
    import polars as pl

    from forgeml.monitoring import PREDICTION_COLUMN, FeatureDrift
    from forgeml.monitoring.windows import drift_over_time
    from forgeml.workflow.monitor import drift_row, logged_frame, with_inputs

    sampled = with_inputs(served)
    if sampled.height < served.height:
        report.notes.append(
            f"{served.height - sampled.height:,} of {served.height:,} predictions were logged "
            "without their inputs (the server samples them: --log-inputs); drift reads the "
            f"{sampled.height:,} that have them"
        )
    if sampled.height == 0:
        return
    served = sampled
    frame = logged_frame(served, profile)
    if len(report.versions) > 1:
        # Inputs do not depend on the version that served them, scores do: the prediction
        # is compared with the profile's own version's predictions only.
        own = served.get_column("version") == str(report.profile_version)
        frame = frame.with_columns(
            pl.when(own).then(pl.col(PREDICTION_COLUMN)).otherwise(None).alias(PREDICTION_COLUMN)
        )
    drift = drift_over_time(profile, frame, edges=edges, whole_window=True)
    whole = drift.filter(pl.col("bucket").is_null())
    report.drift = [drift_row(FeatureDrift(**r)) for r in whole.drop("bucket").to_dicts()]
    report.drift_over_time = drift.filter(pl.col("bucket").is_not_null()).to_dicts()
    ranked = _ranked_features(report.drift)
    top = [f for f in ranked if f != PREDICTION_COLUMN][:TOP_FEATURES]
    report.distributions = [_distribution(profile, frame, name) for name in top[:4]]
    if PREDICTION_COLUMN in ranked:
        report.distributions.append(_distribution(profile, frame, PREDICTION_COLUMN))


def _ranked_features(drift: list[dict[str, Any]]) -> list[str]:
    """Features, drifted ones first, then by PSI (every column has one)."""
    psi = {f["feature"]: f["score"] for f in drift if f["method"] == "psi"}
    drifted = {f["feature"] for f in drift if f["drifted"]}
    return sorted(psi, key=lambda name: (name not in drifted, -psi[name], name))


def _distribution(profile: Profile, frame: Any, name: str) -> dict[str, Any]:
    """Reference and current shares over the profile's bins (numeric) or categories."""
    import numpy as np
    import polars as pl

    from forgeml.monitoring import NumericProfile
    from forgeml.monitoring.profile import OTHER

    spec = profile.columns[name]
    series = frame.get_column(name)
    if isinstance(spec, NumericProfile):
        values = series.cast(pl.Float64, strict=False).drop_nulls().to_numpy()
        values = values[np.isfinite(values)]
        edges = np.asarray(spec.edges)
        counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
        bins = _bin_labels(spec.edges)
        reference = list(spec.shares)
    else:
        text = series.cast(pl.String).drop_nulls()
        keys = [k for k in spec.shares if k != OTHER]
        found = dict(text.value_counts().iter_rows())
        counts = np.asarray([found.get(k, 0) for k in keys] + [0], dtype=np.float64)
        counts[-1] = text.len() - counts[:-1].sum()
        bins = [*keys, "other"]
        reference = [spec.shares[k] for k in keys] + [spec.shares.get(OTHER, 0.0)]
    total = float(np.sum(counts))
    current = (counts / total).tolist() if total else [0.0] * len(bins)
    return {
        "feature": name,
        "kind": spec.kind,
        "bins": bins,
        "reference": [float(r) for r in reference],
        "current": [float(c) for c in current],
        "rows": int(total),
    }


def _bin_labels(edges: list[float]) -> list[str]:
    def fmt(x: float) -> str:
        return f"{x:.4g}"

    if not edges:
        return ["all"]
    labels = [f"≤ {fmt(edges[0])}"]
    labels += [f"{fmt(a)}–{fmt(b)}" for a, b in itertools.pairwise(edges)]
    return [*labels, f"> {fmt(edges[-1])}"]
