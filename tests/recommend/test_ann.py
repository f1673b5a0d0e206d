"""The hnswlib index over factor models: filters, exact scores, persistence, corrupt files,
and recall@10 >= 0.95 against exact top-10 at 100,000 items."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from forgeml.errors import DataError, UsageError
from forgeml.recommend import ALS, BPR, Interactions, ItemKNN, generate, persist
from forgeml.recommend.ann import ItemIndex, build_index, recall_at_k_vs_exact

pytest.importorskip("hnswlib", reason="the ANN index needs the 'rec' extra (hnswlib)")


def _random_model(n_users: int = 300, n_items: int = 3000, dim: int = 16, seed: int = 0) -> ALS:
    """An ALS model with random factors (what the index sees) and a random seen matrix."""
    rng = np.random.default_rng(seed)
    model = ALS(factors=dim)
    seen = sp.random(n_users, n_items, density=0.01, format="csr", random_state=seed)
    seen.data[:] = 1.0
    model.seen_ = seen.astype(np.float32)
    model.user_factors_ = rng.normal(size=(n_users, dim)).astype(np.float32)
    model.item_factors_ = (rng.normal(size=(n_items, dim)) * 0.3).astype(np.float32)
    return model


@pytest.fixture(scope="module")
def indexed() -> ALS:
    model = _random_model()
    build_index(model, threads=1)
    return model


def test_index_results_honour_filters_and_carry_exact_scores(indexed):
    model = indexed
    users = np.arange(model.n_users)
    banned = np.arange(0, 3000, 3)
    items, scores = model.index_.recommend(users, 10, exclude=banned)
    seen = model.seen_.toarray().astype(bool)
    assert (items >= 0).all()
    for user in users:
        assert not seen[user, items[user]].any()
        assert not np.isin(items[user], banned).any()
        assert len(set(items[user].tolist())) == 10
        exact = model.user_factors_[user] @ model.item_factors_[items[user]].T
        np.testing.assert_allclose(scores[user], exact, rtol=1e-5, atol=1e-5)
        assert np.all(np.diff(scores[user]) <= 0)
    assert recall_at_k_vs_exact(model, users, 10) >= 0.95


def test_allow_and_heavy_users_are_scored_exactly(indexed):
    model = indexed
    users = np.arange(20)
    allow = np.arange(100, 200)
    np.testing.assert_array_equal(
        model.index_.recommend(users, 5, allow=allow)[0], model.recommend(users, 5, allow=allow)[0]
    )
    exact_index = ItemIndex(
        model, model.index_.graph, M=16, ef_construction=200, ef=10, max_overfetch=0
    )
    got, _ = exact_index.recommend(users, 10)  # every user has > 0 exclusions: exact path
    np.testing.assert_array_equal(got, model.recommend(users, 10)[0])
    # A user with nothing seen and nothing excluded goes through the graph.
    assert exact_index.query(model.user_factors_[:1], 3)[0].shape == (1, 3)


def test_fold_in_through_the_index(indexed):
    model = indexed
    histories = [model.seen_[u].indices for u in range(50)]
    approx, _ = model.index_.recommend_history(histories, 10)
    exact, _ = model.recommend_history(histories, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact, strict=True)])
    assert overlap >= 0.9
    for history, row in zip(histories, approx, strict=True):
        assert not np.isin(row, history).any()
    # A new user (empty history) gets the popular items, as from the model itself.
    empty = [np.array([], np.int64)]
    np.testing.assert_array_equal(
        model.index_.recommend_history(empty, 5)[0], model.recommend_history(empty, 5)[0]
    )


def test_bpr_index_includes_the_item_bias():
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 200, 4000), rng.integers(0, 800, 4000)
    log = Interactions.from_frame(pl.DataFrame({"user_id": users, "item_id": items}))
    model = BPR(factors=8, iterations=20, threads=1).fit(log)
    build_index(model, threads=1)
    assert model.item_vectors().shape[1] == 9  # 8 factors + the bias column
    assert recall_at_k_vs_exact(model, np.arange(200), 10) >= 0.95


def test_bad_use_is_refused(indexed):
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 1], "item_id": [0, 1]}))
    with pytest.raises(UsageError, match="needs a factor model"):
        build_index(ItemKNN().fit(log))
    with pytest.raises(UsageError, match="not fitted"):
        build_index(ALS())
    with pytest.raises(UsageError, match="has no index"):
        recall_at_k_vs_exact(_random_model(), [0])
    with pytest.raises(UsageError, match="16 columns"):
        indexed.index_.query(np.ones((1, 3)), 5)
    stale = _random_model(seed=3)
    index = build_index(stale, threads=1)
    stale.item_factors_ = stale.item_factors_.copy()  # as after a refit
    with pytest.raises(UsageError, match="rebuild it"):
        index.recommend([0])


def test_a_stale_index_is_not_saved(tmp_path):
    model = _random_model(n_items=300, seed=4)
    build_index(model, threads=1)
    model.item_factors_ = model.item_factors_ + 1.0  # refitted without rebuilding
    ids = np.arange(model.n_users), np.arange(model.n_items)
    with pytest.raises(UsageError, match="rebuild it"):
        persist.save(tmp_path / "m", model, user_ids=ids[0], item_ids=ids[1])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ persistence


def _saved(tmp_path: Path) -> tuple[Path, ALS]:
    model = _random_model(n_items=500, seed=5)
    build_index(model, threads=1)
    ids = np.arange(model.n_users), np.arange(model.n_items)
    files = persist.save(tmp_path / "m", model, user_ids=ids[0], item_ids=ids[1])
    assert "index.hnsw" in files
    return tmp_path / "m", model


def test_the_index_is_saved_and_loaded_with_the_model(tmp_path):
    folder, model = _saved(tmp_path)
    loaded = persist.load(folder).model
    assert isinstance(loaded.index_, ItemIndex)
    users = np.arange(model.n_users)
    for x, y in zip(
        model.index_.recommend(users, 10), loaded.index_.recommend(users, 10), strict=True
    ):
        np.testing.assert_array_equal(x, y)


def _forge(folder: Path, data: bytes) -> None:
    (folder / "index.hnsw").write_bytes(data)
    manifest = json.loads((folder / "recommender.json").read_text())
    manifest["files"]["index.hnsw"] = persist._sha256(folder / "index.hnsw")
    (folder / "recommender.json").write_text(json.dumps(manifest))


def test_a_forged_index_file_is_refused_before_hnswlib_reads_it(tmp_path):
    folder, _ = _saved(tmp_path)
    good = (folder / "index.hnsw").read_bytes()
    _forge(folder, good[:-100])
    with pytest.raises(DataError, match=r"index\.hnsw: not a valid hnswlib index"):
        persist.load(folder)
    # A neighbour id far outside the graph in element 0's level-0 links.
    header = struct.calcsize("<6Q i I 3Q d Q")
    forged = bytearray(good)
    forged[header : header + 8] = struct.pack("<II", 1, 10**6)
    _forge(folder, bytes(forged))
    with pytest.raises(DataError, match="not a valid hnswlib index"):
        persist.load(folder)
    _forge(folder, good)
    manifest = json.loads((folder / "recommender.json").read_text())
    manifest["index"]["dim"] = 99
    (folder / "recommender.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="does not match the model"):
        persist.load(folder)


# ------------------------------------------------------------------------------ at scale


@pytest.mark.slow
def test_recall_at_100k_items_from_a_trained_als(capsys):
    """ALS trained on a 1M-event synthetic log with every one of 100,000 items present."""
    rng = np.random.default_rng(0)
    frame = generate(users=50_000, items=100_000, interactions=1_000_000, seed=0)
    tail = pl.DataFrame(  # one event per item so the catalogue holds all 100,000
        {"user_id": rng.integers(0, 50_000, 100_000), "item_id": np.arange(100_000)}
    )
    log = Interactions.from_frame(pl.concat([frame.drop("timestamp"), tail]))
    assert log.n_items == 100_000
    model = ALS(factors=64, iterations=5).fit(log)
    start = time.perf_counter()
    index = build_index(model)
    build_seconds = time.perf_counter() - start
    users = rng.choice(log.n_users, 500, replace=False)
    recall = recall_at_k_vs_exact(model, users, 10)
    assert recall >= 0.95
    approximate, exact, fold_in = [], [], []
    for user in users[:300]:
        start = time.perf_counter()
        index.recommend([user], 10)
        approximate.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.recommend([user], 10)
        exact.append(time.perf_counter() - start)
        history = model.seen_[user].indices
        start = time.perf_counter()
        index.recommend_history([history], 10)  # fold-in + ANN: a user's update
        fold_in.append(time.perf_counter() - start)
    with capsys.disabled():
        print(
            f"\nANN at 100k items x 64: build {build_seconds:.1f} s, recall@10 {recall:.3f}; "
            f"one user top-10: ANN p50 {np.percentile(approximate, 50) * 1e3:.2f} ms "
            f"p99 {np.percentile(approximate, 99) * 1e3:.2f} ms, exact p50 "
            f"{np.percentile(exact, 50) * 1e3:.2f} ms p99 {np.percentile(exact, 99) * 1e3:.2f} ms; "
            f"fold-in + ANN p50 {np.percentile(fold_in, 50) * 1e3:.2f} ms "
            f"p99 {np.percentile(fold_in, 99) * 1e3:.2f} ms"
        )


def test_random_corruption_of_the_index_file_never_crashes(tmp_path):
    """Flipped bytes (sha256 re-recorded, as a forger would) either load into a working
    index or are refused with a DataError — never a crash inside hnswlib."""
    model = _random_model(n_users=5, n_items=400, dim=8, seed=7)
    index = build_index(model, threads=1)
    entry = index._save(tmp_path / "good.hnsw")
    good = (tmp_path / "good.hnsw").read_bytes()
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(150):
        forged = bytearray(good)
        for position in rng.integers(0, len(good), size=rng.integers(1, 4)):
            forged[position] = rng.integers(0, 256)
        path = tmp_path / "forged.hnsw"
        path.write_bytes(bytes(forged))
        try:
            loaded = ItemIndex._load(path, entry, model)
        except DataError:
            refused += 1
            continue
        items, _ = loaded.recommend(np.arange(5), 10)
        assert ((items >= -1) & (items < 400)).all()
    assert refused > 0
