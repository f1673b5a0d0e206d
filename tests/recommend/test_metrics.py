"""Full-ranking metrics: a hand-computed example, a plain reference implementation, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from forgeml.recommend import metrics


def _relevant(sets: list[set[int]], n_items: int) -> sp.csr_matrix:
    rows = [u for u, items in enumerate(sets) for _ in items]
    cols = [i for items in sets for i in sorted(items)]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(sets), n_items))


def test_hand_computed_example():
    # user 0: relevant {1, 3}, hits at ranks 1 and 3; user 1: relevant {0, 4}, hit at rank 2;
    # user 2 has no relevant item and is not averaged.
    relevant = _relevant([{1, 3}, {0, 4}, set()], n_items=5)
    recommended = np.array([[1, 2, 3], [2, 0, -1], [4, 3, 2]])
    hits = metrics.hit_matrix(recommended, relevant)
    assert hits.tolist() == [[True, False, True], [False, True, False], [False, False, False]]
    assert metrics.recall_at_k(hits, relevant) == pytest.approx((2 / 2 + 1 / 2) / 2)
    ndcg_0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert metrics.ndcg_at_k(hits, relevant) == pytest.approx((ndcg_0 + ndcg_1) / 2)
    assert metrics.map_at_k(hits, relevant) == pytest.approx(((1 + 2 / 3) / 2 + (1 / 2) / 2) / 2)
    assert metrics.hit_rate_at_k(hits, relevant) == 1.0
    assert metrics.coverage(recommended, 5) == pytest.approx(5 / 5)
    assert metrics.coverage(recommended[:2], 5) == pytest.approx(4 / 5)
    popularity = np.array([5, 4, 3, 2, 1])  # item 0 most popular: percentile 1.0
    # valid recommended items of the first two users: 1, 2, 3, 2, 0
    assert metrics.popularity_bias(recommended[:2], popularity) == pytest.approx(
        (0.8 + 0.6 + 0.4 + 0.6 + 1.0) / 5
    )


def _reference(recommended: np.ndarray, sets: list[set[int]]) -> dict[str, float]:
    """Straightforward per-user loops over the textbook definitions."""
    k = recommended.shape[1]
    totals = {"recall": 0.0, "ndcg": 0.0, "map": 0.0, "hit": 0.0}
    users = 0
    for row, relevant in zip(recommended.tolist(), sets, strict=True):
        if not relevant:
            continue
        users += 1
        m = min(k, len(relevant))
        hits = [item in relevant for item in row]
        totals["recall"] += sum(hits) / m
        dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
        totals["ndcg"] += dcg / sum(1 / math.log2(rank + 2) for rank in range(m))
        precision_sum, found = 0.0, 0
        for rank, hit in enumerate(hits):
            if hit:
                found += 1
                precision_sum += found / (rank + 1)
        totals["map"] += precision_sum / m
        totals["hit"] += float(any(hits))
    return {name: value / users if users else 0.0 for name, value in totals.items()}


@st.composite
def rankings(draw):
    n_items = draw(st.integers(1, 12))
    n_users = draw(st.integers(1, 8))
    k = draw(st.integers(1, n_items))
    rows = [draw(st.permutations(range(n_items)))[:k] for _ in range(n_users)]
    sets = [draw(st.sets(st.integers(0, n_items - 1), max_size=n_items)) for _ in range(n_users)]
    return np.array(rows, dtype=np.int64).reshape(n_users, k), sets, n_items


@settings(max_examples=150, deadline=None)
@given(rankings())
def test_vectorised_metrics_equal_the_reference_and_stay_in_0_1(case):
    recommended, sets, n_items = case
    relevant = _relevant(sets, n_items)
    hits = metrics.hit_matrix(recommended, relevant)
    expected = _reference(recommended, sets)
    got = {
        "recall": metrics.recall_at_k(hits, relevant),
        "ndcg": metrics.ndcg_at_k(hits, relevant),
        "map": metrics.map_at_k(hits, relevant),
        "hit": metrics.hit_rate_at_k(hits, relevant),
    }
    for name, value in got.items():
        assert value == pytest.approx(expected[name], abs=1e-12), name
        assert 0.0 <= value <= 1.0 + 1e-12
    assert 0.0 <= metrics.coverage(recommended, n_items) <= 1.0


@settings(max_examples=100, deadline=None)
@given(rankings())
def test_a_perfect_ranking_scores_one(case):
    recommended, sets, n_items = case
    sets = [s or {0} for s in sets]  # every user has something relevant
    k = recommended.shape[1]
    # Put the relevant items first, then the rest.
    perfect = np.array([(sorted(s) + [i for i in range(n_items) if i not in s])[:k] for s in sets])
    relevant = _relevant(sets, n_items)
    hits = metrics.hit_matrix(perfect, relevant)
    for metric in (metrics.recall_at_k, metrics.ndcg_at_k, metrics.map_at_k, metrics.hit_rate_at_k):
        assert metric(hits, relevant) == pytest.approx(1.0), metric.__name__


@given(hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 1000)))
def test_popularity_bias_is_a_percentile(popularity):
    recommended = np.arange(len(popularity))[None, :]
    bias = metrics.popularity_bias(recommended, popularity)
    # The whole catalogue: the mean of ranks 1..n over n, whatever the ties.
    assert bias == pytest.approx((len(popularity) + 1) / (2 * len(popularity)))
    top = np.array([[int(np.argmax(popularity))]])
    assert bias - 1e-12 <= metrics.popularity_bias(top, popularity) <= 1.0
