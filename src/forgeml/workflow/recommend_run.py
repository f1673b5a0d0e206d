"""``forgeml run`` for ``task: recommendation``: validate -> split -> tune -> evaluate ->
register -> report.

1. **validate**: the interaction log is read from ``data.source`` (any source the spine
   reads) and checked event by event (:mod:`forgeml.recommend.validate`): null ids,
   unreadable or future times, bad weights and exact duplicates are quarantined with a
   reason into ``runs/<id>/quarantine.parquet``; ``validation.max_bad_fraction`` applies.
2. **split**: valid events become an :class:`~forgeml.recommend.Interactions` log (with
   ``positive_threshold``, events below it are counted, not used); ``recommendation.split``
   holds out the test events (leave-last-n per user, or a cut in time).
3. **tune**: every model of ``recommendation.models`` is searched with Optuna on a
   validation split carved from train (:mod:`forgeml.recommend.tuning`) under
   ``tuning.budget``.
4. **evaluate**: the best configuration of each model is refitted on train and evaluated
   on test by full ranking (metrics at k, the curve over k, user segments, popularity);
   the model with the best *validation* score is chosen. With
   ``recommendation.user_features`` (a user table), the chosen model's metrics per
   attribute value, and the cold-start fallback from user attributes scored on every test
   user as if new, next to plain popularity.
5. **register**: the chosen configuration is refitted on every event (``refit_full``,
   default) and saved without pickle (:func:`forgeml.recommend.persist.save`) with the
   report and summary into the version's artifact folder, committed with the run record
   in one transaction (the registry is untouched when anything before fails). With a user
   table, the fallback (:class:`~forgeml.recommend.user_features.SegmentPopularity`) is
   fitted on the final model's events and saved with it.
6. **report**: ``runs/<id>/report.html`` and ``summary.json``.

Bundle layout (the version's artifact folder)::

    recommender.json   format "forgeml.recommender"; meta.task == "recommendation"
    *.npy / *.npz      the model's arrays and the user/item id maps
    user_features.npz  the user-attribute fallback (with recommendation.user_features)
    report.html        this run's report
    summary.json       this run's summary (``task: "recommendation"``)
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.config.loader import dump_spec
from forgeml.config.redact import hide_password, redacted_spec
from forgeml.config.spec import DataSpec, RecommendationSpec, Spec
from forgeml.errors import ConfigError, DataError, UsageError
from forgeml.workflow.versions import library_versions

if TYPE_CHECKING:
    import polars as pl

    from forgeml.recommend.interactions import Interactions
    from forgeml.recommend.segments import Detail
    from forgeml.recommend.split import Split
    from forgeml.recommend.tuning import Candidate, TuneResult
    from forgeml.recommend.user_features import SegmentPopularity, UserTable
    from forgeml.workflow.reporting import Reporter
    from forgeml.workflow.run import RunResult
    from forgeml.workflow.workspace import Workspace

__all__ = ["TASK", "precheck_recommendation", "run_recommendation"]

TASK = "recommendation"
_UNIT_TO_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}
_ORDER = "_row"  # without a time column, the input order is the time order


def precheck_recommendation(spec: Spec) -> list[Candidate]:
    """What can be checked before reading data: the section, every model name and
    parameter, the models' libraries. Returns the candidates (``auto`` resolved)."""
    from forgeml.recommend.tuning import resolve_candidates

    rec = _section(spec)
    if spec.data.test_source is not None:
        raise ConfigError(
            "data.test_source: not supported for task 'recommendation'; the test events are "
            "held out by recommendation.split"
        )
    candidates = resolve_candidates(rec.models, item_features=rec.item_features is not None)
    if rec.ann_index == "always" and not {c.name for c in candidates} & {"als", "bpr"}:
        raise ConfigError(
            "recommendation.ann_index: always needs a factor model (als, bpr) among "
            f"recommendation.models (got {', '.join(c.name for c in candidates)})"
        )
    return candidates


def run_recommendation(
    spec: Spec,
    workspace: Workspace,
    run_id: str,
    timer: Any,
    reporter: Reporter,
    data: Any = None,
    test_data: Any = None,
) -> RunResult:
    """Run a ``task: recommendation`` spec end to end (see the module docstring)."""
    from forgeml.data import open_source
    from forgeml.recommend.tuning import resolve_candidates, tune
    from forgeml.recommend.validate import InteractionColumns, validate_interactions
    from forgeml.registry import check_writable

    started_at = datetime.now(UTC)
    run_dir = workspace.run_dir(run_id)
    rec = _section(spec)
    timer("check", spec.name)
    if test_data is not None:
        raise UsageError(
            "test_data is not supported for task 'recommendation': recommendation.split "
            "holds out the test events"
        )
    check_writable(workspace.registry_uri, workspace.artifacts)
    precheck_recommendation(spec)

    timer("validate", spec.data.source or "in-memory frame")
    source = open_source(spec.data, resolve=spec.resolve_path, frame=data)
    columns = InteractionColumns(rec.user, rec.item, rec.time, rec.weight)
    valid, report = validate_interactions(
        source,
        columns,
        time_unit=rec.time_unit,
        future_tolerance_s=rec.future_tolerance_s,
        max_bad_fraction=spec.validation.max_bad_fraction,
        quarantine_path=_quarantine_path(spec, run_dir),
        progress=reporter.rows,
    )
    reporter.info(
        f"{report.source}: {report.n_input:,} rows = {report.n_valid:,} valid events + "
        f"{report.n_quarantined:,} quarantined"
    )
    notes: list[str] = []

    timer("split", rec.split.strategy)
    log = _interactions(valid, rec)
    n_below = report.n_valid - log.n_events
    split = _split(log, rec)
    reporter.info(
        f"{log.n_users:,} users x {log.n_items:,} items; {split.train.n_events:,} train and "
        f"{split.test.n_events:,} test events"
    )
    if n_below:
        notes.append(
            f"{n_below:,} valid events rated below positive_threshold "
            f"({rec.positive_threshold:g}) are not positives: their users and items stay in "
            "the catalogue, the events are not learned from."
        )
    if split.cold_events:
        notes.append(
            f"{split.cold_events:,} test-period events of users with no earlier event were "
            "left out of the test (nothing to personalise from)."
        )
    item_features = _item_features(spec, rec)
    user_table = _user_features(spec, rec, log, notes)
    candidates = resolve_candidates(
        rec.models, n_items=log.n_items, item_features=item_features is not None
    )
    if rec.models is None and len(candidates) < len(precheck_recommendation(spec)):
        notes.append(f"EASE was left out of 'auto': {log.n_items:,} items is more than it accepts.")
    prepared = []
    for candidate in candidates:
        candidate, item_features = _with_features(candidate, rec, item_features)
        prepared.append(candidate)
    candidates = prepared

    budget = spec.tuning.budget
    key = f"{rec.metric}@{rec.k}"
    timer("tune", f"{', '.join(c.name for c in candidates)} on {key}")
    reporter.budget(budget.trials, budget.seconds)
    result = tune(
        split.train,
        candidates,
        k=rec.k,
        metric=rec.metric,
        seed=spec.seed,
        max_trials=budget.trials,
        max_seconds=budget.seconds,
        sampler=spec.tuning.sampler,
        startup_trials=spec.tuning.startup_trials,
        item_features=item_features,
        on_trial=reporter.trial,
    )
    best = result.best

    timer("evaluate", f"{split.test.n_events:,} held-out events, {len(result.models)} models")
    by_name = {c.name: c for c in candidates}
    per_model, detail = _evaluate_models(spec, rec, result, by_name, split, item_features)
    for name, entry in per_model.items():
        if entry.get("error"):
            notes.append(f"{name}: its best configuration failed on the full training set.")
    if detail.cold_item_events:
        notes.append(
            f"{detail.cold_item_events:,} test events are on items with no training event; "
            "they stay in the test (no model can rank them from interactions alone)."
        )
    by_user = (
        _evaluate_user_features(user_table, detail, split, rec.k)
        if user_table is not None
        else None
    )

    timer("train", f"{best.model} on {'every event' if rec.refit_full else 'train'}")
    from forgeml.recommend.tuning import fit_model

    final = (
        fit_model(by_name[best.model], best.params, spec.seed, log, item_features)
        if rec.refit_full
        else detail.extra["model"]
    )
    fallback = None
    if user_table is not None:
        from forgeml.recommend.user_features import SegmentPopularity

        fallback = SegmentPopularity().fit(log if rec.refit_full else split.train, user_table)

    ann = _ann_index(final, rec, spec.seed, timer)
    if ann is not None:
        notes.append(
            f"ANN index (HNSW) built over {ann['items']:,} items: recall@{rec.k} against "
            f"exact top-{rec.k} {ann['recall']:.3f} on {ann['users']:,} users."
        )

    versions = library_versions()
    versions.update(_extra_versions())
    events = _events(report, log, split, n_below, detail, result, rec)
    summary = _summary(
        spec, run_id, rec, report, result, per_model, detail, events, versions, notes
    )
    context = _report_context(spec, run_id, rec, report, result, per_model, detail, events)
    context.versions = versions
    context.notes = notes
    if by_user is not None:
        summary["recommendation"]["user_features"] = by_user
        context.user_features = by_user

    timer("register", f"{spec.name} in {hide_password(workspace.registry_uri)}")
    meta = _meta(spec, rec, run_id, best, log, trained_on="all" if rec.refit_full else "train")
    if ann is not None:
        meta["ann_index"] = ann
        summary["recommendation"]["ann_index"] = ann
    if fallback is not None:
        meta["user_features"] = {"attributes": fallback.attributes_}
    version, record = _register(
        spec,
        workspace,
        run_id,
        started_at,
        final,
        log,
        meta,
        summary,
        context,
        report,
        result,
        detail,
        versions,
        fallback,
    )
    timer.stop()
    context.version = version.version
    context.registry = {
        "uri": hide_password(workspace.registry_uri),
        "ref": f"{spec.name}@{version.version}",
        "aliases": list(version.aliases),
    }
    context.timings = dict(timer.timings)
    summary |= {
        "version": version.version,
        "aliases": list(version.aliases),
        "timings_s": dict(timer.timings),
    }
    from forgeml.evaluation.recommend_report import write_recommend_report
    from forgeml.workflow.run import RunResult, _mirror_to_mlflow

    run_dir.mkdir(parents=True, exist_ok=True)
    report_path = write_recommend_report(context, run_dir / "report.html")
    summary_path = run_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    _mirror_to_mlflow(record, run_dir, reporter)
    return RunResult(
        run_id=run_id,
        model_name=spec.name,
        version=version.version,
        aliases=list(version.aliases),
        task=TASK,
        metric=key,
        test_metrics=dict(detail.metrics),
        cv_score={"metric": key, "mean": float(best.value or 0.0), "std": 0.0},
        best={
            "trial": best.number,
            "model": best.model,
            "params": best.params,
            "class_weight": None,
        },
        threshold=None,
        validation=report.to_dict(),
        trials=result.counts,
        report_path=str(report_path),
        summary_path=str(summary_path),
        registry=hide_password(workspace.registry_uri),
        timings=dict(timer.timings),
        notes=notes,
    )


# ------------------------------------------------------------------------------ steps


def _section(spec: Spec) -> RecommendationSpec:
    if spec.task != TASK or spec.recommendation is None:
        raise ConfigError("recommendation: this run needs task 'recommendation' and its section")
    return spec.recommendation


def _quarantine_path(spec: Spec, run_dir: Path) -> Path:
    path = run_dir / "quarantine.parquet"
    if spec.validation.quarantine_dir:
        folder = Path(spec.resolve_path(spec.validation.quarantine_dir))
        path = folder / f"{run_dir.name}-{path.name}"
    return path


def _interactions(valid: pl.DataFrame, rec: RecommendationSpec) -> Interactions:
    from forgeml.recommend.interactions import Interactions

    log = Interactions.from_frame(
        valid,
        user=rec.user,
        item=rec.item,
        weight=rec.weight,
        time=rec.time or _ORDER,
        positive_threshold=rec.positive_threshold,
    )
    if log.n_events == 0:
        raise DataError(
            f"no valid event has {rec.weight} >= {rec.positive_threshold:g} "
            "(recommendation.positive_threshold): nothing to learn from"
        )
    return log


def _split(log: Interactions, rec: RecommendationSpec) -> Split:
    from forgeml.recommend.split import leave_last_n_out, time_split

    split_spec = rec.split
    if split_spec.strategy == "leave_last_n":
        split = leave_last_n_out(log, split_spec.n)
        if split.test.n_events == 0:
            raise DataError(
                f"recommendation.split: no user has more than {split_spec.n} positive "
                "event(s), so nothing can be held out for the test"
            )
        return split
    at = split_spec.at
    assert at is not None
    cut: datetime | date | int
    cut = round(float(at) * _UNIT_TO_US[rec.time_unit]) if isinstance(at, float) else at
    split = time_split(log, cut)
    shown = at if not isinstance(at, float) else f"{at:g} ({rec.time_unit})"
    if split.train.n_events == 0:
        raise DataError(f"recommendation.split.at: no event before {shown}; nothing to train on")
    if split.test.n_events == 0:
        raise DataError(
            f"recommendation.split.at: no event at or after {shown} from a user seen before "
            f"it ({split.cold_events:,} events of new users); nothing to test on"
        )
    return split


def _item_features(spec: Spec, rec: RecommendationSpec) -> pl.DataFrame | None:
    if rec.item_features is None:
        return None
    from forgeml.data import open_source

    source = open_source(DataSpec(source=rec.item_features), resolve=spec.resolve_path)
    frame = source.read().frame
    if frame.height == 0:
        raise DataError(f"recommendation.item_features: {source.description} has no rows")
    return frame


def _user_features(
    spec: Spec, rec: RecommendationSpec, log: Interactions, notes: list[str]
) -> UserTable | None:
    """The checked user table (``recommendation.user_features``); notes say which columns
    were left out and how the table's users meet the log's."""
    if rec.user_features is None:
        return None
    import polars as pl

    from forgeml.data import open_source
    from forgeml.recommend.user_features import prepare_user_table

    where = "recommendation.user_features"
    source = open_source(DataSpec(source=rec.user_features), resolve=spec.resolve_path)
    frame = source.read().frame
    if frame.height == 0:
        raise DataError(f"{where}: {source.description} has no rows")
    table = prepare_user_table(frame, rec.user, where=where)
    for name, reason in table.ignored.items():
        notes.append(f"{where}: column '{name}' is not used ({reason}).")
    log_users = pl.Series(np.asarray(log.user_ids).astype(str), dtype=pl.String)
    matched = int(table.frame[rec.user].is_in(log_users.implode()).sum())
    if matched == 0:
        raise DataError(
            f"{where}: none of its {table.frame.height:,} users (column '{rec.user}') has an "
            "event in the interaction log"
        )
    notes.append(
        f"{where}: {', '.join(table.attributes)} used; {matched:,} of the table's "
        f"{table.frame.height:,} users have events; {log.n_users - matched:,} of the log's "
        f"{log.n_users:,} users are not in the table (unknown attributes)."
    )
    return table


def _evaluate_user_features(
    table: UserTable, detail: Detail, split: Split, k: int
) -> dict[str, Any]:
    """The chosen model's test metrics per attribute value (top 5 values) and the
    fallback scored on every test user as if new, next to plain popularity."""
    from forgeml.recommend.user_features import (
        SegmentPopularity,
        attribute_breakdown,
        cold_start_metrics,
    )

    fallback = SegmentPopularity().fit(split.train, table)
    return {
        "attributes": table.attributes,
        "ignored": table.ignored,
        "cold_start": cold_start_metrics(fallback, split.train, split.test, k),
        "by_attribute": attribute_breakdown(
            detail.extra["model"], fallback, split.train, split.test, k
        ),
    }


def _with_features(
    candidate: Candidate, rec: RecommendationSpec, frame: pl.DataFrame | None
) -> tuple[Candidate, pl.DataFrame | None]:
    """The hybrid's fixed feature columns: given in its params, or inferred from the
    item-feature table (numbers: numeric; ``|``-separated labels: multi_label; long
    free text: text; other strings: categorical). Its id column defaults to the item
    column; ids are read as text like the log's, numbers in text columns as numbers."""
    if frame is None or not candidate.info.item_features:
        return candidate, frame
    import polars as pl

    from forgeml.recommend.validate import _as_id

    fixed = dict(candidate.fixed)
    item = str(fixed.setdefault("item", rec.item))
    if item not in frame.columns:
        raise ConfigError(
            f"recommendation.item_features: the item id column '{item}' is not in the table "
            f"(columns: {', '.join(frame.columns)}); set params.item of the hybrid model"
        )
    kinds = ("categorical", "multi_label", "text", "numeric")
    if not any(fixed.get(kind) for kind in kinds):
        inferred: dict[str, list[str]] = {kind: [] for kind in kinds}
        for name in frame.columns:
            if name != item:
                inferred[_feature_kind(frame[name])].append(name)
        fixed.update({kind: names for kind, names in inferred.items() if names})
    numeric = [c for c in fixed.get("numeric", ()) if c in frame.columns]
    frame = frame.with_columns(
        _as_id(frame[item]),
        *(pl.col(c).cast(pl.Float64, strict=False) for c in numeric),
    )
    return replace(candidate, fixed=fixed), frame


def _feature_kind(series: pl.Series) -> str:
    import polars as pl

    if series.dtype.is_numeric():
        return "numeric"
    text = series.cast(pl.String, strict=False).drop_nulls()
    if len(text) == 0:
        return "categorical"
    if text.cast(pl.Float64, strict=False).null_count() <= 0.01 * len(text):
        return "numeric"
    if bool(text.str.contains("|", literal=True).any()):
        return "multi_label"
    if float(np.mean(text.str.len_chars().to_numpy())) > 30 or text.n_unique() > 0.5 * len(text):
        return "text"
    return "categorical"


def _evaluate_models(
    spec: Spec,
    rec: RecommendationSpec,
    result: TuneResult,
    by_name: dict[str, Candidate],
    split: Split,
    item_features: pl.DataFrame | None,
) -> tuple[dict[str, dict[str, Any]], Detail]:
    """Each model's best configuration refitted on train and evaluated on test; the
    chosen model's :class:`Detail` (with the fitted model in ``extra['model']``)."""
    from forgeml.recommend.segments import evaluate_detail
    from forgeml.recommend.tuning import fit_model

    per_model: dict[str, dict[str, Any]] = {}
    chosen: Detail | None = None
    for name in result.models:
        trials = [t for t in result.trials if t.model == name]
        best = result.best_of(name)
        entry: dict[str, Any] = {
            "name": name,
            "trials": len(trials),
            "validation": best.value if best else None,
            "params": best.params if best else None,
            "chosen": name == result.best.model,
        }
        per_model[name] = entry
        if best is None:
            entry["error"] = next((t.error for t in trials if t.error), "no trial completed")
            continue
        try:
            model = fit_model(by_name[name], best.params, spec.seed, split.train, item_features)
            detail = evaluate_detail(model, split.train, split.test, rec.k, bounds=rec.segments)
        except Exception as exc:
            if name == result.best.model:
                raise
            entry["error"] = f"{type(exc).__name__}: {exc}"
            continue
        entry["test"] = detail.metrics
        entry["curve"] = detail.curve
        if name == result.best.model:
            detail.extra["model"] = model
            chosen = detail
    assert chosen is not None
    return per_model, chosen


def _events(
    report: Any,
    log: Interactions,
    split: Split,
    n_below: int,
    detail: Detail,
    result: TuneResult,
    rec: RecommendationSpec,
) -> dict[str, int]:
    events = {"valid events": report.n_valid}
    if rec.positive_threshold is not None:
        events["below positive_threshold (not used)"] = n_below
        events["positive events"] = log.n_events
    events |= {
        "users": log.n_users,
        "items (catalogue)": log.n_items,
        "train events": split.train.n_events,
        "test events": split.test.n_events,
    }
    if rec.split.strategy == "time":
        events["test-period events of new users (left out)"] = split.cold_events
    events |= {
        "test users": detail.users,
        "test events on items unseen in train": detail.cold_item_events,
        "validation users (tuning)": result.validation_users,
    }
    return events


def _extra_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("implicit", "hnswlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _columns(rec: RecommendationSpec) -> dict[str, Any]:
    return {
        "user": rec.user,
        "item": rec.item,
        "time": rec.time,
        "weight": rec.weight,
        "positive_threshold": rec.positive_threshold,
        "time_unit": rec.time_unit if rec.time else None,
    }


def _split_text(rec: RecommendationSpec) -> str:
    if rec.split.strategy == "time":
        return f"time: test from {rec.split.at}"
    order = "time" if rec.time else "row order"
    return f"leave last {rec.split.n} out per user (by {order})"


def _summary(
    spec: Spec,
    run_id: str,
    rec: RecommendationSpec,
    report: Any,
    result: TuneResult,
    per_model: dict[str, dict[str, Any]],
    detail: Detail,
    events: dict[str, int],
    versions: dict[str, str],
    notes: list[str],
) -> dict[str, Any]:
    best = result.best
    return {
        "run_id": run_id,
        "name": spec.name,
        "task": TASK,
        "subtype": TASK,
        "metric": result.metric,
        "test_metrics": detail.metrics,
        "cv_score": {"metric": result.metric, "mean": best.value, "std": 0.0},
        "best": {"trial": best.number, "model": best.model, "params": best.params},
        "trials": result.counts,
        "validation": report.to_dict(),
        "fingerprint": report.fingerprint.to_dict() if report.fingerprint else None,
        "seed": spec.seed,
        "library_versions": versions,
        "recommendation": {
            "k": rec.k,
            "columns": _columns(rec),
            "split": _split_text(rec),
            "refit_full": rec.refit_full,
            "events": events,
            "models": [
                {key: value for key, value in entry.items() if key != "curve"}
                for entry in per_model.values()
            ],
            "curve": detail.curve,
            "segments": [
                {"name": s.name, "low": s.low, "high": s.high, "users": s.users, **s.metrics}
                for s in detail.segments
            ],
            "popularity": detail.popularity,
            "catalogue": detail.catalogue,
            "trained_items": detail.trained_items,
        },
        "leaderboard": result.leaderboard(limit=50),
        "notes": notes,
    }


def _report_context(
    spec: Spec,
    run_id: str,
    rec: RecommendationSpec,
    report: Any,
    result: TuneResult,
    per_model: dict[str, dict[str, Any]],
    detail: Detail,
    events: dict[str, int],
) -> Any:
    from forgeml.evaluation.recommend_report import RecommendReportContext

    best = result.best
    return RecommendReportContext(
        model_name=spec.name,
        run_id=run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        k=rec.k,
        metric=result.metric,
        best_model=best.model,
        best_params={"model": best.model, **best.params},
        validation_score=best.value,
        test_metrics=detail.metrics,
        models=list(per_model.values()),
        segments=[
            {"name": s.name, "users": s.users, "metrics": s.metrics} for s in detail.segments
        ],
        popularity=detail.popularity,
        leaderboard=result.leaderboard(),
        events=events,
        columns={k: v for k, v in _columns(rec).items() if v is not None},
        split=_split_text(rec),
        validation=report.to_dict(),
        fingerprint=report.fingerprint.to_dict() if report.fingerprint else {},
        seed=spec.seed,
        spec_yaml=dump_spec(redacted_spec(spec)),
    )


ANN_MIN_ITEMS = 50_000  # ann_index: auto builds an index from this catalogue size on


def _ann_index(model: Any, rec: RecommendationSpec, seed: int, timer: Any) -> dict[str, Any] | None:
    """Build the HNSW index of a factor model when ``rec.ann_index`` asks for it (it is
    attached to the model and saved with it) and measure its recall@k against exact
    top-k on up to 1,000 users."""
    from forgeml.recommend.als import _FactorModel

    if rec.ann_index == "never" or not isinstance(model, _FactorModel):
        if rec.ann_index == "always" and not isinstance(model, _FactorModel):
            raise ConfigError(
                f"recommendation.ann_index: always needs a factor model (als, bpr); the chosen "
                f"model is {type(model).__name__}"
            )
        return None
    if rec.ann_index == "auto" and model.n_items < ANN_MIN_ITEMS:
        return None
    from forgeml.recommend.ann import build_index, recall_at_k_vs_exact

    timer("index", f"HNSW over {model.n_items:,} items")
    started = time.monotonic()
    index = build_index(model, seed=seed)
    built = time.monotonic() - started
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(np.diff(model.seen_.indptr) > 0)
    users = (
        rng.choice(active, size=min(1_000, len(active)), replace=False) if len(active) else active
    )
    recall = recall_at_k_vs_exact(model, np.sort(users), rec.k, index=index)
    return {
        "kind": "hnsw",
        "items": int(model.n_items),
        "users": len(users),
        "k": rec.k,
        "recall": round(recall, 4),
        "build_s": round(built, 3),
        "M": index.M,
        "ef": index.ef,
    }


def _meta(
    spec: Spec,
    rec: RecommendationSpec,
    run_id: str,
    best: Any,
    log: Interactions,
    *,
    trained_on: str,
) -> dict[str, Any]:
    """What a server needs to know besides the arrays (``task`` marks the bundle)."""
    popular = np.asarray(log.matrix(binary=True).sum(axis=0)).ravel()
    return {
        "task": TASK,
        "name": spec.name,
        "run_id": run_id,
        "seed": spec.seed,
        "model": best.model,
        "params": best.params,
        "k": rec.k,
        "metric": f"{rec.metric}@{rec.k}",
        "columns": _columns(rec),
        "trained_on": trained_on,
        "n_users": log.n_users,
        "n_items": log.n_items,
        "n_events": log.n_events,
        "items_with_events": int((popular > 0).sum()),
    }


def _register(
    spec: Spec,
    workspace: Workspace,
    run_id: str,
    started_at: datetime,
    model: Any,
    log: Interactions,
    meta: dict[str, Any],
    summary: dict[str, Any],
    context: Any,
    report: Any,
    result: TuneResult,
    detail: Detail,
    versions: dict[str, str],
    user_features: SegmentPopularity | None = None,
) -> Any:
    """Save the model (no pickle) with its report and summary, then commit run + version;
    returns the new version and the run record."""
    from forgeml.evaluation.recommend_report import write_recommend_report
    from forgeml.recommend.persist import save
    from forgeml.registry import NewVersion, RunRecord
    from forgeml.workflow.run import _aliases

    best = result.best
    fingerprint = report.fingerprint.to_dict() if report.fingerprint else {}
    params: dict[str, Any] = {"model": best.model}
    for key, value in best.params.items():
        plain = value if isinstance(value, int | float | str | bool) else json.dumps(value)
        params[f"{best.model}.{key}"] = plain
    metrics = {f"test_{k}": float(v) for k, v in detail.metrics.items()}
    metrics[f"validation_{result.metric}"] = float(best.value or 0.0)
    record = RunRecord(
        run_id=run_id,
        name=spec.name,
        status="finished",
        started_at=started_at,
        ended_at=datetime.now(UTC),
        params=params,
        metrics=metrics,
        config=json.loads(redacted_spec(spec).model_dump_json(exclude={"base_dir"})),
        seed=spec.seed,
        data_fingerprint=fingerprint,
        library_versions=versions,
        summary={"trials": result.counts, "events": summary["recommendation"]["events"]},
        tags={"task": TASK, "model": best.model},
    )
    aliases, if_absent = _aliases(spec)
    with tempfile.TemporaryDirectory(prefix="forgeml-stage-") as staging_root:
        staging = Path(staging_root) / "model"
        save(
            staging,
            model,
            user_ids=log.user_ids,
            item_ids=log.item_ids,
            meta=meta,
            user_features=user_features,
        )
        write_recommend_report(context, staging / "report.html")
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        with workspace.open_registry(create=True) as registry:
            commit = registry.commit_run(
                record,
                NewVersion(
                    name=spec.name,
                    source_dir=staging,
                    metrics={k: float(v) for k, v in detail.metrics.items()},
                    lineage={
                        "run_id": run_id,
                        "task": TASK,
                        "fingerprint": fingerprint,
                        "seed": spec.seed,
                        "spec": dump_spec(redacted_spec(spec)),
                        "library_versions": versions,
                    },
                    aliases=aliases,
                    aliases_if_absent=if_absent,
                ),
            )
    assert commit.version is not None
    return commit.version, record
