"""Delayed ground truth: feedback joined to the predictions it labels, and live metrics.

Users send observed labels after the fact (``POST /v2/feedback``); the log store keeps
them beside the logged predictions. :func:`join_feedback` pairs each label with its
prediction by ``(request_id, row)`` — a label without a row is for row 0, the one row of
a single-row request — and accounts for every feedback row: *joined*, a *duplicate* (the
same row labelled again: the first label received wins, so nothing is counted twice),
*unmatched* (no such prediction among those given) or *unkeyed* (an experiment outcome
for a unit, not a label for a prediction).

:func:`outcome_metrics` scores labelled predictions with NumPy alone — the server calls
it every few seconds for its live-metrics gauges, so it must not import scikit-learn —
and gives the same numbers as scikit-learn (tested against it). Binary precision, recall
and F1 are those of the positive class (the class the score is the probability of);
multiclass F1 is the macro average over the classes seen.

>>> m = outcome_metrics("regression", [1.0, 2.0, 4.0], [1.0, 3.0, 4.0], None)
>>> {name: round(value, 3) for name, value in m.items()}
{'rmse': 0.577, 'mae': 0.333, 'r2': 0.786}
>>> m = outcome_metrics("binary", ["no", "yes", "yes"], ["no", "yes", "no"], [0.2, 0.9, 0.4])
>>> m["accuracy"], m["recall"], m["roc_auc"]
(0.6666666666666666, 0.5, 1.0)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from forgeml.errors import DataError, UsageError

__all__ = [
    "KINDS",
    "JoinedFeedback",
    "join_feedback",
    "json_values",
    "live_metrics_over_time",
    "outcome_metrics",
]

KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class JoinedFeedback:
    """Labelled predictions and the accounting of every feedback row:
    ``joined + duplicates + unmatched + unkeyed == received``.

    ``rows`` (a Polars frame) has the predictions' columns plus ``label`` (JSON text, as
    logged) and ``label_ts`` (when the label was received), ordered by prediction time.
    """

    rows: Any
    joined: int
    duplicates: int
    unmatched: int
    unkeyed: int

    @property
    def received(self) -> int:
        return self.joined + self.duplicates + self.unmatched + self.unkeyed

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "joined": self.joined,
            "duplicates": self.duplicates,
            "unmatched": self.unmatched,
            "unkeyed": self.unkeyed,
        }


def join_feedback(predictions: Any, feedback: Any) -> JoinedFeedback:
    """Join ``feedback`` rows (as read from the log store) to the served ``predictions``
    they label (shadow predictions, if any, are left out: they answered no one).

    >>> import polars as pl
    >>> preds = pl.DataFrame({"request_id": ["a", "b"], "row": [0, 0], "ts": [1, 2],
    ...                       "prediction": ["1", "0"]})
    >>> fb = pl.DataFrame({"request_id": ["a", "a", "zz", None], "row": [None, 0, 0, None],
    ...                    "ts": [5, 6, 7, 8], "label": ["1", "0", "1", "1"]})
    >>> joined = join_feedback(preds, fb)
    >>> joined.counts()
    {'received': 4, 'joined': 1, 'duplicates': 1, 'unmatched': 1, 'unkeyed': 1}
    >>> joined.rows.select("request_id", "label", "label_ts").rows()
    [('a', '1', 5)]
    """
    import polars as pl

    for name, frame, needed in (
        ("predictions", predictions, ("request_id", "row", "ts")),
        ("feedback", feedback, ("request_id", "row", "ts", "label")),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise UsageError(f"join_feedback: {name} lack column(s) {', '.join(missing)}")
    served = predictions
    if "shadow" in served.columns:
        served = served.filter(~pl.col("shadow").fill_null(False))
    key = ["request_id", "row"]
    row_type = served.schema["row"]
    served = served.sort("ts", maintain_order=True).unique(key, keep="first", maintain_order=True)
    keyed = feedback.filter(pl.col("request_id").is_not_null())
    unkeyed = feedback.height - keyed.height
    labels = (
        keyed.select(
            "request_id",
            pl.col("row").fill_null(0).cast(row_type),
            "label",
            pl.col("ts").alias("label_ts"),
        )
        .sort("label_ts", maintain_order=True)  # the first label received wins
        .unique(key, keep="first", maintain_order=True)
    )
    rows = served.join(labels, on=key, how="inner").sort("ts", maintain_order=True)
    return JoinedFeedback(
        rows=rows,
        joined=rows.height,
        duplicates=keyed.height - labels.height,
        unmatched=labels.height - rows.height,
        unkeyed=unkeyed,
    )


def json_values(texts: Sequence[str | None]) -> list[Any]:
    """Logged JSON texts (labels, predictions) as Python values; text that is not JSON
    stays as it is.

    >>> json_values(['"yes"', "1", "2.5", "true", "not json", None])
    ['yes', 1, 2.5, True, 'not json', None]
    """
    out: list[Any] = []
    for text in texts:
        try:
            out.append(None if text is None else json.loads(text))
        except ValueError:
            out.append(text)
    return out


def _key(value: Any) -> str:
    """A label as comparable text: ``1``, ``1.0`` and ``"1"`` are the same class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def outcome_metrics(
    kind: str,
    labels: Sequence[Any],
    predictions: Sequence[Any],
    scores: Sequence[float | None] | None,
    *,
    positive: Any = None,
) -> dict[str, float]:
    """Metrics of predictions against observed labels (rows whose label is missing are
    left out; no rows: no metrics).

    * ``binary``: accuracy, precision, recall, f1 (of the ``positive`` class; default: the
      last of the labels seen, sorted, as scikit-learn picks it), and with a score for
      every row (the positive class's probability) log_loss, plus roc_auc when both
      classes occur.
    * ``multiclass``: accuracy and f1 (macro over the classes in labels or predictions).
    * ``regression``: rmse, mae, and r2 when the labels vary.

    Metrics that are undefined for the rows given are left out rather than reported as
    NaN, so every value is a finite float.
    """
    import numpy as np

    if kind not in KINDS:
        raise UsageError(f"unknown outcome kind {kind!r}: use one of {', '.join(KINDS)}")
    n = len(labels)
    if len(predictions) != n or (scores is not None and len(scores) != n):
        raise UsageError("outcome_metrics: labels, predictions and scores differ in length")
    keep = np.asarray([label is not None for label in labels], dtype=bool)
    if not keep.any():
        return {}
    if kind == "regression":
        try:
            y_num = np.asarray(labels, dtype=object)[keep].astype(np.float64)
            pred_num = np.asarray(predictions, dtype=object)[keep].astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"regression labels and predictions must be numbers ({exc})") from exc
        return _regression(y_num, pred_num)
    y = np.asarray([_key(v) for v in labels], dtype=object)[keep].astype(str)
    pred = np.asarray([_key(v) for v in predictions], dtype=object)[keep].astype(str)
    if kind == "multiclass":
        return {"accuracy": float(np.mean(y == pred)), "f1": _macro_f1(y, pred)}
    pos = _key(positive) if positive is not None else max(set(y.tolist()) | set(pred.tolist()))
    out = _binary_labels(y == pos, pred == pos)
    if scores is not None:
        raw = [math.nan if s is None else s for s in scores]
        s = np.asarray(raw, dtype=np.float64)[keep]
        if np.isfinite(s).all():
            out.update(_binary_scores(y == pos, s))
    return out


def _regression(y: Any, pred: Any) -> dict[str, float]:
    import numpy as np

    ok = np.isfinite(y) & np.isfinite(pred)
    y, pred = y[ok], pred[ok]
    if y.size == 0:
        return {}
    error = pred - y
    out = {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
    total = float(np.sum((y - y.mean()) ** 2))
    if y.max() > y.min() and total > 0:  # equal labels: rounding in the mean is not spread
        out["r2"] = 1.0 - float(np.sum(error**2)) / total
    return out


def _binary_labels(y: Any, pred: Any) -> dict[str, float]:
    import numpy as np

    tp = int(np.sum(y & pred))
    fp = int(np.sum(~y & pred))
    fn = int(np.sum(y & ~pred))
    return {
        "accuracy": float(np.mean(y == pred)),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
    }


def _binary_scores(y: Any, score: Any) -> dict[str, float]:
    import numpy as np

    eps = np.finfo(np.float64).eps
    p = np.clip(score, eps, 1 - eps)
    out = {"log_loss": float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))}
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos and n_neg:
        # Mann–Whitney: the positives' mean rank among all scores (ties share a rank).
        _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
        rank = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
        out["roc_auc"] = float((rank[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return out


def _macro_f1(y: Any, pred: Any) -> float:
    import numpy as np

    classes, codes = np.unique(np.concatenate([y, pred]), return_inverse=True)
    true, guess = codes[: y.size], codes[y.size :]
    k = classes.size
    tp = np.bincount(true[true == guess], minlength=k)
    fp = np.bincount(guess, minlength=k) - tp
    fn = np.bincount(true, minlength=k) - tp
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    return float(f1.mean())


def live_metrics_over_time(
    joined: Any, kind: str, edges: Sequence[datetime], positive: Any = None
) -> Any:
    """:func:`outcome_metrics` of the labelled predictions made in each bucket between
    consecutive ``edges`` (by prediction time, column ``ts``): one row per bucket and
    metric with ``bucket`` (its start, UTC), ``metric``, ``value`` and ``rows`` (labels
    in the bucket). ``joined`` is :attr:`JoinedFeedback.rows` (or the JoinedFeedback).
    Buckets without labels have no rows.
    """
    import numpy as np
    import polars as pl

    from forgeml.monitoring.windows import as_utc, bucket_of

    frame = joined.rows if isinstance(joined, JoinedFeedback) else joined
    groups = bucket_of(frame.get_column("ts"), edges) if frame.height else np.zeros(0, int)
    labels = json_values(frame.get_column("label").to_list())
    predictions = json_values(frame.get_column("prediction").to_list())
    scores = frame.get_column("score").to_list() if "score" in frame.columns else None
    records = []
    for b in range(len(edges) - 1):
        index = np.flatnonzero(groups == b).tolist()
        if not index:
            continue
        values = outcome_metrics(
            kind,
            [labels[i] for i in index],
            [predictions[i] for i in index],
            None if scores is None else [scores[i] for i in index],
            positive=positive,
        )
        records += [(as_utc(edges[b]), name, value, len(index)) for name, value in values.items()]
    schema: dict[str, Any] = {
        "bucket": pl.Datetime("us", "UTC"),
        "metric": pl.String,
        "value": pl.Float64,
        "rows": pl.Int64,
    }
    return pl.DataFrame(records, schema=schema, orient="row")
