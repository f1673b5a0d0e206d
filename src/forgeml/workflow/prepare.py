"""The data half of a run: validate the sources, encode the target, split, build features.

:func:`prepare` turns a spec (and optional in-memory frames) into everything tuning needs —
feature matrices, encoded targets, folds — plus the validation reports that account for
every input row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from forgeml.config.spec import ColumnSpec, Spec
from forgeml.errors import ConfigError, DataError
from forgeml.workflow.reporting import Reporter

__all__ = ["Prepared", "prepare"]


@dataclass
class Prepared:
    task: Any  # TaskInfo
    reports: list[Any]  # ValidationReport: training source, then the explicit test source
    fitted: Any  # FittedFeatures
    X_train: Any
    y_train: np.ndarray
    X_test: Any
    y_test: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    notes: list[str]
    # Tuning may use a sample of the training rows (``tuning.max_rows``): positions into
    # the training rows, and folds over that sample.
    tune_rows: np.ndarray | None = None
    tune_folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    profile: Any = None  # monitoring.Profile of the raw training rows

    @property
    def X_tune(self) -> Any:
        return self.X_train if self.tune_rows is None else self.X_train[self.tune_rows]

    @property
    def y_tune(self) -> np.ndarray:
        return self.y_train if self.tune_rows is None else self.y_train[self.tune_rows]

    @property
    def report(self) -> Any:
        return self.reports[0]

    @property
    def test_report(self) -> Any | None:
        return self.reports[1] if len(self.reports) > 1 else None


def prepare(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter,
    stage: Any,
    *,
    data: Any = None,
    test_data: Any = None,
) -> Prepared:
    """Validate, split and featurise; ``stage(name, detail)`` marks each step."""
    from forgeml.data import open_source
    from forgeml.features import FeaturePipeline
    from forgeml.tasks.info import encode_target

    stage("validate", spec.data.source or "in-memory frame")
    source = open_source(spec.data, resolve=spec.resolve_path, frame=data)
    valid, report = _validate(spec, source, spec.columns, run_dir / "quarantine.parquet", reporter)
    reports = [report]
    columns: dict[str, Any] = report.column_types
    n_train_rows = valid.height
    if spec.data.test_source is not None or test_data is not None:
        # The test set is validated against the types the training set was read with.
        test_spec = spec.data.model_copy(update={"source": spec.data.test_source})
        test_source = open_source(test_spec, resolve=spec.resolve_path, frame=test_data)
        typed = {
            name: (spec.columns.get(name) or ColumnSpec()).model_copy(update={"type": kind})
            for name, kind in columns.items()
        }
        test_valid, test_report = _validate(
            spec, test_source, typed, run_dir / "quarantine-test.parquet", reporter
        )
        reports.append(test_report)
        valid = pl.concat([valid, test_valid.select(valid.columns)], how="vertical_relaxed")
    notes: list[str] = []
    for rep in reports:
        reporter.info(
            f"{rep.source}: {rep.n_input:,} rows = {rep.n_valid:,} valid + "
            f"{rep.n_quarantined:,} quarantined"
        )
        for warning in rep.warnings:
            reporter.warn(warning)
            notes.append(warning)

    stage("split", "")
    assert spec.task != "recommendation"  # run_spec sends those to recommend_run
    y_all, task = encode_target(
        valid[spec.target].to_numpy(),
        spec.task,
        target=spec.target,
        positive_class=spec.positive_class,
    )
    explicit = None
    if len(reports) > 1:
        explicit = (np.arange(n_train_rows), np.arange(n_train_rows, valid.height))
    train_idx, test_idx, folds, tune = _split(spec, valid, y_all, task.is_classification, explicit)
    reporter.info(
        f"{len(train_idx):,} training rows ({len(folds)} fold{'s' if len(folds) > 1 else ''}), "
        f"{len(test_idx):,} test rows"
    )

    stage("features", "")
    empty = {name for name, col in report.columns.items() if col.null_fraction >= 1.0}
    feature_columns = {
        name: kind
        for name, kind in columns.items()
        if name != spec.target and name not in spec.features.drop and name not in empty
    }
    unknown = [c for c in spec.features.drop if c not in columns]
    if unknown:
        raise ConfigError(f"features.drop: column(s) not in the data: {', '.join(unknown)}")
    y_train, y_test = y_all[train_idx], y_all[test_idx]
    pipeline = FeaturePipeline(spec.features, feature_columns, task, seed=spec.seed)
    fitted, X_train = pipeline.fit_transform(valid[train_idx], y_train, folds=folds)
    X_test = fitted.transform(valid[test_idx])
    if X_train.shape[1] == 0:
        raise DataError("no usable feature: every column is the target, dropped, an id or empty")
    reporter.info(f"{X_train.shape[1]} features from {len(fitted.input_columns)} columns")
    prepared = Prepared(task, reports, fitted, X_train, y_train, X_test, y_test, folds, notes)
    # What drift checks compare live traffic with, so they never re-read the training set.
    from forgeml.monitoring import Profile

    prepared.profile = Profile.build(valid[train_idx], dict(fitted.input_columns))
    if tune is not None:
        prepared.tune_rows, prepared.tune_folds = tune
        reporter.info(
            f"tuning on {len(tune[0]):,} of {len(train_idx):,} training rows "
            f"(tuning.max_rows); the final model uses them all"
        )
    return prepared


def _validate(
    spec: Spec,
    source: Any,
    columns: Mapping[str, ColumnSpec],
    quarantine_path: Path,
    reporter: Reporter,
) -> tuple[pl.DataFrame, Any]:
    from forgeml.data import validate_source

    if spec.validation.quarantine_dir:
        folder = Path(spec.resolve_path(spec.validation.quarantine_dir))
        quarantine_path = folder / f"{quarantine_path.parent.name}-{quarantine_path.name}"
    valid, report = validate_source(
        source,
        columns,
        target=spec.target,
        max_bad_fraction=spec.validation.max_bad_fraction,
        quarantine_path=quarantine_path,
        progress=reporter.rows,
    )
    if valid.height < 2:
        raise DataError(
            f"{source.description}: only {valid.height} valid row(s); nothing to train on"
        )
    return valid, report


Folds = list[tuple[np.ndarray, np.ndarray]]
Strategy = Literal["random", "stratified", "group", "time"]


def _split(
    spec: Spec,
    valid: pl.DataFrame,
    y: np.ndarray,
    classification: bool,
    explicit: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, Folds, tuple[np.ndarray, Folds] | None]:
    """Train/test rows, the folds over the training rows, and — when the training set is
    larger than ``tuning.max_rows`` — the tuning sample with its own folds."""
    from forgeml.data import holdout_split

    split = spec.split
    strategy: Strategy
    if split.strategy == "auto":
        strategy = "stratified" if classification else "random"
    else:
        strategy = split.strategy
    groups = _column(valid, split.group_column, "split.group_column")
    times = _column(valid, split.time_column, "split.time_column")
    if explicit is not None:
        train_idx, test_idx = explicit
    else:
        train_idx, test_idx = holdout_split(
            valid.height,
            strategy=strategy,
            test_size=split.test_size,
            seed=spec.seed,
            y=y if classification else None,
            groups=groups,
            times=times,
        )
    y_tr = y[train_idx] if classification else None
    g_tr = groups[train_idx] if groups is not None else None
    t_tr = times[train_idx] if times is not None else None
    folds = _folds(spec, strategy, len(train_idx), y_tr, g_tr, t_tr)
    limit = spec.tuning.max_rows
    if limit is None or len(train_idx) <= limit:
        return train_idx, test_idx, folds, None
    rows = _sample(strategy, len(train_idx), limit, spec.seed, y_tr, g_tr, t_tr)
    tune_folds = _folds(
        spec,
        strategy,
        len(rows),
        y_tr[rows] if y_tr is not None else None,
        g_tr[rows] if g_tr is not None else None,
        t_tr[rows] if t_tr is not None else None,
    )
    return train_idx, test_idx, folds, (rows, tune_folds)


def _folds(
    spec: Spec,
    strategy: Strategy,
    n: int,
    y: np.ndarray | None,
    groups: np.ndarray | None,
    times: np.ndarray | None,
) -> Folds:
    from forgeml.data import cv_folds

    return cv_folds(
        n,
        strategy=strategy,
        folds=spec.split.folds,
        seed=spec.seed,
        y=y,
        groups=groups,
        times=times,
        validation_size=spec.split.validation_size,
    )


def _sample(
    strategy: str,
    n: int,
    limit: int,
    seed: int,
    y: np.ndarray | None,
    groups: np.ndarray | None,
    times: np.ndarray | None,
) -> np.ndarray:
    """``limit`` of ``n`` training positions, sorted, drawn the way the split draws:
    the most recent rows for time splits, whole groups for group splits, stratified by
    class otherwise."""
    from forgeml.data import holdout_split

    if strategy == "time" and times is not None:
        return np.sort(np.argsort(times, kind="stable")[n - limit :])
    if strategy == "group" and groups is not None:
        rng = np.random.default_rng(seed)
        uniques, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        order = rng.permutation(len(uniques))
        keep = order[: max(1, int(np.searchsorted(np.cumsum(counts[order]), limit, "right")))]
        return np.flatnonzero(np.isin(inverse, keep))
    _, rows = holdout_split(
        n,
        strategy="stratified" if y is not None else "random",
        test_size=limit / n,
        seed=seed,
        y=y,
    )
    return np.sort(rows)


def _column(frame: pl.DataFrame, name: str | None, field_path: str) -> np.ndarray | None:
    if name is None:
        return None
    if name not in frame.columns:
        raise ConfigError(f"{field_path}: column '{name}' is not in the data")
    return frame[name].to_numpy()
