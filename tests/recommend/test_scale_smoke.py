"""Scale paths of the recommenders, on small data: ItemKNN's blocked co-occurrence build
gives the same model however the item rows are blocked, and the generate -> encode ->
fit -> save -> load -> recommend chain of bench/recommend_scale.py works end to end."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import scipy.sparse as sp

from forgeml.recommend import Interactions, ItemKNN, generate, models, persist


def _brute_force_itemknn(log: Interactions, neighbours: int, shrink: float) -> np.ndarray:
    """Dense reference: cosine of item columns, diagonal zeroed, each row's top
    ``neighbours`` positive entries kept (equal values: lower column first)."""
    seen = log.matrix(binary=True).toarray().astype(np.float64)
    co = seen.T @ seen
    norms = np.sqrt(np.diag(co))
    cosine = co / (np.outer(norms, norms) + shrink + 1e-12)
    np.fill_diagonal(cosine, 0.0)
    kept = np.zeros_like(cosine)
    for row in range(len(cosine)):
        order = np.lexsort((np.arange(len(cosine)), -cosine[row]))
        top = [j for j in order[:neighbours] if cosine[row, j] > 0]
        kept[row, top] = cosine[row, top]
    return kept


@pytest.mark.parametrize("budget", [1, 500, 2**25])
@pytest.mark.parametrize(("neighbours", "shrink"), [(3, 0.0), (10, 2.0)])
def test_itemknn_blocks_give_the_same_model(
    monkeypatch: pytest.MonkeyPatch, budget: int, neighbours: int, shrink: float
) -> None:
    log = Interactions.from_frame(generate(users=300, items=60, interactions=3_000, seed=4))
    monkeypatch.setattr(models, "_PAIR_BUDGET", budget)
    similarity = ItemKNN(neighbours=neighbours, shrink=shrink).fit(log).similarity_
    assert sp.issparse(similarity) and similarity.shape == (60, 60)
    expected = _brute_force_itemknn(log, neighbours, shrink)
    np.testing.assert_allclose(similarity.toarray(), expected, rtol=1e-5, atol=1e-7)
    assert np.all(np.diff(similarity.indptr) <= neighbours)


def test_itemknn_blocks_on_movielens_match_one_block(
    monkeypatch: pytest.MonkeyPatch, movielens: Interactions
) -> None:
    one = ItemKNN(neighbours=20).fit(movielens).similarity_
    monkeypatch.setattr(models, "_PAIR_BUDGET", 10_000)  # hundreds of blocks
    many = ItemKNN(neighbours=20).fit(movielens).similarity_
    assert (one != many).nnz == 0 and one.nnz == many.nnz


def test_blocks_cover_every_row_within_budget() -> None:
    cost = np.array([5.0, 1.0, 1.0, 9.0, 0.0, 2.0, 2.0])
    blocks = models._blocks(cost, 4.0)
    assert blocks[0][0] == 0 and blocks[-1][1] == len(cost)
    assert all(a[1] == b[0] for a, b in pairwise(blocks))
    for lo, hi in blocks:  # within budget, or a single row that alone exceeds it
        assert cost[lo:hi].sum() <= 4.0 or hi - lo == 1
    assert models._blocks(np.zeros(0), 4.0) == []


def test_generated_log_trains_saves_and_serves_top_k(tmp_path) -> None:
    pytest.importorskip("implicit")
    from forgeml.recommend import ALS
    from forgeml.recommend.ann import build_index, recall_at_k_vs_exact

    log = Interactions.from_frame(
        generate(users=2_000, items=1_000, interactions=30_000, seed=1), time="timestamp"
    )
    model = ALS(factors=16, iterations=5).fit(log)
    build_index(model, threads=1)
    persist.save(tmp_path / "als", model, user_ids=log.user_ids, item_ids=log.item_ids)
    saved = persist.load(tmp_path / "als")
    users = np.arange(50)
    items, _ = saved.model.recommend(users, k=10)
    assert items.shape == (50, 10)
    seen = log.matrix(binary=True)
    for user, row in zip(users, items, strict=True):  # seen items never come back
        assert not set(row.tolist()) & set(seen[user].indices.tolist())
    assert recall_at_k_vs_exact(saved.model, users, k=10) >= 0.9
