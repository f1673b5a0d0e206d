"""The search driver: Optuna asks, the executor runs, results are told back.

Two scheduling modes:

* **ordered** (a trial budget and no time budget): trial ``i`` is asked only after trial
  ``i - workers`` has been told, and trials are told in number order. The sampler therefore
  sees exactly the same history at every ``ask`` whatever the timing, and a seeded search
  gives identical trials, models and metrics on every run.
* **eager** (a time budget): a new trial is asked as soon as a worker is free, to use every
  second of the budget. Its trial sequence is the same as the ordered mode's only up to
  where timing starts to matter. Trials stop starting new folds at the budget; trials still
  running a short grace period later are aborted (their workers are stopped) and count as
  pruned — but only once some trial has completed, so there is always a model.

The first trials evaluate each candidate's default configuration (a strong, cheap start,
so even a tiny budget compares every candidate), then TPE takes over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from forgeml.engine import Executor
from forgeml.errors import TrainingError
from forgeml.tasks.metrics import Metric
from forgeml.tuning.space import CandidateSpace, suggest_params
from forgeml.tuning.trial import PruneSnapshot, TrialOutcome, TrialTask, fold_keys, run_trial

__all__ = ["SearchResult", "TrialRecord", "search"]


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial as the leaderboard and the report show it."""

    number: int
    model: str
    params: dict[str, Any]
    class_weight: str
    state: str
    value: float | None
    fold_values: list[float]
    best_iterations: list[int | None]
    duration_s: float
    finished_at_s: float  # seconds since the search started
    error: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "model": self.model,
            "params": self.params,
            "class_weight": self.class_weight,
            "state": self.state,
            "value": self.value,
            "fold_values": self.fold_values,
            "best_iterations": self.best_iterations,
            "duration_s": round(self.duration_s, 4),
            "finished_at_s": round(self.finished_at_s, 4),
            "error": self.error,
            "note": self.note,
        }


@dataclass
class SearchResult:
    metric: Metric
    trials: list[TrialRecord]
    best: TrialRecord
    best_oof: np.ndarray
    elapsed_s: float
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    # Out-of-fold predictions of the best complete trials, for ensemble selection.
    oofs: dict[int, np.ndarray] = field(default_factory=dict)

    def top_complete(self, n: int) -> list[TrialRecord]:
        """The ``n`` best complete trials, best first."""
        sign = -1.0 if self.metric.direction == "maximize" else 1.0
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return sorted(done, key=lambda t: (sign * (t.value or 0.0), t.number))[:n]

    def leaderboard(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Finished trials, best first (complete trials before pruned and failed ones)."""
        sign = -1.0 if self.metric.direction == "maximize" else 1.0
        rank = {"complete": 0, "pruned": 1, "failed": 2}

        def key(t: TrialRecord) -> tuple[int, float, int]:
            value = sign * t.value if t.value is not None else float("inf")
            return rank[t.state], value, t.number

        rows = [t.to_dict() for t in sorted(self.trials, key=key)]
        return rows if limit is None else rows[:limit]


@dataclass
class _Running:
    trial: optuna.Trial
    task: TrialTask
    future: Future[TrialOutcome]


def search(
    *,
    X: Any,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    subtype: str,
    n_classes: int,
    candidates: Sequence[CandidateSpace],
    metric: Metric,
    executor: Executor,
    seed: int,
    max_trials: int | None,
    max_seconds: float | None,
    refit_scale: float = 0.0,
    keep_best: int = 1,
    sampler: str = "tpe",
    pruning: bool = True,
    startup_trials: int = 6,
    early_stopping_rounds: int = 50,
    class_weights: list[str] | None = None,
    on_trial: Callable[[TrialRecord, TrialRecord | None], None] | None = None,
) -> SearchResult:
    """Search ``candidates`` under the budget and return every trial and the best one.

    ``max_seconds`` covers the search *and* the final refit of the best configuration:
    ``refit_scale`` says how much longer than one validation fold of the best trial that
    refit is expected to take (about: rows refitted / rows per training fold), and the
    search stops early by that much. Raises :class:`TrainingError` when no trial completes.
    """
    if not candidates:
        raise TrainingError("no candidate model to tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spaces = {c.name: c for c in candidates}
    study = optuna.create_study(
        direction=metric.direction, sampler=_sampler(sampler, seed, startup_trials)
    )
    for candidate in candidates:
        study.enqueue_trial(candidate.default_trial())

    arrays: dict[str, Any] = {"X": X, "y": y}
    for i, (train_idx, valid_idx) in enumerate(folds):
        train_key, valid_key = fold_keys(i)
        arrays[train_key], arrays[valid_key] = train_idx, valid_idx
    shared = executor.share(arrays)

    ordered = max_seconds is None
    workers = executor.n_workers
    started = time.monotonic()
    wall_offset = time.time() - started
    running: dict[int, _Running] = {}
    finished: dict[int, TrialOutcome] = {}
    records: list[TrialRecord] = []
    told: list[int] = []
    oofs: dict[int, np.ndarray] = {}
    best: TrialRecord | None = None
    best_oof: np.ndarray | None = None

    def tuning_seconds() -> float:
        """The time budget minus what refitting the best ``keep_best`` trials (the most an
        ensemble can hold) is expected to take."""
        assert max_seconds is not None
        sign = -1.0 if metric.direction == "maximize" else 1.0
        top = sorted(
            (r for r in records if r.state == "complete" and r.value is not None),
            key=lambda r: sign * (r.value or 0.0),
        )[:keep_best]
        per_fold = sum(r.duration_s / len(r.fold_values) for r in top if r.fold_values)
        # The refit uses every core, a trial only its worker's share (about 1.5x faster
        # on 2 cores for LightGBM and XGBoost; forests scale better).
        speedup = max(1.0, 0.75 * executor.n_workers)
        return max(0.0, max_seconds - per_fold * refit_scale / speedup)

    give_up_after = max(10, 3 * len(candidates))

    def budget_left(asked: int) -> bool:
        if max_trials is not None and asked >= max_trials:
            return False
        if best is None and sum(r.state == "failed" for r in records) >= give_up_after:
            return False  # every configuration so far failed: more would fail the same way
        return max_seconds is None or time.monotonic() - started < tuning_seconds()

    def tell(number: int) -> None:
        nonlocal best, best_oof
        entry = running.pop(number)
        outcome = finished.pop(number)
        for step, value in enumerate(
            np.cumsum(outcome.fold_values) / np.arange(1, len(outcome.fold_values) + 1)
        ):
            entry.trial.report(float(value), step)
        if outcome.state == "complete":
            study.tell(entry.trial, outcome.value)
        elif outcome.state == "pruned":
            study.tell(entry.trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(entry.trial, state=optuna.trial.TrialState.FAIL)
        record = TrialRecord(
            number=number,
            model=entry.task.model,
            params=_plain(entry.task.params),
            class_weight=entry.task.class_weight,
            state=outcome.state,
            value=outcome.value,
            fold_values=[float(v) for v in outcome.fold_values],
            best_iterations=outcome.best_iterations,
            duration_s=outcome.duration_s,
            finished_at_s=time.monotonic() - started,
            error=outcome.error,
            note=outcome.note if outcome.state != "failed" else None,
        )
        records.append(record)
        told.append(number)
        if record.state == "complete" and record.value is not None and outcome.oof is not None:
            oofs[number] = outcome.oof
            if best is None or best.value is None or metric.better(record.value, best.value):
                best, best_oof = record, outcome.oof
            _keep_top(oofs, records, metric, keep_best)
        if on_trial is not None:
            on_trial(record, best)

    def wait_for(number: int | None) -> None:
        """Collect finished futures; with ``number``, block until that trial is done."""
        while True:
            pending = {r.future for n, r in running.items() if n not in finished}
            for n, r in running.items():
                if n not in finished and r.future.done():
                    finished[n] = r.future.result()
            if number is None or number in finished or not pending:
                return
            wait(pending, return_when=FIRST_COMPLETED)

    def stop_running(note: str) -> None:
        """Abort trials still running past the budget; they count as pruned."""
        executor.abort()
        for number in sorted(running):
            outcome = finished.get(number) or TrialOutcome(number, "pruned", None, note=note)
            if outcome.state == "complete" and outcome.value is None:
                outcome.state = "pruned"
            finished[number] = outcome
            tell(number)

    def submit(number_hint: int) -> None:
        trial = study.ask()
        model, params, weight = suggest_params(trial, spaces, class_weights=class_weights)
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        snapshot = None
        if pruning and len(folds) > 1:
            snapshot = PruneSnapshot(
                metric.direction, list(complete), startup_trials=max(startup_trials, 3)
            )
        task = TrialTask(
            number=trial.number,
            model=model,
            params=params,
            class_weight=weight,
            subtype=subtype,
            n_classes=n_classes,
            metric=metric.name,
            n_folds=len(folds),
            seed=seed,
            threads=executor.threads_per_worker,
            early_stopping_rounds=early_stopping_rounds,
            # The first trials always finish, so a tiny budget still yields a model.
            deadline=started + wall_offset + tuning_seconds()
            if complete and max_seconds is not None
            else None,
            prune=snapshot,
        )
        running[trial.number] = _Running(trial, task, executor.submit(run_trial, task, shared))

    asked = 0
    try:
        if ordered:
            while budget_left(asked):
                oldest = asked - workers
                if oldest >= 0:
                    wait_for(oldest)
                    tell(oldest)
                submit(asked)
                asked += 1
            for number in sorted(running):
                wait_for(number)
                tell(number)
        else:
            while True:
                hard_stop = (
                    tuning_seconds() + _grace(max_seconds) if max_seconds is not None else None
                )
                while len(running) < workers and budget_left(asked):
                    submit(asked)
                    asked += 1
                if not running:
                    break
                elapsed = time.monotonic() - started
                if hard_stop is not None and best is not None and elapsed >= hard_stop:
                    stop_running("stopped at the end of the time budget")
                    break
                timeout = None if hard_stop is None else max(0.05, hard_stop - elapsed)
                wait({r.future for r in running.values()}, timeout, FIRST_COMPLETED)
                wait_for(None)
                for number in sorted(finished):
                    tell(number)
    finally:
        for entry in running.values():
            entry.future.cancel()

    records.sort(key=lambda r: r.number)
    counts = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed")}
    if best is None or best_oof is None:
        errors = sorted({r.error for r in records if r.error})[:3]
        detail = "; ".join(errors) if errors else "the budget ended before any trial finished"
        raise TrainingError(f"no trial completed ({len(records)} tried): {detail}")
    return SearchResult(
        metric=metric,
        trials=records,
        best=best,
        best_oof=best_oof,
        elapsed_s=time.monotonic() - started,
        mode="ordered" if ordered else "eager",
        counts=counts,
        oofs=oofs,
    )


def _keep_top(
    oofs: dict[int, np.ndarray], records: list[TrialRecord], metric: Metric, keep: int
) -> None:
    """Drop out-of-fold predictions of all but the ``keep`` best complete trials."""
    if len(oofs) <= keep:
        return
    sign = -1.0 if metric.direction == "maximize" else 1.0
    value = {r.number: sign * (r.value or 0.0) for r in records if r.number in oofs}
    for number in sorted(oofs, key=lambda n: (value[n], n))[keep:]:
        del oofs[number]


def _grace(max_seconds: float) -> float:
    """How long trials running at the end of a time budget may take to finish (between
    folds they already stop by themselves) before they are aborted."""
    return min(10.0, max(1.0, 0.05 * max_seconds))


def _sampler(kind: str, seed: int, startup_trials: int) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """NumPy scalars to Python scalars so params serialise to JSON."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
