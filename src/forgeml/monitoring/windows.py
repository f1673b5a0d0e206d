"""Time windows over served traffic: ``--window 1d`` parsed, cut into buckets, and drift
checked per bucket.

A report looks back one *window* from now (``30m``, ``6h``, ``1d``, ``2w``) and cuts it into
equal *buckets*; :func:`drift_over_time` gives every bucket's drift against the training
profile in one pass over the rows (:func:`~forgeml.monitoring.drift.drift_by_group`), so
a million logged rows by fifty columns take seconds whatever the number of buckets.

>>> from datetime import UTC, datetime
>>> parse_window("6h")
datetime.timedelta(seconds=21600)
>>> edges = bucket_edges(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), 4)
>>> [e.hour for e in edges]
[0, 6, 12, 18, 0]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from forgeml.errors import UsageError
from forgeml.monitoring.drift import drift_by_group
from forgeml.monitoring.profile import Profile

__all__ = [
    "DRIFT_COLUMNS",
    "as_utc",
    "bucket_edges",
    "bucket_of",
    "drift_over_time",
    "parse_window",
]

_WINDOW = re.compile(r"^\s*([0-9]{1,6})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
DRIFT_COLUMNS = ("bucket", "feature", "method", "score", "p_value", "drifted", "rows")


def parse_window(text: str) -> timedelta:
    """``30m``, ``6h``, ``1d``, ``2w`` (minutes, hours, days, weeks) as a duration.

    >>> parse_window("30m"), parse_window("2w").days
    (datetime.timedelta(seconds=1800), 14)
    >>> parse_window("1y")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: --window '1y': expected a number and a unit, m (minutes), h (hours), d (days) or w (weeks), like 30m, 6h, 1d or 2w
    """
    match = _WINDOW.match(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise UsageError(
            f"--window {text!r}: expected a number and a unit, m (minutes), h (hours), "
            "d (days) or w (weeks), like 30m, 6h, 1d or 2w"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken as UTC already (as the log store
    does)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _micros(moment: datetime) -> int:
    return (as_utc(moment) - _EPOCH) // _MICRO


def bucket_edges(since: datetime, until: datetime, buckets: int) -> list[datetime]:
    """``buckets + 1`` equally spaced UTC instants from ``since`` to ``until`` (exact to
    the microsecond: the last edge is ``until`` itself).

    >>> from datetime import UTC, datetime
    >>> bucket_edges(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), 3)
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: empty window: 2026-01-01 00:00:00+00:00 is not before 2026-01-01 00:00:00+00:00
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise UsageError(f"--buckets must be a whole number of at least 1, got {buckets!r}")
    start, end = _micros(since), _micros(until)
    if end <= start:
        raise UsageError(f"empty window: {as_utc(since)} is not before {as_utc(until)}")
    if end - start < buckets:
        raise UsageError(f"--buckets {buckets}: more buckets than microseconds in the window")
    span = end - start
    return [_EPOCH + _MICRO * (start + span * i // buckets) for i in range(buckets + 1)]


def bucket_of(ts: Any, edges: Sequence[datetime]) -> Any:
    """The bucket of each timestamp (a Polars datetime series): ``i`` when
    ``edges[i] <= ts < edges[i+1]``, -1 outside the edges (and for nulls), as NumPy int64.

    >>> import polars as pl
    >>> from datetime import UTC, datetime
    >>> edges = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in (0, 1, 2)]
    >>> ts = pl.Series([datetime(2026, 1, 1, h, 30, tzinfo=UTC) for h in (0, 1, 2)])
    >>> bucket_of(ts, edges).tolist()
    [0, 1, -1]
    """
    import numpy as np

    values = ts.dt.epoch("us").fill_null(np.iinfo(np.int64).min).to_numpy()
    bounds = np.asarray([_micros(e) for e in edges], dtype=np.int64)
    index = np.searchsorted(bounds, values, side="right") - 1
    index[index >= bounds.size - 1] = -1  # at or after the last edge (before the first: -1)
    return index.astype(np.int64)


def drift_over_time(
    profile: Profile,
    frame: Any,
    *,
    ts_column: str = "ts",
    edges: Sequence[datetime],
    whole_window: bool = False,
    thresholds: dict[str, float] | None = None,
) -> Any:
    """Drift of every profiled column of ``frame`` (a Polars frame with a ``ts_column``)
    in each bucket between consecutive ``edges``: one row per bucket, feature and method
    with ``bucket`` (the bucket's start, UTC), ``feature``, ``method``, ``score``,
    ``p_value``, ``drifted`` and ``rows``. Buckets with no rows of a column have no row
    for it; rows outside the edges are left out. With ``whole_window``, rows with a null
    ``bucket`` follow: the drift of all the buckets' rows together, from the same pass.

    >>> import polars as pl
    >>> from datetime import UTC, datetime
    >>> ref = pl.DataFrame({"x": [float(i % 100) for i in range(10_000)]})
    >>> profile = Profile.build(ref, {"x": "float"})
    >>> edges = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in (0, 1, 2)]
    >>> hours = pl.Series("ts", [edges[0]] * 10_000 + [edges[1]] * 10_000)
    >>> frame = pl.concat([ref, ref.with_columns(pl.col("x") + 50)]).with_columns(hours)
    >>> drift = drift_over_time(profile, frame, edges=edges)
    >>> drift.group_by("bucket").agg(pl.col("drifted").any()).sort("bucket")["drifted"].to_list()
    [False, True]
    """
    import polars as pl

    if ts_column not in frame.columns:
        raise UsageError(f"drift over time: the frame has no '{ts_column}' column")
    if len(edges) < 2:
        raise UsageError("drift over time: give at least two bucket edges")
    groups = bucket_of(frame.get_column(ts_column), edges)
    per_bucket = drift_by_group(
        profile, frame, groups, len(edges) - 1, total=whole_window, thresholds=thresholds
    )
    starts = [as_utc(e) for e in edges[:-1]] + [None]  # the last: the whole window
    records = [
        (starts[b], d.feature, d.method, d.score, d.p_value, d.drifted, d.rows)
        for b, results in enumerate(per_bucket)
        for d in results
    ]
    schema: dict[str, Any] = {
        "bucket": pl.Datetime("us", "UTC"),
        "feature": pl.String,
        "method": pl.String,
        "score": pl.Float64,
        "p_value": pl.Float64,
        "drifted": pl.Boolean,
        "rows": pl.Int64,
    }
    return pl.DataFrame(records, schema=schema, orient="row")
