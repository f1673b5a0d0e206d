"""The ``xgboost`` candidate (extra ``xgboost``): native ``xgboost.train`` with ``hist`` trees.

``n_estimators`` is the maximum number of rounds; with an ``eval_set`` and
``early_stopping_rounds`` the booster is cut to its best round (``best_iteration`` counts
rounds, 1-based). Saved in XGBoost's JSON format; loaded after
:mod:`forgeml.models.xgboost_json` has checked the document.

XGBoost reads entries absent from a sparse matrix as *missing*, not zero. A model remembers
the layout it was trained on and converts prediction inputs to it, so its predictions do
not depend on whether a caller passes the same rows dense or sparse.

>>> import forgeml._optional as opt
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]] * 10, dtype=np.float32)
>>> y = np.array([0, 0, 1, 1] * 10)
>>> if opt.available("xgboost"):
...     est = XGBoostAdapter().fit(X, y, subtype="binary", n_classes=2, seed=0,
...                                params={"n_estimators": 20})
...     print(est.predict(X[:4]).argmax(axis=1).tolist())
... else:
...     print([0, 0, 1, 1])
[0, 0, 1, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.config.spec import SearchParam
from forgeml.errors import ArtifactIntegrityError, UsageError
from forgeml.models._inputs import is_sparse
from forgeml.models.base import FittedEstimator, ModelAdapter
from forgeml.models.xgboost_json import check_model

if TYPE_CHECKING:
    from forgeml.models.base import Matrix

__all__ = ["XGBoostAdapter", "XGBoostEstimator"]

# train(X, y, native_params, rounds, *, sample_weight, seed) -> XGBoost JSON model
RemoteTrain = Callable[..., str]

FILE = "estimator.xgboost.json"
_OBJECTIVES = {
    "binary": "binary:logistic",
    "multiclass": "multi:softprob",
    "regression": "reg:squarederror",
}
_PARAMS = frozenset(
    {
        "n_estimators",
        "learning_rate",
        "max_depth",
        "max_leaves",
        "min_child_weight",
        "subsample",
        "colsample_bytree",
        "colsample_bylevel",
        "colsample_bynode",
        "reg_alpha",
        "reg_lambda",
        "gamma",
        "max_bin",
        "max_delta_step",
        "grow_policy",
    }
)


def _layout(X: Matrix, sparse: bool) -> Matrix:
    """``X`` in the layout the model was trained on (absent sparse entries = missing)."""
    if isinstance(X, np.ndarray):
        if not sparse:
            return X
        import scipy.sparse as sp

        return sp.csr_matrix(X)
    return X if sparse else np.asarray(X.toarray(), dtype=np.float32)


class XGBoostEstimator(FittedEstimator):
    """An XGBoost booster, with the input layout (dense or sparse) it was trained on."""

    adapter = "xgboost"
    files = (FILE,)

    def __init__(self, *, booster: Any, n_iterations: int, sparse_input: bool, **common: Any):
        super().__init__(**common)
        self.booster = booster
        self.n_iterations = n_iterations
        self.sparse_input = sparse_input

    def set_predict_threads(self, threads: int | None) -> None:
        super().set_predict_threads(threads)
        self.booster.set_param({"nthread": threads or 0})  # 0: every core

    def _predict(self, X: Matrix) -> np.ndarray:
        raw = self.booster.inplace_predict(_layout(X, self.sparse_input))
        out = np.asarray(raw, dtype=np.float64)
        if self.subtype == "binary":
            return np.column_stack([1.0 - out, out])
        return out

    def feature_importance(self) -> np.ndarray:
        """Total gain of the splits on each feature (comparable to LightGBM's ``gain``)."""
        scores = self.booster.get_score(importance_type="total_gain")
        out = np.zeros(self.n_features, dtype=np.float64)
        for name, value in scores.items():
            out[int(name[1:])] = float(value)  # features are named f0, f1, ...
        return out

    def _payloads(self) -> dict[str, bytes]:
        return {FILE: bytes(self.booster.save_raw(raw_format="json"))}

    def _extra_meta(self) -> dict[str, Any]:
        return {"n_iterations": self.n_iterations, "sparse_input": self.sparse_input}

    @classmethod
    def _from_payloads(
        cls, payloads: dict[str, bytes], common: dict[str, Any], meta: dict[str, Any]
    ) -> XGBoostEstimator:
        xgb = XGBoostAdapter().require()
        rounds, sparse = meta.get("n_iterations"), meta.get("sparse_input")
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ArtifactIntegrityError(f"xgboost model metadata: bad n_iterations {rounds!r}")
        if not isinstance(sparse, bool):
            raise ArtifactIntegrityError("xgboost model metadata: 'sparse_input' is not a boolean")
        multiclass = common["subtype"] == "multiclass"
        check_model(
            payloads[FILE],
            n_features=common["n_features"],
            n_classes=common["n_classes"] if multiclass else 0,
            objective=_OBJECTIVES[common["subtype"]],
            n_rounds=rounds,
        )
        booster = xgb.Booster()
        booster.load_model(bytearray(payloads[FILE]))
        if booster.num_features() != common["n_features"] or booster.num_boosted_rounds() != rounds:
            raise ArtifactIntegrityError(f"{FILE}: the model does not match its metadata")
        return cls(booster=booster, n_iterations=rounds, sparse_input=sparse, **common)


class XGBoostAdapter(ModelAdapter):
    """Gradient-boosted trees, depth-wise with histogram splits."""

    name = "xgboost"
    library = "xgboost"
    extra = "xgboost"
    supports_early_stopping = True
    estimator = XGBoostEstimator

    def search_space(self, subtype: str, n_rows: int) -> dict[str, SearchParam]:
        """Depth, learning rate, child weight, row/column sampling and L1/L2 penalties."""
        return {
            "max_depth": SearchParam(low=3, high=10, integer=True),
            "learning_rate": SearchParam(low=0.01, high=0.3, log=True),
            "min_child_weight": SearchParam(low=0.5, high=20.0, log=True),
            "subsample": SearchParam(low=0.5, high=1.0),
            "colsample_bytree": SearchParam(low=0.4, high=1.0),
            "reg_alpha": SearchParam(low=1e-8, high=10.0, log=True),
            "reg_lambda": SearchParam(low=1e-3, high=10.0, log=True),
        }

    def default_params(self, subtype: str) -> dict[str, Any]:
        return {
            "n_estimators": 1000,
            "learning_rate": 0.05,
            "max_depth": 6,
            "min_child_weight": 1.0,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_alpha": 1e-8,
            "reg_lambda": 1.0,
        }

    def known_params(self, subtype: str) -> frozenset[str]:
        return _PARAMS

    def library_errors(self) -> tuple[type[BaseException], ...]:
        xgb = self.require()
        return (ValueError, xgb.core.XGBoostError)

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
    ) -> XGBoostEstimator:
        xgb = self.require()
        native = dict(params)
        rounds = int(native.pop("n_estimators"))
        native.update(
            objective=_OBJECTIVES[subtype],
            tree_method="hist",
            seed=seed,
            nthread=threads,
            verbosity=0,
        )
        if subtype == "multiclass":
            native["num_class"] = n_classes
        sparse = is_sparse(X)
        booster, evals = self._boost(
            xgb, native, rounds, X, y, sample_weight, threads, eval_set, early_stopping_rounds
        )
        best = None
        if evals:
            best = int(booster.best_iteration) + 1  # XGBoost counts from 0
            if best < booster.num_boosted_rounds():
                booster = booster[:best]
        return XGBoostEstimator(
            booster=booster,
            n_iterations=booster.num_boosted_rounds(),
            sparse_input=sparse,
            subtype=subtype,
            n_classes=n_classes,
            n_features=X.shape[1],
            params=params,
            best_iteration=best,
        )

    def _boost(
        self,
        xgb: Any,
        native: dict[str, Any],
        rounds: int,
        X: Matrix,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        threads: int,
        eval_set: tuple[Matrix, np.ndarray] | None,
        early_stopping_rounds: int | None,
    ) -> tuple[Any, bool]:
        """The trained booster, and whether it was early-stopped on ``eval_set``."""
        train = xgb.DMatrix(X, label=y, weight=sample_weight, nthread=threads)
        evals = []
        if eval_set is not None and early_stopping_rounds is not None:
            valid_X = _layout(eval_set[0], is_sparse(X))
            evals = [(xgb.DMatrix(valid_X, label=eval_set[1], nthread=threads), "valid")]
        booster = xgb.train(
            native,
            train,
            num_boost_round=rounds,
            evals=evals,
            early_stopping_rounds=early_stopping_rounds if evals else None,
            verbose_eval=False,
        )
        return booster, bool(evals)

    def fit_distributed(
        self, X: Any, y: Any, *, train: RemoteTrain, **fit_args: Any
    ) -> FittedEstimator:
        """:meth:`fit` with the boosting done by ``train(X, y, params, rounds,
        sample_weight=, seed=)``, which returns XGBoost's JSON model (for example trained
        data-parallel on Ray Train workers). ``params`` are XGBoost's native parameters
        without ``seed`` and ``nthread``. The estimator, and the files it saves, are those
        :meth:`fit` makes; there is no early stopping (no ``eval_set``)."""
        if fit_args.get("eval_set") is not None:
            raise UsageError("fit_distributed does not take an eval_set")
        return _TrainedElsewhere(train).fit(X, y, **fit_args)


class _TrainedElsewhere(XGBoostAdapter):
    """The XGBoost adapter with boosting handed to a callable (see ``fit_distributed``)."""

    def __init__(self, train: RemoteTrain) -> None:
        self._train = train

    def _boost(
        self,
        xgb: Any,
        native: dict[str, Any],
        rounds: int,
        X: Matrix,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        threads: int,
        eval_set: tuple[Matrix, np.ndarray] | None,
        early_stopping_rounds: int | None,
    ) -> tuple[Any, bool]:
        native = dict(native)
        seed = int(native.pop("seed"))
        native.pop("nthread", None)
        text = self._train(X, y, native, rounds, sample_weight=sample_weight, seed=seed)
        booster = xgb.Booster()
        booster.load_model(bytearray(text.encode()))
        return booster, False
