"""One tuning trial, run inside a worker: cross-validate one configuration.

Everything a trial needs arrives in a picklable :class:`TrialTask` plus the shared arrays
(``X``, ``y`` and the fold indices), so the same function runs on any executor backend.
Pruning uses Optuna's own :class:`~optuna.pruners.MedianPruner` against a *snapshot* of the
trials finished when this one was submitted — not the live study — so a seeded search with
a trial budget takes the same decisions however fast the workers are.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from forgeml.engine import SharedHandle

__all__ = ["PruneSnapshot", "TrialOutcome", "TrialTask", "fold_keys", "run_trial"]

TrialState = Literal["complete", "pruned", "failed"]


def fold_keys(i: int) -> tuple[str, str]:
    """Names of fold ``i``'s train and validation index arrays in the shared data."""
    return f"fold{i}_train", f"fold{i}_valid"


@dataclass(frozen=True)
class PruneSnapshot:
    """Finished trials (Optuna ``FrozenTrial`` objects) the pruner compares against."""

    direction: Literal["minimize", "maximize"]
    trials: list[Any]
    startup_trials: int


@dataclass(frozen=True)
class TrialTask:
    number: int
    model: str
    params: dict[str, Any]
    class_weight: str
    subtype: str
    n_classes: int
    metric: str
    n_folds: int
    seed: int
    threads: int
    early_stopping_rounds: int
    deadline: float | None = None  # wall-clock time after which no new fold starts
    prune: PruneSnapshot | None = None


@dataclass
class TrialOutcome:
    number: int
    state: TrialState
    value: float | None
    fold_values: list[float] = field(default_factory=list)
    best_iterations: list[int | None] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None
    note: str | None = None
    oof: np.ndarray | None = None  # out-of-fold predictions (NaN where never validated)


def _pruner_trial(snapshot: PruneSnapshot) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=snapshot.direction,
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=snapshot.startup_trials, n_warmup_steps=0
        ),
    )
    study.add_trials(snapshot.trials)
    return study.ask()


def run_trial(task: TrialTask, shared: SharedHandle) -> TrialOutcome:
    """Cross-validate ``task``'s configuration; never raises for a failing configuration."""
    from forgeml.models import balanced_weights, get_adapter
    from forgeml.tasks.metrics import score

    started = time.monotonic()
    data = shared.load()
    X, y = data["X"], np.asarray(data["y"])
    n_rows = y.shape[0]
    oof_shape = (n_rows, task.n_classes) if task.subtype != "regression" else (n_rows,)
    oof = np.full(oof_shape, np.nan, dtype=np.float32)
    outcome = TrialOutcome(task.number, "complete", None, oof=oof)
    pruner = _pruner_trial(task.prune) if task.prune is not None else None
    try:
        adapter = get_adapter(task.model)
        for i in range(task.n_folds):
            if i > 0 and task.deadline is not None and time.time() > task.deadline:
                outcome.state, outcome.note = "pruned", "time budget reached"
                break
            train_key, valid_key = fold_keys(i)
            tr, va = np.asarray(data[train_key]), np.asarray(data[valid_key])
            weights = balanced_weights(y[tr]) if task.class_weight == "balanced" else None
            eval_set = (X[va], y[va]) if adapter.supports_early_stopping else None
            estimator = adapter.fit(
                X[tr],
                y[tr],
                subtype=task.subtype,
                n_classes=task.n_classes,
                params=task.params,
                seed=task.seed,
                threads=task.threads,
                sample_weight=weights,
                eval_set=eval_set,
                early_stopping_rounds=task.early_stopping_rounds if eval_set else None,
            )
            pred = estimator.predict(X[va])
            oof[va] = pred
            outcome.fold_values.append(score(task.metric, y[va], pred, task.subtype))
            outcome.best_iterations.append(estimator.best_iteration)
            if pruner is not None and i < task.n_folds - 1:
                pruner.report(float(np.mean(outcome.fold_values)), i)
                if pruner.should_prune():
                    outcome.state, outcome.note = "pruned", f"pruned after fold {i + 1}"
                    break
    except MemoryError:
        outcome.state, outcome.error = "failed", "out of memory"
    except Exception as exc:  # one bad configuration must not stop the search
        outcome.state = "failed"
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.note = traceback.format_exc(limit=3)
    if outcome.fold_values and outcome.state != "failed":
        outcome.value = float(np.mean(outcome.fold_values))
        if not np.isfinite(outcome.value):
            outcome.state, outcome.error = "failed", f"metric {task.metric} is not finite"
    elif outcome.state != "failed":
        outcome.state, outcome.error = "failed", "no fold finished"
    outcome.duration_s = time.monotonic() - started
    return outcome
