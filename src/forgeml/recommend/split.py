"""Train/test splits of an interaction log for offline evaluation of recommenders.

* :func:`leave_last_n_out`: each user's latest ``n`` events are the test; a user with ``n``
  events or fewer stays in train only (there would be nothing left to learn them from),
  unless ``min_train`` says how many events to keep (then users with fewer hold out less).
* :func:`time_split`: events before ``at`` train, the rest test. Test events of users with
  no event before ``at`` (cold users, which these models cannot personalise for) are left
  out of both sides and counted in :attr:`Split.cold_events`, never dropped silently.

Both sides keep the full id maps, so codes mean the same on each; ties in time keep the
frame's row order.

>>> import polars as pl
>>> from forgeml.recommend.interactions import Interactions
>>> frame = pl.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [7, 8, 9, 7], "t": [3, 1, 2, 5]})
>>> split = leave_last_n_out(Interactions.from_frame(frame, time="t"), n=1)
>>> split.test.item_ids[split.test.item_codes].tolist(), split.train.n_events
([7], 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from forgeml.errors import UsageError
from forgeml.recommend.interactions import Interactions

__all__ = ["Split", "leave_last_n_out", "time_split"]


@dataclass(frozen=True)
class Split:
    """``train`` and ``test`` logs over the same id maps; ``cold_events`` counts test-period
    events left out because their user had nothing in train."""

    train: Interactions
    test: Interactions
    cold_events: int = 0


def leave_last_n_out(
    interactions: Interactions, n: int = 1, *, min_train: int | None = None
) -> Split:
    """Each user's ``n`` latest events (by time; row order breaks ties) go to test, when the
    user has more than ``n`` events; everything else goes to train.

    With ``min_train``, a user with fewer than ``n + min_train`` events holds out fewer:
    all but their ``min_train`` earliest (none with ``min_train`` events or fewer), so
    every user with enough history is tested, heavy users on ``n`` events."""
    if n < 1:
        raise UsageError(f"leave_last_n_out: n must be >= 1, got {n}")
    if min_train is not None and min_train < 1:
        raise UsageError(f"leave_last_n_out: min_train must be >= 1, got {min_train}")
    times = _need_times(interactions, "leave_last_n_out")
    # Sort by (user, time), stable so equal times keep row order.
    order = np.lexsort((np.arange(len(times)), times, interactions.user_codes))
    users = interactions.user_codes[order]
    counts = np.bincount(users, minlength=interactions.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(len(order)) - np.repeat(starts, counts)
    from_end = np.repeat(counts, counts) - position
    # Events held out per user.
    held = np.where(counts > n, n, 0) if min_train is None else np.clip(counts - min_train, 0, n)
    is_test = np.zeros(len(order), dtype=bool)
    is_test[order] = from_end <= np.repeat(held, counts)
    return Split(interactions.subset(~is_test), interactions.subset(is_test))


def time_split(interactions: Interactions, at: datetime | date | int | float) -> Split:
    """Events with time ``< at`` train, ``>= at`` test. ``at`` is a datetime/date for a
    temporal time column (naive datetimes are taken as UTC, like Polars does) or a number
    in the column's own units."""
    times = _need_times(interactions, "time_split")
    cut = _cut_value(at)
    before = times < cut
    seen = np.zeros(interactions.n_users, dtype=bool)
    seen[interactions.user_codes[before]] = True
    test = ~before & seen[interactions.user_codes]
    cold = int((~before).sum() - test.sum())
    return Split(interactions.subset(before), interactions.subset(test), cold)


def _need_times(interactions: Interactions, what: str) -> np.ndarray:
    if interactions.times is None:
        raise UsageError(f"{what} needs timestamps: build the Interactions with time=...")
    return interactions.times


def _cut_value(at: datetime | date | int | float) -> float:
    from datetime import UTC

    if isinstance(at, datetime):
        aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        delta = aware - epoch
        return float((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if isinstance(at, date):
        return _cut_value(datetime(at.year, at.month, at.day))
    return float(at)
