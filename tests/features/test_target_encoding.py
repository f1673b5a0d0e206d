"""Target encoding: smoothed means by hand, out-of-fold training values, unseen -> prior."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from forgeml.config.spec import CategoricalSpec, ColumnFeatureSpec, ColumnType, FeaturesSpec
from forgeml.features import FeaturePipeline
from forgeml.tasks.info import TaskInfo

from .conftest import Flights

M = 2.0
SPEC = FeaturesSpec(
    categorical=CategoricalSpec(target_smoothing=M),
    columns={"c": ColumnFeatureSpec(encoders=["target"])},
)
FRAME = pl.DataFrame({"c": ["a", "a", "a", "b", "b", None, "a", "b"]})


def smoothed(values: np.ndarray, prior: float) -> float:
    return float((values.sum() + M * prior) / (len(values) + M))


def by_hand(c: np.ndarray, y: np.ndarray, probe: list[str | None]) -> list[float]:
    prior = float(y.mean())
    return [smoothed(y[c == v], prior) if v is not None and v in set(c) else prior for v in probe]


@pytest.mark.parametrize(
    "task",
    [TaskInfo("regression"), TaskInfo("classification", classes=("no", "yes"))],
)
def test_in_sample_mapping_matches_hand_computation(task: TaskInfo) -> None:
    y = np.array([1, 0, 1, 1, 1, 0, 0, 1])
    y = y.astype(float) * 3.5 if task.kind == "regression" else y
    fitted = FeaturePipeline(SPEC, {"c": "string"}, task).fit(FRAME, y)
    assert fitted.feature_names == ["c__te", "c__missing"]
    probe = ["a", "b", "zzz", None]
    out = fitted.transform(pl.DataFrame({"c": probe}))[:, 0]
    target = y.astype(float)
    np.testing.assert_allclose(out, by_hand(FRAME["c"].to_numpy(), target, probe), rtol=1e-6)


def test_multiclass_has_one_column_per_class() -> None:
    task = TaskInfo("classification", classes=("x", "y", "z"))
    y = np.array([0, 1, 2, 2, 1, 0, 0, 2])
    fitted = FeaturePipeline(SPEC, {"c": "string"}, task).fit(FRAME, y)
    assert fitted.feature_names == ["c__te_x", "c__te_y", "c__te_z", "c__missing"]
    out = fitted.transform(pl.DataFrame({"c": ["b", "new"]}))
    c = FRAME["c"].to_numpy()
    for k in range(3):
        expected = by_hand(c, (y == k).astype(float), ["b", "new"])
        np.testing.assert_allclose(out[:, k], expected, rtol=1e-6)
    np.testing.assert_allclose(out[:, :3].sum(axis=1), 1.0, rtol=1e-6)


def test_out_of_fold_uses_only_other_folds() -> None:
    task = TaskInfo("regression")
    y = np.array([1.0, 0.0, 4.0, 1.0, 2.0, 0.0, 8.0, 1.0])
    folds = [
        (np.array([4, 5, 6, 7]), np.array([0, 1, 2, 3])),
        (np.array([0, 1, 2, 3]), np.array([4, 5, 6])),
    ]
    fitted, X = FeaturePipeline(SPEC, {"c": "string"}, task).fit_transform(FRAME, y, folds=folds)
    c = FRAME["c"].to_numpy()
    expected = np.empty(8)
    for train, valid in folds:
        expected[valid] = by_hand(c[train], y[train], list(c[valid]))
    expected[7] = fitted.transform(FRAME[7:])[0, 0]  # row 7 is in no validation fold
    np.testing.assert_allclose(X[:, 0], expected, rtol=1e-6)
    # the saved mapping uses all rows
    np.testing.assert_allclose(fitted.transform(FRAME)[:, 0], by_hand(c, y, list(c)), rtol=1e-6)


def test_default_folds_are_seeded_and_differ_from_in_sample(flights: Flights) -> None:
    frame, y, task = flights
    types: dict[str, ColumnType] = {"dest": "string", "tailnum": "string"}
    data = frame.select(list(types))
    runs = [
        FeaturePipeline(FeaturesSpec(), types, task, seed=s).fit_transform(data, y)
        for s in (0, 0, 1)
    ]
    (f0, x0), (_, x0_again), (_, x1) = runs
    te_cols = [i for i, n in enumerate(f0.feature_names) if n.endswith("__te")]
    assert len(te_cols) == 2
    np.testing.assert_array_equal(x0, x0_again)
    assert not np.array_equal(x0[:, te_cols], x1[:, te_cols])
    in_sample = f0.transform(data)
    assert not np.array_equal(x0[:, te_cols], in_sample[:, te_cols])
    others = [i for i in range(len(f0.feature_names)) if i not in te_cols]
    np.testing.assert_array_equal(x0[:, others], in_sample[:, others])
    # Out-of-fold encodings are less optimistic: weaker correlation with the target.
    known = y >= 0
    corr_oof = np.corrcoef(x0[known, te_cols[1]], y[known])[0, 1]
    corr_in = np.corrcoef(in_sample[known, te_cols[1]], y[known])[0, 1]
    assert corr_oof < corr_in


def test_rows_without_a_target_are_ignored() -> None:
    task = TaskInfo("classification", classes=(0, 1))
    y = np.array([1, 1, -1, 0, 0, 0, -1, 1])
    fitted = FeaturePipeline(SPEC, {"c": "string"}, task).fit(FRAME, y)
    valid = y >= 0
    expected = by_hand(FRAME["c"].to_numpy()[valid], y[valid].astype(float), ["a"])
    np.testing.assert_allclose(
        fitted.transform(pl.DataFrame({"c": ["a"]}))[0, 0], expected, rtol=1e-6
    )
