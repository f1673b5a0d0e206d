"""``forgeml run``: validate -> features -> tune -> evaluate -> register -> report.

A ``task: recommendation`` spec is run by :mod:`forgeml.workflow.recommend_run` instead
(same workspace, failure evidence, registry transaction and :class:`RunResult`).

Nothing is written to the registry until everything else succeeded; then the run, the
model version and its aliases are written in one transaction (see
:meth:`~forgeml.registry.Registry.commit_run`). A failing run leaves its evidence —
``failure.json`` and the quarantined rows — in ``runs/<id>/`` and the registry exactly as
it was (not even created, when it did not exist).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from forgeml.config.loader import dump_spec, load_spec
from forgeml.config.redact import hide_password, redacted_spec
from forgeml.config.spec import Spec
from forgeml.errors import ForgeError
from forgeml.workflow import outputs
from forgeml.workflow.check import precheck, resolve_candidates
from forgeml.workflow.prepare import prepare
from forgeml.workflow.reporting import NullReporter, Reporter
from forgeml.workflow.versions import library_versions
from forgeml.workflow.workspace import Workspace, new_run_id

__all__ = ["RunResult", "run_spec"]


@dataclass
class RunResult:
    """What a run produced; ``to_dict()`` is the ``--output json`` summary."""

    run_id: str
    model_name: str
    version: int
    aliases: list[str]
    task: str
    metric: str
    test_metrics: dict[str, float]
    cv_score: dict[str, Any]
    best: dict[str, Any]
    threshold: float | None
    validation: dict[str, Any]
    trials: dict[str, int]
    report_path: str
    summary_path: str
    registry: str
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.model_name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model_name,
            "version": self.version,
            "ref": self.ref,
            "aliases": self.aliases,
            "task": self.task,
            "metric": self.metric,
            "test_metrics": self.test_metrics,
            "cv_score": self.cv_score,
            "best": self.best,
            "threshold": self.threshold,
            "validation": self.validation,
            "trials": self.trials,
            "report": self.report_path,
            "summary": self.summary_path,
            "registry": self.registry,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": self.notes,
        }


class _Timer:
    """Marks stages for the reporter and records how long each took."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.timings: dict[str, float] = {}
        self._name: str | None = None
        self._start = 0.0

    def __call__(self, name: str, detail: str = "") -> None:
        self.stop()
        self._name, self._start = name, time.monotonic()
        self.reporter.stage(name, detail)

    def stop(self) -> None:
        if self._name is not None:
            self.timings[self._name] = time.monotonic() - self._start
            self._name = None


def run_spec(
    spec: str | Path | Mapping[str, Any] | Spec,
    *,
    data: Any = None,
    test_data: Any = None,
    overrides: Iterable[str] = (),
    reporter: Reporter | None = None,
) -> RunResult:
    """Run a pipeline spec end to end.

    ``data`` is an optional in-memory frame (pandas, Polars, Arrow) used instead of
    ``data.source``; ``test_data`` likewise replaces ``data.test_source`` as an explicit
    held-out test set.
    """
    reporter = reporter or NullReporter()
    loaded = load_spec(spec, overrides)
    workspace = Workspace.from_spec(loaded)
    run_id = new_run_id()
    run_dir = workspace.run_dir(run_id)
    timer = _Timer(reporter)
    try:
        if loaded.task == "recommendation":
            from forgeml.workflow.recommend_run import run_recommendation

            return run_recommendation(
                loaded, workspace, run_id, timer, reporter, data=data, test_data=test_data
            )
        return _run(loaded, workspace, run_id, timer, reporter, data, test_data)
    except ForgeError as exc:
        _write_failure(run_dir, run_id, exc)
        raise
    finally:
        timer.stop()


def _run(
    spec: Spec,
    workspace: Workspace,
    run_id: str,
    timer: _Timer,
    reporter: Reporter,
    data: Any,
    test_data: Any,
) -> RunResult:
    from forgeml.engine import get_executor
    from forgeml.evaluation import evaluate
    from forgeml.registry import check_writable
    from forgeml.tasks.metrics import resolve_metric
    from forgeml.tuning import search
    from forgeml.tuning.search import storage_url

    started_at = datetime.now(UTC)
    run_dir = workspace.run_dir(run_id)
    # Fail fast, before reading any data, on what can be checked up front.
    timer("check", spec.name)
    check_writable(workspace.registry_uri, workspace.artifacts)
    precheck(spec)

    prepared = prepare(spec, run_dir, reporter, timer, data=data, test_data=test_data)
    task = prepared.task
    metric = resolve_metric(spec.tuning.metric, task.subtype)
    candidates = resolve_candidates(spec, task.subtype, n_rows=len(prepared.y_tune))

    budget = spec.tuning.budget
    timer("tune", f"{', '.join(c.name for c in candidates)} on {metric.name}")
    reporter.budget(budget.trials, budget.seconds)
    with get_executor(spec.engine.kind, spec.engine.workers) as executor:
        result = search(
            X=prepared.X_tune,
            y=prepared.y_tune,
            folds=prepared.tune_folds or prepared.folds,
            subtype=task.subtype,
            n_classes=task.n_classes,
            candidates=candidates,
            metric=metric,
            executor=executor,
            seed=spec.seed,
            max_trials=budget.trials,
            max_seconds=budget.seconds,
            refit_scale=_refit_scale(prepared),
            keep_best=spec.tuning.ensemble,
            sampler=spec.tuning.sampler,
            pruning=spec.tuning.pruning,
            startup_trials=spec.tuning.startup_trials,
            early_stopping_rounds=spec.tuning.early_stopping_rounds,
            class_weights=_class_weights(spec, task.is_classification),
            on_trial=reporter.trial,
            storage=storage_url(spec.tuning.storage, spec.base_dir)
            if spec.tuning.storage
            else None,
            study_name=spec.tuning.resume_study or f"{spec.name}-{run_id}",
            resume=spec.tuning.resume_study is not None,
        )

    members = _ensemble(spec, result, prepared)
    names = " + ".join(f"{result_trial(result, n).model}" for n, _ in members)
    timer("train", f"{names} on {len(prepared.y_train):,} rows")
    estimator, threshold = _refit(spec, result, prepared, members)
    timer("evaluate", f"{len(prepared.y_test):,} held-out rows")
    test_pred = estimator.predict(prepared.X_test)
    evaluation = evaluate(
        prepared.y_test,
        test_pred,
        task,
        threshold=threshold if threshold is not None else 0.5,
    )
    out = outputs.Outcome(
        run_id=run_id,
        spec=spec,
        prepared=prepared,
        metric=metric,
        search=result,
        estimator=estimator,
        threshold=threshold,
        evaluation=evaluation,
        versions=library_versions(),
        started_at=started_at,
        members=members,
    )
    out.test_pred = test_pred  # the held-out predictions, profiled with the model
    timer("register", f"{spec.name} in {hide_password(workspace.registry_uri)}")
    version, context = _register(out, workspace, dict(timer.timings))
    timer.stop()

    summary = outputs.summary(out) | {
        "version": version.version,
        "aliases": list(version.aliases),
        "timings_s": timer.timings,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    context.timings = dict(timer.timings)
    report_path = _write_report(context, run_dir / "report.html")
    summary_path = run_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    _mirror_to_mlflow(outputs.run_record(out), run_dir, reporter)
    return RunResult(
        run_id=run_id,
        model_name=spec.name,
        version=version.version,
        aliases=list(version.aliases),
        task=task.subtype,
        metric=metric.name,
        test_metrics=evaluation.metrics,
        cv_score=out.cv,
        best=out.best,
        threshold=threshold,
        validation=prepared.report.to_dict(),
        trials=result.counts,
        report_path=str(report_path),
        summary_path=str(summary_path),
        registry=hide_password(workspace.registry_uri),
        timings=dict(timer.timings),
        notes=list(prepared.notes),
    )


def _write_profile(out: outputs.Outcome, path: Path) -> None:
    """The training rows' profile plus the held-out predictions' (positive-class
    probability, or value), for drift checks against live traffic."""
    from forgeml.monitoring import PREDICTION_COLUMN

    profile = out.prepared.profile
    if profile is None:
        return
    raw = out.test_pred
    if raw is not None and len(raw) > 0:
        raw = np.asarray(raw, dtype=np.float64)
        if raw.ndim == 1:
            profile = profile.with_numeric(PREDICTION_COLUMN, raw)
        elif raw.shape[1] == 2:
            profile = profile.with_numeric(PREDICTION_COLUMN, raw[:, 1])
    path.write_text(json.dumps(profile.to_dict()))


def _register(out: outputs.Outcome, workspace: Workspace, timings: dict[str, float]) -> Any:
    """Save the bundle with its report and summary, then commit run + version at once."""
    from forgeml import monitoring
    from forgeml.models.bundle import make_bundle
    from forgeml.registry import NewVersion

    spec, prepared = out.spec, out.prepared
    bundle = make_bundle(
        prepared.fitted,
        out.estimator,
        prepared.task,
        threshold=out.threshold if out.threshold is not None else 0.5,
        metadata={"run_id": out.run_id, "seed": spec.seed, "name": spec.name},
        datetime_formats={
            name: column.datetime_format
            for name, column in spec.columns.items()
            if column.datetime_format and name in prepared.fitted.input_columns
        },
        ignored_columns=[
            name
            for name in prepared.report.column_types
            if name not in prepared.fitted.input_columns
        ],
    )
    context = outputs.report_context(out, timings)
    aliases, if_absent = _aliases(spec)
    with tempfile.TemporaryDirectory(prefix="forgeml-stage-") as staging_root:
        staging = Path(staging_root) / "model"
        bundle.save(staging)
        # The report and summary travel with the model, inside its verified artifacts.
        _write_report(context, staging / "report.html")
        summary = json.dumps(outputs.summary(out), indent=2, default=str)
        (staging / "summary.json").write_text(summary)
        _write_profile(out, staging / monitoring.PROFILE_FILE)
        with workspace.open_registry(create=True) as registry:
            commit = registry.commit_run(
                outputs.run_record(out),
                NewVersion(
                    name=spec.name,
                    source_dir=staging,
                    metrics={k: float(v) for k, v in out.evaluation.metrics.items()},
                    lineage={
                        "run_id": out.run_id,
                        "fingerprint": prepared.report.fingerprint.to_dict(),
                        "seed": spec.seed,
                        "spec": dump_spec(redacted_spec(spec)),
                        "library_versions": out.versions,
                    },
                    aliases=aliases,
                    aliases_if_absent=if_absent,
                ),
            )
    version = commit.version
    assert version is not None
    context.version = version.version
    context.registry = {
        "uri": hide_password(workspace.registry_uri),
        "ref": f"{spec.name}@{version.version}",
        "aliases": list(version.aliases),
    }
    return version, context


def _write_report(context: Any, path: Path) -> Path:
    from forgeml.evaluation import write_report

    return write_report(context, path)


def _class_weights(spec: Spec, classification: bool) -> list[str] | None:
    if not classification:
        return None
    return {"auto": ["none", "balanced"], "balanced": ["balanced"], "none": ["none"]}[
        spec.tuning.class_weight
    ]


def result_trial(result: Any, number: int) -> Any:
    return next(t for t in result.trials if t.number == number)


def _ensemble(spec: Spec, result: Any, prepared: Any) -> list[tuple[int, float]]:
    """The trials the final model averages, with weights (the best alone when averaging
    does not improve the out-of-fold metric)."""
    from forgeml.tuning import select_ensemble

    top = [t for t in result.top_complete(spec.tuning.ensemble) if t.number in result.oofs]
    candidates = [(t.number, float(t.value), result.oofs[t.number]) for t in top]
    if not candidates:
        return [(result.best.number, 1.0)]
    return select_ensemble(
        candidates,
        prepared.y_tune,
        result.metric.name,
        prepared.task.subtype,
        max_members=spec.tuning.ensemble,
    )


def _refit(
    spec: Spec, result: Any, prepared: Any, members: list[tuple[int, float]]
) -> tuple[Any, float | None]:
    """The chosen configuration(s) trained on every training row, and the threshold;
    LightGBM, XGBoost and mlp configurations data-parallel on Ray Train workers when the
    spec asks for it (the mlp with PyTorch DDP)."""
    from functools import partial

    from forgeml.engine import cpu_count
    from forgeml.evaluation import best_threshold
    from forgeml.models import FittedEnsemble, balanced_weights, get_adapter
    from forgeml.models.lightgbm_model import LightGBMAdapter
    from forgeml.models.torch_mlp import TorchMLPAdapter
    from forgeml.models.xgboost_model import XGBoostAdapter
    from forgeml.tuning import refit_params

    task, y = prepared.task, prepared.y_train
    workers = _distributed_workers(spec, len(y))
    fitted, distributed = [], 0
    for number, _ in members:
        trial = result_trial(result, number)
        adapter = get_adapter(trial.model)
        params = refit_params(trial)
        fit = adapter.fit
        if workers and isinstance(adapter, LightGBMAdapter | XGBoostAdapter | TorchMLPAdapter):
            from forgeml.engine import ray_train

            if isinstance(adapter, LightGBMAdapter):
                remote: Any = ray_train.train_lightgbm_distributed
            elif isinstance(adapter, XGBoostAdapter):
                remote = ray_train.train_xgboost_distributed
            else:
                remote = ray_train.train_torch_distributed
            fit = partial(adapter.fit_distributed, train=partial(remote, workers=workers))
            distributed += 1
        fitted.append(
            fit(
                prepared.X_train,
                y,
                subtype=task.subtype,
                n_classes=task.n_classes,
                params=params,
                seed=spec.seed,
                threads=cpu_count(),
                sample_weight=balanced_weights(y) if trial.class_weight == "balanced" else None,
            )
        )
    if distributed:
        of = f" ({distributed} of {len(members)} ensemble members)" if len(members) > 1 else ""
        prepared.notes.append(f"final model trained data-parallel on {workers} Ray workers{of}")
    weights = [w for _, w in members]
    estimator = fitted[0] if len(fitted) == 1 else FittedEnsemble(fitted, weights)
    threshold: float | None = None
    if task.is_binary and spec.tuning.threshold != "none":
        # Tuned on out-of-fold predictions: the test set stays untouched until evaluation.
        oof = sum(w * result.oofs.get(n, result.best_oof) for n, w in members)
        covered = ~np.isnan(oof[:, 1])
        threshold = best_threshold(
            prepared.y_tune[covered], oof[covered, 1], metric=spec.tuning.threshold
        )
    return estimator, threshold


def _distributed_workers(spec: Spec, n_rows: int) -> int:
    """Ray Train workers for the final LightGBM/XGBoost/mlp fit of ``n_rows`` rows (0: train
    locally)."""
    engine = spec.engine
    wanted = engine.distributed_training == "always" or (
        engine.distributed_training == "auto" and n_rows >= engine.distributed_min_rows
    )
    return engine.train_workers if engine.kind == "ray" and wanted else 0


def _refit_scale(prepared: Any) -> float:
    """How many validation folds' worth of time the final refit is expected to take: it
    trains on every training row, each fold on a fraction of the tuning rows."""
    folds = prepared.tune_folds or prepared.folds
    fold_rows = float(np.mean([len(train) for train, _ in folds]))
    return 1.1 * len(prepared.y_train) / max(fold_rows, 1.0)


def _aliases(spec: Spec) -> tuple[list[str], list[str]]:
    policy = spec.registry.promote
    if policy == "always":
        return ["champion", "challenger"], []
    if policy == "never":
        return ["challenger"], []
    return ["challenger"], ["champion"]


def _write_failure(run_dir: Path, run_id: str, exc: ForgeError) -> None:
    """Leave the reason (and the validation summary, when there is one) next to the
    quarantined rows; never let this hide the original error."""
    evidence: dict[str, Any] = {
        "run_id": run_id,
        "status": "failed",
        "error": str(exc),
        "error_type": type(exc).__name__,
        "exit_code": exc.exit_code,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report = getattr(exc, "report", None)
    if report is not None and hasattr(report, "to_dict"):
        evidence["validation"] = report.to_dict()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "failure.json").write_text(json.dumps(evidence, indent=2, default=str))
    except OSError:
        pass


def _mirror_to_mlflow(record: Any, run_dir: Path, reporter: Reporter) -> None:
    import os

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return
    from forgeml.registry.mlflow_mirror import mirror_run

    try:
        mlflow_run = mirror_run(record, run_dir)
    except ForgeError as exc:  # the model is registered; MLflow is a mirror, not the record
        reporter.warn(f"could not mirror the run to MLflow: {exc}")
        return
    if mlflow_run:
        reporter.info(f"logged to MLflow as run {mlflow_run}")
