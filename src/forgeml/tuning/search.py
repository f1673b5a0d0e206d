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

The study lives in memory by default; with ``storage`` (a SQLAlchemy URL: ``sqlite:///file``
or ``postgresql://host/db``) it is an Optuna study in that database under ``study_name``,
every trial written as it is told — so finished trials survive a crash of the driver, and
Optuna's tools (``optuna-dashboard``, ``optuna.load_study``) can read it. Only the driver
talks to the storage; trials run on the executor's workers. The sampler sees the same
history either way, so a seeded ordered search gives the same trials with or without it.

With ``resume``, the search continues the stored study ``study_name`` (a run that died, or
one that wants more trials): its finished trials are kept and count against the trial
budget, trials the earlier run left running are failed and queued again, and the best
earlier trials (as many as an ensemble may hold) are cross-validated again for their
out-of-fold predictions, which the final model and the ensemble need and the study does
not hold.

A trial whose worker process dies is retried by the executor (once, by default); when the
retry dies too, the trial is told as failed with the reason, and the search goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import optuna

from forgeml.config.redact import hide_password
from forgeml.engine import Executor
from forgeml.errors import ConfigError, TrainingError
from forgeml.tasks.metrics import Metric
from forgeml.tuning.space import CandidateSpace, suggest_params
from forgeml.tuning.trial import (
    PruneSnapshot,
    TrialOutcome,
    TrialState,
    TrialTask,
    fold_keys,
    run_trial,
)

__all__ = ["SearchResult", "TrialRecord", "open_study", "search", "storage_url"]


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
    # The Optuna study: its name, and its storage URL (password hidden; None: in memory).
    study_name: str | None = None
    storage: str | None = None

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
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
) -> SearchResult:
    """Search ``candidates`` under the budget and return every trial and the best one.

    ``max_seconds`` covers the search *and* the final refit of the best configuration:
    ``refit_scale`` says how much longer than one validation fold of the best trial that
    refit is expected to take (about: rows refitted / rows per training fold), and the
    search stops early by that much. Raises :class:`TrainingError` when no trial completes.

    ``storage`` keeps the study in a database (see :func:`open_study`) under
    ``study_name``; a name already taken there is a :class:`ConfigError` unless ``resume``
    asks to continue that study.
    """
    if not candidates:
        raise TrainingError("no candidate model to tune")
    with open_study(
        storage,
        study_name,
        direction=metric.direction,
        sampler=_sampler(sampler, seed, startup_trials),
        resume=resume,
    ) as study:
        result = _search(
            study,
            resume=resume,
            X=X,
            y=y,
            folds=folds,
            subtype=subtype,
            n_classes=n_classes,
            candidates=candidates,
            metric=metric,
            executor=executor,
            seed=seed,
            max_trials=max_trials,
            max_seconds=max_seconds,
            refit_scale=refit_scale,
            keep_best=keep_best,
            pruning=pruning,
            startup_trials=startup_trials,
            early_stopping_rounds=early_stopping_rounds,
            class_weights=class_weights,
            on_trial=on_trial,
        )
    result.study_name = study.study_name
    result.storage = hide_password(storage) if storage else None
    return result


def storage_url(url: str, base_dir: Path | None = None) -> str:
    """``url`` as the SQLAlchemy URL Optuna gets: plain ``postgresql://`` (and
    ``postgres://``) go to psycopg 3; a relative SQLite file is resolved against
    ``base_dir`` (default: the working directory) and its folder is created. Raises
    :class:`ConfigError` for anything but SQLite and PostgreSQL URLs.

    >>> storage_url("postgresql://ml:secret@db/optuna")
    'postgresql+psycopg://ml:secret@db/optuna'
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = hide_password(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"tuning.storage: invalid URL {shown!r}: {exc}") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"tuning.storage: unsupported study storage {shown!r}: use sqlite:///<file> "
            "or postgresql://<host>/<db>"
        )
    if driver.startswith("sqlite"):
        database = parsed.database or ""
        if not database or database == ":memory:":
            raise ConfigError(
                f"tuning.storage: {shown!r} names no file; an in-memory study needs no "
                "storage (leave tuning.storage unset)"
            )
        path = (base_dir or Path.cwd()) / Path(database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"tuning.storage: cannot create {path.parent}: {exc}") from None
        parsed = parsed.set(database=str(path.resolve()))
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg2",
}


@contextmanager
def open_study(
    storage: str | None,
    study_name: str | None,
    *,
    direction: Literal["minimize", "maximize"],
    sampler: optuna.samplers.BaseSampler,
    resume: bool = False,
) -> Iterator[optuna.Study]:
    """A new Optuna study, in memory (``storage`` None) or in the database at ``storage``
    under ``study_name`` (a SQLAlchemy URL, see :func:`storage_url`); with ``resume``, the
    existing study of that name. The database's connections are closed on exit. Raises
    :class:`ConfigError` when the database cannot be opened, already holds a new study's
    name, or lacks (or holds with another direction) the study to resume."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if resume and (storage is None or not study_name):
        raise ConfigError(
            "tuning.resume_study: resuming a study needs the storage that holds it "
            "(tuning.storage or --study-storage)"
        )
    if storage is None:
        yield optuna.create_study(direction=direction, sampler=sampler, study_name=study_name)
        return
    import sqlalchemy.exc

    url = storage_url(storage)
    shown = hide_password(storage)
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    try:
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"tuning.storage: cannot open {shown!r}: {first}") from None
    try:
        if resume:
            study = _load_study(rdb, study_name, direction, sampler, shown)
        else:
            try:
                study = optuna.create_study(
                    storage=rdb, study_name=study_name, direction=direction, sampler=sampler
                )
            except optuna.exceptions.DuplicatedStudyError:
                raise ConfigError(
                    f"tuning.storage: {shown!r} already holds a study named {study_name!r} "
                    "(to continue it: tuning.resume_study / --resume-study)"
                ) from None
        yield study
    finally:
        rdb.engine.dispose()


def _load_study(
    rdb: optuna.storages.RDBStorage,
    name: str | None,
    direction: str,
    sampler: optuna.samplers.BaseSampler,
    shown: str,
) -> optuna.Study:
    try:
        study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler)
    except KeyError:
        known = optuna.get_all_study_names(rdb)[-5:]
        raise ConfigError(
            f"tuning.resume_study: {shown!r} holds no study named {name!r}"
            + (f" (latest: {', '.join(known)})" if known else "")
        ) from None
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"tuning.resume_study: study {name!r} was tuned to "
            f"{study.direction.name.lower()} its metric, this run's metric is to {direction}"
        )
    return study


def _search(
    study: optuna.Study,
    *,
    resume: bool,
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
    refit_scale: float,
    keep_best: int,
    pruning: bool,
    startup_trials: int,
    early_stopping_rounds: int,
    class_weights: list[str] | None,
    on_trial: Callable[[TrialRecord, TrialRecord | None], None] | None,
) -> SearchResult:
    spaces = {c.name: c for c in candidates}
    if not study.get_trials(deepcopy=False):  # a resumed study queued them already
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
        _record_attrs(entry.trial, entry.task, outcome)
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
                    finished[n] = _outcome(n, r.future)
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

    order: list[int] = []  # trial numbers in the order they were asked

    def submit() -> None:
        trial = study.ask()
        model, params, weight = suggest_params(trial, spaces, class_weights=class_weights)
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        snapshot = None
        if pruning and len(folds) > 1:
            snapshot = PruneSnapshot(
                metric.direction, list(complete), startup_trials=max(startup_trials, 3)
            )
        task = make_task(trial.number, model, params, weight, snapshot, bool(complete))
        running[trial.number] = _Running(trial, task, executor.submit(run_trial, task, shared))
        order.append(trial.number)

    def make_task(
        number: int,
        model: str,
        params: dict[str, Any],
        weight: str,
        snapshot: PruneSnapshot | None,
        may_stop: bool,
    ) -> TrialTask:
        return TrialTask(
            number=number,
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
            if may_stop and max_seconds is not None
            else None,
            prune=snapshot,
        )

    def restore() -> int:
        """A resumed study's earlier trials into the results (see the module docstring);
        returns how many count against the trial budget."""
        nonlocal best, best_oof
        earlier: list[tuple[Any, TrialTask]] = []
        for frozen in study.get_trials(deepcopy=False):
            if frozen.state.name == "RUNNING":  # its run died: queue it again, fail it
                study.enqueue_trial(frozen.params)
                study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            elif frozen.state.name != "WAITING":
                model, params, weight = _replay_params(frozen, spaces, class_weights)
                earlier.append(
                    (frozen, make_task(frozen.number, model, params, weight, None, False))
                )
        sign = -1.0 if metric.direction == "maximize" else 1.0
        top = {
            f.number
            for f in sorted(
                (f for f, _ in earlier if f.state.name == "COMPLETE" and f.value is not None),
                key=lambda f: (sign * f.value, f.number),
            )[:keep_best]
        }
        rerun = {
            f.number: executor.submit(run_trial, task, shared)
            for f, task in earlier
            if f.number in top
        }
        for frozen, task in earlier:
            outcome = (
                _outcome(frozen.number, rerun[frozen.number]) if frozen.number in rerun else None
            )
            if outcome is None or outcome.state != "complete":
                outcome = _stored_outcome(frozen)
            record = TrialRecord(
                number=frozen.number,
                model=task.model,
                params=_plain(task.params),
                class_weight=task.class_weight,
                state=outcome.state,
                value=outcome.value,
                fold_values=[float(v) for v in outcome.fold_values],
                best_iterations=outcome.best_iterations,
                duration_s=outcome.duration_s,
                finished_at_s=0.0,
                error=outcome.error,
                note="from an earlier run of this study",
            )
            records.append(record)
            told.append(frozen.number)
            if record.state == "complete" and record.value is not None and outcome.oof is not None:
                oofs[frozen.number] = outcome.oof
                if best is None or best.value is None or metric.better(record.value, best.value):
                    best, best_oof = record, outcome.oof
            if on_trial is not None:
                on_trial(record, best)
        return len(earlier)

    asked = restore() if resume else 0
    try:
        if ordered:
            while budget_left(asked):
                if len(order) >= workers:
                    oldest = order[len(order) - workers]
                    wait_for(oldest)
                    tell(oldest)
                submit()
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
                    submit()
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


def _outcome(number: int, future: Future[TrialOutcome]) -> TrialOutcome:
    """The trial's outcome; a future that raises means the trial never reported (its
    worker died, also on the executor's retry): a failed trial, with the reason."""
    try:
        return future.result()
    except Exception as exc:  # run_trial itself never raises
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        lost = isinstance(exc, BrokenExecutor) or type(exc).__name__ in _WORKER_LOST
        what = "the trial's worker was lost" if lost else "the trial could not run"
        return TrialOutcome(number, "failed", None, error=f"{what} ({reason})")


# Ray's errors for a task whose worker process or node died (engine alone imports ray).
_WORKER_LOST = frozenset({"WorkerCrashedError", "OutOfMemoryError", "NodeDiedError"})


def _record_attrs(trial: optuna.Trial, task: TrialTask, outcome: TrialOutcome) -> None:
    """What the leaderboard shows, also in the study (readable from its storage)."""
    trial.set_user_attr("model", task.model)
    trial.set_user_attr("class_weight", task.class_weight)
    trial.set_user_attr("fold_values", [float(v) for v in outcome.fold_values])
    trial.set_user_attr("best_iterations", list(outcome.best_iterations))
    trial.set_user_attr("duration_s", round(outcome.duration_s, 4))
    if outcome.error:
        trial.set_user_attr("error", outcome.error)
    elif outcome.note and outcome.state == "pruned":
        trial.set_user_attr("note", outcome.note)


def _replay_params(
    frozen: Any, spaces: dict[str, CandidateSpace], class_weights: list[str] | None
) -> tuple[str, dict[str, Any], str]:
    """An earlier trial's ``(model, params, class_weight)``, sampled again from its stored
    parameters; a study tuned over other candidates or spaces is a :class:`ConfigError`."""
    try:
        fixed = optuna.trial.FixedTrial(frozen.params, frozen.number)
        return suggest_params(
            cast(optuna.Trial, fixed),  # answers the same suggest_* calls
            spaces,
            class_weights=class_weights,
        )
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"tuning.resume_study: trial {frozen.number} of the study does not fit this "
            f"spec's candidates and search spaces ({exc}); resume it with the spec it ran with"
        ) from None


def _stored_outcome(frozen: Any) -> TrialOutcome:
    """An earlier trial's outcome as the study recorded it (no out-of-fold predictions)."""
    attrs = frozen.user_attrs
    states: dict[str, TrialState] = {"COMPLETE": "complete", "PRUNED": "pruned"}
    state = states.get(frozen.state.name, "failed")
    error = attrs.get("error") or (None if state != "failed" else "failed in an earlier run")
    return TrialOutcome(
        frozen.number,
        state,
        frozen.value if state == "complete" else None,
        fold_values=list(attrs.get("fold_values", [])),
        best_iterations=list(attrs.get("best_iterations", [])),
        duration_s=float(attrs.get("duration_s", 0.0)),
        error=error,
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
