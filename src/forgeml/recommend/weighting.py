"""Confidence weighting of the binary user x item matrix: BM25 and TF-IDF, as ``implicit``'s
own MovieLens and last.fm examples weigh the matrix before ALS.

``implicit`` applies ``bm25_weight``/``tfidf_weight`` to the *item x user* matrix: items are
the documents, users the terms. On forgeml's binary matrix (every positive counts once)
the weight of user ``u``'s event on item ``i`` is then

* ``bm25``: ``(K1 + 1) / (K1 L_i + 1) * idf_u`` with the item's length norm
  ``L_i = (1 - B) + B n_i / mean(n)`` (``n_i``: the item's users in training, the mean over
  every item of the catalogue) and ``idf_u = log(n_items) - log1p(n_u)`` (``n_u``: the
  user's items): popular items and heavy users weigh less;
* ``tfidf``: ``idf_u`` alone;
* ``none``: 1.

The only statistics are each item's number of training users (from the model's saved
``seen_`` matrix) and each user's own history length, so a history folded in later
(:meth:`~forgeml.recommend.models.Recommender.recommend_history`) is weighed exactly as
the same user was in training. ``idf_u`` is floored at ``0.01`` so that every event stays a
positive (it would reach 0 for a user who has nearly every item of a tiny catalogue).

>>> import scipy.sparse as sp
>>> seen = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=np.float32))
>>> per_item = item_factors(seen, "bm25", k1=1.0, b=1.0)  # 2, 1, 0, 0 users per item
>>> per_item.round(3).tolist()
[0.545, 0.857, 2.0, 2.0]
>>> weigh(seen, per_item, "bm25").toarray().astype(float).round(3).tolist()
[[0.157, 0.247, 0.0, 0.0], [0.378, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["WEIGHTINGS", "item_factors", "weigh"]

WEIGHTINGS = ("none", "bm25", "tfidf")
_IDF_FLOOR = 0.01


def item_factors(seen: sp.csr_matrix, weighting: str, *, k1: float, b: float) -> np.ndarray:
    """Per item, the factor of its events' weights: ``(K1 + 1) / (K1 L_i + 1)`` for
    ``bm25``, 1 otherwise (float64, ``[n_items]``); ``seen`` is the binary training
    matrix."""
    n_items = seen.shape[1]
    if weighting != "bm25":
        return np.ones(n_items)
    users = np.bincount(seen.indices, minlength=n_items).astype(np.float64)
    mean = users.mean() if n_items else 0.0
    length = (1.0 - b) + b * users / mean if mean > 0 else np.ones(n_items)
    return (k1 + 1.0) / (k1 * length + 1.0)


def weigh(history: sp.csr_matrix, per_item: np.ndarray, weighting: str) -> sp.csr_matrix:
    """``history`` (binary, ``[users, n_items]``) with each event's weight as its value,
    ``per_item`` from :func:`item_factors` of the training matrix."""
    weighted = history.astype(np.float32, copy=True)
    if weighting == "none" or weighted.nnz == 0:
        return weighted
    lengths = np.diff(weighted.indptr)
    idf = np.maximum(np.log(history.shape[1]) - np.log1p(lengths), _IDF_FLOOR)
    values = np.repeat(idf, lengths) * per_item[weighted.indices]
    weighted.data = values.astype(np.float32)
    return weighted
