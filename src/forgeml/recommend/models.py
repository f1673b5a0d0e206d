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

from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import DataError, UsageError
from forgeml.recommend.interactions import Interactions

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["EASE", "ItemKNN", "Popularity", "Recommender"]

_BLOCK = 1024
_PAIR_BUDGET = 2**25  # ItemKNN.fit: co-occurrence pair updates per block of item rows


class Recommender:
    """The shared contract; subclasses implement ``fit`` (setting ``seen_`` through
    :meth:`_remember`), ``_scores`` (fitted users) and ``_scores_history`` (any history).

    Fitted state lives in the attributes named by ``_state_attrs`` (NumPy arrays or SciPy
    CSR matrices) so :mod:`forgeml.recommend.persist` can save it without pickle;
    constructor arguments come back from :meth:`get_params`.
    """

    seen_: sp.csr_matrix
    _state_attrs: tuple[str, ...] = ("seen_",)

    def fit(self, interactions: Interactions) -> Recommender:
        """Learn from ``interactions``; returns ``self``."""
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (scikit-learn style), e.g. for tuning or saving."""
        import inspect

        names = [
            name
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        ]
        return {name: getattr(self, name) for name in names}

    def _scores(self, users: np.ndarray) -> np.ndarray:
        """Dense float32 ``[len(users), n_items]`` scores of fitted users; higher is better."""
        return self._scores_history(self.seen_[users])

    def _scores_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Dense ``[history.shape[0], n_items]`` scores of users given by their binary
        history rows (fold-in: no retraining)."""
        raise NotImplementedError

    def _remember(self, interactions: Interactions) -> sp.csr_matrix:
        if interactions.n_events == 0:
            raise DataError(f"{type(self).__name__}.fit: the interaction log is empty")
        self.seen_ = interactions.matrix(binary=True)
        return self.seen_

    def _check_state(self) -> None:
        """Raise :class:`DataError` when loaded state is inconsistent (shapes, values);
        subclasses extend it. ``seen_`` itself is checked by the loader."""

    @property
    def n_items(self) -> int:
        """Size of the catalogue the model ranks."""
        return int(self._fitted().shape[1])

    @property
    def n_users(self) -> int:
        """Number of users the model was fitted on (the codes ``recommend`` accepts)."""
        return int(self._fitted().shape[0])

    def recommend(
        self,
        user_codes: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        exclude: Any = None,
        allow: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)``, both ``[len(user_codes), k]``, best first.

        With ``exclude_seen`` a user's training items are never returned. Business filters
        apply to every user of the call: ``exclude`` (item codes never returned) and
        ``allow`` (only these item codes may be returned, e.g. one category). Where fewer
        than ``k`` items remain (also when the filters leave nothing) the row is padded with
        item ``-1`` and score ``-inf``. A user with no training interaction (e.g. only
        ratings below the positive threshold) gets the popular items (distinct users per
        item in training): no model has anything personal to say about them."""
        seen = self._fitted()
        users = _codes(user_codes, seen.shape[0], "user")
        return self._rank(
            k,
            lambda lo, hi: self._scores(users[lo:hi]),
            seen[users],
            exclude_seen,
            exclude,
            allow,
        )

    def recommend_history(
        self,
        histories: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        exclude: Any = None,
        allow: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fold-in: recommend for users described only by their item history, without
        retraining (new users, or fitted users with new interactions).

        ``histories`` is a list with one array of item codes per user (duplicates count
        once: models learn from the binary matrix) or a sparse ``[users, n_items]`` matrix
        whose non-zeros are the history. ``exclude_seen`` excludes each user's history;
        ``exclude``/``allow`` and padding as in :meth:`recommend`. ItemKNN and EASE score
        ``history @ similarity`` (exactly what ``recommend`` gives a fitted user with that
        history); ALS and BPR solve the user's factors from the history (see their
        docs); Popularity returns the popular items, and so does every model for an empty
        history (a new user)."""
        history = self._history_matrix(histories)
        return self._rank(
            k,
            lambda lo, hi: self._scores_history(history[lo:hi]),
            history,
            exclude_seen,
            exclude,
            allow,
        )

    def _history_matrix(self, histories: Any) -> sp.csr_matrix:
        import scipy.sparse as sp

        n_items = self._fitted().shape[1]
        if sp.issparse(histories):
            matrix = sp.csr_matrix(histories, dtype=np.float32)
            if matrix.ndim != 2 or matrix.shape[1] != n_items:
                raise UsageError(
                    f"histories: a sparse history matrix needs {n_items} columns "
                    f"(the catalogue), got shape {matrix.shape}"
                )
            matrix.eliminate_zeros()
        else:
            if isinstance(histories, np.ndarray) and histories.ndim == 1:
                raise UsageError(
                    "histories must be a list of item-code arrays, one per user "
                    "(wrap a single history in a list)"
                )
            rows = [_codes(h, n_items, "history item") for h in histories]
            lengths = np.array([len(r) for r in rows], dtype=np.int64)
            indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            matrix = sp.csr_matrix(
                (
                    np.ones(len(indices), np.float32),
                    (np.repeat(np.arange(len(rows)), lengths), indices),
                ),
                shape=(len(rows), n_items),
                dtype=np.float32,
            )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        matrix.sort_indices()
        return matrix

    def _popularity(self) -> np.ndarray:
        """Distinct users per item in training (the fallback for empty histories)."""
        cached = getattr(self, "_popularity_cache", None)
        if cached is None or cached[0] is not self.seen_:
            counts = np.diff(self.seen_.tocsc().indptr).astype(np.float32)
            cached = (self.seen_, counts)
            self._popularity_cache = cached
        return cached[1]

    def _rank(
        self,
        k: int,
        scores_of: Callable[[int, int], np.ndarray],
        history: sp.csr_matrix,
        exclude_seen: bool,
        exclude: Any,
        allow: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of ``scores_of(lo, hi)`` computed in blocks of rows (popularity for
        rows with an empty ``history``), with the history excluded when ``exclude_seen``
        and the business filters applied."""
        n_items = self._fitted().shape[1]
        n_rows = history.shape[0]
        k = _check_k(k)
        banned = None if exclude is None else _codes(exclude, n_items, "exclude item")
        allowed = None if allow is None else np.unique(_codes(allow, n_items, "allow item"))
        items = np.full((n_rows, k), -1, dtype=np.int64)
        scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
        if allowed is not None and len(allowed) == 0:
            return items, scores
        for lo in range(0, n_rows, _BLOCK):
            hi = min(lo + _BLOCK, n_rows)
            dense = np.array(scores_of(lo, hi), dtype=np.float32)
            block = history[lo:hi]
            empty = np.diff(block.indptr) == 0
            if empty.any():
                dense[empty] = self._popularity()
            if exclude_seen:
                rows, cols = block.nonzero()
                dense[rows, cols] = -np.inf
            if banned is not None:
                dense[:, banned] = -np.inf
            if allowed is not None:
                top, top_scores = _top_k(dense[:, allowed], k)
                top = allowed[top]
            else:
                top, top_scores = _top_k(dense, k)
            items[lo:hi, : top.shape[1]] = top
            scores[lo:hi, : top.shape[1]] = top_scores
        items[~np.isfinite(scores)] = -1
        scores[items < 0] = -np.inf
        return items, scores

    def _fitted(self) -> sp.csr_matrix:
        if not hasattr(self, "seen_"):
            raise UsageError(f"{type(self).__name__} is not fitted: call fit(interactions) first")
        return self.seen_


class Popularity(Recommender):
    """Everyone gets the items with the most distinct users (ties: lower item code first)."""

    _state_attrs = ("seen_", "counts_")

    def fit(self, interactions: Interactions) -> Popularity:
        """Count distinct users per item."""
        seen = self._remember(interactions)
        self.counts_ = np.asarray(seen.sum(axis=0)).ravel().astype(np.float32)
        return self

    def _scores_history(self, history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts_, (history.shape[0], len(self.counts_))).copy()

    def _check_state(self) -> None:
        _check_array(self.counts_, "counts_", (self.n_items,))


class _ItemItem(Recommender):
    """Models whose scores are ``history @ similarity`` for an item-item matrix."""

    similarity_: Any
    _state_attrs = ("seen_", "similarity_")

    def _scores_history(self, history: sp.csr_matrix) -> np.ndarray:
        product = history @ self.similarity_
        return np.asarray(product.toarray() if hasattr(product, "toarray") else product)

    def _similarity_rows(self, items: np.ndarray) -> np.ndarray:
        """Dense float32 ``[len(items), n_items]`` item-item similarities (higher: closer)."""
        rows = self.similarity_[items]
        return np.array(rows.toarray() if hasattr(rows, "toarray") else rows, np.float32)

    def similar_items(self, item_codes: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)`` ``[len(item_codes), k]``: the items most similar to each
        given item (never the item itself), padded with ``-1`` / ``-inf``."""
        wanted = _codes(item_codes, self._fitted().shape[1], "item")
        return _similar_from_rows(self._similarity_rows(wanted), wanted, k)

    def _check_state(self) -> None:
        _check_array(self.similarity_, "similarity_", (self.n_items, self.n_items))


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
        import scipy.sparse as sp

        seen = self._remember(interactions)
        columns = seen.T.tocsr()
        norms = np.sqrt(np.asarray(columns.sum(axis=1)).ravel()).astype(np.float32)
        n_items = seen.shape[1]
        # The co-occurrence matrix is built a block of item rows at a time and only each
        # row's top ``neighbours`` are kept, so memory follows the block, not the whole
        # item x item product (billions of pairs at 100,000 items x 20M events). Blocks
        # hold about _PAIR_BUDGET pair updates: row i costs the summed history length of
        # the users who have item i.
        work = columns @ np.diff(seen.indptr).astype(np.float64)
        pieces = []
        for lo, hi in _blocks(work, _PAIR_BUDGET):
            co = (columns[lo:hi] @ seen).tocoo()
            keep = ((co.row + lo) != co.col) & (co.data != 0)
            row, col = co.row[keep], co.col[keep]
            data = co.data[keep].astype(np.float32)
            data = data / (norms[row + lo] * norms[col] + self.shrink + 1e-12)
            cosine = sp.csr_matrix((data, (row, col)), shape=(hi - lo, n_items), dtype=np.float32)
            # similarity_[i, j]: how much having seen i recommends j; keep each i's top.
            top = _keep_top_per_row(cosine, self.neighbours).tocoo()
            pieces.append((top.row + lo, top.col, top.data))
        if pieces:
            rows, cols, values = (np.concatenate(part) for part in zip(*pieces, strict=True))
        else:
            rows = cols = np.zeros(0, np.int64)
            values = np.zeros(0, np.float32)
        self.similarity_: sp.csr_matrix = sp.csr_matrix(
            (values, (rows, cols)), shape=(n_items, n_items), dtype=np.float32
        )
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


def _similar_from_rows(
    dense: np.ndarray, wanted: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of similarity rows, each row's own item excluded, padded with -1/-inf."""
    dense[np.arange(len(wanted)), wanted] = -np.inf
    items, scores = _top_k(dense, _check_k(k))
    items[~np.isfinite(scores)] = -1
    return items, scores


def _check_array(value: Any, name: str, shape: tuple[int, ...]) -> None:
    """Loaded state check: ``value`` has ``shape`` and only finite numbers, else DataError."""
    import scipy.sparse as sp

    if tuple(value.shape) != shape:
        raise DataError(f"saved model: {name} has shape {tuple(value.shape)}, expected {shape}")
    data = value.data if sp.issparse(value) else value
    if not np.issubdtype(data.dtype, np.floating) or not np.all(np.isfinite(data)):
        raise DataError(f"saved model: {name} must hold finite floating-point numbers")


def _codes(values: Any, n: int, role: str) -> np.ndarray:
    codes = np.atleast_1d(np.asarray(values))
    if codes.size and (
        not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0 or codes.max() >= n
    ):
        lookup = "user_codes_of" if role == "user" else "item_codes_of"
        raise UsageError(f"{role} codes must be integers in [0, {n}); map ids with {lookup}")
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


def _blocks(cost: np.ndarray, budget: float) -> list[tuple[int, int]]:
    """Consecutive ``(lo, hi)`` row ranges whose summed ``cost`` stays within ``budget``
    (a row costing more than the budget is a block on its own); covers every row."""
    if len(cost) == 0:
        return []
    totals = np.cumsum(cost)
    bounds = [0]
    while bounds[-1] < len(cost):
        lo = bounds[-1]
        spent = totals[lo - 1] if lo else 0.0
        hi = int(np.searchsorted(totals, spent + budget, side="right"))
        bounds.append(max(hi, lo + 1))
    return list(pairwise(bounds))


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
