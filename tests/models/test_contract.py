"""The one contract every model adapter passes, for every task subtype it supports.

``case`` is ``(adapter name, subtype)``: binary on breast cancer, multiclass on wine,
regression on diabetes (see conftest). Adapters whose library is missing are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from tests.models.conftest import ROUNDS_PARAM

from forgeml.errors import ArtifactIntegrityError
from forgeml.models import get_adapter, load_estimator
from forgeml.models._artifacts import sha256_bytes
from forgeml.tasks import score


def _check_output(pred: np.ndarray, split: Any) -> None:
    n = split.X_test.shape[0]
    assert pred.dtype == np.float64
    assert np.isfinite(pred).all()
    if split.subtype == "regression":
        assert pred.shape == (n,)
    else:
        assert pred.shape == (n, split.n_classes)
        assert (pred >= 0).all() and (pred <= 1).all()
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-6)


def test_predict_shape_and_probabilities(case, splits, fitted) -> None:
    name, subtype = case
    split = splits[subtype]
    estimator = fitted(name, subtype)
    _check_output(estimator.predict(split.X_test), split)
    assert (estimator.adapter, estimator.subtype) == (name, subtype)
    assert estimator.n_classes == split.n_classes
    assert estimator.n_features == split.n_features


def test_beats_a_trivial_baseline_on_held_out_rows(case, splits, fitted) -> None:
    name, subtype = case
    split = splits[subtype]
    pred = fitted(name, subtype).predict(split.X_test)
    if subtype == "binary":
        assert score("roc_auc", split.y_test, pred, subtype) > 0.95
    elif subtype == "multiclass":
        assert score("accuracy", split.y_test, pred, subtype) > 0.85
        prior = np.bincount(split.y_train, minlength=split.n_classes) / split.y_train.shape[0]
        trivial = score("log_loss", split.y_test, np.tile(prior, (len(split.y_test), 1)), subtype)
        assert score("log_loss", split.y_test, pred, subtype) < 0.5 * trivial
    else:
        trivial = np.full(split.y_test.shape, split.y_train.mean())
        assert score("r2", split.y_test, pred, subtype) > 0.3
        assert score("rmse", split.y_test, pred, subtype) < 0.85 * score(
            "rmse", split.y_test, trivial, subtype
        )


def test_save_load_round_trip_predicts_identically(
    case, splits, fitted, save_meta, tmp_path
) -> None:
    name, subtype = case
    split = splits[subtype]
    estimator = fitted(name, subtype)
    files = estimator.save(tmp_path)
    meta = json.loads(json.dumps(estimator.to_meta()))
    assert sorted(files) == sorted(meta["files"]) == sorted(meta["sha256"])
    assert all((tmp_path / f).is_file() for f in files)
    assert not [p.name for p in tmp_path.iterdir() if p.name not in files]  # no temp files left
    loaded = load_estimator(tmp_path, meta)
    assert type(loaded) is type(estimator)
    np.testing.assert_array_equal(loaded.predict(split.X_test), estimator.predict(split.X_test))
    np.testing.assert_allclose(
        loaded.feature_importance(), estimator.feature_importance(), rtol=1e-5
    )
    assert loaded.to_meta() == meta
    assert loaded.params == estimator.params
    assert loaded.best_iteration == estimator.best_iteration


def test_same_seed_gives_identical_predictions(case, splits, fitted, fit_model) -> None:
    name, subtype = case
    split = splits[subtype]
    again = fit_model(name, split)
    np.testing.assert_array_equal(
        again.predict(split.X_test), fitted(name, subtype).predict(split.X_test)
    )


def test_sparse_input_matches_dense(case, splits, fitted, fit_model) -> None:
    name, subtype = case
    split = splits[subtype]
    dense = fitted(name, subtype)
    sparse_test = sp.csr_matrix(split.X_test)
    expected = dense.predict(split.X_test)
    np.testing.assert_allclose(dense.predict(sparse_test), expected, rtol=0, atol=1e-9)
    from_sparse = fit_model(name, split, X=sp.csr_matrix(split.X_train))
    np.testing.assert_allclose(from_sparse.predict(sparse_test), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(from_sparse.predict(split.X_test), expected, rtol=1e-6, atol=1e-9)


def test_sample_weight_changes_the_model(case, splits, fitted, fit_model) -> None:
    name, subtype = case
    split = splits[subtype]
    base = fitted(name, subtype).predict(split.X_test)
    if subtype == "regression":
        heavy = split.y_train > np.median(split.y_train)
    else:
        heavy = split.y_train == 0
    weights = np.where(heavy, 20.0, 1.0)
    weighted = fit_model(name, split, sample_weight=weights).predict(split.X_test)
    if subtype == "regression":
        assert weighted.mean() > base.mean() + 5.0
    else:
        assert weighted[:, 0].mean() > base[:, 0].mean() + 0.01


def test_feature_importance(case, splits, fitted) -> None:
    name, subtype = case
    importance = fitted(name, subtype).feature_importance()
    assert importance is not None
    assert importance.shape == (splits[subtype].n_features,)
    assert np.isfinite(importance).all() and (importance >= 0).all() and importance.sum() > 0


def test_meta_is_json_before_and_after_save(case, fitted, tmp_path) -> None:
    name, subtype = case
    estimator = fitted(name, subtype)
    before = json.loads(json.dumps(estimator.to_meta()))
    assert before["adapter"] == name and before["subtype"] == subtype
    assert before["format_version"] == 1
    assert {"n_classes", "params", "best_iteration", "files", "sha256"} <= set(before)
    # Parameters recorded are exactly what `fit` accepts back (the bundle refits with them).
    get_adapter(name).resolve_params(before["params"], subtype)


def test_early_stopping_sets_best_iteration(booster_name, splits, fit_model) -> None:
    split = splits["binary"]
    X, y = split.X_train, split.y_train
    cut = int(0.75 * len(y))
    rounds = ROUNDS_PARAM[booster_name]
    params = {rounds: 400, "learning_rate": 0.3 if rounds == "n_estimators" else 0.01}
    stopped = fit_model(
        booster_name,
        split,
        X=X[:cut],
        y=y[:cut],
        params=params,
        eval_set=(X[cut:], y[cut:]),
        early_stopping_rounds=10,
    )
    assert stopped.best_iteration is not None and 1 <= stopped.best_iteration < 400
    # Prediction uses the best round: same as training exactly that many rounds.
    plain = fit_model(
        booster_name,
        split,
        X=X[:cut],
        y=y[:cut],
        params={**params, rounds: stopped.best_iteration},
    )
    assert plain.best_iteration is None
    np.testing.assert_array_equal(stopped.predict(split.X_test), plain.predict(split.X_test))


def test_eval_set_without_patience_trains_every_round(adapter_name, splits, fit_model) -> None:
    split = splits["binary"]
    est = fit_model(adapter_name, split, eval_set=(split.X_test, split.y_test))
    assert est.best_iteration is None


def _tampered(path: Path) -> list[bytes]:
    """Truncated halfway, cut short at the end, empty, and garbage."""
    data = path.read_bytes()
    return [data[: len(data) // 2], data[:-40], b"", b"\x00\xff" * 64]


def test_tampered_files_are_refused(case, fitted, save_meta, tmp_path) -> None:
    name, subtype = case
    estimator = fitted(name, subtype)
    meta = save_meta(estimator, tmp_path)
    (file,) = meta["files"]
    path = tmp_path / file
    original = path.read_bytes()
    for data in _tampered(path):
        path.write_bytes(data)
        with pytest.raises(ArtifactIntegrityError, match="sha256"):
            load_estimator(tmp_path, meta)
        # Even with a matching digest (a forged metadata record) the parser must refuse
        # cleanly: an ArtifactIntegrityError, not a library error or a crash.
        forged = {**meta, "sha256": {file: sha256_bytes(data)}}
        with pytest.raises(ArtifactIntegrityError):
            load_estimator(tmp_path, forged)
        path.write_bytes(original)
    path.unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        load_estimator(tmp_path, meta)


@pytest.mark.parametrize(
    "change",
    [
        {"n_features": 999},
        {"format_version": 99},
        {"adapter": "linear-ish"},
        {"subtype": "ranking"},
        {"n_classes": "three"},
        {"files": ["../../etc/passwd"]},
        {"files": [1, None]},
        {"sha256": None},
        {"best_iteration": -3},
    ],
    ids=lambda c: next(iter(c)),
)
def test_inconsistent_metadata_is_refused(case, fitted, save_meta, tmp_path, change) -> None:
    name, subtype = case
    meta = save_meta(fitted(name, subtype), tmp_path)
    with pytest.raises(ArtifactIntegrityError):
        load_estimator(tmp_path, {**meta, **change})


def test_prediction_threads_change_nothing_but_speed(case, splits, fitted, tmp_path) -> None:
    name, subtype = case
    split = splits[subtype]
    fitted_estimator = fitted(name, subtype)
    fitted_estimator.save(tmp_path)
    # A loaded model, as the server has it (a fresh object: the fixture's stays as it was).
    estimator = load_estimator(tmp_path, json.loads(json.dumps(fitted_estimator.to_meta())))
    everyone = estimator.predict(split.X_test)
    estimator.set_predict_threads(1)
    assert estimator.predict_threads == 1
    np.testing.assert_array_equal(estimator.predict(split.X_test), everyone)
    estimator.set_predict_threads(None)
    np.testing.assert_array_equal(estimator.predict(split.X_test), everyone)
