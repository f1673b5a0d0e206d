"""A strict check of XGBoost's JSON model format, run before XGBoost loads a file.

XGBoost trusts the child and feature indices it loads; out-of-range values become
out-of-bounds reads at prediction time. The document is parsed with Python's ``json``
first and every tree is checked against the shapes forgeml's models have (``gbtree``,
numerical splits, one target) and for structure.

>>> check_model(b'{"learner": {}}', n_features=3, n_classes=0, objective="reg:squarederror",
...             n_rounds=1)
Traceback (most recent call last):
...
forgeml.errors.ArtifactIntegrityError: XGBoost model: missing field 'learner_model_param'
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from forgeml.errors import ArtifactIntegrityError
from forgeml.models._trees import check_tree

__all__ = ["check_model"]

_ROOT_PARENT = 2147483647  # XGBoost's "no parent" marker
_NODE_ARRAYS = (
    "left_children",
    "right_children",
    "parents",
    "split_indices",
    "split_conditions",
    "split_type",
    "default_left",
    "base_weights",
    "loss_changes",
    "sum_hessian",
)


def _fail(message: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(f"XGBoost model: {message}")


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            raise _fail(f"missing field {key!r}")
        doc = doc[key]
    return doc


def _int(value: Any, what: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise _fail(f"{what} is not an integer") from None


def _array(tree: dict[str, Any], key: str, n: int, what: str) -> np.ndarray:
    values = tree.get(key)
    if not isinstance(values, list) or len(values) != n:
        raise _fail(f"{what}: {key} does not hold {n} values")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(f"{what}: {key} is not numeric") from None
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise _fail(f"{what}: {key} is malformed")
    return arr


def _check_tree(tree: Any, index: int, n_features: int) -> None:
    what = f"tree {index}"
    if not isinstance(tree, dict) or tree.get("id") != index:
        raise _fail(f"{what}: malformed")
    param = _get(tree, "tree_param")
    n = _int(_get(param, "num_nodes"), f"{what} num_nodes")
    if not 1 <= n <= 1 << 24 or _int(_get(param, "num_deleted"), "num_deleted") != 0:
        raise _fail(f"{what}: bad node count")
    if _int(_get(param, "size_leaf_vector"), "size_leaf_vector") > 1:
        raise _fail(f"{what}: multi-output trees are not supported")
    arrays = {key: _array(tree, key, n, what) for key in _NODE_ARRAYS}
    for key in ("categories", "categories_nodes", "categories_segments", "categories_sizes"):
        if tree.get(key, []) != []:
            raise _fail(f"{what}: categorical splits are not supported")
    if np.any(arrays["split_type"] != 0):
        raise _fail(f"{what}: categorical splits are not supported")
    ints = {}
    for key in ("left_children", "right_children", "parents", "split_indices"):
        values = arrays[key]
        if np.any(np.abs(values) > _ROOT_PARENT) or np.any(values != np.floor(values)):
            raise _fail(f"{what}: {key} are not node or feature indices")
        ints[key] = values.astype(np.int64)
    left, right, parents = ints["left_children"], ints["right_children"], ints["parents"]
    check_tree(left, right, ints["split_indices"], n_features, what=f"XGBoost model: {what}")
    inner = np.flatnonzero(left != -1)
    if (
        parents[0] != _ROOT_PARENT
        or np.any(parents[left[inner]] != inner)
        or np.any(parents[right[inner]] != inner)
    ):
        raise _fail(f"{what}: parent links disagree with child links")


def check_model(
    raw: bytes, *, n_features: int, n_classes: int, objective: str, n_rounds: int
) -> None:
    """Refuse an XGBoost JSON model that is malformed or not shaped as described.

    ``n_classes`` is 0 except for multiclass models; ``n_rounds`` is the number of
    boosting rounds the model should hold.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _fail(f"not valid JSON ({exc})") from exc
    learner = _get(doc, "learner")
    params = _get(learner, "learner_model_param")
    if _int(_get(params, "num_feature"), "num_feature") != n_features:
        raise _fail(f"the model does not read {n_features} features")
    if _int(_get(params, "num_class"), "num_class") != n_classes:
        raise _fail(f"the model does not have {n_classes} classes")
    if _int(params.get("num_target", 1), "num_target") != 1:
        raise _fail("multi-target models are not supported")
    if _get(learner, "objective", "name") != objective:
        raise _fail(f"objective is not {objective!r}")
    booster = _get(learner, "gradient_booster")
    if _get(booster, "name") != "gbtree":
        raise _fail("only gbtree models are supported")
    model = _get(booster, "model")
    trees = _get(model, "trees")
    per_round = max(1, n_classes)
    if not isinstance(trees, list) or len(trees) != n_rounds * per_round:
        raise _fail(f"expected {n_rounds * per_round} trees")
    meta = _get(model, "gbtree_model_param")
    if _int(_get(meta, "num_trees"), "num_trees") != len(trees):
        raise _fail("num_trees disagrees with the trees")
    if _int(_get(meta, "num_parallel_tree"), "num_parallel_tree") != 1:
        raise _fail("forests of boosted trees are not supported")
    info = _get(model, "tree_info")
    expected_info = [i % per_round for i in range(len(trees))]
    if info != expected_info:
        raise _fail("tree_info disagrees with the class layout")
    indptr = model.get("iteration_indptr")
    if indptr is not None and indptr != list(range(0, len(trees) + 1, per_round)):
        raise _fail("iteration_indptr disagrees with the trees")
    for index, tree in enumerate(trees):
        _check_tree(tree, index, n_features)
