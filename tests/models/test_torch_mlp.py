"""The ``mlp`` candidate beyond the shared contract: determinism, early stopping, sparse
mini-batches, sample weights, the ``.npz`` weights file, parameters, the catalog, and the
adapter's side of data-parallel training (without Ray)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from forgeml.errors import (
    ArtifactIntegrityError,
    ConfigError,
    DataError,
    MissingExtraError,
    TrainingError,
    UsageError,
)
from forgeml.models import available_names, get_adapter, load_estimator
from forgeml.models._artifacts import sha256_bytes
from forgeml.models._npz import write_npz
from forgeml.models.catalog import ADAPTERS
from forgeml.models.torch_mlp import TorchMLPAdapter, worker_loop
from forgeml.tasks import score

torch = pytest.importorskip("torch")

_SMALL = {"epochs": 10, "hidden_units": 16, "layers": 1, "batch_size": 64, "learning_rate": 0.003}


def _fit(X: Any, y: Any, subtype: str = "binary", n_classes: int = 2, **kw: Any) -> Any:
    params = {**_SMALL, **kw.pop("params", {})}
    kw.setdefault("seed", 0)
    return TorchMLPAdapter().fit(X, y, subtype=subtype, n_classes=n_classes, params=params, **kw)


# -- training ----------------------------------------------------------------------------


def test_training_is_deterministic_for_a_seed_and_leaves_torch_as_it_was(splits) -> None:
    split = splits["multiclass"]
    args = (split.X_train, split.y_train, "multiclass", 3)
    threads, rng_state = torch.get_num_threads(), torch.random.get_rng_state()
    first = _fit(*args, threads=2, params={"dropout": 0.3}).predict(split.X_test)
    second = _fit(*args, threads=2, params={"dropout": 0.3}).predict(split.X_test)
    other = _fit(*args, threads=2, params={"dropout": 0.3}, seed=1).predict(split.X_test)
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other).max() > 1e-3
    # The caller's thread count and global RNG are untouched.
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(-np.log(proba[np.arange(len(y)), y]).mean())


def test_early_stopping_keeps_the_epoch_with_the_lowest_validation_loss(splits) -> None:
    split = splits["binary"]
    X, y = split.X_train, split.y_train
    cut = int(0.7 * len(y))
    params = {"learning_rate": 0.02, "hidden_units": 64, "epochs": 200, "dropout": 0.0}
    stopped = _fit(X[:cut], y[:cut], params=params, eval_set=(X[cut:], y[cut:]),
                   early_stopping_rounds=4)  # fmt: skip
    best = stopped.best_iteration
    assert best is not None and 1 <= best < 60
    # Train 1..best+4 epochs without early stopping: the best epoch has the lowest loss on
    # the validation rows, and training stopped 4 epochs after it.
    losses = [
        _log_loss(y[cut:], _fit(X[:cut], y[:cut], params={**params, "epochs": n}).predict(X[cut:]))
        for n in range(1, best + 5)
    ]
    assert int(np.argmin(losses)) + 1 == best
    np.testing.assert_allclose(
        _log_loss(y[cut:], stopped.predict(X[cut:])), losses[best - 1], rtol=1e-12
    )


def test_sparse_rows_are_densified_one_batch_at_a_time(monkeypatch) -> None:
    """Hashed-feature-like input (wide, 2% filled): the model trained on the CSR matrix is
    the one trained on its dense copy, and no step densifies more than a mini-batch or a
    bounded block."""
    import forgeml.models._mlp_train as mlp_train

    X = sp.random(600, 500, density=0.02, format="csr", dtype=np.float32, random_state=1)
    y = (np.asarray(X[:, :50].sum(axis=1)).ravel() > 0.25).astype(np.int64)
    dense = X.toarray()
    block = 40 * X.shape[1]  # statistics and predictions: 40 rows at a time
    monkeypatch.setattr(mlp_train, "_BLOCK_ELEMENTS", block)
    shapes: list[tuple[int, int]] = []
    original = sp.csr_matrix.toarray

    def recording(self: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        out = original(self, *args, **kwargs)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(sp.csr_matrix, "toarray", recording)
    from_sparse = _fit(X, y, params={"batch_size": 32})
    pred = from_sparse.predict(X)
    assert shapes and max(rows for rows, _ in shapes) <= 40
    np.testing.assert_array_equal(pred, _fit(dense, y, params={"batch_size": 32}).predict(dense))
    assert score("roc_auc", y, pred, "binary") > 0.8


def test_sample_weights(splits) -> None:
    split = splits["binary"]
    X, y = split.X_train, split.y_train
    plain = _fit(X, y).predict(split.X_test)
    # Weights are relative: uniform weights are no weights.
    uniform = _fit(X, y, sample_weight=np.full(len(y), 3.0)).predict(split.X_test)
    np.testing.assert_array_equal(uniform, plain)
    # Rows of weight 0 do not count: flipped labels on them leave the model good.
    flipped = np.random.default_rng(0).random(len(y)) < 0.45
    noisy = np.where(flipped, 1 - y, y)
    ignored = _fit(X, noisy, sample_weight=np.where(flipped, 0.0, 1.0)).predict(split.X_test)
    trusted = _fit(X, noisy).predict(split.X_test)
    auc = [score("roc_auc", split.y_test, p, "binary") for p in (ignored, trusted)]
    assert auc[0] > 0.97 and auc[0] > auc[1] + 0.02


def test_feature_importance_ranks_inputs_and_zeroes_constant_ones() -> None:
    rng = np.random.default_rng(0)
    signal, noise = rng.normal(size=400), rng.normal(size=400)
    X = np.column_stack([signal, noise, np.full(400, 7.0)]).astype(np.float32)
    est = _fit(X, signal * 3.0 + 1.0, "regression", 0, params={"epochs": 30})
    importance = est.feature_importance()
    assert importance[2] == 0.0 and importance[0] > 1.5 * importance[1]
    assert score("r2", signal * 3.0 + 1.0, est.predict(X), "regression") > 0.95


def test_non_finite_features_are_data_errors(splits) -> None:
    split = splits["binary"]
    X = split.X_train.copy()
    X[5, 2] = np.nan
    with pytest.raises(DataError, match="missing or infinite"):
        _fit(X, split.y_train)
    with pytest.raises(DataError, match="missing or infinite"):
        _fit(split.X_train, split.y_train, eval_set=(X, split.y_train), early_stopping_rounds=2)
    est = _fit(split.X_train, split.y_train)
    with pytest.raises(DataError, match="missing or infinite"):
        est.predict(X)


# -- parameters and the catalog ----------------------------------------------------------


def test_unknown_parameter_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"models.candidates\[0\].params: .*no parameter 'n_estimators'"
    ):
        get_adapter("mlp").resolve_params({"n_estimators": 3}, "binary", field="models.candidates[0].params")  # fmt: skip


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden_units": 0}, r"params.hidden_units: .*integer >= 1"),
        ({"layers": 2.5}, r"params.layers: .*integer"),
        ({"dropout": 1.5}, r"params.dropout: .*at most 0.95"),
        ({"learning_rate": 0.0}, r"params.learning_rate: .*> 0.0"),
        ({"weight_decay": -1.0}, r"params.weight_decay"),
        ({"batch_size": "big"}, r"params.batch_size"),
        ({"epochs": True}, r"params.epochs"),
    ],
)
def test_parameter_values_out_of_range_are_config_errors(splits, params, message) -> None:
    split = splits["binary"]
    with pytest.raises(ConfigError, match=message):
        _fit(split.X_train, split.y_train, params=params)


def test_integral_floats_are_accepted_as_integers(splits) -> None:
    split = splits["binary"]
    est = _fit(split.X_train, split.y_train, params={"hidden_units": 8.0, "epochs": 2.0})
    assert est.to_meta()["layer_sizes"] == [30, 8, 2]


def test_not_in_auto_but_available_when_listed(tmp_path) -> None:
    from forgeml.config import load_spec
    from forgeml.workflow.check import resolve_candidates

    assert "mlp" in ADAPTERS and not ADAPTERS["mlp"].in_auto
    for subtype in ("binary", "multiclass", "regression"):
        assert "mlp" not in available_names(subtype)
    base = {"name": "t", "task": "classification", "target": "y", "data": {"source": "x.csv"}}
    auto = resolve_candidates(load_spec(base), "binary", n_rows=500)
    assert "mlp" not in [space.name for space in auto]
    listed = load_spec({**base, "models": {"candidates": ["lightgbm", "mlp"]}})
    spaces = resolve_candidates(listed, "binary", n_rows=500)
    assert [space.name for space in spaces] == ["lightgbm", "mlp"]


def test_missing_torch_names_the_extra_and_saved_models_still_load(
    splits, save_meta, tmp_path, monkeypatch
) -> None:
    split = splits["binary"]
    est = _fit(split.X_train, split.y_train)
    meta = save_meta(est, tmp_path)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"forgeml\[torch\]"):
        _fit(split.X_train, split.y_train)
    # Predicting is NumPy: serving a saved mlp needs no torch.
    loaded = load_estimator(tmp_path, meta)
    np.testing.assert_array_equal(loaded.predict(split.X_test), est.predict(split.X_test))


# -- the weights file --------------------------------------------------------------------


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _object_array_npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{**arrays, "bias_0": np.array([{"x": 1}], dtype=object)})
    return buffer.getvalue()


def _forge(arrays: dict[str, np.ndarray], **changes: Any) -> bytes:
    return write_npz({**arrays, **changes})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda a: _forge(a, weight_0=a["weight_0"][:, :-1]), "weight_0 is float32"),
        (lambda a: _forge(a, weight_1=a["weight_1"].astype(np.float64)), "weight_1 is float64"),
        (lambda a: _forge(a, bias_0=np.full_like(a["bias_0"], np.nan)), "non-finite"),
        (lambda a: _forge(a, scale=-a["scale"]), "standard deviations"),
        (lambda a: _forge(a, extra=np.zeros(1)), "holds"),
        (lambda a: write_npz({k: v for k, v in a.items() if k != "mean"}), "holds"),
        (lambda a: _forge(a, weight_0=np.zeros((16, 30_000), np.float32)), "larger than"),
        (_object_array_npz, "bias_0"),
        (lambda a: b"PK\x03\x04" + b"\x00" * 60, "npz"),
    ],
    ids=["shape", "dtype", "nan", "scale", "extra", "missing", "oversized", "pickle", "zip"],
)
def test_malformed_weight_files_are_refused(splits, save_meta, tmp_path, make, message) -> None:
    split = splits["binary"]
    est = _fit(split.X_train, split.y_train)
    meta = save_meta(est, tmp_path)
    path = tmp_path / "estimator.mlp.npz"
    data = make(_arrays(path))
    path.write_bytes(data)
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load_estimator(tmp_path, meta)
    # With a digest that matches (a forged metadata record): refused by the checks.
    forged = {**meta, "sha256": {path.name: sha256_bytes(data)}}
    with pytest.raises(ArtifactIntegrityError, match=message):
        load_estimator(tmp_path, forged)


@pytest.mark.parametrize(
    "change",
    [{"layer_sizes": [30, 16, 3]}, {"layer_sizes": [30, 2]}, {"layer_sizes": "30-16-2"},
     {"layer_sizes": [30, 17, 2]}, {"activation": "tanh"}],
)  # fmt: skip
def test_architecture_metadata_must_match_the_weights(splits, save_meta, tmp_path, change) -> None:
    split = splits["binary"]
    meta = save_meta(_fit(split.X_train, split.y_train), tmp_path)
    with pytest.raises(ArtifactIntegrityError):
        load_estimator(tmp_path, {**meta, **change})


def test_saving_twice_gives_the_same_bytes(splits, tmp_path) -> None:
    split = splits["regression"]
    est = _fit(split.X_train, split.y_train, "regression", 0)
    est.save(tmp_path / "a")
    est.save(tmp_path / "b")
    assert (tmp_path / "a" / "estimator.mlp.npz").read_bytes() == (
        tmp_path / "b" / "estimator.mlp.npz"
    ).read_bytes()
    meta = json.loads(json.dumps(est.to_meta()))
    assert meta["layer_sizes"] == [10, 16, 1] and meta["activation"] == "relu"


# -- the adapter's side of data-parallel training ----------------------------------------


class _OneWorker:
    rank, world_size = 0, 1

    @staticmethod
    def prepare_model(module: Any) -> Any:
        return module


def test_fit_distributed_builds_the_estimator_fit_builds(splits) -> None:
    """A ``train`` callable running the worker loop in this process, as one worker, gives
    exactly the model ``fit`` gives: the same plan, steps, seed and weights."""
    split = splits["multiclass"]
    calls: list[dict[str, Any]] = []

    def train(X: Any, y: Any, loop: Any, plan: dict[str, Any], **kw: Any) -> Any:
        calls.append({"plan": plan, "loop": loop, **kw})
        shard = {"X": X, "y": y.astype(np.float64), "w": kw["sample_weight"]}
        return loop(shard, {**plan, "seed": kw["seed"]}, _OneWorker())

    weights = np.linspace(0.5, 1.5, len(split.y_train))
    args: dict[str, Any] = {"sample_weight": weights, "seed": 3, "params": {"dropout": 0.2}}
    adapter = TorchMLPAdapter()
    remote = adapter.fit_distributed(
        split.X_train, split.y_train, train=train, subtype="multiclass", n_classes=3, **{
            **args, "params": {**_SMALL, **args["params"]}})  # fmt: skip
    local = _fit(split.X_train, split.y_train, "multiclass", 3, **args)
    (call,) = calls
    assert call["loop"] is worker_loop and call["seed"] == 3
    assert call["plan"]["sizes"] == [13, 16, 3] and call["plan"]["epochs"] == 10
    np.testing.assert_allclose(call["sample_weight"].mean(), 1.0)
    np.testing.assert_array_equal(remote.predict(split.X_test), local.predict(split.X_test))
    assert remote.best_iteration is None and type(remote) is type(local)

    with pytest.raises(UsageError, match="eval_set"):
        adapter.fit_distributed(split.X_train, split.y_train, train=train, subtype="multiclass",
                                n_classes=3, eval_set=(split.X_test, split.y_test), **args)  # fmt: skip

    def broken(*_: Any, **__: Any) -> dict[str, np.ndarray]:
        return {"weight_0": np.zeros(3, dtype=np.float32)}

    with pytest.raises(TrainingError, match="unusable weights"):
        adapter.fit_distributed(split.X_train, split.y_train, train=broken,
                                subtype="multiclass", n_classes=3, **args)  # fmt: skip
