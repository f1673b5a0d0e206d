"""The XGBoost candidate: JSON model checks and the dense/sparse layout it was trained on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from forgeml.errors import ArtifactIntegrityError
from forgeml.models import load_estimator
from forgeml.models._artifacts import sha256_bytes
from forgeml.models.catalog import ADAPTERS

pytestmark = pytest.mark.skipif(
    not ADAPTERS["xgboost"].available(), reason="xgboost is not installed"
)


def _first_tree(doc: dict) -> dict:
    return doc["learner"]["gradient_booster"]["model"]["trees"][0]


def _inner(tree: dict) -> int:
    return next(i for i, c in enumerate(tree["left_children"]) if c != -1)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: _first_tree(d)["left_children"].__setitem__(0, 10**6),
        lambda d: _first_tree(d)["right_children"].__setitem__(0, 0),
        lambda d: _first_tree(d)["left_children"].__setitem__(0, -5),
        lambda d: _first_tree(d)["split_indices"].__setitem__(0, 30),
        lambda d: _first_tree(d)["split_indices"].__setitem__(0, 1e300),
        lambda d: _first_tree(d)["parents"].__setitem__(0, 0),
        lambda d: _first_tree(d)["split_conditions"].pop(),
        lambda d: _first_tree(d)["split_type"].__setitem__(0, 1),
        lambda d: _first_tree(d)["tree_param"].__setitem__("num_nodes", "99999"),
        lambda d: d["learner"]["gradient_booster"]["model"]["trees"].pop(),
        lambda d: d["learner"]["learner_model_param"].__setitem__("num_feature", "31"),
        lambda d: d["learner"]["objective"].__setitem__("name", "reg:squarederror"),
        lambda d: d["learner"]["gradient_booster"].__setitem__("name", "dart"),
        lambda d: d["learner"].pop("gradient_booster"),
        lambda d: d.clear(),
    ],
)
def test_malformed_models_are_refused(fitted, save_meta, tmp_path, edit) -> None:
    meta = save_meta(fitted("xgboost", "binary"), tmp_path)
    (name,) = meta["files"]
    doc = json.loads((tmp_path / name).read_text())
    edit(doc)
    data = json.dumps(doc).encode()
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ArtifactIntegrityError):
        load_estimator(tmp_path, {**meta, "sha256": {name: sha256_bytes(data)}})


def test_deeply_nested_json_is_refused(fitted, save_meta, tmp_path) -> None:
    meta = save_meta(fitted("xgboost", "binary"), tmp_path)
    (name,) = meta["files"]
    data = b"[" * 200_000 + b"]" * 200_000
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ArtifactIntegrityError):
        load_estimator(tmp_path, {**meta, "sha256": {name: sha256_bytes(data)}})


def test_predictions_do_not_depend_on_the_input_layout(splits, fit_model) -> None:
    """XGBoost reads absent sparse entries as missing; the model converts inputs to the
    layout it was trained on, so the same rows give the same predictions either way."""
    split = splits["binary"]
    X_train = np.where(np.abs(split.X_train) < 0.5, 0.0, split.X_train).astype(np.float32)
    X_test = np.where(np.abs(split.X_test) < 0.5, 0.0, split.X_test).astype(np.float32)
    dense = fit_model("xgboost", split, X=X_train)
    sparse = fit_model("xgboost", split, X=sp.csr_matrix(X_train))
    for model in (dense, sparse):
        np.testing.assert_array_equal(model.predict(sp.csr_matrix(X_test)), model.predict(X_test))
    assert sparse.to_meta()["sparse_input"] is True and dense.to_meta()["sparse_input"] is False


def test_importance_is_total_gain_by_feature_index(fitted) -> None:
    est = fitted("xgboost", "binary")
    scores = est.booster.get_score(importance_type="total_gain")
    importance = est.feature_importance()
    for key, value in scores.items():
        assert importance[int(key[1:])] == pytest.approx(value)
    assert np.count_nonzero(importance) == len(scores)


FUZZ = textwrap.dedent(
    """
    import json, random, sys
    import numpy as np, xgboost as xgb
    from forgeml.errors import ArtifactIntegrityError
    from forgeml.models.xgboost_json import check_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    params = {"objective": "multi:softprob", "num_class": 3, "tree_method": "hist",
              "verbosity": 0, "max_depth": 3}
    base = json.loads(xgb.train(params, xgb.DMatrix(X, label=y), 4).save_raw("json"))
    keys = ["left_children", "right_children", "parents", "split_indices",
            "split_conditions", "default_left", "base_weights", "split_type"]
    values = [-1, 0, 1, 2, 3, 5, 7, 100, -7, 2147483647, 0.5, 1e9]
    rand = random.Random(int(sys.argv[1]))
    loaded = refused = 0
    for _ in range(int(sys.argv[2])):
        doc = json.loads(json.dumps(base))
        trees = doc["learner"]["gradient_booster"]["model"]["trees"]
        for _ in range(rand.randint(1, 3)):
            array = rand.choice(trees)[rand.choice(keys)]
            array[rand.randrange(len(array))] = rand.choice(values)
        raw = json.dumps(doc).encode()
        try:
            check_model(raw, n_features=6, n_classes=3, objective="multi:softprob", n_rounds=4)
            booster = xgb.Booster()
            booster.load_model(bytearray(raw))
        except (ArtifactIntegrityError, xgb.core.XGBoostError):
            refused += 1
            continue
        assert booster.inplace_predict(X).shape == (300, 3)
        loaded += 1
    print(loaded, refused)
    """
)


def test_mutated_tree_arrays_never_reach_xgboost_unchecked() -> None:
    """Damaged node arrays are refused, or load and predict; never a crash (child process)."""
    done = subprocess.run(
        [sys.executable, "-c", FUZZ, "1", "150"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    loaded, refused = map(int, done.stdout.split())
    assert refused > 0 and loaded > 0
