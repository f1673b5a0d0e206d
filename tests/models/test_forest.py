"""The random forest candidate: the skops trust list and checks of every loaded tree."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from forgeml.errors import ArtifactIntegrityError
from forgeml.models import forest, load_estimator, safe_skops
from forgeml.models._artifacts import sha256_bytes


def _replace(tmp_path, meta, data: bytes) -> dict:
    (name,) = meta["files"]
    (tmp_path / name).write_bytes(data)
    return {**meta, "sha256": {name: sha256_bytes(data)}}


@pytest.mark.parametrize(
    ("obj", "named"),
    [
        (FunctionTransformer(np.exp), "FunctionTransformer"),
        (make_pipeline(StandardScaler()), "sklearn.pipeline.Pipeline"),
        ({"f": np.add}, "numpy.add"),
    ],
    ids=["function-transformer", "pipeline", "ufunc"],
)
def test_types_outside_the_trust_list_are_refused(fitted, save_meta, tmp_path, obj, named) -> None:
    # skops itself trusts all of these by default; forgeml's trust list does not.
    assert named.rsplit(".", 1)[-1] not in str(sio.get_untrusted_types(data=sio.dumps(obj)))
    meta = save_meta(fitted("random_forest", "binary"), tmp_path)
    forged = _replace(tmp_path, meta, sio.dumps(obj))
    with pytest.raises(ArtifactIntegrityError, match=f"outside forgeml's trust list: .*{named}"):
        load_estimator(tmp_path, forged)


def test_a_forest_of_the_wrong_kind_is_refused(fitted, save_meta, tmp_path) -> None:
    regressor = fitted("random_forest", "regression")
    meta = save_meta(fitted("random_forest", "binary"), tmp_path)
    forged = _replace(tmp_path, meta, safe_skops.dumps(regressor.model))
    with pytest.raises(
        ArtifactIntegrityError, match="RandomForestRegressor, not a RandomForestClassifier"
    ):
        load_estimator(tmp_path, forged)


def _corrupt_first_tree(model, field: str, value: int):
    tree = model.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    inner = np.flatnonzero(nodes["left_child"] != -1)
    nodes[field][inner[-1]] = value
    state["nodes"] = nodes
    tree.__setstate__(state)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("left_child", 10**6, "child index out of range"),
        ("right_child", 0, "child index out of range"),
        ("left_child", 1, "parents"),
        ("feature", 31, "feature index out of range"),
    ],
)
def test_corrupt_trees_are_refused_before_use(
    splits, fit_model, save_meta, tmp_path, field, value, message
) -> None:
    est = fit_model("random_forest", splits["binary"], params={"n_estimators": 3})
    meta = save_meta(est, tmp_path)
    _corrupt_first_tree(est.model, field, value)
    forged = _replace(tmp_path, meta, safe_skops.dumps(est.model))
    with pytest.raises(ArtifactIntegrityError, match=message):
        load_estimator(tmp_path, forged)


def test_compressed_archives_are_refused(fitted, save_meta, tmp_path) -> None:
    est = fitted("random_forest", "binary")
    meta = save_meta(est, tmp_path)
    buffer = io.BytesIO()
    sio.dump(est.model, buffer, compression=zipfile.ZIP_DEFLATED)
    forged = _replace(tmp_path, meta, buffer.getvalue())
    with pytest.raises(ArtifactIntegrityError, match="compressed"):
        load_estimator(tmp_path, forged)


def test_trust_list_covers_every_forest_configuration(splits, fit_model) -> None:
    split = splits["multiclass"]
    configs = [
        {"max_samples": 50, "max_depth": 4, "criterion": "entropy"},
        {"bootstrap": False, "max_features": 0.5, "max_leaf_nodes": 8},
    ]
    for params in configs:
        est = fit_model("random_forest", split, params={"n_estimators": 3, **params})
        types, loaders = safe_skops.types_in(safe_skops.dumps(est.model))
        assert types <= set(safe_skops.TRUST_LIST)
        assert loaders <= safe_skops.LOADERS


def test_rows_per_tree_are_capped_on_large_data(splits, fit_model, monkeypatch) -> None:
    split = splits["binary"]
    monkeypatch.setattr(forest, "ROWS_PER_TREE", 100)
    est = fit_model("random_forest", split, params={"n_estimators": 3})
    assert est.model.max_samples == 100
    assert est.params["max_samples"] is None  # the recorded params refit on any data size
    explicit = fit_model("random_forest", split, params={"n_estimators": 3, "max_samples": 0.5})
    assert explicit.model.max_samples == 0.5


def test_a_class_missing_from_the_training_rows_gets_probability_zero(splits, fit_model) -> None:
    split = splits["multiclass"]
    keep = split.y_train != 2
    est = fit_model("random_forest", split, X=split.X_train[keep], y=split.y_train[keep])
    pred = est.predict(split.X_test)
    assert pred.shape == (split.X_test.shape[0], 3)
    assert (pred[:, 2] == 0).all()
