"""User feature tables: a cold-start fallback from user attributes, and its evaluation.

A user table has one row per user: the user id column and attribute columns.
:func:`prepare_user_table` checks it (the id column present, no duplicate or null ids,
not empty) and keeps the categorical attributes: string and boolean columns, and whole
numbers with at most :data:`MAX_INT_VALUES` distinct values; the others are returned with
the reason they were left out (never dropped silently). Values are compared as text
(``3``, ``3.0`` and ``"3"`` are the same value; booleans are ``"true"``/``"false"``);
text and float columns holding only numbers (a CSV's) are judged as numbers.

:class:`SegmentPopularity` is fitted on a log of interactions and that table: for each
(attribute, value) segment, how many distinct users of the segment interacted with each
item, normalised to shares. A user with no history but known attributes is scored with
the mean, over their known attribute values, of the item shares in that segment
(unknown attributes and values are ignored); without any known value the score is plain
popularity. Items no segment of the user ranks follow in overall popularity.

>>> import polars as pl
>>> from forgeml.recommend.interactions import Interactions
>>> log = Interactions.from_frame(pl.DataFrame({
...     "user_id": ["a", "a", "b", "c", "c"], "item_id": ["x", "y", "y", "z", "y"]}))
>>> users = pl.DataFrame({"user_id": ["a", "b", "c"], "country": ["fr", "fr", "de"]})
>>> fallback = SegmentPopularity().fit(log, users, user="user_id")
>>> items, scores, used = fallback.recommend_features([{"country": "de"}, {}], k=2)
>>> log.item_ids[items].tolist(), used.tolist()
([['y', 'z'], ['y', 'x']], [True, False])

:func:`cold_start_metrics` evaluates the fallback honestly on test users as if they were
new (each user's own training events are taken out of the segment counts, and their
history is not used), next to plain popularity computed the same way;
:func:`attribute_breakdown` shows a model's test metrics per attribute value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import DataError, UsageError
from forgeml.recommend import metrics

if TYPE_CHECKING:
    import polars as pl
    import scipy.sparse as sp

    from forgeml.recommend.interactions import Interactions

__all__ = [
    "MAX_INT_VALUES",
    "MAX_VALUES",
    "SegmentPopularity",
    "UserTable",
    "attribute_breakdown",
    "cold_start_metrics",
    "prepare_user_table",
    "value_text",
]

MAX_INT_VALUES = 50  # an integer column with more distinct values is not categorical
MAX_VALUES = 200  # values kept per attribute (the most frequent); rarer ones are unknown
_BLOCK = 1024  # users scored at once (a dense block of users x items)
_TIE = 1e-9  # weight of overall popularity in the ranking key: it only breaks ties


def value_text(value: Any) -> str | None:
    """The text form of one attribute value, as the fitted tables hold them; ``None``
    for a missing value.

    >>> [value_text(v) for v in ("fr", 3, 3.0, 2.5, True, None)]
    ['fr', '3', '3', '2.5', 'true', None]
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


@dataclass(frozen=True)
class UserTable:
    """A checked user table: ``frame`` holds ``user`` and the ``attributes`` as text
    (nulls stay null); ``ignored`` maps each left-out column to the reason."""

    frame: pl.DataFrame
    user: str
    attributes: list[str]
    ignored: dict[str, str] = field(default_factory=dict)


def prepare_user_table(
    frame: pl.DataFrame, user: str, *, where: str = "recommendation.user_features"
) -> UserTable:
    """Check a user table and keep its categorical attributes (see the module docstring).
    ``where`` names the table in errors."""
    import polars as pl

    from forgeml.recommend.validate import _as_id

    if frame.height == 0:
        raise DataError(f"{where}: the user table has no rows")
    if user not in frame.columns:
        raise DataError(
            f"{where}: the user id column '{user}' (recommendation.user) is not in the table "
            f"(columns: {', '.join(frame.columns)})"
        )
    ids = _as_id(frame[user])
    nulls = ids.is_null()
    if bool(nulls.any()):
        row = int(np.flatnonzero(nulls.to_numpy())[0])
        raise DataError(f"{where}: column '{user}' is empty in row {row + 1}")
    duplicated = ids.is_duplicated()
    if bool(duplicated.any()):
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataError(
            f"{where}: user id '{ids[row]}' (column '{user}') appears more than once "
            f"(first in row {row + 1}); the table needs one row per user"
        )
    attributes: list[str] = []
    ignored: dict[str, str] = {}
    for name in frame.columns:
        if name == user:
            continue
        reason = _not_categorical(frame[name])
        if reason:
            ignored[name] = reason
        else:
            attributes.append(name)
    if not attributes:
        raise DataError(
            f"{where}: no categorical attribute column (strings, booleans, whole numbers "
            f"with at most {MAX_INT_VALUES} values); ignored: "
            + (", ".join(f"{c} ({r})" for c, r in ignored.items()) or "none")
        )
    text = frame.select(
        ids.alias(user), *(_as_id(frame[name]).cast(pl.String).alias(name) for name in attributes)
    )
    return UserTable(text, user, attributes, ignored)


def _not_categorical(series: pl.Series) -> str | None:
    import polars as pl

    if series.null_count() == len(series):
        return "no values"
    dtype = series.dtype
    if dtype in (pl.Boolean, pl.Categorical) or isinstance(dtype, pl.Enum):
        return None
    values = series.drop_nulls()
    if dtype == pl.String:
        # Text sources (CSV) deliver every column as text: numbers in text are numbers.
        numbers = values.cast(pl.Float64, strict=False)
        if numbers.null_count():
            return None
    elif dtype.is_numeric():
        numbers = values.cast(pl.Float64)
    else:
        return f"type {dtype} is not categorical"
    if not bool((numbers == numbers.round(0)).all()):
        return "numbers with fractions (not categorical)"
    distinct = numbers.n_unique()
    if distinct > MAX_INT_VALUES:
        return f"integer column with {distinct} distinct values (more than {MAX_INT_VALUES})"
    return None


class SegmentPopularity:
    """Item popularity per (attribute, value) segment of users; the cold-start fallback
    of a recommender for new users with known attributes (see the module docstring).

    Fitted attributes: ``attributes_`` (names), ``values_`` (per attribute, its values as
    text), ``counts_`` (sparse ``[segments, items]``: distinct users of the segment per
    item; segments of attribute ``j`` start at row ``offsets_[j]``), ``popularity_``
    (distinct users per item) and ``user_values_`` (``[users, attributes]`` value codes of
    the log's users, ``-1`` unknown; used for evaluation and not saved).
    """

    attributes_: list[str]
    values_: list[list[str]]
    offsets_: np.ndarray
    counts_: sp.csr_matrix
    popularity_: np.ndarray
    user_values_: np.ndarray

    def __init__(self, max_values: int = MAX_VALUES) -> None:
        self.max_values = max_values

    # ------------------------------------------------------------------------- fit
    def fit(
        self,
        interactions: Interactions,
        users: pl.DataFrame | UserTable,
        *,
        user: str = "user_id",
        attributes: Sequence[str] | None = None,
    ) -> SegmentPopularity:
        """Count, per segment, the distinct users of the segment per item. ``users`` is a
        frame with the ``user`` id column (or a :class:`UserTable`); ``attributes``
        default to its categorical columns. Users of the table absent from the log are
        ignored; users of the log absent from the table have unknown attributes."""
        import scipy.sparse as sp

        if self.max_values < 1:
            raise UsageError(f"max_values must be >= 1, got {self.max_values}")
        table = users if isinstance(users, UserTable) else prepare_user_table(users, user)
        names = list(table.attributes if attributes is None else attributes)
        missing = [a for a in names if a not in table.attributes]
        if missing:
            raise UsageError(f"attributes {missing} are not categorical columns of the table")
        seen = interactions.matrix(binary=True).astype(np.float32)
        code_of = {
            uid: code for code, uid in enumerate(np.asarray(interactions.user_ids).astype(str))
        }
        rows = np.array([code_of.get(uid, -1) for uid in table.frame[table.user].to_list()])
        in_log = rows >= 0
        n_users = interactions.n_users
        user_values = np.full((n_users, len(names)), -1, dtype=np.int32)
        values: list[list[str]] = []
        offsets = [0]
        for j, name in enumerate(names):
            column = table.frame[name].to_numpy()
            present = np.array([v is not None for v in column], dtype=bool)
            labels, inverse, counts = np.unique(
                column[present].astype(str), return_inverse=True, return_counts=True
            )
            keep = np.lexsort((labels, -counts))[: self.max_values]  # most frequent first
            kept_labels = labels[keep]
            remap = np.full(len(labels), -1, dtype=np.int32)
            remap[keep] = np.arange(len(keep), dtype=np.int32)
            codes = np.full(len(column), -1, dtype=np.int32)
            codes[present] = remap[inverse]
            user_values[rows[in_log], j] = codes[in_log]
            values.append(kept_labels.tolist())
            offsets.append(offsets[-1] + len(keep))
        # membership [segments, users] @ seen [users, items] -> distinct users per item
        member_rows, member_cols = [], []
        for j in range(len(names)):
            known = np.flatnonzero(user_values[:, j] >= 0)
            member_rows.append(offsets[j] + user_values[known, j])
            member_cols.append(known)
        row_idx = np.concatenate(member_rows) if member_rows else np.zeros(0, np.int64)
        col_idx = np.concatenate(member_cols) if member_cols else np.zeros(0, np.int64)
        membership = sp.csr_matrix(
            (np.ones(len(row_idx), np.float32), (row_idx, col_idx)), shape=(offsets[-1], n_users)
        )
        self.attributes_ = names
        self.values_ = values
        self.offsets_ = np.asarray(offsets, dtype=np.int64)
        self.counts_ = sp.csr_matrix(membership @ seen, dtype=np.float32)
        self.counts_.sum_duplicates()
        self.popularity_ = np.asarray(seen.sum(axis=0)).ravel().astype(np.float32)
        self.user_values_ = user_values
        return self

    @property
    def n_items(self) -> int:
        return len(self._fitted_popularity())

    def _fitted_popularity(self) -> np.ndarray:
        popularity = getattr(self, "popularity_", None)
        if popularity is None:
            raise UsageError("SegmentPopularity is not fitted: call fit() first")
        return popularity

    # --------------------------------------------------------------------- scoring
    def encode(self, features: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Value codes ``[len(features), attributes]`` (``-1``: unknown) of feature
        mappings ``{attribute: value}``; unknown attributes and values are ignored."""
        self._fitted_popularity()
        lookup = [{v: i for i, v in enumerate(values)} for values in self.values_]
        codes = np.full((len(features), len(self.attributes_)), -1, dtype=np.int32)
        for row, mapping in enumerate(features):
            for j, name in enumerate(self.attributes_):
                text = value_text(mapping.get(name))
                if text is not None:
                    codes[row, j] = lookup[j].get(text, -1)
        return codes

    def scores(
        self, codes: np.ndarray, leave_out: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[len(codes), items]`` and whether each row used a segment (``False``:
        plain popularity). ``leave_out`` (``[len(codes), items]``, binary) is taken out of
        every count first: a user's own events, to score them as if they were new."""
        popularity = self._fitted_popularity().astype(np.float64)
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(self.attributes_):
            raise UsageError(
                f"codes must have shape [users, {len(self.attributes_)}], got {codes.shape}"
            )
        n = codes.shape[0]
        own = np.zeros((n, len(popularity))) if leave_out is None else leave_out.toarray()
        own_total = own.sum(axis=1)
        totals = np.asarray(self.counts_.sum(axis=1)).ravel().astype(np.float64)
        total = np.zeros((n, len(popularity)))
        used = np.zeros(n, dtype=np.int64)
        for j in range(len(self.attributes_)):
            rows = np.flatnonzero(codes[:, j] >= 0)
            if not rows.size:
                continue
            segment = self.offsets_[j] + codes[rows, j]
            seg_total = totals[segment] - own_total[rows]
            ok = seg_total > 0  # a segment of this user alone says nothing about others
            rows, segment, seg_total = rows[ok], segment[ok], seg_total[ok]
            counts = self.counts_[segment].toarray().astype(np.float64) - own[rows]
            total[rows] += counts / seg_total[:, None]
            used[rows] += 1
        out = np.empty_like(total)
        some = used > 0
        out[some] = total[some] / used[some, None]
        base = popularity[None, :] - own[~some]
        base_total = np.maximum(base.sum(axis=1, keepdims=True), 1.0)
        out[~some] = base / base_total
        return out, some

    def recommend_features(
        self,
        features: Sequence[Mapping[str, Any]],
        k: int = 10,
        *,
        exclude: Any = None,
        allow: Any = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(items, scores, used)`` for users described by attribute mappings: the top
        ``k`` item codes ``[n, k]`` (padded with ``-1``/``-inf`` where filters leave
        fewer), their scores, and whether a segment was used (else plain popularity).
        ``exclude``/``allow`` are item-code filters as in ``Recommender.recommend``."""
        codes = self.encode(features)
        items = np.full((len(features), k), -1, dtype=np.int64)
        scores = np.full((len(features), k), -np.inf, dtype=np.float64)
        used = np.zeros(len(features), dtype=bool)
        for lo in range(0, len(features), _BLOCK):
            dense, some = self.scores(codes[lo : lo + _BLOCK])
            top, top_scores = self._top(dense, k, exclude, allow)
            items[lo : lo + _BLOCK, : top.shape[1]] = top
            scores[lo : lo + _BLOCK, : top.shape[1]] = top_scores
            used[lo : lo + _BLOCK] = some
        items[~np.isfinite(scores)] = -1
        return items, scores, used

    def _top(
        self, dense: np.ndarray, k: int, exclude: Any = None, allow: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        from forgeml.recommend.models import _top_k

        if k < 1:
            raise UsageError(f"k must be >= 1, got {k}")
        popularity = self._fitted_popularity().astype(np.float64)
        key = dense + _TIE * popularity / max(float(popularity.max(initial=0.0)), 1.0)
        if exclude is not None:
            key[:, np.asarray(exclude, dtype=np.int64)] = -np.inf
        columns = None
        if allow is not None:
            columns = np.unique(np.asarray(allow, dtype=np.int64))
            if not columns.size:
                empty = np.zeros((len(dense), 0), dtype=np.int64)
                return empty, empty.astype(np.float64)
            key = key[:, columns]
        top, _ = _top_k(key, k)
        top_key = np.take_along_axis(key, top, axis=1)
        if columns is not None:
            top = columns[top]
        values = np.take_along_axis(dense, top, axis=1)
        return top, np.where(np.isfinite(top_key), values, -np.inf)

    # ----------------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON description and arrays, as :mod:`forgeml.recommend.persist` saves them."""
        counts = self.counts_
        arrays = {
            "offsets": self.offsets_.astype(np.int64),
            "indptr": counts.indptr.astype(np.int64),
            "indices": counts.indices.astype(np.int32),
            "data": counts.data.astype(np.float32),
            "popularity": self._fitted_popularity().astype(np.float32),
        }
        return {"attributes": list(self.attributes_), "values": self.values_}, arrays

    @classmethod
    def _from_state(
        cls, entry: Mapping[str, Any], arrays: Mapping[str, np.ndarray], n_items: int, where: str
    ) -> SegmentPopularity:
        """Rebuild from :meth:`_state`'s output, checking every array (a corrupt file is
        a :class:`DataError` naming ``where``)."""
        import scipy.sparse as sp

        names, values = entry.get("attributes"), entry.get("values")
        if (
            not isinstance(names, list)
            or not isinstance(values, list)
            or len(names) != len(values)
            or not all(isinstance(n, str) for n in names)
            or not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in values)
        ):
            raise DataError(f"{where}: 'attributes' and 'values' must be matching lists of text")
        offsets, indptr, indices, data, popularity = (
            arrays["offsets"],
            arrays["indptr"],
            arrays["indices"],
            arrays["data"],
            arrays["popularity"],
        )
        expected = np.concatenate(([0], np.cumsum([len(v) for v in values]))).astype(np.int64)
        n_segments = int(expected[-1])
        ok = (
            offsets.shape == expected.shape
            and bool(np.array_equal(offsets, expected))
            and popularity.shape == (n_items,)
            and np.issubdtype(popularity.dtype, np.floating)
            and bool(np.all(np.isfinite(popularity)) and np.all(popularity >= 0))
            and indptr.shape == (n_segments + 1,)
            and np.issubdtype(indptr.dtype, np.integer)
            and np.issubdtype(indices.dtype, np.integer)
            and np.issubdtype(data.dtype, np.floating)
            and indices.shape == data.shape
            and indptr[0] == 0
            and indptr[-1] == len(indices)
            and bool(np.all(np.diff(indptr) >= 0))
            and (len(indices) == 0 or (indices.min() >= 0 and indices.max() < n_items))
            and bool(np.all(np.isfinite(data)) and np.all(data >= 0))
        )
        if not ok:
            raise DataError(f"{where}: segment counts do not match the model ({n_items} items)")
        model = cls()
        model.attributes_ = list(names)
        model.values_ = [list(v) for v in values]
        model.offsets_ = offsets.astype(np.int64)
        model.counts_ = sp.csr_matrix(
            (data.astype(np.float32), indices.astype(np.int32), indptr.astype(np.int64)),
            shape=(n_segments, n_items),
        )
        model.popularity_ = popularity.astype(np.float32)
        model.user_values_ = np.zeros((0, len(names)), dtype=np.int32)
        return model


# ------------------------------------------------------------------------ evaluation


def _test_users(train: Interactions, test: Interactions) -> tuple[np.ndarray, sp.csr_matrix]:
    if (train.n_users, train.n_items) != (test.n_users, test.n_items):
        raise UsageError("train and test must share their id maps")
    relevant = test.matrix(binary=True)
    users = np.flatnonzero(np.diff(relevant.indptr))
    return users, relevant[users]


def cold_start_metrics(
    fallback: SegmentPopularity, train: Interactions, test: Interactions, k: int = 10
) -> dict[str, Any]:
    """NDCG@k and Recall@k on every test user scored as if new: ``fallback`` (fitted on
    ``train``) from their attributes, and plain popularity, each with the user's own
    training events taken out of the counts and no history used (nothing excluded).
    ``users_with_attributes``: test users with at least one known attribute value."""
    users, relevant = _test_users(train, test)
    if len(fallback.user_values_) != train.n_users:
        raise UsageError("cold_start_metrics: the fallback must be fitted on train")
    seen = train.matrix(binary=True)[users]
    codes = fallback.user_values_[users]
    none = np.full_like(codes, -1)
    out: dict[str, Any] = {
        "users": len(users),
        "users_with_attributes": int((codes >= 0).any(axis=1).sum()),
    }
    for name, which in (("user_features", codes), ("popularity", none)):
        recommended = np.full((len(users), k), -1, dtype=np.int64)
        for lo in range(0, len(users), _BLOCK):
            hi = lo + _BLOCK
            dense, _ = fallback.scores(which[lo:hi], leave_out=seen[lo:hi])
            top, _ = fallback._top(dense, k)
            recommended[lo:hi, : top.shape[1]] = top
        hits = metrics.hit_matrix(recommended, relevant)
        out[name] = {
            f"ndcg@{k}": metrics.ndcg_at_k(hits, relevant),
            f"recall@{k}": metrics.recall_at_k(hits, relevant),
        }
    return out


def attribute_breakdown(
    model: Any,
    fallback: SegmentPopularity,
    train: Interactions,
    test: Interactions,
    k: int = 10,
    *,
    top: int = 5,
) -> list[dict[str, Any]]:
    """Per attribute, ``model``'s NDCG@k and Recall@k (full ranking, seen items
    excluded) for the test users of each of its ``top`` most frequent values among test
    users (``fallback`` gives the users' attribute values)."""
    users, relevant = _test_users(train, test)
    if not len(users):
        return []
    recommended, _ = model.recommend(users, k, exclude_seen=True)
    hits = metrics.hit_matrix(recommended, relevant)
    codes = fallback.user_values_[users]
    out = []
    for j, name in enumerate(fallback.attributes_):
        column = codes[:, j]
        known = column[column >= 0]
        counts = np.bincount(known, minlength=len(fallback.values_[j]))
        order = np.lexsort((np.arange(len(counts)), -counts))
        rows = []
        for code in order[:top]:
            if counts[code] == 0:
                break
            inside = np.flatnonzero(column == code)
            rows.append(
                {
                    "value": fallback.values_[j][code],
                    "users": len(inside),
                    f"ndcg@{k}": metrics.ndcg_at_k(hits[inside], relevant[inside]),
                    f"recall@{k}": metrics.recall_at_k(hits[inside], relevant[inside]),
                }
            )
        out.append({"attribute": name, "unknown": int((column < 0).sum()), "values": rows})
    return out
