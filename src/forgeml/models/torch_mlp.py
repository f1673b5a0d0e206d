"""The ``mlp`` candidate: a tabular multilayer perceptron trained with PyTorch.

``layers`` hidden layers of ``hidden_units`` ReLU units (each followed by dropout), then one
output per class (softmax, cross-entropy) or one value (regression: squared error on the
target standardised over the training rows). Inputs are standardised with the mean and
standard deviation of the training rows, stored with the model. AdamW with
``learning_rate`` and ``weight_decay``; ``epochs`` passes over the rows in ``batch_size``
mini-batches (sparse rows are densified one mini-batch at a time, never the whole matrix).
Sample weights scale each row's loss. With an ``eval_set`` and ``early_stopping_rounds``
training stops after that many epochs without a lower validation loss and keeps the best
epoch's weights, recorded as ``best_iteration`` (1-based).

Training is deterministic for a seed and thread count (a forked torch RNG seeded with the
seed; NumPy's generator shuffles). The weights are saved as one ``.npz`` archive of plain
arrays — read back with ``allow_pickle=False``, its members, shapes and values checked
against the architecture recorded in the metadata — never as a pickled torch file.
Predictions are computed with NumPy in float64, so loading and serving a model needs no
torch.

``fit_distributed`` hands the training to a callable that runs :func:`worker_loop` on
data-parallel workers (the workflow passes DDP training on Ray Train) and builds the same
estimator.

>>> X = np.array([[0.0], [1.0], [2.0], [3.0]] * 10, dtype=np.float32)
>>> y = np.array([0, 0, 1, 1] * 10)
>>> est = TorchMLPAdapter().fit(X, y, subtype="binary", n_classes=2, seed=0,
...                             params={"epochs": 60, "learning_rate": 0.01})
>>> est.predict(X[:4]).argmax(axis=1).tolist()
[0, 0, 1, 1]
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.config.spec import SearchParam
from forgeml.errors import ArtifactIntegrityError, ConfigError, DataError, TrainingError, UsageError
from forgeml.models._mlp_train import (
    block_rows,
    blocks,
    make_plan,
    require_torch,
    standardisation,
    train_weights,
    worker_loop,
)
from forgeml.models._npz import Layout, check_arrays, read_npz, write_npz
from forgeml.models.base import FittedEstimator, ModelAdapter

if TYPE_CHECKING:
    from forgeml.models.base import Matrix

__all__ = ["TorchMLPAdapter", "TorchMLPEstimator", "worker_loop"]

# train(X, y, loop, plan, *, sample_weight, seed) -> the weights (name -> array), where
# ``loop(shard, plan, worker)`` runs on each worker (see ``worker_loop``).
RemoteTrain = Callable[..., dict[str, np.ndarray]]

FILE = "estimator.mlp.npz"
# name: (kind, lowest, highest, lowest included)
_RULES: dict[str, tuple[type, float, float, bool]] = {
    "hidden_units": (int, 1, 8192, True),
    "layers": (int, 1, 16, True),
    "dropout": (float, 0.0, 0.95, True),
    "learning_rate": (float, 0.0, 1.0, False),
    "weight_decay": (float, 0.0, 10.0, True),
    "batch_size": (int, 1, 1 << 20, True),
    "epochs": (int, 1, 100_000, True),
}


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as ints/floats, each within its range, else :class:`ConfigError`."""
    out: dict[str, Any] = {}
    for name, (kind, low, high, low_ok) in _RULES.items():
        value = params[name]
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if kind is int and isinstance(number, float) and number.is_integer():
            number = int(number)
        within = number is not None and (number >= low if low_ok else number > low)
        if number is None or (kind is int and not isinstance(number, int)) or not within:
            raise ConfigError(
                f"params.{name}: model 'mlp' expects {'an integer' if kind is int else 'a number'}"
                f" {'>=' if low_ok else '>'} {low} and <= {high}, got {value!r}"
            )
        if number > high:
            raise ConfigError(f"params.{name}: model 'mlp' expects at most {high}, got {value!r}")
        out[name] = kind(number)
    return out


def _architecture(meta: dict[str, Any], common: dict[str, Any]) -> list[int]:
    sizes = meta.get("layer_sizes")
    outputs = 1 if common["subtype"] == "regression" else common["n_classes"]
    if (
        not isinstance(sizes, list)
        or len(sizes) < 3
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)
        or not all(1 <= s <= 1 << 24 for s in sizes)
        or sizes[0] != common["n_features"]
        or sizes[-1] != outputs
    ):
        raise ArtifactIntegrityError(
            f"mlp model metadata: layer sizes {sizes!r} do not fit {common['n_features']} "
            f"features and {outputs} output(s)"
        )
    return sizes


def _expected(sizes: list[int], regression: bool) -> Layout:
    """The arrays of a model with these layer sizes: name -> (shape, dtype)."""
    out: Layout = {
        "mean": ((sizes[0],), np.float64),
        "scale": ((sizes[0],), np.float64),
    }
    if regression:
        out["target"] = ((2,), np.float64)
    for i, (width_in, width_out) in enumerate(itertools.pairwise(sizes)):
        out[f"weight_{i}"] = ((width_out, width_in), np.float32)
        out[f"bias_{i}"] = ((width_out,), np.float32)
    return out


def _check_scales(arrays: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    if (arrays["scale"] < 0).any() or ("target" in arrays and arrays["target"][1] <= 0):
        raise ArtifactIntegrityError(f"{name}: negative or zero standard deviations")
    return arrays


class TorchMLPEstimator(FittedEstimator):
    """A trained perceptron: its standardisation and layers as arrays, applied with NumPy."""

    adapter = "mlp"
    files = (FILE,)

    def __init__(self, *, arrays: dict[str, np.ndarray], **common: Any) -> None:
        super().__init__(**common)
        self.arrays = dict(arrays)
        n_layers = sum(name.startswith("weight_") for name in self.arrays)
        self.layer_sizes = [int(self.arrays["weight_0"].shape[1])] + [
            int(self.arrays[f"weight_{i}"].shape[0]) for i in range(n_layers)
        ]
        scale = self.arrays["scale"]
        self._shift = self.arrays["mean"].astype(np.float64)
        self._scale = np.where(scale > 0, scale, 1.0).astype(np.float64)
        self._layers = [
            (
                self.arrays[f"weight_{i}"].astype(np.float64).T,
                self.arrays[f"bias_{i}"].astype(np.float64),
            )
            for i in range(n_layers)
        ]

    def _predict(self, X: Matrix) -> np.ndarray:
        out = np.empty((X.shape[0], self.layer_sizes[-1]), dtype=np.float64)
        rows = block_rows(max(self.layer_sizes))
        for lo, block in zip(range(0, X.shape[0], rows), blocks(X, rows), strict=True):
            h = (block - self._shift) / self._scale
            for weight, bias in self._layers[:-1]:
                h = np.maximum(h @ weight + bias, 0.0)
            weight, bias = self._layers[-1]
            out[lo : lo + len(block)] = h @ weight + bias
        if not np.isfinite(out).all():
            raise DataError("X has missing or infinite values; model 'mlp' needs finite features")
        if self.subtype == "regression":
            shift, spread = self.arrays["target"]
            return out[:, 0] * spread + shift
        out -= out.max(axis=1, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def feature_importance(self) -> np.ndarray:
        """Mean absolute first-layer weight of each standardised input (0 for a feature
        that was constant in training: its weights never see a non-zero input)."""
        first = np.abs(self.arrays["weight_0"].astype(np.float64)).mean(axis=0)
        return np.where(self.arrays["scale"] > 0, first, 0.0)

    def _payloads(self) -> dict[str, bytes]:
        return {FILE: write_npz(self.arrays)}

    def _extra_meta(self) -> dict[str, Any]:
        return {"layer_sizes": list(self.layer_sizes), "activation": "relu"}

    @classmethod
    def _from_payloads(
        cls, payloads: dict[str, bytes], common: dict[str, Any], meta: dict[str, Any]
    ) -> TorchMLPEstimator:
        sizes = _architecture(meta, common)
        if meta.get("activation") != "relu":
            raise ArtifactIntegrityError(
                f"mlp model metadata: unknown activation {meta.get('activation')!r}"
            )
        expected = _expected(sizes, common["subtype"] == "regression")
        arrays = read_npz(payloads[FILE], expected, name=FILE)
        return cls(arrays=_check_scales(arrays, FILE), **common)


class TorchMLPAdapter(ModelAdapter):
    """A multilayer perceptron on standardised inputs; listed explicitly, never in ``auto``
    (it trains slower than the trees and rarely beats them on tables)."""

    name = "mlp"
    library = "torch"
    extra = "torch"
    supports_early_stopping = True
    in_auto = False
    rounds_param = "epochs"
    estimator = TorchMLPEstimator

    def search_space(self, subtype: str, n_rows: int) -> dict[str, SearchParam]:
        """Width, depth, dropout, learning rate, weight decay and batch size."""
        return {
            "hidden_units": SearchParam(low=16, high=512, log=True, integer=True),
            "layers": SearchParam(choices=[1, 2, 3]),
            "dropout": SearchParam(low=0.0, high=0.5),
            "learning_rate": SearchParam(low=1e-4, high=1e-2, log=True),
            "weight_decay": SearchParam(low=1e-6, high=1e-1, log=True),
            "batch_size": SearchParam(choices=[64, 128, 256, 512]),
        }

    def default_params(self, subtype: str) -> dict[str, Any]:
        # ``epochs`` is the maximum: the search early-stops every fold on its validation
        # rows and the refit trains for the (grown) mean best epoch.
        return {
            "hidden_units": 128,
            "layers": 2,
            "dropout": 0.1,
            "learning_rate": 1e-3,
            "weight_decay": 1e-4,
            "batch_size": 256,
            "epochs": 100,
        }

    def known_params(self, subtype: str) -> frozenset[str]:
        return frozenset(_RULES)

    def library_errors(self) -> tuple[type[BaseException], ...]:
        return (ValueError, RuntimeError)  # what torch raises for a model it cannot train

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
    ) -> TorchMLPEstimator:
        checked = _check_params(params)
        plan = make_plan(X, y, subtype=subtype, n_classes=n_classes, params=checked, seed=seed)
        if eval_set is not None and early_stopping_rounds is not None:
            standardisation(eval_set[0])  # refuses non-finite validation features
        weights = None if sample_weight is None else sample_weight / sample_weight.mean()
        arrays, best = self._train(
            X, y, weights, plan, threads=threads, eval_set=eval_set, patience=early_stopping_rounds
        )
        return TorchMLPEstimator(
            arrays=arrays,
            subtype=subtype,
            n_classes=n_classes,
            n_features=X.shape[1],
            params=params,
            best_iteration=best,
        )

    def _train(
        self,
        X: Matrix,
        y: np.ndarray,
        weights: np.ndarray | None,
        plan: dict[str, Any],
        *,
        threads: int,
        eval_set: tuple[Matrix, np.ndarray] | None,
        patience: int | None,
    ) -> tuple[dict[str, np.ndarray], int | None]:
        """The trained weights and best epoch, trained here with ``threads`` threads."""
        torch = require_torch()
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return train_weights(X, y, weights, plan, eval_set=eval_set, patience=patience)
        finally:
            torch.set_num_threads(before)

    def fit_distributed(
        self, X: Any, y: Any, *, train: RemoteTrain, **fit_args: Any
    ) -> FittedEstimator:
        """:meth:`fit` with the training done by ``train(X, y, worker_loop, plan,
        sample_weight=, seed=)``, which runs :func:`worker_loop` on data-parallel workers
        (for example DDP on Ray Train) and returns the weights as arrays. The estimator,
        and the file it saves, are those :meth:`fit` makes; there is no early stopping
        (no ``eval_set``)."""
        if fit_args.get("eval_set") is not None:
            raise UsageError("fit_distributed does not take an eval_set")
        return _TrainedElsewhere(train).fit(X, y, **fit_args)


class _TrainedElsewhere(TorchMLPAdapter):
    """The mlp adapter with training handed to a callable (see ``fit_distributed``)."""

    def __init__(self, train: RemoteTrain) -> None:
        self._remote = train

    def _train(
        self,
        X: Matrix,
        y: np.ndarray,
        weights: np.ndarray | None,
        plan: dict[str, Any],
        *,
        threads: int,
        eval_set: tuple[Matrix, np.ndarray] | None,
        patience: int | None,
    ) -> tuple[dict[str, np.ndarray], int | None]:
        arrays = self._remote(X, y, worker_loop, plan, sample_weight=weights, seed=plan["seed"])
        expected = _expected(plan["sizes"], plan["target"] is not None)
        try:
            where = "the distributed training's weights"
            return _check_scales(check_arrays(arrays, expected, name=where), where), None
        except ArtifactIntegrityError as exc:
            raise TrainingError(
                f"distributed mlp training returned unusable weights: {exc}"
            ) from exc
