"""Recommenders behind one small contract: ``fit(interactions)`` returns ``self``,
``recommend(user_codes, k)`` returns the top-``k`` item codes and scores of each user,
``similar_items(item_codes, k)`` where the model has an item-item view.

* :class:`Popularity`: the most popular items (distinct users per item), for everyone.
* :class:`ItemKNN`: cosine similarity on the item-item co-occurrence, only each item's
  ``neighbours`` most similar items kept; a user's score for an item sums the similarities
  to the items they interacted with.
* :class:`EASE`: Steck's closed-form linear item-item model (2019) with L2 penalty ``lam``;
  a dense ``n_items x n_items`` inverse, so it refuses catalogues above ``max_items``.

All of them learn from the binary user x item matrix (any event counts once), so a
5-star rating and a view weigh the same; filter explicit ratings first with
``Interactions.from_frame(..., positive_threshold=...)``. Scores are computed in blocks
of users so memory stays ``block x n_items``.

>>> import polars as pl
>>> from forgeml.recommend.interactions import Interactions
>>> frame = pl.DataFrame({"user_id": [0, 0, 1, 1, 2], "item_id": [0, 1, 0, 1, 0]})
>>> log = Interactions.from_frame(frame)
>>> items, scores = ItemKNN().fit(log).recommend([2], k=1)
>>> items.tolist()
[[1]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import DataError, UsageError
from forgeml.recommend.interactions import Interactions

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["EASE", "ItemKNN", "Popularity", "Recommender"]

_BLOCK = 1024


class Recommender:
    """The shared contract; subclasses implement ``fit`` (setting ``seen_`` through
    :meth:`_remember`) and ``_scores``."""

    seen_: sp.csr_matrix

    def fit(self, interactions: Interactions) -> Recommender:
        """Learn from ``interactions``; returns ``self``."""
        raise NotImplementedError

    def _scores(self, users: np.ndarray) -> np.ndarray:
        """Dense float32 ``[len(users), n_items]`` scores; higher is better."""
        raise NotImplementedError

    def _remember(self, interactions: Interactions) -> sp.csr_matrix:
        if interactions.n_events == 0:
            raise DataError(f"{type(self).__name__}.fit: the interaction log is empty")
        self.seen_ = interactions.matrix(binary=True)
        return self.seen_

    @property
    def n_items(self) -> int:
        """Size of the catalogue the model ranks."""
        return int(self._fitted().shape[1])

    def recommend(
        self, user_codes: Any, k: int = 10, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)``, both ``[len(user_codes), k]``, best first. With
        ``exclude_seen`` a user's training items are never returned; where fewer than ``k``
        items remain the row is padded with item ``-1`` and score ``-inf``."""
        seen = self._fitted()
        users = _codes(user_codes, seen.shape[0], "user")
        k = _check_k(k)
        items = np.full((len(users), k), -1, dtype=np.int64)
        scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        for lo in range(0, len(users), _BLOCK):
            block = users[lo : lo + _BLOCK]
            dense = self._scores(block).astype(np.float32, copy=False)
            if exclude_seen:
                rows, cols = seen[block].nonzero()
                dense[rows, cols] = -np.inf
            top, top_scores = _top_k(dense, k)
            items[lo : lo + len(block), : top.shape[1]] = top
            scores[lo : lo + len(block), : top.shape[1]] = top_scores
        items[~np.isfinite(scores)] = -1
        return items, scores

    def _fitted(self) -> sp.csr_matrix:
        if not hasattr(self, "seen_"):
            raise UsageError(f"{type(self).__name__} is not fitted: call fit(interactions) first")
        return self.seen_


class Popularity(Recommender):
    """Everyone gets the items with the most distinct users (ties: lower item code first)."""

    def fit(self, interactions: Interactions) -> Popularity:
        """Count distinct users per item."""
        seen = self._remember(interactions)
        self.counts_ = np.asarray(seen.sum(axis=0)).ravel().astype(np.float32)
        return self

    def _scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(users), len(self.counts_))).copy()


class _ItemItem(Recommender):
    """Models whose scores are ``seen @ similarity`` for an item-item matrix."""

    similarity_: Any

    def _scores(self, users: np.ndarray) -> np.ndarray:
        product = self.seen_[users] @ self.similarity_
        return np.asarray(product.toarray() if hasattr(product, "toarray") else product)

    def similar_items(self, item_codes: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)`` ``[len(item_codes), k]``: the items most similar to each
        given item (never the item itself), padded with ``-1`` / ``-inf``."""
        n_items = self._fitted().shape[1]
        wanted = _codes(item_codes, n_items, "item")
        rows = self.similarity_[wanted]
        dense = np.asarray(rows.toarray() if hasattr(rows, "toarray") else rows, np.float32)
        dense = dense.copy()
        dense[np.arange(len(wanted)), wanted] = -np.inf
        items, scores = _top_k(dense, _check_k(k))
        items[~np.isfinite(scores)] = -1
        return items, scores


class ItemKNN(_ItemItem):
    """Item-based nearest neighbours on cosine similarity of item columns.

    ``neighbours``: how many most similar items each item keeps; ``shrink`` damps
    similarities supported by few co-occurrences (added to the cosine denominator).
    """

    def __init__(self, neighbours: int = 100, shrink: float = 0.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink

    def fit(self, interactions: Interactions) -> ItemKNN:
        """Build the sparse item-item cosine matrix, top ``neighbours`` per item."""
        if self.neighbours < 1 or self.shrink < 0:
            raise UsageError("ItemKNN: neighbours must be >= 1 and shrink >= 0")
        seen = self._remember(interactions)
        columns = seen.T.tocsr()
        co = (columns @ columns.T).tocsr().astype(np.float32)
        norms = np.sqrt(np.asarray(columns.sum(axis=1)).ravel()).astype(np.float32)
        co.setdiag(0.0)
        co.eliminate_zeros()
        coo = co.tocoo()
        coo.data = coo.data / (norms[coo.row] * norms[coo.col] + self.shrink + 1e-12)
        cosine = coo.tocsr()
        # similarity_[i, j]: how much having seen i recommends j; keep each i's top rows.
        self.similarity_: sp.csr_matrix = _keep_top_per_row(cosine, self.neighbours)
        return self


class EASE(_ItemItem):
    """Embarrassingly Shallow Autoencoder: ``B = I - P / diag(P)``, ``P = (XᵀX + λI)⁻¹``,
    with a zero diagonal. Needs about ``n_items² x 12`` bytes; above ``max_items``
    items it refuses (restrict the catalogue first, e.g. to items with enough events).
    """

    def __init__(self, lam: float = 500.0, max_items: int = 20_000) -> None:
        self.lam = lam
        self.max_items = max_items

    def fit(self, interactions: Interactions) -> EASE:
        """Solve the closed form on the binary matrix."""
        import scipy.linalg

        if self.lam <= 0:
            raise UsageError(f"EASE: lam must be > 0, got {self.lam}")
        if interactions.n_items > self.max_items:
            raise UsageError(
                f"EASE: {interactions.n_items} items is above max_items={self.max_items}; "
                "its dense item-item matrix would need "
                f"about {interactions.n_items**2 * 12 / 2**30:.1f} GiB",
                hint="keep only items with enough interactions, or use ItemKNN",
            )
        seen = self._remember(interactions)
        gram = (seen.T @ seen).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.lam
        # In place where possible: the peak is the float64 matrix plus the float32 result.
        weights = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        del gram
        weights /= -np.diag(weights).copy()
        weights[np.diag_indices_from(weights)] = 0.0
        self.similarity_: np.ndarray = weights.astype(np.float32)
        return self


def _codes(values: Any, n: int, role: str) -> np.ndarray:
    codes = np.atleast_1d(np.asarray(values))
    if codes.size and (
        not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0 or codes.max() >= n
    ):
        raise UsageError(f"{role} codes must be integers in [0, {n}); map ids with {role}_codes_of")
    return codes.astype(np.int64)


def _check_k(k: int) -> int:
    if k < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    return int(k)


def _top_k(dense: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top ``min(k, columns)`` columns and values, best first (argpartition, then
    a sort of only the ``k`` kept; equal scores: lower column first)."""
    k = min(k, dense.shape[1])
    if k < dense.shape[1]:
        part = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(dense.shape[1]), dense.shape).copy()
    values = np.take_along_axis(dense, part, axis=1)
    order = _order(part, values)
    top = np.take_along_axis(part, order, axis=1)
    return top.astype(np.int64), np.take_along_axis(values, order, axis=1)


def _order(part: np.ndarray, values: np.ndarray) -> np.ndarray:
    # Row-wise lexsort: by value descending, then by column ascending.
    order = np.argsort(part, axis=1, kind="stable")
    by_value = np.argsort(-np.take_along_axis(values, order, axis=1), axis=1, kind="stable")
    return np.take_along_axis(order, by_value, axis=1)


def _keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Only each row's ``k`` largest entries (vectorised over rows via a sort of the data
    by (row, -value))."""
    import scipy.sparse as sp

    coo = matrix.tocoo()
    order = np.lexsort((-coo.data, coo.row))
    rows = coo.row[order]
    counts = np.bincount(rows, minlength=matrix.shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(rows)) - np.repeat(starts, counts)
    keep = order[rank < k]
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape, dtype=np.float32
    )
