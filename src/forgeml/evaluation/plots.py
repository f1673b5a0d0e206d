"""Evaluation plots as self-contained SVG strings, ready to inline in the HTML report.

Every function takes plain data (the dataclasses of :mod:`forgeml.evaluation` or
sequences), returns an ``<svg>`` element, and is deterministic: the same input gives
the same bytes. Large scatters are rasterised inside the SVG (an embedded PNG) so a plot
stays well under 150 KB. User strings (class labels, feature and model names) are shown
literally, never interpreted as mathtext.

>>> from forgeml.evaluation.curves import Curve
>>> curve = Curve("roc", "yes", (0.0, 0.2, 1.0), (0.0, 0.8, 1.0), (None, 0.5, 0.1), 0.8, 0.4)
>>> svg = roc_svg([curve])
>>> svg.startswith("<svg") and svg == roc_svg([curve])
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from forgeml.evaluation._svg import INK, MUTED, PALETTE, figure, plain, to_svg
from forgeml.evaluation.calibration import Calibration
from forgeml.evaluation.confusion import ConfusionMatrix
from forgeml.evaluation.curves import Curve
from forgeml.evaluation.residuals import Histogram

__all__ = [
    "calibration_svg",
    "class_balance_svg",
    "confusion_svg",
    "importance_svg",
    "leaderboard_svg",
    "pr_svg",
    "pred_vs_actual_svg",
    "residual_hist_svg",
    "residuals_svg",
    "roc_svg",
]

# Above this many points a scatter is drawn as an embedded bitmap, not one path each.
_RASTER_ABOVE = 400
_MAX_LEGEND = 12


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _curve_plot(
    curves: Sequence[Curve],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    area: str,
    diagonal: bool,
    point: tuple[float, float] | None,
) -> str:
    with figure((4.2, 3.8)) as fig:
        ax = fig.add_subplot()
        if diagonal:
            ax.plot([0, 1], [0, 1], ls="--", lw=0.9, color=MUTED, label="chance")
        elif len(curves) == 1:
            rate = curves[0].prevalence
            ax.axhline(rate, ls="--", lw=0.9, color=MUTED, label=f"chance ({rate:.2f})")
        for i, c in enumerate(curves):
            ax.plot(
                c.x,
                c.y,
                lw=1.8 if len(curves) == 1 else 1.3,
                color=_color(i),
                drawstyle="default" if diagonal else "steps-pre",
                label=f"{plain(c.label, 24)} ({area} {c.auc:.3f})",
            )
        if point is not None:
            ax.plot(*point, "o", ms=6, mfc="white", mec=INK, mew=1.5, label="threshold")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel=xlabel, ylabel=ylabel, title=title)
        if len(curves) <= _MAX_LEGEND and ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right" if diagonal else "lower left")
        return to_svg(fig, title)


def roc_svg(curves: Sequence[Curve], *, operating_point: tuple[float, float] | None = None) -> str:
    """ROC curves (one per class for multiclass), with the area in the legend and,
    optionally, the ``(false positive rate, true positive rate)`` at the threshold used."""
    return _curve_plot(
        curves,
        title="ROC curve",
        xlabel="False positive rate",
        ylabel="True positive rate",
        area="AUC",
        diagonal=True,
        point=operating_point,
    )


def pr_svg(curves: Sequence[Curve], *, operating_point: tuple[float, float] | None = None) -> str:
    """Precision-recall curves with the average precision in the legend; a binary plot
    shows the positive rate as the no-skill level. ``operating_point`` is
    ``(recall, precision)``."""
    return _curve_plot(
        curves,
        title="Precision–recall curve",
        xlabel="Recall",
        ylabel="Precision",
        area="AP",
        diagonal=False,
        point=operating_point,
    )


def confusion_svg(cm: ConfusionMatrix, *, title: str = "Confusion matrix") -> str:
    """Annotated heatmap: each cell shows its count and its share of the true class (row
    %); the colour is the row share, so rare classes read as clearly as common ones."""
    counts = cm.as_array()
    k = len(cm.labels)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    side = float(np.clip(1.6 + 0.55 * k, 3.6, 9.0))
    with figure((side + 0.6, side)) as fig:
        ax = fig.add_subplot()
        # Vector cells (not imshow's embedded bitmap): crisp at any zoom and in print.
        edges = np.arange(k + 1) - 0.5
        image = ax.pcolormesh(
            edges, edges, share, cmap="Blues", vmin=0.0, vmax=1.0, edgecolors="white", linewidth=0.5
        )
        ax.set(xlim=(edges[0], edges[-1]), ylim=(edges[-1], edges[0]), aspect="equal")
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if k <= 15:
            for (i, j), n in np.ndenumerate(counts):
                ax.text(
                    j,
                    i,
                    f"{n}\n{100 * share[i, j]:.1f}%",
                    ha="center",
                    va="center",
                    fontsize=8 if k <= 6 else 6.5,
                    color="white" if share[i, j] > 0.55 else INK,
                )
        names = [plain(label, 18) for label in cm.labels]
        crowded = k * max(len(n) for n in names) > 24
        ax.set_xticks(
            range(k), names, rotation=40 if crowded else 0, ha="right" if crowded else "center"
        )
        ax.set_yticks(range(k), names)
        ax.set(xlabel="Predicted", ylabel="True", title=title)
        fig.colorbar(image, ax=ax, shrink=0.8, label="Share of true class")
        return to_svg(fig, title)


def calibration_svg(calibration: Calibration) -> str:
    """Reliability diagram (mean predicted probability against the observed rate per
    bin) above a bar chart of the rows in each bin."""
    bins = calibration.bins
    predicted = [b.mean_predicted for b in bins]
    observed = [b.observed_rate for b in bins]
    what = "positive class" if calibration.what == "positive" else "top-label confidence"
    with figure((4.2, 4.2)) as fig:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        top.plot([0, 1], [0, 1], ls="--", lw=0.9, color=MUTED, label="perfectly calibrated")
        top.plot(predicted, observed, "o-", color=PALETTE[0], lw=1.6, ms=4, label="model")
        top.set(ylim=(-0.02, 1.02), ylabel="Observed rate", title=f"Calibration ({what})")
        top.legend(loc="upper left")
        lefts = [b.lower for b in bins]
        widths = [max(b.upper - b.lower, 0.01) for b in bins]
        bottom.bar(
            lefts, [b.count for b in bins], width=widths, align="edge", color=PALETTE[0], alpha=0.45
        )
        bottom.set(xlim=(-0.02, 1.02), xlabel="Mean predicted probability", ylabel="Rows")
        return to_svg(fig, f"Calibration ({what})")


def importance_svg(names: Sequence[str], values: Sequence[float], *, top: int = 25) -> str:
    """Horizontal bars of the ``top`` features by absolute importance, largest first;
    negative values (signed coefficients) are drawn in a second colour."""
    vals = np.asarray(values, dtype=np.float64)
    order = np.argsort(-np.abs(vals), kind="stable")[:top][::-1]
    shown = [plain(names[i], 36) for i in order]
    title = f"Feature importance (top {len(order)} of {len(vals)})"
    with figure((5.6, 0.8 + 0.24 * max(len(order), 3))) as fig:
        ax = fig.add_subplot()
        colors = [PALETTE[0] if vals[i] >= 0 else PALETTE[3] for i in order]
        ax.barh(range(len(order)), vals[order], color=colors, height=0.7)
        ax.set_yticks(range(len(order)), shown)
        ax.grid(axis="y", visible=False)
        ax.axvline(0, color="#b8c0c8", lw=0.8)
        ax.set(xlabel="Importance", title=title)
        return to_svg(fig, title)


def _scatter(ax: Any, x: np.ndarray, y: np.ndarray) -> None:
    ax.scatter(
        x,
        y,
        s=9 if len(x) < 1000 else 5,
        alpha=0.55 if len(x) < 1000 else 0.35,
        color=PALETTE[0],
        linewidths=0,
        rasterized=len(x) > _RASTER_ABOVE,
    )


def residuals_svg(y: Sequence[float], pred: Sequence[float]) -> str:
    """Residual (``y - pred``) against the prediction, with the zero line."""
    y_arr, pred_arr = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    with figure((4.4, 3.6)) as fig:
        ax = fig.add_subplot()
        ax.axhline(0.0, color=INK, lw=0.9)
        _scatter(ax, pred_arr, y_arr - pred_arr)
        ax.set(xlabel="Predicted", ylabel="Residual (actual − predicted)", title="Residuals")
        return to_svg(fig, "Residuals against predicted values")


def pred_vs_actual_svg(y: Sequence[float], pred: Sequence[float]) -> str:
    """Predicted against actual values, with the identity line."""
    y_arr, pred_arr = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    lo = float(min(y_arr.min(), pred_arr.min()))
    hi = float(max(y_arr.max(), pred_arr.max()))
    pad = 0.03 * (hi - lo) if hi > lo else 1.0
    with figure((4.0, 3.8)) as fig:
        ax = fig.add_subplot()
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", lw=0.9, color=MUTED)
        _scatter(ax, y_arr, pred_arr)
        ax.set(
            xlim=(lo - pad, hi + pad),
            ylim=(lo - pad, hi + pad),
            xlabel="Actual",
            ylabel="Predicted",
            title="Predicted vs actual",
        )
        ax.set_aspect("equal", adjustable="box")
        return to_svg(fig, "Predicted against actual values")


def residual_hist_svg(hist: Histogram) -> str:
    """The residual histogram, with zero marked."""
    edges = np.asarray(hist.edges)
    with figure((4.4, 3.2)) as fig:
        ax = fig.add_subplot()
        ax.bar(
            edges[:-1],
            hist.counts,
            width=np.diff(edges),
            align="edge",
            color=PALETTE[0],
            alpha=0.75,
            edgecolor="white",
            linewidth=0.4,
        )
        ax.axvline(0.0, color=INK, lw=0.9)
        ax.set(xlabel="Residual (actual − predicted)", ylabel="Rows", title="Residual distribution")
        return to_svg(fig, "Residual distribution")


def class_balance_svg(
    labels: Sequence[Any], actual: Sequence[int], predicted: Sequence[int] | None = None
) -> str:
    """Rows per class: actual counts, and predicted counts side by side when given."""
    k = len(labels)
    pos = np.arange(k)
    height = 0.4 if predicted is not None else 0.7
    offset = height / 2 if predicted is not None else 0.0
    with figure((4.6, 1.2 + 0.32 * max(k, 2))) as fig:
        ax = fig.add_subplot()
        # The y axis is inverted below, so "actual" (drawn lower) shows above "predicted".
        ax.barh(pos - offset, actual, height=height, color=PALETTE[0], label="actual")
        if predicted is not None:
            ax.barh(pos + offset, predicted, height=height, color=PALETTE[1], label="predicted")
            fig.legend(loc="outside lower center", ncols=2)
        ax.set_yticks(pos, [plain(label, 24) for label in labels])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set(xlabel="Rows", title="Class balance")
        return to_svg(fig, "Class balance")


def _best_so_far(scores: np.ndarray, direction: str) -> np.ndarray:
    return (
        np.maximum.accumulate(scores) if direction == "maximize" else np.minimum.accumulate(scores)
    )


def leaderboard_svg(
    trials: Sequence[Mapping[str, Any]],
    *,
    direction: Literal["maximize", "minimize"] = "maximize",
    metric: str = "score",
    x: Literal["number", "elapsed"] = "number",
) -> str:
    """Each finished trial's score, coloured by model, with the best score so far as a step
    line. Trials are mappings with ``number``, ``model``, ``score``, ``state``
    (``complete``/``pruned``/``failed``) and ``duration_s``; only complete trials count
    toward the best. ``x="elapsed"`` plots against ``elapsed_s`` when trials carry it,
    else against cumulative duration (exact for one worker).
    """
    ordered = sorted(trials, key=lambda t: t.get("number", 0))
    numbers = np.array([t.get("number", i) for i, t in enumerate(ordered)], dtype=np.float64)
    if x == "elapsed":
        if all("elapsed_s" in t for t in ordered):
            xs = np.array([t["elapsed_s"] for t in ordered], dtype=np.float64)
        else:
            xs = np.cumsum([float(t.get("duration_s") or 0.0) for t in ordered])
        xlabel = "Elapsed time (s)"
    else:
        xs, xlabel = numbers, "Trial"
    # The best-so-far line runs in x order (finish order when x is elapsed time).
    order = np.argsort(xs, kind="stable")
    xs = xs[order]
    state = np.array([str(t.get("state", "complete")) for t in ordered])[order]
    model_of = np.array([str(t.get("model", "?")) for t in ordered])[order]
    raw = [t.get("score") for t in ordered]
    score = np.array([np.nan if s is None else float(s) for s in raw], dtype=np.float64)[order]
    done = (state == "complete") & np.isfinite(score)
    n_pruned, n_failed = int((state == "pruned").sum()), int((state == "failed").sum())
    title = f"Tuning: {len(ordered)} trials"
    if n_pruned or n_failed:
        title += f" ({n_pruned} pruned, {n_failed} failed)"
    models = list(dict.fromkeys(model_of.tolist()))
    with figure((5.6, 3.4)) as fig:
        ax = fig.add_subplot()
        many = len(ordered) > _RASTER_ABOVE
        pruned = (state == "pruned") & np.isfinite(score)
        if pruned.any():
            ax.scatter(
                xs[pruned],
                score[pruned],
                s=14,
                facecolors="none",
                edgecolors=MUTED,
                linewidths=0.8,
                label="pruned",
                rasterized=many,
            )
        for i, model in enumerate(models):
            sel = done & (model_of == model)
            if sel.any():
                ax.scatter(
                    xs[sel],
                    score[sel],
                    s=16,
                    color=_color(i),
                    linewidths=0,
                    alpha=1.0 if many else 0.85,  # opaque dots compress far better
                    label=plain(model, 24),
                    rasterized=many,
                )
        if done.any():
            best = _best_so_far(score[done], direction)
            ax.step(xs[done], best, where="post", color=INK, lw=1.4, label="best so far")
        ax.set(xlabel=xlabel, ylabel=plain(metric), title=title)
        if len(models) <= _MAX_LEGEND and ax.get_legend_handles_labels()[0]:
            fig.legend(loc="outside right upper")
        return to_svg(fig, title)
