"""``forgeml monitor``: how served traffic compares with a model's training data, and how
well it predicts once labels come back.

* :func:`drift_check` (``forgeml monitor drift``): the reference is the ``profile.json``
  registered with the model (no training data is read). The current rows come from any
  data source ``forgeml predict`` reads, or, with ``from_log``, from a log store (a
  ``forgeml serve --prediction-log`` folder or PostgreSQL URL): the model's logged inputs,
  and its logged scores as the ``__prediction__`` column (prediction drift).
* :func:`monitor_report` (``forgeml monitor report``): one window of a model's served
  traffic (the last ``1d``, say, cut into buckets) — volume, latency, versions, dropped
  log rows, feedback joined to predictions with live metrics, and drift, as a whole and
  per bucket — as a :class:`MonitorReport`, rendered to HTML by
  :mod:`forgeml.workflow.monitor_report` or printed as JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import DataError, DataSourceError, UsageError

if TYPE_CHECKING:
    from forgeml.monitoring import Profile
    from forgeml.monitoring.store import LogStore
    from forgeml.registry import ModelVersion

__all__ = [
    "DriftResult",
    "MonitorReport",
    "drift_check",
    "logged_frame",
    "monitor_report",
    "with_inputs",
]

DECODE_CHUNK = 200_000  # logged rows whose JSON inputs are decoded at once


@dataclass
class DriftResult:
    model: str
    version: int
    source: str
    rows: int
    truncated: bool
    features: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        return sorted({f["feature"] for f in self.features if f["drifted"]})

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "rows": self.rows,
            "truncated": self.truncated,
            "drifted": self.drifted,
            "features": self.features,
        }


def drift_check(
    ref: str,
    source: str,
    *,
    registry: str = ".forgeml",
    from_log: bool = False,
    max_rows: int = 1_000_000,
) -> DriftResult:
    """Drift of ``source``'s rows (at most ``max_rows``: the first ones of a file, the
    latest ones of a log) against ``ref``."""
    from forgeml.monitoring import detect_drift
    from forgeml.workflow.workspace import Workspace

    if max_rows < 1:
        raise UsageError(f"--max-rows must be at least 1, got {max_rows}")
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        version = reg.resolve(ref)
        profile = _profile(Path(reg.open_artifacts(version)), version)
    if from_log:
        frame, truncated, source = _from_log(source, version.name, max_rows, profile)
    else:
        frame, truncated = _from_source(source, max_rows)
    if frame.height == 0:
        raise DataError(f"{source}: no rows to compare")
    return DriftResult(
        model=version.name,
        version=version.version,
        source=source,
        rows=frame.height,
        truncated=truncated,
        features=[drift_row(d) for d in detect_drift(profile, frame)],
    )


def drift_row(d: Any) -> dict[str, Any]:
    return {
        "feature": d.feature,
        "method": d.method,
        "score": round(d.score, 6),
        "p_value": None if d.p_value is None else float(f"{d.p_value:.3g}"),
        "drifted": d.drifted,
        "rows": d.rows,
    }


def _profile(directory: Path, version: ModelVersion) -> Profile:
    """The training profile in a version's (verified) artifact folder."""
    from forgeml.monitoring import PROFILE_FILE, Profile

    path = directory / PROFILE_FILE
    if not path.is_file():
        raise UsageError(
            f"{version.name}@{version.version} has no {PROFILE_FILE}: it was registered "
            "before forgeml kept training profiles; run forgeml run again to get one"
        )
    return Profile.from_dict(json.loads(path.read_text()))


def _from_source(source: str, max_rows: int) -> tuple[Any, bool]:
    import polars as pl

    from forgeml.config.spec import DataSpec
    from forgeml.data import open_source

    frames, rows = [], 0
    for batch in open_source(DataSpec(source=source)).iter_batches():
        frames.append(batch.frame)
        rows += batch.frame.height
        if rows >= max_rows:
            break
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return frame.head(max_rows), rows > max_rows


def _from_log(location: str, model: str, max_rows: int, profile: Profile) -> tuple[Any, bool, str]:
    """The latest ``max_rows`` served (not shadow) predictions of ``model`` in the store
    at ``location``, as drift reads them; and whether there were more; and the store's
    name for messages (a URL's password hidden)."""
    import polars as pl

    from forgeml.monitoring.store import open_store

    with open_store(location, create=False) as store:
        logged = store.read("predictions", model=model, latest_first=True, limit=max_rows + 1)
        if logged.height == 0:
            raise _nothing_logged(store, f"no logged predictions of model '{model}'")
        display = store.location
    truncated = logged.height > max_rows
    served = with_inputs(logged.head(max_rows).filter(~pl.col("shadow")))
    if served.height == 0:
        raise DataError(
            f"none of the latest logged predictions of model '{model}' in {display} has its "
            "inputs (the server logs them for a fraction of requests: --log-inputs)"
        )
    return logged_frame(served, profile), truncated, display


def with_inputs(logged: Any) -> Any:
    """The logged predictions whose inputs were logged too (a server with ``--log-inputs``
    below 1 logs them for a random sample of requests): the rows drift reads."""
    import polars as pl

    return logged.filter(pl.col("inputs").is_not_null())


def _nothing_logged(store: LogStore, message: str) -> Exception:
    """The error for an empty read: the store holds nothing at all (a usage problem: the
    wrong location, most likely), or nothing of what was asked (a data problem)."""
    if store.read("predictions", limit=1).height == 0:
        return DataSourceError(
            f"{store.location}: no prediction log files or rows there yet",
            hint=f"start `forgeml serve --prediction-log {store.location}` to write them",
        )
    return DataError(f"{message} in {store.location}")


def logged_frame(logged: Any, profile: Profile) -> Any:
    """Logged predictions (with their inputs: see :func:`with_inputs`) as drift reads
    them: the profiled input columns decoded from the rows' JSON ``inputs`` (numeric ones
    as Float64, categorical ones as text), the logged ``score`` as ``__prediction__``, and
    ``ts``.

    Decoding is columnar (Polars' NDJSON reader with the profile's schema), so a million
    logged rows take seconds; a value of another type than training's (``"NA"`` in a
    numeric column, say) falls back to a lenient decode where it becomes missing.
    """
    import polars as pl

    from forgeml.monitoring import PREDICTION_COLUMN, NumericProfile

    numeric = {
        name: isinstance(spec, NumericProfile)
        for name, spec in profile.columns.items()
        if name != PREDICTION_COLUMN
    }
    base = logged.select("ts", pl.col("score").alias(PREDICTION_COLUMN))
    if not numeric or logged.height == 0:
        return base.with_columns(
            pl.lit(None, pl.Float64 if is_num else pl.String).alias(name)
            for name, is_num in numeric.items()
        )
    return pl.concat([base, _decode_inputs(logged.get_column("inputs"), numeric)], how="horizontal")


def _decode_inputs(texts: Any, numeric: dict[str, bool]) -> Any:
    """The ``numeric`` columns (name -> is numeric) of JSON objects, chunk by chunk (a
    bounded copy of the text at a time)."""
    import polars as pl

    chunks = range(0, texts.len(), DECODE_CHUNK)
    return pl.concat([_decode_chunk(texts.slice(i, DECODE_CHUNK), numeric) for i in chunks])


def _decode_chunk(texts: Any, numeric: dict[str, bool]) -> Any:
    import io

    import polars as pl

    buffer = "\n".join(texts.to_list()).encode()
    typed = {name: pl.Float64 if is_num else pl.String for name, is_num in numeric.items()}
    # Typed first (fast); values of other types ("NA", true in a numeric column) need
    # every value read as text, then cast; lines that are not JSON objects, one by one.
    for schema in (typed, dict.fromkeys(numeric, pl.String)):
        try:
            frame = pl.read_ndjson(io.BytesIO(buffer), schema=schema)
        except pl.exceptions.PolarsError:
            continue
        if frame.height == texts.len():
            return frame if schema is typed else _as_numbers(frame, numeric)
    rows = []
    for text in texts.to_list():
        try:
            row = json.loads(text)
        except ValueError:
            row = None
        rows.append(row if isinstance(row, dict) else {})
    as_text = pl.DataFrame(
        {name: [_text(row.get(name)) for row in rows] for name in numeric},
        schema=dict.fromkeys(numeric, pl.String),
    )
    return _as_numbers(as_text, numeric)


def _as_numbers(frame: Any, numeric: dict[str, bool]) -> Any:
    """Numeric columns read as text: booleans as 1/0, numbers as numbers, else missing."""
    import polars as pl

    return frame.with_columns(
        pl.when(pl.col(name) == "true")
        .then(1.0)
        .when(pl.col(name) == "false")
        .then(0.0)
        .otherwise(pl.col(name).cast(pl.Float64, strict=False))
        .alias(name)
        for name, is_num in numeric.items()
        if is_num
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


# --- the report -------------------------------------------------------------------------
@dataclass
class MonitorReport:
    """One window of a model's served traffic, as plain data (``to_dict()`` is JSON).

    ``drift`` is the whole window against the profile of ``profile_version``;
    ``drift_over_time`` the same per bucket; ``distributions`` the reference and current
    shares over the profile's bins of the most drifted features; ``feedback`` counts
    every feedback row received since the window began (joined, duplicates, unmatched,
    unkeyed); ``live_metrics`` are those of the joined rows (``test_metrics``: the
    registered test-set values of the same metrics, where defined alike).
    """

    model: str
    location: str
    window: str
    since: datetime
    until: datetime
    edges: list[datetime]
    task: str
    profile_version: int
    versions: list[str]
    rows: int
    requests: int
    shadow_rows: int
    truncated: bool
    dropped: int
    traffic: list[dict[str, Any]] = field(default_factory=list)
    volume: list[dict[str, Any]] = field(default_factory=list)
    feedback: dict[str, int] = field(default_factory=dict)
    live_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    live_over_time: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    drift_over_time: list[dict[str, Any]] = field(default_factory=list)
    distributions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def drifted(self) -> list[str]:
        return sorted({f["feature"] for f in self.drift if f["drifted"]})

    def to_dict(self) -> dict[str, Any]:
        data = {
            "model": self.model,
            "location": self.location,
            "window": self.window,
            "since": self.since,
            "until": self.until,
            "buckets": len(self.edges) - 1,
            "edges": self.edges,
            "task": self.task,
            "profile_version": self.profile_version,
            "versions": self.versions,
            "rows": self.rows,
            "requests": self.requests,
            "shadow_rows": self.shadow_rows,
            "truncated": self.truncated,
            "dropped": self.dropped,
            "traffic": self.traffic,
            "volume": self.volume,
            "feedback": self.feedback,
            "live_metrics": self.live_metrics,
            "test_metrics": self.test_metrics,
            "live_over_time": self.live_over_time,
            "drifted": self.drifted,
            "drift": self.drift,
            "drift_over_time": self.drift_over_time,
            "distributions": self.distributions,
            "notes": self.notes,
            "created_at": self.created_at,
        }
        return _jsonable(data)

    def write_html(self, path: str | Path) -> Path:
        """Render the report to ``path`` atomically (a reader never sees half a file)."""
        from forgeml.workflow.monitor_report import write_html

        return write_html(self, Path(path))


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO text, non-finite floats as null: strict JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def monitor_report(
    ref: str,
    *,
    registry: str = ".forgeml",
    log: str | None = None,
    window: str = "1d",
    buckets: int = 24,
    now: datetime | None = None,
    max_rows: int = 1_000_000,
) -> MonitorReport:
    """The last ``window`` (``30m``, ``6h``, ``1d``, ``2w``) before ``now`` of the model
    ``ref`` names, from the log store at ``log`` (default: the registry's,
    :func:`~forgeml.registry.location.default_log_location`), in ``buckets`` buckets.

    ``ref`` is a model name (all its versions' traffic; drift against the profile of the
    latest version that served) or ``name@alias`` / ``name@3`` (that version only, and its
    profile). At most ``max_rows`` predictions are read (the latest). Raises
    :class:`DataError` when the window holds no served prediction of the model.
    """
    from forgeml.monitoring.windows import as_utc, bucket_edges, parse_window
    from forgeml.registry.location import default_log_location
    from forgeml.registry.refs import parse_ref
    from forgeml.workflow.workspace import Workspace

    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise UsageError(f"--max-rows must be a whole number of at least 1, got {max_rows!r}")
    span = parse_window(window)
    until = as_utc(now) if now is not None else datetime.now(UTC)
    edges = bucket_edges(until - span, until, buckets)
    location = log or default_log_location(registry)
    pinned = parse_ref(ref)
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        resolved = reg.resolve(ref)
        name = resolved.name
        logged, truncated, feedback, events, display = _read_window(location, name, edges, max_rows)
        if pinned.alias is not None or pinned.version is not None:
            logged = logged.filter(logged["version"] == str(resolved.version))
            scope = f"model '{name}' version {resolved.version}"
        else:
            scope = f"model '{name}'"
        served = logged.filter(~logged["shadow"])
        if served.height == 0:
            raise DataError(f"no predictions of {scope} in the last {window} in {display}")
        versions = _versions(served)
        numbered = [int(v) for v in versions if v.isdigit()]
        if pinned.alias is None and pinned.version is None and numbered:
            chosen = reg.resolve(f"{name}@{max(numbered)}")
        else:
            chosen = resolved
        directory = Path(reg.open_artifacts(chosen))
        profile = _profile(directory, chosen)
        task = _task(directory)
    report = MonitorReport(
        model=name,
        location=display,
        window=window,
        since=edges[0],
        until=edges[-1],
        edges=edges,
        task=task["subtype"],
        profile_version=chosen.version,
        versions=versions,
        rows=served.height,
        requests=served["request_id"].n_unique(),
        shadow_rows=logged.height - served.height,
        truncated=truncated,
        dropped=_dropped(events, name),
    )
    if len(versions) > 1:
        report.notes.append(
            f"{len(versions)} versions served in this window ({', '.join(versions)}): drift "
            f"is measured against the profile of the latest, version {chosen.version} "
            f"(prediction drift on version {chosen.version}'s predictions only)"
        )
    if report.truncated:
        report.notes.append(
            f"more than {max_rows:,} predictions in the window: only the latest {max_rows:,} "
            "were read (--max-rows), so earlier buckets may look empty"
        )
    if report.dropped:
        report.notes.append(
            f"{report.dropped:,} prediction rows could not be logged in this window (the "
            "server's log queue was full): everything here undercounts traffic"
        )
    from forgeml.workflow.monitor_report import fill_drift, fill_outcomes, fill_traffic

    fill_traffic(report, served, edges)
    fill_outcomes(report, served, feedback, task, chosen.metrics, edges)
    fill_drift(report, served, profile, edges)
    return report


def _read_window(
    location: str, model: str, edges: list[datetime], max_rows: int
) -> tuple[Any, bool, Any, Any, str]:
    """The window's latest ``max_rows`` predictions of ``model`` (in time order) and
    whether there were more; feedback; events; the store's name for messages."""
    from forgeml.monitoring.store import open_store

    since, until = edges[0], edges[-1]
    with open_store(location, create=False) as store:
        logged = store.read(
            "predictions", model=model, since=since, until=until, latest_first=True,
            limit=max_rows + 1,
        )  # fmt: skip
        # Labels arrive after their predictions: everything received since the window began.
        feedback = store.read("feedback", model=model, since=since)
        events = store.read("events", since=since, until=until)
        display = store.location
    truncated = logged.height > max_rows
    return logged.head(max_rows).reverse(), truncated, feedback, events, display


def _versions(served: Any) -> list[str]:
    found = served.get_column("version").unique().to_list()
    return sorted(found, key=lambda v: (0, int(v), "") if v.isdigit() else (1, 0, v))


def _task(directory: Path) -> dict[str, Any]:
    """The model's task (``subtype``, ``classes``, ``positive``) from its manifest."""
    from forgeml.models.bundle import MANIFEST
    from forgeml.tasks.info import TaskInfo

    path = directory / MANIFEST
    task = TaskInfo.from_dict(json.loads(path.read_text())["task"])
    positive = task.classes[1] if task.is_binary else None
    return {"subtype": task.subtype, "classes": list(task.classes), "positive": positive}


def _dropped(events: Any, model: str) -> int:
    import polars as pl

    mine = events.filter(
        (pl.col("kind") == "log_dropped") & (pl.col("model").is_null() | (pl.col("model") == model))
    )
    return int(mine.get_column("count").sum() or 0)


def prune_log(
    *,
    registry: str = ".forgeml",
    log: str | None = None,
    older_than: str = "30d",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Delete what the log at ``log`` (default: the registry's) holds from before
    ``now - older_than``: the retention a long-running server's log needs."""
    from forgeml.monitoring.store import open_store
    from forgeml.monitoring.windows import parse_window
    from forgeml.registry.location import default_log_location

    keep = parse_window(older_than)
    cutoff = (now or datetime.now(UTC)) - keep
    location = log or default_log_location(registry)
    with open_store(location, create=False) as store:
        removed = store.prune(cutoff)
        shown = store.location
    unit = "rows" if shown.startswith("postgresql") else "files"
    return {"log": shown, "before": cutoff.isoformat(), "removed": removed, "unit": unit}
