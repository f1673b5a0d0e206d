"""The contracts of the model layer: :class:`ModelAdapter` trains, :class:`FittedEstimator` predicts.

One adapter per model library. An adapter is stateless: it knows its default search
space and parameters and turns ``(X, y)`` into a :class:`FittedEstimator`. The public
``fit`` / ``predict`` / ``load`` methods check inputs and metadata once, here, then call the
library-specific hooks (``_fit``, ``_predict``, ``_payloads``, ``_from_payloads``).

* ``X``: ``numpy.ndarray`` (float32, C order) or ``scipy.sparse.csr_matrix`` (float32).
* ``y``: ``int64`` class indices ``0..k-1`` (binary, multiclass) or ``float64`` (regression).
* predictions: ``(n, k)`` probabilities for classification (``k == 2`` for binary, column 1
  the positive class), ``(n,)`` values for regression; always ``float64``.
* ``best_iteration``: the number of boosting rounds kept after early stopping (1-based,
  LightGBM's convention), ``None`` when there was no early stopping.

Saved estimators are declarative files (JSON, LightGBM text, XGBoost JSON, skops with a
trust list); :meth:`FittedEstimator.to_meta` records each file's sha256 and loading checks
it before parsing.

>>> balanced_weights(np.array([0, 0, 0, 1])).round(3).tolist()
[0.667, 0.667, 0.667, 2.0]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from forgeml._optional import available as _importable
from forgeml._optional import require
from forgeml.config.spec import SearchParam
from forgeml.errors import (
    ArtifactIntegrityError,
    ConfigError,
    DataError,
    ForgeError,
    TrainingError,
    UsageError,
)
from forgeml.models._artifacts import read_verified, write_atomic
from forgeml.models._inputs import (
    SUBTYPES,
    as_matrix,
    check_n_classes,
    check_target,
    check_weights,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    from scipy.sparse import csr_matrix

    Matrix: TypeAlias = np.ndarray | csr_matrix

__all__ = [
    "FORMAT_VERSION",
    "FittedEstimator",
    "ModelAdapter",
    "balanced_weights",
]

FORMAT_VERSION = 1
_SCALARS = (str, int, float, bool, type(None))


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-row weights ``n / (k * count(class))`` that give every present class equal total weight.

    The "balanced" heuristic of scikit-learn; classes absent from ``y`` do not count in ``k``.

    >>> balanced_weights(np.array([1, 1, 0, 2, 2, 2])).round(3).tolist()
    [1.0, 1.0, 2.0, 0.667, 0.667, 0.667]
    """
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.dtype.kind not in "iub" or (labels.size and labels.min() < 0):
        raise DataError("balanced_weights needs a 1-D array of non-negative class indices")
    counts = np.bincount(labels.astype(np.int64))
    present = counts > 0
    per_class = np.zeros(counts.shape[0], dtype=np.float64)
    per_class[present] = labels.shape[0] / (present.sum() * counts[present])
    return per_class[labels]


def _jsonable(name: str, value: Any, *, field: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, _SCALARS):
        raise ConfigError(
            f"{field}.{name}: expected a number, string, boolean or null, not {type(value).__name__}"
        )
    return value


class FittedEstimator(ABC):
    """A trained model: predicts, reports feature importance, saves itself as declarative files."""

    adapter: ClassVar[str]
    files: ClassVar[tuple[str, ...]]  # the file names ``save`` writes, fixed per estimator

    def __init__(
        self,
        *,
        subtype: str,
        n_classes: int,
        n_features: int,
        params: dict[str, Any],
        best_iteration: int | None = None,
    ) -> None:
        self.subtype = subtype
        self.n_classes = n_classes
        self.n_features = n_features
        self.params = dict(params)
        self.best_iteration = best_iteration
        self._digests: dict[str, str] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(subtype={self.subtype!r}, n_classes={self.n_classes}, "
            f"n_features={self.n_features}, best_iteration={self.best_iteration})"
        )

    def set_predict_threads(self, threads: int | None) -> None:
        """Threads per :meth:`predict` call: ``None`` lets the library use every core (batch
        scoring); 1 suits a server, whose many small calls would otherwise pay for — and
        spin — a pool of threads each time. Estimators without threads ignore it."""
        self.predict_threads = threads

    predict_threads: int | None = None

    def predict(self, X: Any) -> np.ndarray:
        """``(n, k)`` class probabilities, or ``(n,)`` values for regression (float64)."""
        matrix = as_matrix(X)
        if matrix.shape[1] != self.n_features:
            raise DataError(f"the model expects {self.n_features} features, got {matrix.shape[1]}")
        return self._predict(matrix)

    @abstractmethod
    def _predict(self, X: Matrix) -> np.ndarray: ...

    @abstractmethod
    def feature_importance(self) -> np.ndarray | None:
        """Non-negative importance per feature (length ``n_features``), or ``None``."""

    @abstractmethod
    def _payloads(self) -> dict[str, bytes]:
        """The bytes of each file in :attr:`files`."""

    def _extra_meta(self) -> dict[str, Any]:
        """Estimator-specific metadata recorded next to the common fields."""
        return {}

    def save(self, directory: Path) -> list[str]:
        """Write this estimator's files into ``directory`` (atomically); returns their names."""
        payloads = self._payloads()
        self._digests = {
            name: write_atomic(directory, name, data) for name, data in payloads.items()
        }
        return list(payloads)

    def to_meta(self) -> dict[str, Any]:
        """JSON-able description; after :meth:`save` it also lists the files and their sha256."""
        return {
            "format_version": FORMAT_VERSION,
            "adapter": self.adapter,
            "subtype": self.subtype,
            "n_classes": self.n_classes,
            "n_features": self.n_features,
            "params": dict(self.params),
            "best_iteration": self.best_iteration,
            **self._extra_meta(),
            "files": list(self._digests),
            "sha256": dict(self._digests),
        }

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> FittedEstimator:
        """Read an estimator saved by :meth:`save`; any inconsistency is an
        :class:`ArtifactIntegrityError`, never a library error or a crash."""
        common = _common_fields(meta, cls.adapter)
        files, digests = meta.get("files"), meta.get("sha256")
        if (
            not isinstance(files, list)
            or not all(isinstance(name, str) for name in files)
            or sorted(files) != sorted(cls.files)
        ):
            raise ArtifactIntegrityError(
                f"{directory}: {cls.adapter} model metadata lists files {files!r}, "
                f"expected {list(cls.files)}"
            )
        if not isinstance(digests, dict):
            raise ArtifactIntegrityError(f"{directory}: model metadata has no sha256 table")
        payloads = {name: read_verified(directory, name, digests) for name in cls.files}
        try:
            estimator = cls._from_payloads(payloads, common, meta)
        except ForgeError:
            raise
        except Exception as exc:  # library parsers raise many error types; all mean "bad file"
            raise ArtifactIntegrityError(
                f"{directory}: the {cls.adapter} model cannot be loaded: {exc}"
            ) from exc
        estimator._digests = {name: digests[name] for name in cls.files}
        return estimator

    @classmethod
    @abstractmethod
    def _from_payloads(
        cls, payloads: dict[str, bytes], common: dict[str, Any], meta: dict[str, Any]
    ) -> FittedEstimator:
        """Parse checked file bytes; ``common`` holds the validated constructor fields."""


def _common_fields(meta: Any, adapter: str) -> dict[str, Any]:
    """The constructor fields every estimator records, checked for type and consistency."""
    if not isinstance(meta, dict):
        raise ArtifactIntegrityError("model metadata is not a mapping")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactIntegrityError(
            f"estimator format {version!r} is not supported by this forgeml "
            f"(supported: {FORMAT_VERSION})"
        )
    if meta.get("adapter") != adapter:
        raise ArtifactIntegrityError(
            f"model metadata is for {meta.get('adapter')!r}, not {adapter!r}"
        )
    subtype, n_classes = meta.get("subtype"), meta.get("n_classes")
    n_features, best = meta.get("n_features"), meta.get("best_iteration")
    params = meta.get("params")
    try:
        if subtype not in SUBTYPES or not isinstance(n_classes, int):
            raise UsageError(f"bad subtype {subtype!r} or class count {n_classes!r}")
        check_n_classes(subtype, n_classes)
    except UsageError as exc:
        raise ArtifactIntegrityError(f"model metadata: {exc}") from exc
    if not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 1:
        raise ArtifactIntegrityError(f"model metadata: bad feature count {n_features!r}")
    if best is not None and (not isinstance(best, int) or isinstance(best, bool) or best < 1):
        raise ArtifactIntegrityError(f"model metadata: bad best_iteration {best!r}")
    if not isinstance(params, dict):
        raise ArtifactIntegrityError("model metadata: params is not a mapping")
    return {
        "subtype": subtype,
        "n_classes": n_classes if subtype != "regression" else 0,
        "n_features": n_features,
        "params": params,
        "best_iteration": best,
    }


class ModelAdapter(ABC):
    """Trains one model library's estimators. Stateless; get one with ``get_adapter(name)``."""

    name: ClassVar[str]
    subtypes: ClassVar[frozenset[str]] = frozenset(SUBTYPES)
    supports_early_stopping: ClassVar[bool] = False
    # The parameter early stopping shortens (rounds, epochs): the final refit sets it.
    rounds_param: ClassVar[str] = "n_estimators"
    # Whether ``auto`` (no ``models.candidates``) tries it; False for slow candidates that
    # users list by name.
    in_auto: ClassVar[bool] = True
    library: ClassVar[str]  # the module that must be importable
    extra: ClassVar[str]  # the forgeml extra that installs it
    estimator: ClassVar[type[FittedEstimator]]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @classmethod
    def available(cls) -> bool:
        """True when the model's library can be imported."""
        return _importable(cls.library)

    def require(self) -> ModuleType:
        """Import the library, or raise :class:`MissingExtraError` naming the extra."""
        return require(self.library, extra=self.extra, feature=f"the {self.name} candidate")

    @abstractmethod
    def search_space(self, subtype: str, n_rows: int) -> dict[str, SearchParam]:
        """The default tuning space for a task with ``n_rows`` training rows."""

    @abstractmethod
    def default_params(self, subtype: str) -> dict[str, Any]:
        """A strong first configuration; every searched default lies inside the space."""

    @abstractmethod
    def known_params(self, subtype: str) -> frozenset[str]:
        """The parameter names ``fit`` accepts (forgeml sets seed, threads and objective)."""

    def resolve_params(
        self, params: dict[str, Any], subtype: str, *, field: str = "params"
    ) -> dict[str, Any]:
        """Defaults updated with ``params``; unknown names or non-scalar values are a
        :class:`ConfigError` whose message starts with ``field``."""
        known = self.known_params(subtype)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(
                f"{field}: model '{self.name}' has no parameter '{unknown[0]}' "
                f"(known: {', '.join(sorted(known))})"
            )
        merged = {**self.default_params(subtype), **params}
        return {key: _jsonable(key, value, field=field) for key, value in merged.items()}

    def library_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions the library raises for a configuration it cannot train."""
        return (ValueError,)

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        subtype: str,
        n_classes: int,
        params: dict[str, Any],
        seed: int,
        threads: int = 1,
        sample_weight: np.ndarray | None = None,
        eval_set: tuple[Any, Any] | None = None,
        early_stopping_rounds: int | None = None,
    ) -> FittedEstimator:
        """Train on ``(X, y)``; ``eval_set`` with ``early_stopping_rounds`` stops boosting early.

        Raises :class:`DataError` for unusable inputs, :class:`ConfigError` for unknown
        parameters and :class:`TrainingError` when the library fails to train.
        """
        n_classes = check_n_classes(subtype, n_classes)
        if subtype not in self.subtypes:
            raise UsageError(f"model '{self.name}' does not support {subtype} tasks")
        matrix = as_matrix(X)
        n_rows, n_features = matrix.shape
        if n_rows == 0 or n_features == 0:
            raise DataError(f"cannot train on a {n_rows} x {n_features} matrix")
        target = check_target(y, n_rows=n_rows, subtype=subtype, n_classes=n_classes)
        weights = check_weights(sample_weight, n_rows=n_rows)
        evals = None
        if eval_set is not None:
            eval_X = as_matrix(eval_set[0], what="eval_set X")
            if eval_X.shape[1] != n_features:
                raise DataError(f"eval_set has {eval_X.shape[1]} features, X has {n_features}")
            eval_y = check_target(
                eval_set[1],
                n_rows=eval_X.shape[0],
                subtype=subtype,
                n_classes=n_classes,
                what="eval_set y",
            )
            evals = (eval_X, eval_y)
        if early_stopping_rounds is not None and early_stopping_rounds < 1:
            raise UsageError(f"early_stopping_rounds must be >= 1, not {early_stopping_rounds}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise UsageError(f"seed must be a non-negative integer, not {seed!r}")
        merged = self.resolve_params(params, subtype)
        self.require()
        try:
            return self._fit(
                matrix,
                target,
                subtype=subtype,
                n_classes=n_classes,
                params=merged,
                seed=int(seed),
                threads=max(1, int(threads)),
                sample_weight=weights,
                eval_set=evals,
                early_stopping_rounds=early_stopping_rounds if evals is not None else None,
            )
        except ForgeError:
            raise
        except self.library_errors() as exc:
            raise TrainingError(f"model '{self.name}' failed to train: {exc}") from exc

    @abstractmethod
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
    ) -> FittedEstimator:
        """Train on checked inputs and merged parameters."""
