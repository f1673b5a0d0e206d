"""A synthetic interaction log with the shape of real ones, for tests, demos and benchmarks.

What it imitates: item popularity follows a Zipf law (a few items take most events), user
activity is heavy-tailed (log-normal: most users have a few events, some have thousands),
each user has a favourite "genre" (a slice of the catalogue) that half of their events come
from, so item-item models have a signal to find, and events come in sessions (bursts minutes
apart, sessions days apart) over a 365-day span. Everything is vectorised NumPy and a
function of ``seed`` only; 20 million events take seconds.

>>> frame = generate(users=100, items=50, interactions=1_000, seed=0)
>>> frame.columns, frame.height
(['user_id', 'item_id', 'timestamp'], 1000)
>>> frame.equals(generate(users=100, items=50, interactions=1_000, seed=0))
True
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from forgeml.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["generate"]

_START_US = int(datetime(2024, 1, 1).timestamp() * 1_000_000)
_SPAN_US = 365 * 86_400 * 1_000_000
_MINUTE_US = 60 * 1_000_000
_DAY_US = 86_400 * 1_000_000


def generate(
    users: int,
    items: int,
    interactions: int,
    seed: int,
    *,
    zipf_exponent: float = 1.0,
    genres: int = 20,
    genre_share: float = 0.5,
    session_length: float = 5.0,
) -> pl.DataFrame:
    """A frame of ``interactions`` events: ``user_id`` (int64 in ``[0, users)``),
    ``item_id`` (int64 in ``[0, items)``) and ``timestamp`` (Datetime[us]), sorted by
    user then time.

    ``zipf_exponent`` shapes item popularity (``p(rank) ∝ rank^-exponent``);
    ``genre_share`` is the fraction of a user's events drawn from their favourite genre;
    ``session_length`` is the mean number of events per session.
    """
    import polars as pl

    if min(users, items) < 1 or interactions < 0:
        raise UsageError("generate: users and items must be >= 1 and interactions >= 0")
    if not 0.0 <= genre_share <= 1.0 or session_length < 1.0 or genres < 1:
        raise UsageError("generate: need 0 <= genre_share <= 1, session_length >= 1, genres >= 1")
    rng = np.random.default_rng(seed)
    user = _users(rng, users, interactions)
    rank = _item_ranks(rng, user, users, items, zipf_exponent, min(genres, items), genre_share)
    # Popularity rank -> item id through a fixed permutation, so ids carry no popularity.
    item = rng.permutation(items)[rank]
    times = _session_times(rng, user, session_length)
    return pl.DataFrame(
        {
            "user_id": user.astype(np.int64),
            "item_id": item.astype(np.int64),
            "timestamp": pl.Series(times, dtype=pl.Int64).cast(pl.Datetime("us")),
        }
    )


def _users(rng: np.random.Generator, users: int, n: int) -> np.ndarray:
    """Each event's user, sorted; activity weights are log-normal (heavy-tailed)."""
    activity = rng.lognormal(mean=0.0, sigma=1.5, size=users)
    counts = rng.multinomial(n, activity / activity.sum())
    return np.repeat(np.arange(users, dtype=np.int32), counts)


def _zipf_ranks(rng: np.random.Generator, size: int, n: int, exponent: float) -> np.ndarray:
    """``size`` draws of ranks in ``[0, n)`` with ``p(r) ∝ (r + 1)^-exponent``."""
    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -exponent)
    return np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right").astype(np.int64)


def _item_ranks(
    rng: np.random.Generator,
    user: np.ndarray,
    users: int,
    items: int,
    exponent: float,
    genres: int,
    genre_share: float,
) -> np.ndarray:
    """Global popularity rank of each event's item. Genre ``g`` holds the ranks
    ``g, g + genres, g + 2 * genres, ...``, so each genre has its own head and tail."""
    n = len(user)
    ranks = _zipf_ranks(rng, n, items, exponent)
    favourite = rng.integers(0, genres, size=users)[user]
    in_genre = rng.random(n) < genre_share
    per_genre = -(-items // genres)
    within = _zipf_ranks(rng, int(in_genre.sum()), per_genre, exponent)
    genre_ranks = within * genres + favourite[in_genre]
    # The last genre may be shorter than the others: fold overflow back into the genre.
    overflow = genre_ranks >= items
    genre_ranks[overflow] = favourite[in_genre][overflow]
    ranks[in_genre] = genre_ranks
    return ranks


def _session_times(rng: np.random.Generator, user: np.ndarray, session_length: float) -> np.ndarray:
    """Epoch-microsecond times: per user a random start in the first half of the span, then
    gaps of minutes inside a session and of days between sessions (cumulative sums that
    restart at each user's first event); a timeline longer than the span is compressed."""
    n = len(user)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.ones(n, dtype=bool)
    first[1:] = user[1:] != user[:-1]
    new_session = rng.random(n) < 1.0 / session_length
    gaps = np.where(
        new_session,
        rng.exponential(3 * _DAY_US, n),
        rng.exponential(4 * _MINUTE_US, n),
    ).astype(np.int64)
    gaps[first] = rng.integers(0, _SPAN_US // 2, size=int(first.sum()))
    total = np.cumsum(gaps)
    starts = np.flatnonzero(first)
    lengths = np.diff(np.append(starts, n))
    relative = total - np.repeat(total[starts] - gaps[starts], lengths)
    # Very active users would run past the span: compress their timeline into it.
    last = relative[starts + lengths - 1]
    scale = np.minimum(1.0, _SPAN_US / np.maximum(last, 1))
    return _START_US + (relative * np.repeat(scale, lengths)).astype(np.int64)
