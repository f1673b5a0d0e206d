"""A log of user-item interactions, encoded once into contiguous integer codes.

Every recommender and metric of :mod:`forgeml.recommend` works on codes (``0..n_users-1``,
``0..n_items-1``); the original ids (any type Polars can sort: ints, strings...) are kept in
``user_ids`` / ``item_ids`` so ``user_ids[code]`` maps a code back. Events stay one per row,
as given, so splits can order them by time; :meth:`Interactions.matrix` builds the sparse
user x item matrix in which **duplicate (user, item) events are summed** (their weights, or
a count of 1 per event when there is no weight column).

>>> import polars as pl
>>> frame = pl.DataFrame({"user_id": ["b", "a", "b", "b"], "item_id": [10, 20, 10, 30]})
>>> log = Interactions.from_frame(frame)
>>> (log.n_users, log.n_items, log.user_ids.tolist(), log.item_ids.tolist())
(2, 3, ['a', 'b'], [10, 20, 30])
>>> log.matrix().toarray().tolist()
[[0.0, 1.0, 0.0], [2.0, 0.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import DataError, UsageError

if TYPE_CHECKING:
    import polars as pl
    import scipy.sparse as sp

__all__ = ["Interactions"]


@dataclass(frozen=True, eq=False)
class Interactions:
    """Events as parallel arrays (one entry per event) plus the id maps.

    ``user_codes``/``item_codes`` are int32 codes into ``user_ids``/``item_ids``;
    ``weights`` is float32 (1.0 when the frame had no weight column); ``times`` is int64
    (epoch microseconds for date/datetime columns, the numbers themselves for numeric
    columns) or ``None`` when there was no time column.
    """

    user_codes: np.ndarray
    item_codes: np.ndarray
    weights: np.ndarray
    times: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray

    @classmethod
    def from_frame(
        cls,
        frame: pl.DataFrame,
        *,
        user: str = "user_id",
        item: str = "item_id",
        weight: str | None = None,
        time: str | None = None,
        positive_threshold: float | None = None,
    ) -> Interactions:
        """Encode a Polars frame of events.

        With ``positive_threshold`` (explicit ratings: needs ``weight``), rows whose weight is
        below it are not positives and are left out; the id maps still hold every user and
        item of the frame, so a user with only low ratings exists but has no events.
        Nulls in any named column, and NaN/inf weights or times, raise :class:`DataError`
        naming the column and the first bad row.

        >>> import polars as pl
        >>> frame = pl.DataFrame({"u": [1, 1, 2], "i": [5, 6, 5], "r": [5.0, 2.0, 4.0]})
        >>> log = Interactions.from_frame(frame, user="u", item="i", weight="r",
        ...                               positive_threshold=4)
        >>> log.n_events, log.weights.tolist()
        (2, [5.0, 4.0])
        """
        for role, column in (("user", user), ("item", item), ("weight", weight), ("time", time)):
            if column is not None and column not in frame.columns:
                raise DataError(
                    f"{role} column {column!r} is not in the frame (columns: {frame.columns})"
                )
        if positive_threshold is not None and weight is None:
            raise UsageError("positive_threshold needs a weight column (weight=...)")
        for column in (user, item):
            _check_no_nulls(frame[column], column)
        user_ids, user_codes = _encode(frame[user])
        item_ids, item_codes = _encode(frame[item])
        n = frame.height
        weights = (
            np.ones(n, dtype=np.float32)
            if weight is None
            else _numeric(frame[weight], weight).astype(np.float32)
        )
        times = None if time is None else _times(frame[time], time)
        keep: np.ndarray | None = None
        if positive_threshold is not None:
            keep = weights >= positive_threshold
        log = cls(user_codes, item_codes, weights, times, user_ids, item_ids)
        return log if keep is None else log.subset(keep)

    @property
    def n_users(self) -> int:
        """Number of distinct users in the id map (the matrix's rows)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of distinct items in the id map (the catalogue, the matrix's columns)."""
        return len(self.item_ids)

    @property
    def n_events(self) -> int:
        """Number of events (rows) kept."""
        return len(self.user_codes)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The events selected by a boolean mask or an index array, with the same id maps
        (so codes mean the same thing on both sides of a split)."""
        return Interactions(
            self.user_codes[mask],
            self.item_codes[mask],
            self.weights[mask],
            None if self.times is None else self.times[mask],
            self.user_ids,
            self.item_ids,
        )

    def matrix(self, *, binary: bool = False) -> sp.csr_matrix:
        """The ``n_users x n_items`` CSR matrix (float32, sorted indices); duplicate events
        are summed. ``binary=True`` gives 1.0 wherever a user has any event on an item."""
        import scipy.sparse as sp

        values = np.ones(self.n_events, np.float32) if binary else self.weights
        matrix = sp.csr_matrix(
            (values, (self.user_codes, self.item_codes)),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def user_codes_of(self, ids: Any) -> np.ndarray:
        """Codes of the given user ids; an unknown id raises :class:`DataError` naming it."""
        return _lookup(self.user_ids, np.asarray(ids), "user")

    def item_codes_of(self, ids: Any) -> np.ndarray:
        """Codes of the given item ids; an unknown id raises :class:`DataError` naming it."""
        return _lookup(self.item_ids, np.asarray(ids), "item")


def _encode(series: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ids and each row's code (its position among them)."""
    try:
        uniques = series.unique().sort()
    except Exception as exc:  # polars raises various errors for unsortable dtypes
        raise DataError(
            f"column {series.name!r}: ids of type {series.dtype} cannot be used as ids"
        ) from exc
    codes = uniques.search_sorted(series).to_numpy().astype(np.int32)
    return uniques.to_numpy(), codes


def _lookup(ids: np.ndarray, wanted: np.ndarray, role: str) -> np.ndarray:
    if len(ids) == 0 and wanted.size:
        raise DataError(f"unknown {role} id {wanted.ravel()[0].tolist()!r}")
    pos = np.searchsorted(ids, wanted)
    pos_clipped = np.minimum(pos, len(ids) - 1)
    bad = (pos >= len(ids)) | (ids[pos_clipped] != wanted)
    if np.any(bad):
        raise DataError(f"unknown {role} id {wanted[np.flatnonzero(bad)[0]].tolist()!r}")
    return pos.astype(np.int32)


def _check_no_nulls(series: pl.Series, column: str) -> None:
    if series.null_count():
        row = int(series.is_null().arg_true()[0])
        raise DataError(f"column {column!r}: null value at row {row}")


def _numeric(series: pl.Series, column: str) -> np.ndarray:
    _check_no_nulls(series, column)
    if not series.dtype.is_numeric():
        raise DataError(f"column {column!r}: expected numbers, got {series.dtype}")
    values = series.to_numpy().astype(np.float64)
    _check_finite(values, column)
    return values


def _check_finite(values: np.ndarray, column: str) -> None:
    bad = ~np.isfinite(values)
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"column {column!r}: value {values[row]} at row {row} is not finite")


def _times(series: pl.Series, column: str) -> np.ndarray:
    """int64 times: epoch microseconds for temporal columns (strings are parsed as ISO
    datetimes), the values for numeric ones (floats truncated to whole units)."""
    import polars as pl

    _check_no_nulls(series, column)
    if series.dtype == pl.String:
        parsed = series.str.to_datetime(strict=False, time_unit="us")
        if parsed.null_count():
            row = int(parsed.is_null().arg_true()[0])
            raise DataError(f"column {column!r}: {series[row]!r} at row {row} is not a datetime")
        series = parsed
    if series.dtype.is_temporal():
        if series.dtype == pl.Time or series.dtype == pl.Duration:
            raise DataError(f"column {column!r}: {series.dtype} is not a point in time")
        return series.dt.epoch("us").to_numpy().astype(np.int64)
    values = _numeric(series, column)
    return values.astype(np.int64)
