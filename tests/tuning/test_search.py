"""Tuning: budgets, determinism, pruning and failures, on real data through real executors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.model_selection import StratifiedKFold

from forgeml.config.spec import CandidateSpec, SearchParam
from forgeml.engine import InlineExecutor, LocalExecutor
from forgeml.errors import TrainingError
from forgeml.models import get_adapter
from forgeml.tasks import encode_target, resolve_metric
from forgeml.tuning import build_space, refit_params, search


def _data(frame: pl.DataFrame, target: str, folds: int = 3):
    X = frame.drop(target).to_numpy().astype(np.float32)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    y, info = encode_target(frame[target].to_numpy(), "classification")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    return np.ascontiguousarray(X), y, info, list(splitter.split(X, y))


def _spaces(names: list[str], subtype: str, **search: dict[str, SearchParam]):
    out = []
    for name in names:
        adapter = get_adapter(name)
        out.append(
            build_space(
                CandidateSpec(name=name, search=search.get(name, {})),
                adapter.search_space(subtype, 500),
                adapter.default_params(subtype),
                field_path="models.candidates",
            )
        )
    return out


def _run(X, y, info, folds, executor, **kw):
    params = {
        "X": X,
        "y": y,
        "folds": folds,
        "subtype": info.subtype,
        "n_classes": info.n_classes,
        "candidates": _spaces(["lightgbm", "linear"], info.subtype),
        "metric": resolve_metric(None, info.subtype),
        "executor": executor,
        "seed": 0,
        "max_trials": 6,
        "max_seconds": None,
        "startup_trials": 2,
    }
    params.update(kw)
    return search(**params)


def test_trial_budget_with_seed_is_reproducible(breast_cancer: pl.DataFrame) -> None:
    X, y, info, folds = _data(breast_cancer, "diagnosis")
    with LocalExecutor(n_workers=2) as ex:
        first = _run(X, y, info, folds, ex)
    with LocalExecutor(n_workers=2) as ex:
        second = _run(X, y, info, folds, ex)
    assert first.mode == "ordered"
    assert [t.to_dict() | {"duration_s": 0, "finished_at_s": 0} for t in first.trials] == [
        t.to_dict() | {"duration_s": 0, "finished_at_s": 0} for t in second.trials
    ]
    np.testing.assert_array_equal(first.best_oof, second.best_oof)
    assert len(first.trials) == 6


def test_first_trials_are_each_candidates_defaults(breast_cancer: pl.DataFrame) -> None:
    X, y, info, folds = _data(breast_cancer, "diagnosis")
    result = _run(X, y, info, folds, InlineExecutor(), max_trials=3)
    assert [t.model for t in result.trials[:2]] == ["lightgbm", "linear"]
    defaults = get_adapter("lightgbm").default_params("binary")
    for key, value in result.trials[0].params.items():
        if key in defaults:
            assert value == defaults[key]
    assert result.best.value is not None and result.best.value > 0.95  # real AUC on real data
    assert result.leaderboard()[0]["number"] == result.best.number


def test_time_budget_stops_and_still_returns_a_model(breast_cancer: pl.DataFrame) -> None:
    X, y, info, folds = _data(breast_cancer, "diagnosis")
    result = _run(X, y, info, folds, InlineExecutor(), max_trials=None, max_seconds=0.01)
    assert result.mode == "eager"
    assert result.counts["complete"] >= 1 and len(result.trials) <= 2


def test_pruning_stops_poor_trials_early(wine: pl.DataFrame) -> None:
    X, y, info, folds = _data(wine, "cultivar", folds=5)
    # A space with deliberately poor corners so the median rule has something to prune.
    spaces = _spaces(
        ["linear"], info.subtype, linear={"C": SearchParam(low=1e-6, high=10.0, log=True)}
    )
    result = _run(
        X, y, info, folds, InlineExecutor(), candidates=spaces, max_trials=30, startup_trials=3
    )
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert pruned, "expected the median pruner to stop some trials"
    assert all(len(t.fold_values) < 5 for t in pruned)


def test_failing_configurations_are_recorded_not_fatal(breast_cancer: pl.DataFrame) -> None:
    X, y, info, folds = _data(breast_cancer, "diagnosis")
    bad = _spaces(["lightgbm"], info.subtype)[0]
    space = {k: v for k, v in bad.space.items() if k != "num_leaves"}
    broken = type(bad)(bad.name, space, {**bad.fixed, "num_leaves": -5}, {})
    with pytest.raises(TrainingError, match="no trial completed"):
        _run(X, y, info, folds, InlineExecutor(), candidates=[broken], max_trials=2)
    good = _spaces(["linear"], info.subtype)[0]
    result = _run(X, y, info, folds, InlineExecutor(), candidates=[broken, good], max_trials=3)
    states = {t.model: t.state for t in result.trials}
    assert states["lightgbm"] == "failed" and result.best.model == "linear"
    assert any(t.error for t in result.trials if t.state == "failed")


def test_refit_uses_early_stopped_rounds(breast_cancer: pl.DataFrame) -> None:
    X, y, info, folds = _data(breast_cancer, "diagnosis")
    result = _run(X, y, info, folds, InlineExecutor(), max_trials=1)
    best = result.best
    assert best.model == "lightgbm" and all(best.best_iterations)
    assert refit_params(best)["n_estimators"] == round(np.mean(best.best_iterations) * 1.1)


def test_time_budget_aborts_trials_that_run_past_it(flights_sample: pl.DataFrame) -> None:
    frame = flights_sample.select("dep_delay", "distance", "hour", "month", "late").drop_nulls()
    X, y, info, folds = _data(frame, "late", folds=2)
    slow = _spaces(["random_forest"], info.subtype)[0]
    # A forest far too big for the budget: without a hard stop it would run for minutes.
    slow = type(slow)(slow.name, {}, {**slow.fixed, "n_estimators": 5000, "max_depth": None}, {})
    fast = _spaces(["linear"], info.subtype)[0]
    with LocalExecutor(n_workers=2) as ex:
        result = _run(
            X, y, info, folds, ex, candidates=[fast, slow], max_trials=None, max_seconds=3.0
        )
    forest = [t for t in result.trials if t.model == "random_forest"]
    assert forest and all(t.state == "pruned" for t in forest)
    assert forest[0].note == "stopped at the end of the time budget"
    assert result.best.model == "linear"


def test_time_budget_reserves_the_expected_refit(breast_cancer: pl.DataFrame) -> None:
    X, y, info, folds = _data(breast_cancer, "diagnosis")
    # An enormous expected refit leaves no time to search beyond the first trial.
    result = _run(
        X, y, info, folds, InlineExecutor(), max_trials=None, max_seconds=60.0, refit_scale=1e9
    )
    assert len(result.trials) == 1 and result.counts["complete"] == 1
    relaxed = _run(
        X, y, info, folds, InlineExecutor(), max_trials=4, max_seconds=60.0, refit_scale=1.0
    )
    assert len(relaxed.trials) == 4


def test_a_search_where_everything_fails_gives_up_early(breast_cancer: pl.DataFrame) -> None:
    X, y, info, folds = _data(breast_cancer, "diagnosis")
    bad = _spaces(["lightgbm"], info.subtype)[0]
    space = {k: v for k, v in bad.space.items() if k != "num_leaves"}
    broken = type(bad)(bad.name, space, {**bad.fixed, "num_leaves": -5}, {})
    with pytest.raises(TrainingError, match="no trial completed \\(10 tried\\)"):
        _run(
            X,
            y,
            info,
            folds,
            InlineExecutor(),
            candidates=[broken],
            max_trials=None,
            max_seconds=600.0,
        )
