"""The ``random_forest`` candidate: scikit-learn's RandomForestClassifier / RandomForestRegressor.

Fits are kept bounded in time and size: each tree sees at most :data:`ROWS_PER_TREE`
bootstrap rows unless ``max_samples`` is set, and grows at most ``max_leaf_nodes`` leaves
(4096 by default), so a 200-tree forest stays in the tens of megabytes whatever the data
size. Saved with skops and loaded through :mod:`forgeml.models.safe_skops` (a trust list
in forgeml's code); every loaded tree is then checked node by node before use.

>>> X = np.array([[0.0], [1.0], [2.0], [3.0]] * 5, dtype=np.float32)
>>> y = np.array([0, 0, 1, 1] * 5)
>>> est = RandomForestAdapter().fit(X, y, subtype="binary", n_classes=2,
...                                 params={"n_estimators": 5}, seed=0)
>>> est.predict(X[:4]).argmax(axis=1).tolist()
[0, 0, 1, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.config.spec import SearchParam
from forgeml.errors import ArtifactIntegrityError, DataError
from forgeml.models import safe_skops
from forgeml.models._trees import check_tree
from forgeml.models.base import FittedEstimator, ModelAdapter

if TYPE_CHECKING:
    from forgeml.models.base import Matrix

__all__ = ["ROWS_PER_TREE", "RandomForestAdapter", "RandomForestEstimator"]

FILE = "estimator.forest.skops"
ROWS_PER_TREE = 50_000
_PARAMS = frozenset(
    {
        "n_estimators",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "max_features",
        "max_leaf_nodes",
        "max_samples",
        "min_impurity_decrease",
        "bootstrap",
        "criterion",
        "ccp_alpha",
    }
)


class RandomForestEstimator(FittedEstimator):
    """A fitted scikit-learn forest; probabilities are spread over all ``n_classes`` columns."""

    adapter = "random_forest"
    files = (FILE,)

    def __init__(self, *, model: Any, **common: Any) -> None:
        super().__init__(**common)
        self.model = model

    def set_predict_threads(self, threads: int | None) -> None:
        super().set_predict_threads(threads)
        self.model.n_jobs = threads

    def _predict(self, X: Matrix) -> np.ndarray:
        if self.subtype == "regression":
            return np.asarray(self.model.predict(X), dtype=np.float64)
        proba = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        out = np.zeros((proba.shape[0], self.n_classes), dtype=np.float64)
        out[:, np.asarray(self.model.classes_, dtype=np.int64)] = proba
        return out

    def feature_importance(self) -> np.ndarray:
        """Mean decrease in impurity per feature."""
        return np.asarray(self.model.feature_importances_, dtype=np.float64)

    def _payloads(self) -> dict[str, bytes]:
        return {FILE: safe_skops.dumps(self.model)}

    @classmethod
    def _from_payloads(
        cls, payloads: dict[str, bytes], common: dict[str, Any], meta: dict[str, Any]
    ) -> RandomForestEstimator:
        model = safe_skops.loads(payloads[FILE], what=FILE)
        _check_forest(model, common)
        return cls(model=model, **common)


def _check_forest(model: Any, common: dict[str, Any]) -> None:
    """Refuse a forest whose type, shape or trees do not match the metadata."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    regression = common["subtype"] == "regression"
    forest_type = RandomForestRegressor if regression else RandomForestClassifier
    tree_type = DecisionTreeRegressor if regression else DecisionTreeClassifier
    n_features = common["n_features"]
    if type(model) is not forest_type:
        raise ArtifactIntegrityError(
            f"{FILE}: holds a {type(model).__name__}, not a {forest_type.__name__}"
        )
    estimators = getattr(model, "estimators_", None)
    if not isinstance(estimators, list) or not estimators:
        raise ArtifactIntegrityError(f"{FILE}: the forest has no trees")
    if getattr(model, "n_features_in_", None) != n_features or model.n_outputs_ != 1:
        raise ArtifactIntegrityError(f"{FILE}: the forest does not read {n_features} features")
    n_values = 1
    if not regression:
        classes = np.asarray(model.classes_)
        if (
            classes.dtype.kind not in "iu"
            or classes.ndim != 1
            or classes.shape[0] < 2
            or np.any(np.diff(classes) <= 0)
            or classes[0] < 0
            or classes[-1] >= common["n_classes"]
        ):
            raise ArtifactIntegrityError(f"{FILE}: bad class list")
        n_values = classes.shape[0]
    for i, tree in enumerate(estimators):
        what = f"{FILE}: tree {i}"
        if type(tree) is not tree_type:
            raise ArtifactIntegrityError(f"{what} is a {type(tree).__name__}")
        t = tree.tree_
        if t.n_features != n_features or t.n_outputs != 1 or t.value.shape[2] != n_values:
            raise ArtifactIntegrityError(f"{what} does not match the forest's shape")
        check_tree(t.children_left, t.children_right, t.feature, n_features, what=what)
        inner = t.children_left != -1
        if not np.isfinite(t.threshold[inner]).all():
            raise ArtifactIntegrityError(f"{what} has non-finite thresholds")


class RandomForestAdapter(ModelAdapter):
    """Bagged decision trees; robust defaults, little tuning needed."""

    name = "random_forest"
    library = "sklearn"
    extra = "all"
    estimator = RandomForestEstimator

    def search_space(self, subtype: str, n_rows: int) -> dict[str, SearchParam]:
        """Trees, depth, leaf size and feature sampling; row sampling on large data."""
        leaf_high = max(2, min(50, n_rows // 50))
        space = {
            "n_estimators": SearchParam(low=50, high=300, step=50, integer=True),
            "max_depth": SearchParam(choices=[None, 8, 12, 16, 24]),
            "min_samples_leaf": SearchParam(low=1, high=leaf_high, log=True, integer=True),
            "max_features": SearchParam(choices=["sqrt", "log2", 0.25, 0.5, 0.75, 1.0]),
        }
        if n_rows > ROWS_PER_TREE:
            low = max(0.01, min(1.0, 10_000 / n_rows))
            space["max_samples"] = SearchParam(low=low, high=min(1.0, 2 * ROWS_PER_TREE / n_rows))
        return space

    def default_params(self, subtype: str) -> dict[str, Any]:
        # 100 trees: most of a forest's accuracy at half the cost of 200 (a forest trial on
        # 17k Adult rows took 13 s with 200), so it does not eat a time budget.
        return {
            "n_estimators": 100,
            "max_depth": None,
            "min_samples_leaf": 1 if subtype != "regression" else 2,
            "max_features": "sqrt" if subtype != "regression" else 0.5,
            "max_leaf_nodes": 4096,
            "max_samples": None,
        }

    def known_params(self, subtype: str) -> frozenset[str]:
        return _PARAMS

    def _fit(
        self,
        X: Matrix,
        y: np.ndarray,
        *,
        subtype: str,
        n_classes: int,
        params: dict[str, Any],
        seed: int,
        threads: int,
        sample_weight: np.ndarray | None,
        eval_set: tuple[Matrix, np.ndarray] | None,
        early_stopping_rounds: int | None,
    ) -> RandomForestEstimator:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        settings = dict(params)
        n_rows = X.shape[0]
        bootstrap = settings.get("bootstrap", True)
        if settings.get("max_samples") is None and bootstrap and n_rows > ROWS_PER_TREE:
            settings["max_samples"] = ROWS_PER_TREE
        if subtype == "regression":
            model: Any = RandomForestRegressor(random_state=seed, n_jobs=threads, **settings)
        else:
            if np.unique(y).shape[0] < 2:
                raise DataError("the training rows hold a single class")
            model = RandomForestClassifier(random_state=seed, n_jobs=threads, **settings)
        model.fit(X, y, sample_weight=sample_weight)
        return RandomForestEstimator(
            model=model,
            subtype=subtype,
            n_classes=n_classes,
            n_features=X.shape[1],
            params=params,
        )
