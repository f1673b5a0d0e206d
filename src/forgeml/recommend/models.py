"""Recommenders behind one small contract: ``fit(interactions)`` returns ``self``,
``recommend(user_codes, k)`` returns the top-``k`` item codes and scores of each user,
``similar_items(item_codes, k)`` where the model has an item-item view.

* :class:`Popularity`: the most popular items (distinct users per item), for everyone.
* :class:`ItemKNN`: cosine similarity on the item-item co-occurrence, only each item's
  ``neighbours`` most similar items kept; a user's score for an item sums the similarities
  to the items they interacted with.
* :class:`EASE`: Steck's closed-form linear item-item model (2019) with L2 penalty ``lam``;
  a dense inverse over the items with at least ``min_item_users`` users, so it refuses
  more than ``max_items`` of them.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from forgeml.errors import DataError, UsageError
from forgeml.recommend.interactions import Interactions

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["EASE", "ItemKNN", "Popularity", "Recommender", "Rule"]

_BLOCK = 1024
_PAIR_BUDGET = 2**25  # ItemKNN.fit: co-occurrence pair updates per block of item rows


@dataclass(frozen=True)
class Rule:
    """The values a constructor parameter accepts: ``text`` says which (``"an integer
    >= 1"``), ``ok`` checks one value.

    >>> Rule.integer(1).ok(0), Rule.number(0, 1).ok(0.5), Rule.one_of("a", "b").text
    (False, True, "one of 'a', 'b'")
    """

    text: str
    ok: Callable[[Any], bool]

    @staticmethod
    def integer(low: int) -> Rule:
        return Rule(
            f"an integer >= {low}",
            lambda v: (
                isinstance(v, int | np.integer) and not isinstance(v, bool) and bool(v >= low)
            ),
        )

    @staticmethod
    def number(low: float, high: float | None = None, *, above: bool = False) -> Rule:
        """A finite number ``>= low`` (``> low`` with ``above``), ``<= high`` if given."""
        text = f"a number {'>' if above else '>='} {low:g}" + (
            "" if high is None else f" and <= {high:g}"
        )

        def ok(v: Any) -> bool:
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                return False
            return bool(
                np.isfinite(v) and (v > low if above else v >= low) and (high is None or v <= high)
            )

        return Rule(text, ok)

    @staticmethod
    def one_of(*values: str) -> Rule:
        return Rule(
            "one of " + ", ".join(repr(v) for v in values),
            lambda v: isinstance(v, str) and v in values,
        )


class Recommender:
    """The shared contract; subclasses implement ``fit`` (setting ``seen_`` through
    :meth:`_remember`), ``_scores`` (fitted users) and ``_scores_history`` (any history).

    Fitted state lives in the attributes named by ``_state_attrs`` (NumPy arrays or SciPy
    CSR matrices) so :mod:`forgeml.recommend.persist` can save it without pickle;
    constructor arguments come back from :meth:`get_params`.
    """

    seen_: sp.csr_matrix
    _state_attrs: tuple[str, ...] = ("seen_",)
    # State a folder saved by an older forgeml may lack; the loader asks _default_state.
    _optional_state: tuple[str, ...] = ()
    # What each checked constructor parameter accepts (checked in fit, and by tuning
    # before any data is read).
    _rules: ClassVar[dict[str, Rule]] = {}

    def fit(self, interactions: Interactions) -> Recommender:
        """Learn from ``interactions``; returns ``self``."""
        raise NotImplementedError

    @classmethod
    def param_problems(cls, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(name, problem)`` for each value in ``params`` its rule refuses, e.g.
        ``("lam", "must be a number > 0, got -1")``; names without a rule are not checked.
        """
        return [
            (name, f"must be {cls._rules[name].text}, got {value!r}")
            for name, value in params.items()
            if name in cls._rules and not cls._rules[name].ok(value)
        ]

    def _check_params(self) -> None:
        """Raise :class:`UsageError` naming the first constructor argument out of range."""
        problems = self.param_problems(self.get_params())
        if problems:
            name, problem = problems[0]
            raise UsageError(f"{type(self).__name__}: {name} {problem}")

    def _default_state(self, attr: str) -> Any:
        """The value of optional state ``attr`` for a folder saved without it."""
        raise DataError(f"saved model: {type(self).__name__} has no default for {attr}")

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
    _state_attrs: tuple[str, ...] = ("seen_", "similarity_")

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

    _rules: ClassVar[dict[str, Rule]] = {
        "neighbours": Rule.integer(1),
        "shrink": Rule.number(0.0),
    }

    def __init__(self, neighbours: int = 100, shrink: float = 0.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink

    def fit(self, interactions: Interactions) -> ItemKNN:
        """Build the sparse item-item cosine matrix, top ``neighbours`` per item."""
        self._check_params()
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
    with a zero diagonal, solved over the items with at least ``min_item_users`` users in
    training (``items_``; ``similarity_`` is ``B`` over them).

    Items below that support are not in the solve: they score below every kept item
    (ordered among themselves by popularity) and have no EASE similarity. Items nobody
    interacted with are always left out — their row and column of ``B`` are zero, so the
    result is the same — and ``min_item_users`` above 1 also drops the long tail, whose
    few co-occurrences the penalty ``lam`` mostly cancels anyway. The solve is a float32
    Cholesky inverse, about ``m³/3`` flops and ``m² x 4`` bytes (twice at the peak) for
    ``m`` kept items; above ``max_items`` kept items it refuses.
    """

    items_: np.ndarray
    _state_attrs = ("seen_", "similarity_", "items_")
    _optional_state = ("items_",)  # saved before min_item_users: every item was solved
    _rules: ClassVar[dict[str, Rule]] = {
        "lam": Rule.number(0.0, above=True),
        "max_items": Rule.integer(1),
        "min_item_users": Rule.integer(1),
    }

    def __init__(
        self, lam: float = 500.0, max_items: int = 20_000, min_item_users: int = 1
    ) -> None:
        self.lam = lam
        self.max_items = max_items
        self.min_item_users = min_item_users

    def fit(self, interactions: Interactions) -> EASE:
        """Solve the closed form on the binary matrix of the kept items."""
        self._check_params()
        seen = self._remember(interactions)
        users_per_item = np.diff(seen.tocsc().indptr)
        items = np.flatnonzero(users_per_item >= self.min_item_users)
        if len(items) > self.max_items:
            raise UsageError(
                f"EASE: {len(items)} items with >= {self.min_item_users} users is above "
                f"max_items={self.max_items}; its dense item-item matrix would need about "
                f"{len(items) ** 2 * 8 / 2**30:.1f} GiB",
                hint="raise min_item_users, or use ItemKNN",
            )
        kept = seen[:, items]
        weights = _spd_inverse(self._gram(kept, np.float32))
        if weights is None:  # float32 Cholesky failed (a penalty tiny next to the counts)
            import scipy.linalg

            weights = scipy.linalg.inv(
                self._gram(kept, np.float64), overwrite_a=True, check_finite=False
            ).astype(np.float32)
        weights /= -np.diag(weights).copy()
        weights[np.diag_indices_from(weights)] = 0.0
        self.similarity_: np.ndarray = weights
        self.items_ = items.astype(np.int64)
        return self

    def _gram(self, kept: sp.csr_matrix, dtype: type) -> np.ndarray:
        """``XᵀX + λI`` over the kept items, dense, in ``dtype``."""
        gram: np.ndarray = np.asarray((kept.T @ kept).toarray(), dtype=dtype)
        gram[np.diag_indices_from(gram)] += dtype(self.lam)
        return gram

    def _scores_history(self, history: sp.csr_matrix) -> np.ndarray:
        if len(self.items_) == history.shape[1]:  # every item solved
            return np.asarray(history @ self.similarity_, dtype=np.float32)
        kept = np.asarray(history[:, self.items_] @ self.similarity_, dtype=np.float32)
        # Left-out items: below the row's lowest kept score, more popular ones first.
        floor = kept.min(axis=1, keepdims=True) - 1.0 if kept.shape[1] else 0.0
        scores = np.empty((history.shape[0], history.shape[1]), dtype=np.float32)
        scores[:] = floor + self._tail()[None, :]
        scores[:, self.items_] = kept
        return scores

    def _tail(self) -> np.ndarray:
        """Per item, popularity scaled into [0, 1) (the order of left-out items)."""
        popularity = self._popularity()
        return popularity / (popularity.max(initial=0.0) + 1.0)

    def _similarity_rows(self, items: np.ndarray) -> np.ndarray:
        """``B``'s rows for the given items over all items (0 where EASE has no link:
        an item left out of the solve, on either side)."""
        rows = np.zeros((len(items), self.n_items), dtype=np.float32)
        position = np.full(self.n_items, -1, dtype=np.int64)
        position[self.items_] = np.arange(len(self.items_))
        solved = position[items] >= 0
        rows[np.ix_(solved, self.items_)] = self.similarity_[position[items[solved]]]
        return rows

    def _default_state(self, attr: str) -> Any:
        if attr == "items_":  # folders saved before min_item_users: every item solved
            return np.arange(self.n_items, dtype=np.int64)
        return super()._default_state(attr)

    def _check_state(self) -> None:
        items = self.items_
        if (
            not isinstance(items, np.ndarray)
            or items.ndim != 1
            or not np.issubdtype(items.dtype, np.integer)
            or (len(items) and (items.min() < 0 or items.max() >= self.n_items))
            or np.any(np.diff(items) <= 0)
        ):
            raise DataError(
                f"saved model: items_ must be increasing item codes in [0, {self.n_items})"
            )
        self.items_ = items.astype(np.int64)
        _check_array(self.similarity_, "similarity_", (len(items), len(items)))


def _spd_inverse(matrix: np.ndarray) -> np.ndarray | None:
    """The inverse of a symmetric positive definite float32 ``matrix`` by Cholesky
    (LAPACK ``spotrf``/``spotri``), computed in place (``matrix`` is overwritten); None
    when the factorisation fails in float32."""
    import scipy.linalg

    # The matrix is symmetric, so its transpose (a Fortran-ordered view) is the same
    # matrix: LAPACK then works in place, without a copy.
    factor, info = scipy.linalg.lapack.spotrf(matrix.T, lower=False, overwrite_a=True)
    if info != 0:
        return None
    inverse, info = scipy.linalg.lapack.spotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        return None
    # spotri fills the upper triangle of the Fortran array, i.e. the lower triangle of its
    # C-ordered transpose; mirror it into the upper one, a band of rows at a time.
    result = np.ascontiguousarray(inverse.T)
    n = result.shape[0]
    for lo in range(0, n, _BLOCK):
        hi = min(lo + _BLOCK, n)
        band = result[lo:hi, lo:hi]
        band[:] = np.tril(band) + np.tril(band, -1).T
        result[lo:hi, hi:] = result[hi:, lo:hi].T
    return result


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
