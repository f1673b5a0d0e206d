"""Data-parallel LightGBM and XGBoost training on Ray Train workers.

:func:`train_lightgbm_distributed` splits the training rows into ``workers`` contiguous
shards, puts each shard into Ray's object store once and runs ``lightgbm.train`` on every
worker of a Ray Train :class:`~ray.train.lightgbm.LightGBMTrainer` with LightGBM's
data-parallel tree learner (``tree_learner=data``, ``pre_partition=True``): each worker
builds histograms of its own shard and the workers all-reduce them over LightGBM's socket
network, whose addresses Ray Train hands out (``ray.train.lightgbm.get_network_params``).
Every worker ends with the same booster; rank 0 posts it, as LightGBM's model text, to a
small actor owned by the caller, so the booster comes back as plain data and no storage
shared between the cluster's nodes is needed.

Ray is started or connected to exactly as the tuning executor does
(:class:`~forgeml.engine.ray_backend.RayExecutor`): the cluster in ``RAY_ADDRESS``, else a
local Ray instance sized for the workers that is shut down at the end; a Ray the caller
already initialised is used as it is.

:func:`train_xgboost_distributed` does the same with Ray Train's
:class:`~ray.train.xgboost.XGBoostTrainer`, which wraps each worker's ``xgboost.train`` in
XGBoost's collective (Rabit) context, and returns XGBoost's JSON model.

:func:`train_torch_distributed` runs a caller's PyTorch training loop on the workers of a
Ray Train :class:`~ray.train.torch.TorchTrainer` (gloo process group, CPU): each worker
gets its shard and a ``prepare_model`` that wraps the module in ``DistributedDataParallel``
(``ray.train.torch.prepare_model``), which all-reduces the gradients of every step, so all
workers end with the same weights. Every worker posts a digest of its weights (a mismatch
is a :class:`TrainingError`) and rank 0 the weights themselves, as NumPy arrays.

The engine knows nothing about forgeml's models: the caller passes the library's native
parameters (objective, seed, ...) and gets the model text back, or passes the per-worker
PyTorch training loop and gets the weights back. LightGBM's network settings
(``machines``, ``local_listen_port``) are removed from the text, so the saved model names
no host of the cluster it was trained on.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from forgeml._optional import require
from forgeml.engine.base import cpu_count
from forgeml.engine.ray_backend import RayExecutor
from forgeml.errors import ConfigError, DataError, TrainingError, UsageError

__all__ = [
    "TorchWorker",
    "train_lightgbm_distributed",
    "train_torch_distributed",
    "train_xgboost_distributed",
]

# Parameters the distributed setup owns; the caller may not set them.
_NETWORK_PARAMS = frozenset(
    {
        "tree_learner",
        "num_machines",
        "machines",
        "machine_list_filename",
        "local_listen_port",
        "pre_partition",
        "num_threads",
    }
)
# Lines of the model text's ``parameters:`` section that name the cluster's hosts.
_HOST_LINES = re.compile(r"^\[(?:machines|local_listen_port|machine_list_filename): .*\]\n", re.M)


def _train() -> Any:
    return require("ray.train", extra="ray", feature="distributed training on Ray")


class _Mailbox:
    """An actor holding what the workers post, by rank (rank 0: the model)."""

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}

    def put(self, rank: int, value: Any) -> None:
        self.values[rank] = value

    def get(self) -> dict[int, Any]:
        return self.values


def _shard(config: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """This worker's rank and row shard (run on a Ray Train worker)."""
    import ray
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    shard: dict[str, Any] = ray.get(config["shards"][rank])
    return rank, shard


def _post(config: dict[str, Any], rank: int, value: Any) -> None:
    import ray

    ray.get(config["mailbox"].put.remote(rank, value))


def _lightgbm_loop(config: dict[str, Any]) -> None:
    """Runs on each Ray Train worker: LightGBM on this worker's shard, data-parallel."""
    import lightgbm as lgb
    from ray.train.lightgbm import get_network_params

    rank, shard = _shard(config)
    params = dict(config["params"])
    params.update(
        tree_learner="data",
        pre_partition=True,
        num_threads=config["threads"],
        **get_network_params(),
    )
    data = lgb.Dataset(
        shard["X"], label=shard["y"], weight=shard.get("w"), params={"verbosity": -1}
    )
    booster = lgb.train(params, data, num_boost_round=config["rounds"])
    if rank == 0:  # every worker holds the same model
        _post(config, rank, booster.model_to_string())


def _xgboost_loop(config: dict[str, Any]) -> None:
    """Runs on each Ray Train worker, inside XGBoost's collective context: XGBoost on
    this worker's shard, histograms all-reduced."""
    import xgboost as xgb

    rank, shard = _shard(config)
    params = {**config["params"], "nthread": config["threads"]}
    data = xgb.DMatrix(
        shard["X"], label=shard["y"], weight=shard.get("w"), nthread=config["threads"]
    )
    booster = xgb.train(params, data, num_boost_round=config["rounds"], verbose_eval=False)
    if rank == 0:  # every worker holds the same model
        _post(config, rank, bytes(booster.save_raw("json")).decode("utf-8"))


@dataclass(frozen=True)
class TorchWorker:
    """What a PyTorch training loop learns about the worker it runs on: its rank, the
    number of workers, and ``prepare_model(module)``, which returns the module to train
    through (wrapped in ``DistributedDataParallel`` when there are several workers)."""

    rank: int
    world_size: int
    prepare_model: Callable[[Any], Any]


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the arrays."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _torch_loop(config: dict[str, Any]) -> None:
    """Runs on each Ray Train worker, in the gloo process group: the caller's loop on this
    worker's shard; every rank posts the digest of its weights, rank 0 the weights too."""
    import torch
    from ray.train.torch import prepare_model

    rank, shard = _shard(config)
    torch.set_num_threads(config["threads"])
    worker = TorchWorker(
        rank=rank,
        world_size=len(config["shards"]),
        prepare_model=partial(prepare_model, move_to_device=False),
    )
    if config["integer_target"]:  # the shards carry labels as float64
        shard["y"] = shard["y"].astype(np.int64)
    arrays = config["loop"](shard, config["config"], worker)
    if not isinstance(arrays, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in arrays.items()
    ):
        raise TypeError(f"the training loop returned {type(arrays).__name__}, not name -> array")
    _post(config, rank, (_digest(arrays), arrays if rank == 0 else None))


def _reason(exc: BaseException) -> str:
    """The first failed worker's rank and the last line of its error (the exception's
    type and message; Ray's text holds the whole traceback), else Ray's own message."""
    failures = getattr(exc, "worker_failures", None) or {}
    for rank in sorted(failures):
        lines = [line.strip() for line in str(failures[rank]).splitlines() if line.strip()]
        if lines:
            return f" on worker {rank}: {lines[-1]}"
    return f": {exc}"


def _check_rounds(num_boost_round: int) -> None:
    if isinstance(num_boost_round, bool) or not isinstance(num_boost_round, int):
        raise ConfigError(f"num_boost_round: expected an integer, got {num_boost_round!r}")
    if num_boost_round < 1:
        raise ConfigError(f"num_boost_round: expected an integer >= 1, got {num_boost_round}")


def _check(X: Any, y: Any, sample_weight: Any, workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"engine.train_workers: expected an integer >= 1, got {workers!r}")
    if getattr(X, "ndim", None) != 2:
        raise DataError("distributed training: X must be a 2-d matrix")
    n_rows = int(X.shape[0])
    if np.ndim(y) != 1 or len(y) != n_rows:
        raise DataError(f"distributed training: y has {len(y)} values, X has {n_rows} rows")
    if sample_weight is not None and (np.ndim(sample_weight) != 1 or len(sample_weight) != n_rows):
        raise DataError(
            f"distributed training: sample_weight has {len(sample_weight)} values, "
            f"X has {n_rows} rows"
        )
    if n_rows < workers:
        raise DataError(
            f"distributed training: {n_rows} training rows cannot be split across "
            f"{workers} workers (engine.train_workers)"
        )


def train_lightgbm_distributed(
    X: Any,
    y: Any,
    params: dict[str, Any],
    num_boost_round: int,
    *,
    sample_weight: Any = None,
    workers: int,
    seed: int,
    threads_per_worker: int | None = None,
) -> str:
    """Train a LightGBM booster data-parallel on ``workers`` Ray Train workers and return
    it as LightGBM's model text.

    ``X`` is a NumPy array or SciPy CSR matrix, ``y`` the labels (and ``sample_weight`` the
    row weights); worker ``i`` gets the ``i``-th of ``workers`` contiguous row shards.
    ``params`` are LightGBM's native parameters without the network ones (which this
    function sets); ``seed`` is LightGBM's ``seed``. Each worker uses
    ``threads_per_worker`` native threads and reserves as many Ray CPUs (default: the
    local CPUs divided among the workers on a local Ray, one on a cluster).

    Raises :class:`ConfigError` for parameters the distributed setup owns or a cluster
    that cannot be reached, :class:`DataError` for inputs that do not fit together, and
    :class:`TrainingError` when training fails on a worker.
    """
    _check_rounds(num_boost_round)
    _check(X, y, sample_weight, workers)
    owned = sorted(_NETWORK_PARAMS & set(params))
    if owned:
        raise ConfigError(
            f"distributed training sets {', '.join(owned)} itself; remove them from the params"
        )
    _train()
    from ray.train.lightgbm import LightGBMTrainer

    posts = _run(
        LightGBMTrainer,
        _lightgbm_loop,
        "LightGBM",
        X,
        y,
        sample_weight,
        {"params": {**params, "seed": seed}, "rounds": num_boost_round},
        workers,
        threads_per_worker,
    )
    return _HOST_LINES.sub("", _model_text(posts, "LightGBM"))


def train_xgboost_distributed(
    X: Any,
    y: Any,
    params: dict[str, Any],
    num_boost_round: int,
    *,
    sample_weight: Any = None,
    workers: int,
    seed: int,
    threads_per_worker: int | None = None,
) -> str:
    """Train an XGBoost booster data-parallel on ``workers`` Ray Train workers and return
    it as XGBoost's JSON model.

    As :func:`train_lightgbm_distributed`, with XGBoost's collective (Rabit) communication,
    which Ray Train's :class:`~ray.train.xgboost.XGBoostTrainer` sets up around each
    worker's ``xgboost.train``. ``params`` are XGBoost's native parameters (``tree_method``
    ``hist`` by default) without ``nthread``; ``seed`` is XGBoost's ``seed``.
    """
    _check_rounds(num_boost_round)
    _check(X, y, sample_weight, workers)
    if "nthread" in params or "n_jobs" in params:
        raise ConfigError("distributed training sets nthread itself; remove it from the params")
    _train()
    from ray.train.xgboost import XGBoostTrainer

    posts = _run(
        XGBoostTrainer,
        _xgboost_loop,
        "XGBoost",
        X,
        y,
        sample_weight,
        {"params": {"tree_method": "hist", **params, "seed": seed}, "rounds": num_boost_round},
        workers,
        threads_per_worker,
    )
    return _model_text(posts, "XGBoost")


def _model_text(posts: dict[int, Any], library: str) -> str:
    text = posts.get(0)
    if not isinstance(text, str):
        raise TrainingError(f"distributed {library} training returned no model")
    return text


def train_torch_distributed(
    X: Any,
    y: Any,
    loop: Callable[[dict[str, Any], Any, TorchWorker], dict[str, np.ndarray]],
    config: dict[str, Any],
    *,
    sample_weight: Any = None,
    workers: int,
    seed: int,
    threads_per_worker: int | None = None,
) -> dict[str, np.ndarray]:
    """Run a PyTorch training loop data-parallel (DDP) on ``workers`` Ray Train workers
    and return the weights it trained, as NumPy arrays by name.

    ``loop(shard, config, worker)`` runs on every worker: ``shard`` holds its contiguous
    rows ``X``, ``y`` (``int64`` when ``y`` has an integer dtype, else ``float64``) and
    ``w`` (when there are ``sample_weight``), ``config`` is ``config`` with ``seed`` set,
    and ``worker`` a :class:`TorchWorker`. The loop must train the module that
    ``worker.prepare_model`` returns (so DDP all-reduces its gradients), take the same
    number of steps on every worker, and return the weights; ``loop`` and ``config`` must
    be picklable (a module-level function and plain data). Threads and Ray CPUs per
    worker as in :func:`train_lightgbm_distributed`.

    Raises :class:`ConfigError` for a bad worker count or a cluster that cannot be
    reached, :class:`UsageError` for a ``loop`` or ``config`` of the wrong kind,
    :class:`DataError` for inputs that do not fit together, and :class:`TrainingError`
    when training fails on a worker or the workers end with different weights.
    """
    _check(X, y, sample_weight, workers)
    if not callable(loop):
        raise UsageError(f"distributed training: the training loop is not callable: {loop!r}")
    if not isinstance(config, dict):
        raise UsageError("distributed training: the loop's config must be a mapping")
    labels = np.asarray(y)
    _train()
    require("torch", extra="torch", feature="distributed PyTorch training on Ray")
    from ray.train.torch import TorchConfig, TorchTrainer

    posts = _run(
        partial(TorchTrainer, torch_config=TorchConfig(backend="gloo")),
        _torch_loop,
        "PyTorch",
        X,
        y,
        sample_weight,
        {
            "loop": loop,
            "config": {**config, "seed": seed},
            "integer_target": labels.dtype.kind in "iub",
        },
        workers,
        threads_per_worker,
    )
    return _agreed_weights(posts, workers)


def _agreed_weights(posts: dict[int, Any], workers: int) -> dict[str, np.ndarray]:
    """Rank 0's weights, once every worker posted the same digest."""
    digests = {rank: post[0] for rank, post in posts.items()}
    if sorted(digests) != list(range(workers)):
        raise TrainingError(
            f"distributed PyTorch training: only workers {sorted(digests)} of {workers} finished"
        )
    if len(set(digests.values())) != 1:
        raise TrainingError(
            "distributed PyTorch training: the workers ended with different weights "
            "(the loop must train the module prepare_model returns)"
        )
    arrays: dict[str, np.ndarray] = posts[0][1]
    return arrays


def _run(
    trainer_cls: Any,
    loop: Any,
    library: str,
    X: Any,
    y: Any,
    sample_weight: Any,
    config: dict[str, Any],
    workers: int,
    threads_per_worker: int | None,
) -> dict[int, Any]:
    """Shard the rows into the object store, run ``loop`` on the Ray Train workers and
    return what they post, by rank."""
    from ray.train import RunConfig, ScalingConfig, TrainingFailedError

    if threads_per_worker is None:
        address = os.environ.get("RAY_ADDRESS") or "local"
        threads_per_worker = max(1, cpu_count() // workers) if address == "local" else 1
    executor = RayExecutor(workers * threads_per_worker)  # sizes a local Ray for the workers
    storage = tempfile.mkdtemp(prefix="forgeml-ray-train-")
    try:
        ray = executor.ensure_ray()
        n_rows = int(X.shape[0])
        bounds = np.linspace(0, n_rows, workers + 1).astype(np.int64).tolist()
        shards = []
        for lo, hi in itertools.pairwise(bounds):
            shard = {"X": X[lo:hi], "y": np.asarray(y[lo:hi], dtype=np.float64)}
            if sample_weight is not None:
                shard["w"] = np.asarray(sample_weight[lo:hi], dtype=np.float64)
            shards.append(ray.put(shard))
        mailbox = ray.remote(num_cpus=0)(_Mailbox).remote()
        trainer = trainer_cls(
            loop,
            train_loop_config={
                **config,
                "shards": shards,
                "threads": threads_per_worker,
                "mailbox": mailbox,
            },
            scaling_config=ScalingConfig(
                num_workers=workers, resources_per_worker={"CPU": threads_per_worker}
            ),
            run_config=RunConfig(name=f"forgeml-{library.lower()}", storage_path=storage),
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Ray Train's and Ray Data's own advice
                trainer.fit()
        except TrainingFailedError as exc:
            raise TrainingError(f"distributed {library} training failed{_reason(exc)}") from exc
        posts: dict[int, Any] = ray.get(mailbox.get.remote())
        return posts
    finally:
        executor.close()
        shutil.rmtree(storage, ignore_errors=True)
