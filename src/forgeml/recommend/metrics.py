"""Full-ranking top-k metrics: every item of the catalogue is a candidate, no sampled
negatives (sampled metrics can reorder models; Krichene & Rendle, 2020).

Inputs are a ``[n_users, k]`` array of recommended item codes (best first, ``-1`` for
padding) and, per user, the set of relevant (test) items as a CSR matrix row. Definitions,
with ``R`` the user's relevant items, ``hit_i`` whether the item at rank ``i`` is in ``R``
and ``m = min(k, |R|)`` (so a perfect ranking scores 1 even when ``|R| > k``):

* ``recall@k = Σ hit_i / m`` (the "truncated" recall of Liang et al. 2018, Steck 2019)
* ``ndcg@k = Σ hit_i / log2(i + 1) / Σ_{i ≤ m} 1 / log2(i + 1)``
* ``map@k = Σ hit_i * precision@i / m``
* ``hit_rate@k = 1 if any hit_i``

averaged over users with at least one relevant item. ``coverage@k`` is the fraction of the
catalogue recommended to anyone; ``popularity_bias@k`` the mean popularity percentile (in
the training data, ties averaged, in ``(0, 1]``) of the recommended items.

>>> import scipy.sparse as sp
>>> relevant = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=np.float32))
>>> recs = np.array([[1, 2], [3, 2]])
>>> hits = hit_matrix(recs, relevant)
>>> hits.tolist()
[[True, False], [False, False]]
>>> float(recall_at_k(hits, relevant)), float(hit_rate_at_k(hits, relevant))
(0.25, 0.5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = [
    "coverage",
    "hit_matrix",
    "hit_rate_at_k",
    "map_at_k",
    "ndcg_at_k",
    "popularity_bias",
    "recall_at_k",
]


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean ``[n_users, k]``: is ``recommended[u, i]`` a relevant item of user ``u``
    (row ``u`` of ``relevant``)? One sorted-key ``isin`` for all users at once."""
    n_items = relevant.shape[1]
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    relevant_keys = rows * n_items + relevant.indices.astype(np.int64)
    recommended = np.asarray(recommended, dtype=np.int64)
    keys = np.arange(recommended.shape[0], dtype=np.int64)[:, None] * n_items + recommended
    return np.isin(keys, relevant_keys) & (recommended >= 0)


def _n_relevant(relevant: sp.csr_matrix) -> np.ndarray:
    return np.diff(relevant.indptr)


def _mean_over_users(per_user: np.ndarray, n_relevant: np.ndarray) -> float:
    mask = n_relevant > 0
    return float(per_user[mask].mean()) if mask.any() else 0.0


def recall_at_k(hits: np.ndarray, relevant: sp.csr_matrix) -> float:
    """Mean of ``hits / min(k, |R|)`` over users with relevant items."""
    n_rel = _n_relevant(relevant)
    denominator = np.maximum(np.minimum(hits.shape[1], n_rel), 1)
    return _mean_over_users(hits.sum(axis=1) / denominator, n_rel)


def ndcg_at_k(hits: np.ndarray, relevant: sp.csr_matrix) -> float:
    """Mean normalised discounted cumulative gain with binary relevance."""
    n_rel = _n_relevant(relevant)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.concatenate(([0.0], np.cumsum(discounts)))[np.minimum(hits.shape[1], n_rel)]
    return _mean_over_users(dcg / np.maximum(ideal, 1e-12), n_rel)


def map_at_k(hits: np.ndarray, relevant: sp.csr_matrix) -> float:
    """Mean average precision: precision at each hit, summed, over ``min(k, |R|)``."""
    n_rel = _n_relevant(relevant)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denominator = np.maximum(np.minimum(hits.shape[1], n_rel), 1)
    return _mean_over_users((precision * hits).sum(axis=1) / denominator, n_rel)


def hit_rate_at_k(hits: np.ndarray, relevant: sp.csr_matrix) -> float:
    """Fraction of users (with relevant items) with at least one hit."""
    return _mean_over_users(np.asarray(hits.any(axis=1), np.float64), _n_relevant(relevant))


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Fraction of the ``n_items`` catalogue that appears in any recommendation list."""
    valid = recommended[recommended >= 0]
    return float(len(np.unique(valid)) / n_items) if n_items else 0.0


def popularity_bias(recommended: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean popularity percentile of recommended items: 1.0 means only the most popular
    item, about 0.5 an unbiased draw from the catalogue."""
    from scipy.stats import rankdata

    percentile = rankdata(item_popularity, method="average") / len(item_popularity)
    valid = recommended[recommended >= 0]
    return float(percentile[valid].mean()) if valid.size else 0.0
