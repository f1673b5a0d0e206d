"""The ``mlp``'s training loop, the same in this process and on a data-parallel worker.

:func:`make_plan` turns the training rows and parameters into plain data (layer sizes,
optimiser settings, the standardisation of the inputs and of a regression target, steps
per epoch). :func:`train_weights` trains on the rows it is given: all of them here, or one
worker's shard, where :func:`worker_loop` wraps the module for DistributedDataParallel so
the gradients of every step are all-reduced across the workers. Every worker splits its
rows into the plan's number of mini-batches per epoch, so all take the same steps: a
global batch of about ``batch_size`` rows, ``batch_size / workers`` on each. Each row's
loss is scaled by its weight (mean 1 over all training rows), so the mean over a global
batch is the same split across workers or not.

>>> X = np.array([[0.0, 1.0], [2.0, 1.0]], dtype=np.float32)
>>> mean, scale = standardisation(X)
>>> mean.tolist(), scale.tolist()
([1.0, 1.0], [1.0, 0.0])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml._optional import require
from forgeml.errors import DataError, TrainingError
from forgeml.models._inputs import is_sparse

if TYPE_CHECKING:
    from forgeml.models.base import Matrix

__all__ = [
    "block_rows",
    "blocks",
    "make_plan",
    "require_torch",
    "standardisation",
    "train_weights",
    "worker_loop",
]

# Bound on the elements of one densified block (prediction and statistics): 32 MiB of float64.
_BLOCK_ELEMENTS = 1 << 22


def blocks(X: Matrix, rows: int) -> Iterator[np.ndarray]:
    """``X`` as dense float32 blocks of ``rows`` rows (sparse rows densified per block)."""
    for lo in range(0, X.shape[0], rows):
        block: Any = X[lo : lo + rows]
        yield block.toarray() if is_sparse(block) else block


def block_rows(width: int) -> int:
    """Rows per block of a ``width``-wide matrix that keep a block to 32 MiB of float64."""
    return max(1, _BLOCK_ELEMENTS // max(1, width))


def standardisation(X: Matrix) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (float64), the same for dense and sparse ``X``
    (both are summed over the same dense blocks); :class:`DataError` for non-finite values."""
    rows = block_rows(X.shape[1])
    total = np.zeros(X.shape[1], dtype=np.float64)
    for block in blocks(X, rows):
        total += block.sum(axis=0, dtype=np.float64)
    mean = total / X.shape[0]
    squares = np.zeros(X.shape[1], dtype=np.float64)
    for block in blocks(X, rows):
        squares += np.square(block - mean).sum(axis=0)
    if not (np.isfinite(mean).all() and np.isfinite(squares).all()):
        raise DataError("X has missing or infinite values; model 'mlp' needs finite features")
    return mean, np.sqrt(squares / X.shape[0])


def make_plan(
    X: Matrix, y: np.ndarray, *, subtype: str, n_classes: int, params: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Everything a (local or remote) training loop needs besides the rows, as plain data:
    the layer sizes, the optimiser's settings, the standardisation of the inputs (and of a
    regression target), the steps per epoch. ``params`` are checked parameters."""
    n_rows, n_features = X.shape
    mean, scale = standardisation(X)
    target = None
    if subtype == "regression":
        spread = float(y.std())
        target = np.array([float(y.mean()), spread if spread > 0 else 1.0])
    outputs = 1 if subtype == "regression" else n_classes
    batch = min(params["batch_size"], n_rows)
    return {
        "subtype": subtype,
        "sizes": [n_features] + [params["hidden_units"]] * params["layers"] + [outputs],
        "dropout": params["dropout"],
        "learning_rate": params["learning_rate"],
        "weight_decay": params["weight_decay"],
        "epochs": params["epochs"],
        # Mini-batches per epoch: every data-parallel worker takes exactly as many steps.
        "steps": math.ceil(n_rows / batch),
        "seed": seed,
        "mean": mean,
        "scale": scale,
        "target": target,
    }


def require_torch() -> Any:
    """The ``torch`` module, or :class:`MissingExtraError` naming the ``torch`` extra."""
    return require("torch", extra="torch", feature="the mlp candidate")


def _module(torch: Any, sizes: list[int], dropout: float) -> Any:
    layers: list[Any] = []
    for width_in, width_out in itertools.pairwise(sizes[:-1]):
        layers += [torch.nn.Linear(width_in, width_out), torch.nn.ReLU()]
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    return torch.nn.Sequential(*layers)


def _linears(torch: Any, module: Any) -> list[Any]:
    return [layer for layer in module if isinstance(layer, torch.nn.Linear)]


def _weights(torch: Any, module: Any, plan: dict[str, Any]) -> dict[str, np.ndarray]:
    """The model as plain arrays: the standardisation and every layer's weight and bias."""
    arrays = {"mean": np.asarray(plan["mean"]), "scale": np.asarray(plan["scale"])}
    if plan["target"] is not None:
        arrays["target"] = np.asarray(plan["target"])
    for i, layer in enumerate(_linears(torch, module)):
        arrays[f"weight_{i}"] = layer.weight.detach().numpy().copy()
        arrays[f"bias_{i}"] = layer.bias.detach().numpy().copy()
    return arrays


class _Rows:
    """Standardised float32 mini-batches of a (dense or sparse) matrix and its targets."""

    def __init__(self, X: Matrix, y: np.ndarray, plan: dict[str, Any]) -> None:
        self.X = X
        self.mean = np.asarray(plan["mean"], dtype=np.float32)
        scale = np.asarray(plan["scale"])
        self.scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        if plan["target"] is None:
            self.y: np.ndarray = np.asarray(y).astype(np.int64)
        else:
            shift, spread = plan["target"]
            self.y = ((np.asarray(y, dtype=np.float64) - shift) / spread).astype(np.float32)

    def batch(self, torch: Any, idx: np.ndarray) -> tuple[Any, Any]:
        rows = self.X[idx]
        dense = rows.toarray() if is_sparse(rows) else rows
        return torch.from_numpy((dense - self.mean) / self.scale), torch.from_numpy(self.y[idx])


def _losses(torch: Any, out: Any, target: Any, regression: bool) -> Any:
    if regression:
        return (out[:, 0] - target) ** 2
    return torch.nn.functional.cross_entropy(out, target, reduction="none")


def _validation_loss(torch: Any, module: Any, rows: _Rows, regression: bool) -> float:
    """The mean (unweighted) loss over the validation rows, dropout off."""
    module.eval()
    total = 0.0
    with torch.no_grad():
        step = min(block_rows(rows.X.shape[1]), 4096)
        for lo in range(0, rows.X.shape[0], step):
            xb, yb = rows.batch(torch, np.arange(lo, min(lo + step, rows.X.shape[0])))
            total += float(_losses(torch, module(xb), yb, regression).sum())
    module.train()
    return total / rows.X.shape[0]


def train_weights(
    X: Matrix,
    y: np.ndarray,
    w: np.ndarray | None,
    plan: dict[str, Any],
    *,
    rank: int = 0,
    wrap: Callable[[Any], Any] | None = None,
    eval_set: tuple[Matrix, np.ndarray] | None = None,
    patience: int | None = None,
) -> tuple[dict[str, np.ndarray], int | None]:
    """Train on the rows given (all of them, or one worker's shard) and return the weights
    and the best epoch (``None`` without early stopping).

    ``w`` are row weights with mean 1 over all training rows. ``wrap`` turns the module
    into the one the mini-batches go through (``DistributedDataParallel`` on a worker,
    which all-reduces the gradients); every worker takes ``plan["steps"]`` steps per epoch.
    """
    torch = require_torch()
    regression = plan["target"] is not None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(plan["seed"])  # the same initial weights on every worker
        module = _module(torch, plan["sizes"], plan["dropout"])
        if rank:
            torch.manual_seed(plan["seed"] + rank)  # but each its own dropout masks
        model = wrap(module) if wrap is not None else module
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=plan["learning_rate"], weight_decay=plan["weight_decay"]
        )
        rows, shuffle = _Rows(X, y, plan), np.random.default_rng([plan["seed"], rank])
        weights = None if w is None else torch.from_numpy(np.asarray(w, dtype=np.float32))
        valid = _Rows(eval_set[0], eval_set[1], plan) if eval_set and patience else None
        best: tuple[float, int, dict[str, Any] | None] = (math.inf, 0, None)
        module.train()
        for epoch in range(1, plan["epochs"] + 1):
            for idx in np.array_split(shuffle.permutation(X.shape[0]), plan["steps"]):
                xb, yb = rows.batch(torch, idx)
                per_row = _losses(torch, model(xb), yb, regression)
                if weights is not None:
                    per_row = per_row * weights[idx]
                loss = per_row.sum() / max(len(idx), 1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            # Identical on every worker (the updates are), so all stop together.
            if not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
                raise TrainingError(
                    f"model 'mlp' diverged in epoch {epoch} (non-finite weights); "
                    "lower learning_rate"
                )
            if valid is not None and patience is not None:
                value = _validation_loss(torch, module, valid, regression)
                if value < best[0]:
                    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                    best = (value, epoch, state)
                elif epoch - best[1] >= patience:
                    break
        if best[2] is not None:
            module.load_state_dict(best[2])
        return _weights(torch, module, plan), best[1] or None


def worker_loop(shard: dict[str, Any], plan: dict[str, Any], worker: Any) -> dict[str, np.ndarray]:
    """One data-parallel worker's training: :func:`train_weights` on its shard (``X``,
    ``y`` and optional ``w``), the module wrapped by ``worker.prepare_model``."""
    return train_weights(
        shard["X"], shard["y"], shard.get("w"), plan, rank=worker.rank, wrap=worker.prepare_model
    )[0]
