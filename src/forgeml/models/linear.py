"""The ``linear`` candidate: logistic regression (classification) and ridge (regression).

Trained with scikit-learn (``lbfgs`` for logistic regression: deterministic, handles sparse
input; ridge by Cholesky for dense input, conjugate gradients for sparse input), in float64.
The model is saved as JSON coefficients, and predictions — after training and after
loading alike — are computed with NumPy: the sigmoid (binary) or softmax (multiclass) of
``X @ W.T + b``, or ``X @ w + b`` for regression. No scikit-learn object, no pickle.

A fit that stops at ``max_iter`` is kept, recorded as ``converged: false`` in the metadata
instead of raising a warning.

>>> X = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
>>> est = LinearAdapter().fit(X, np.array([0, 0, 1, 1]), subtype="binary", n_classes=2,
...                           params={}, seed=0)
>>> est.predict(X).argmax(axis=1).tolist(), est.to_meta()["converged"]
([0, 0, 1, 1], True)
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.config.spec import SearchParam
from forgeml.errors import ArtifactIntegrityError, DataError, TrainingError
from forgeml.models._inputs import is_sparse
from forgeml.models.base import FittedEstimator, ModelAdapter

if TYPE_CHECKING:
    from forgeml.models.base import Matrix

__all__ = ["LinearAdapter", "LinearEstimator"]

FILE = "estimator.linear.json"
_CLASSIFIER_PARAMS = frozenset({"C", "max_iter", "tol"})
_REGRESSOR_PARAMS = frozenset({"alpha", "max_iter", "tol"})


class LinearEstimator(FittedEstimator):
    """Coefficients ``coef`` (rows: one per output), ``intercept``, and the class indices
    the rows stand for (classes absent from the training rows get probability 0)."""

    adapter = "linear"
    files = (FILE,)

    def __init__(
        self,
        *,
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: np.ndarray,
        converged: bool,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.classes = np.asarray(classes, dtype=np.int64)
        self.converged = converged

    def _predict(self, X: Matrix) -> np.ndarray:
        from scipy.special import expit, softmax

        scores = np.asarray(X @ self.coef.T, dtype=np.float64) + self.intercept
        if self.subtype == "regression":
            return scores[:, 0]
        out = np.zeros((scores.shape[0], self.n_classes), dtype=np.float64)
        if self.coef.shape[0] == 1:
            positive = expit(scores[:, 0])
            out[:, self.classes[0]] = 1.0 - positive
            out[:, self.classes[1]] = positive
        else:
            out[:, self.classes] = softmax(scores, axis=1)
        return out

    def feature_importance(self) -> np.ndarray:
        """Mean absolute coefficient per feature (features are standardised upstream)."""
        return np.abs(self.coef).mean(axis=0)

    def _payloads(self) -> dict[str, bytes]:
        doc = {
            "kind": "ridge" if self.subtype == "regression" else "logistic",
            "classes": self.classes.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }
        return {FILE: json.dumps(doc, allow_nan=False).encode()}

    def _extra_meta(self) -> dict[str, Any]:
        return {"converged": self.converged}

    @classmethod
    def _from_payloads(
        cls, payloads: dict[str, bytes], common: dict[str, Any], meta: dict[str, Any]
    ) -> LinearEstimator:
        doc = json.loads(payloads[FILE])
        if not isinstance(doc, dict):
            raise ArtifactIntegrityError(f"{FILE}: not a JSON object")
        regression = common["subtype"] == "regression"
        if doc.get("kind") != ("ridge" if regression else "logistic"):
            raise ArtifactIntegrityError(
                f"{FILE}: model kind {doc.get('kind')!r} does not fit the task"
            )
        classes = np.asarray(doc.get("classes"), dtype=np.int64)
        coef = np.asarray(doc.get("coef"), dtype=np.float64)
        intercept = np.asarray(doc.get("intercept"), dtype=np.float64)
        _check_arrays(classes, coef, intercept, common)
        converged = meta.get("converged")
        if not isinstance(converged, bool):
            raise ArtifactIntegrityError("linear model metadata: 'converged' is not a boolean")
        return cls(coef=coef, intercept=intercept, classes=classes, converged=converged, **common)


def _check_arrays(
    classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray, common: dict[str, Any]
) -> None:
    if common["subtype"] == "regression":
        rows = 1
        if classes.size:
            raise ArtifactIntegrityError(f"{FILE}: a regression model lists classes")
    else:
        k = classes.shape[0]
        if (
            classes.ndim != 1
            or k < 2
            or np.any(np.diff(classes) <= 0)
            or classes[0] < 0
            or classes[-1] >= common["n_classes"]
        ):
            raise ArtifactIntegrityError(f"{FILE}: bad class list {classes.tolist()}")
        rows = 1 if k == 2 else k
    if coef.shape != (rows, common["n_features"]) or intercept.shape != (rows,):
        raise ArtifactIntegrityError(
            f"{FILE}: coefficients of shape {coef.shape} and intercepts of shape "
            f"{intercept.shape} do not fit {rows} output(s) x {common['n_features']} features"
        )
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise ArtifactIntegrityError(f"{FILE}: non-finite coefficients")


class LinearAdapter(ModelAdapter):
    """Logistic regression (``C``) or ridge regression (``alpha``); a fast, strong baseline."""

    name = "linear"
    library = "sklearn"
    extra = "all"
    estimator = LinearEstimator

    def search_space(self, subtype: str, n_rows: int) -> dict[str, SearchParam]:
        """``C`` (classification) or ``alpha`` (regression), log-uniform."""
        if subtype == "regression":
            return {"alpha": SearchParam(low=1e-3, high=1e3, log=True)}
        return {"C": SearchParam(low=1e-3, high=1e2, log=True)}

    def default_params(self, subtype: str) -> dict[str, Any]:
        # scikit-learn's default tolerance: on 175k flights rows lbfgs needs 61 iterations
        # (3 s) at 1e-4 and 507 (38 s) at 1e-6, for the same AUC to four decimals.
        if subtype == "regression":
            return {"alpha": 1.0, "tol": 1e-4, "max_iter": None}
        return {"C": 1.0, "tol": 1e-4, "max_iter": 1000}

    def known_params(self, subtype: str) -> frozenset[str]:
        return _REGRESSOR_PARAMS if subtype == "regression" else _CLASSIFIER_PARAMS

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
    ) -> LinearEstimator:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression, Ridge
        from threadpoolctl import threadpool_limits

        sparse = is_sparse(X)
        X64 = X.astype(np.float64)  # float32 solutions differ between layouts by ~1e-3
        model: Any
        if subtype == "regression":
            solver = "sparse_cg" if sparse else "cholesky"
            model = Ridge(solver=solver, **params)
            classes = np.zeros(0, dtype=np.int64)
        else:
            classes = np.unique(y)
            if classes.shape[0] < 2:
                raise DataError("the training rows hold a single class")
            model = LogisticRegression(solver="lbfgs", **params)
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=threads):
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(X64, y, sample_weight=sample_weight)
        converged = True
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                converged = False
            else:  # not ours to swallow: let the caller's filters decide
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
        intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise TrainingError("model 'linear' diverged (non-finite coefficients)")
        return LinearEstimator(
            coef=coef,
            intercept=intercept,
            classes=classes,
            converged=converged,
            subtype=subtype,
            n_classes=n_classes,
            n_features=X.shape[1],
            params=params,
        )
