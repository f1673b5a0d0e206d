"""Ensembles: saved member by member, loaded with every member checked, never nested."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.errors import ArtifactIntegrityError, UsageError
from forgeml.models import FittedEnsemble, get_adapter, load_estimator
from forgeml.tasks import encode_target, score
from forgeml.tuning import select_ensemble


@pytest.fixture(scope="module")
def members(breast_cancer: pl.DataFrame):
    X = breast_cancer.drop("diagnosis").to_numpy().astype(np.float32)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y, _ = encode_target(breast_cancer["diagnosis"].to_numpy(), "classification")
    lgbm = get_adapter("lightgbm").fit(
        X, y, subtype="binary", n_classes=2, seed=0, params={"n_estimators": 50}
    )
    linear = get_adapter("linear").fit(X, y, subtype="binary", n_classes=2, seed=0, params={})
    return X, y, lgbm, linear


def test_predicts_the_weighted_average_and_round_trips(tmp_path: Path, members) -> None:
    X, _, lgbm, linear = members
    ensemble = FittedEnsemble([lgbm, linear], [3.0, 1.0])
    assert ensemble.weights == [0.75, 0.25]
    np.testing.assert_allclose(
        ensemble.predict(X), 0.75 * lgbm.predict(X) + 0.25 * linear.predict(X)
    )
    files = ensemble.save(tmp_path)
    assert files == ["member-0/estimator.lightgbm.txt", "member-1/estimator.linear.json"]
    meta = json.loads(json.dumps(ensemble.to_meta()))
    again = load_estimator(tmp_path, meta)
    np.testing.assert_array_equal(again.predict(X), ensemble.predict(X))
    importance = again.feature_importance()
    assert (
        importance is not None
        and importance.shape == (X.shape[1],)
        and np.isclose(importance.sum(), 1.0)
    )


def test_loading_checks_every_member(tmp_path: Path, members) -> None:
    _, _, lgbm, linear = members
    ensemble = FittedEnsemble([lgbm, linear], [0.5, 0.5])
    ensemble.save(tmp_path)
    meta = ensemble.to_meta()
    escape = json.loads(json.dumps(meta))
    escape["members"][0]["dir"] = "../elsewhere"
    with pytest.raises(ArtifactIntegrityError, match="member folder"):
        load_estimator(tmp_path, escape)
    nested = json.loads(json.dumps(meta))
    nested["members"][0]["adapter"] = "ensemble"
    with pytest.raises(ArtifactIntegrityError, match="nested"):
        load_estimator(tmp_path, nested)
    bad_weights = json.loads(json.dumps(meta)) | {"weights": [1.0, -1.0]}
    with pytest.raises(ArtifactIntegrityError, match="weights"):
        load_estimator(tmp_path, bad_weights)
    target = tmp_path / "member-1" / "estimator.linear.json"
    target.write_text(target.read_text().replace("0", "1", 1))
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load_estimator(tmp_path, meta)


def test_construction_rules(members) -> None:
    _, _, lgbm, linear = members
    with pytest.raises(UsageError):
        FittedEnsemble([], [])
    with pytest.raises(UsageError):
        FittedEnsemble([FittedEnsemble([lgbm], [1.0])], [1.0])
    with pytest.raises(UsageError, match="positive"):
        FittedEnsemble([lgbm, linear], [1.0, 0.0])


@given(st.integers(0, 2**32 - 1), st.integers(2, 5))
def test_selection_never_scores_worse_than_the_best_member(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 80)
    y[:2] = [0, 1]
    candidates = []
    for i in range(n):
        p1 = np.clip(0.5 * y + rng.normal(0.25, 0.3, len(y)), 0, 1)
        oof = np.column_stack([1 - p1, p1])
        candidates.append((i, score("roc_auc", y, oof, "binary"), oof))
    picked = select_ensemble(candidates, y, "roc_auc", "binary", max_members=3)
    assert 1 <= len(picked) <= 3 and np.isclose(sum(w for _, w in picked), 1.0)
    blend = sum(w * candidates[i][2] for i, w in picked)
    assert score("roc_auc", y, blend, "binary") >= max(c[1] for c in candidates) - 1e-9
