"""The linear candidate: NumPy predictions equal scikit-learn's; convergence; JSON files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression, Ridge

from forgeml.errors import ArtifactIntegrityError
from forgeml.models import balanced_weights, load_estimator
from forgeml.models._artifacts import sha256_bytes


@pytest.mark.parametrize("subtype", ["binary", "multiclass"])
def test_probabilities_equal_sklearn_predict_proba(splits, fitted, subtype) -> None:
    split = splits[subtype]
    reference = LogisticRegression(C=1.0, tol=1e-4, max_iter=1000).fit(
        split.X_train.astype(np.float64), split.y_train
    )
    ours = fitted("linear", subtype).predict(split.X_test)
    np.testing.assert_allclose(ours, reference.predict_proba(split.X_test), rtol=0, atol=1e-6)


def test_regression_equals_sklearn_ridge(splits, fitted) -> None:
    split = splits["regression"]
    reference = Ridge(alpha=1.0).fit(split.X_train.astype(np.float64), split.y_train)
    ours = fitted("linear", "regression").predict(split.X_test)
    np.testing.assert_allclose(ours, reference.predict(split.X_test), rtol=1e-6)


def test_balanced_sample_weights_equal_class_weight_balanced(splits, fit_model) -> None:
    split = splits["binary"]
    ours = fit_model("linear", split, sample_weight=balanced_weights(split.y_train))
    reference = LogisticRegression(tol=1e-4, max_iter=1000, class_weight="balanced").fit(
        split.X_train.astype(np.float64), split.y_train
    )
    np.testing.assert_allclose(
        ours.predict(split.X_test), reference.predict_proba(split.X_test), atol=1e-6
    )


def test_non_convergence_is_recorded_not_warned(splits, fit_model) -> None:
    # Warnings are errors in this suite: a leaked ConvergenceWarning would fail the test.
    est = fit_model("linear", splits["multiclass"], params={"max_iter": 2})
    assert est.to_meta()["converged"] is False
    assert np.isfinite(est.predict(splits["multiclass"].X_test)).all()


def test_a_class_missing_from_the_training_rows_gets_probability_zero(splits, fit_model) -> None:
    split = splits["multiclass"]
    keep = split.y_train != 1
    est = fit_model("linear", split, X=split.X_train[keep], y=split.y_train[keep])
    pred = est.predict(split.X_test)
    assert pred.shape == (split.X_test.shape[0], 3)
    assert (pred[:, 1] == 0).all()
    np.testing.assert_allclose(pred.sum(axis=1), 1.0)


def test_sparse_prediction_after_load(splits, fitted, save_meta, tmp_path) -> None:
    split = splits["multiclass"]
    est = fitted("linear", "multiclass")
    loaded = load_estimator(tmp_path, save_meta(est, tmp_path))
    np.testing.assert_allclose(
        loaded.predict(sp.csr_matrix(split.X_test)), est.predict(split.X_test), atol=1e-12
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(coef=[row[:-1] for row in d["coef"]]),
        lambda d: d.update(intercept=[]),
        lambda d: d.update(classes=[0, 0, 2]),
        lambda d: d.update(classes=[0, 1, 7]),
        lambda d: d.update(kind="ridge"),
        lambda d: d.update(coef="[[1e999]]"),
        lambda d: d.update(coef=[[1, [2]]]),
        lambda d: d.clear(),
    ],
    ids=[
        "short-rows",
        "no-intercept",
        "dup-classes",
        "class-range",
        "kind",
        "string",
        "ragged",
        "empty",
    ],
)
def test_malformed_coefficients_are_refused(splits, fitted, save_meta, tmp_path, edit) -> None:
    meta = save_meta(fitted("linear", "multiclass"), tmp_path)
    (name,) = meta["files"]
    doc = json.loads((tmp_path / name).read_text())
    edit(doc)
    data = json.dumps(doc).encode()
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ArtifactIntegrityError):
        load_estimator(tmp_path, {**meta, "sha256": {name: sha256_bytes(data)}})
