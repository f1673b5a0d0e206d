"""The detailed offline evaluation behind the recommendation report.

:func:`evaluate_detail` ranks the whole catalogue once for every test user (top
``max(k, ks)``) and derives from that one ranking:

* the headline metrics at ``k`` (the same definitions as :func:`~forgeml.recommend.evaluate`);
* the metric curve over several cut-offs (NDCG@k and Recall@k vs k);
* per-segment metrics: users grouped by how many distinct items they have in train
  (``bounds=(5, 20)``: 1-5, 6-20, 21+), so light users are not hidden by heavy ones;
* popularity of the recommendations vs the catalogue: items are put in ten buckets by
  training popularity rank (bucket 1: the 10% most popular), and the report compares the
  share of recommendation slots, of training events and of catalogue items per bucket;
* cold-start accounting: test events whose item has no training event (no model can learn
  it; they stay in the test and count as misses).

>>> import polars as pl
>>> from forgeml.recommend.interactions import Interactions
>>> from forgeml.recommend.models import Popularity
>>> from forgeml.recommend.split import leave_last_n_out
>>> frame = pl.DataFrame({"user_id": [0, 0, 1, 1, 2, 2], "item_id": [0, 1, 0, 1, 0, 2],
...                       "t": [1, 2, 1, 2, 1, 2]})
>>> split = leave_last_n_out(Interactions.from_frame(frame, time="t"))
>>> detail = evaluate_detail(Popularity().fit(split.train), split.train, split.test, k=1)
>>> detail.metrics["hit_rate@1"], detail.cold_item_events, [s.users for s in detail.segments]
(0.6666666666666666, 3, [3, 0, 0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import UsageError
from forgeml.recommend import metrics

if TYPE_CHECKING:
    import scipy.sparse as sp

    from forgeml.recommend.interactions import Interactions
    from forgeml.recommend.models import Recommender

__all__ = ["CURVE_KS", "Detail", "SegmentResult", "evaluate_detail", "segment_bounds"]

CURVE_KS = (1, 2, 5, 10, 20, 50, 100)
BUCKETS = 10


@dataclass(frozen=True)
class SegmentResult:
    """Metrics at ``k`` of the test users with ``low..high`` training items."""

    name: str
    low: int
    high: int | None
    users: int
    metrics: dict[str, float]


@dataclass
class Detail:
    """Everything :func:`evaluate_detail` measured; ``to_dict()`` is JSON-ready."""

    k: int
    metrics: dict[str, float]
    curve: dict[str, list[float]]  # "k" -> cut-offs; "ndcg"/"recall" -> values
    segments: list[SegmentResult]
    popularity: dict[str, list[float]]  # "recommended"/"interactions"/"catalogue" shares
    users: int
    test_events: int
    cold_item_events: int
    catalogue: int
    trained_items: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["segments"] = [asdict(s) for s in self.segments]
        return out


def segment_bounds(bounds: Sequence[int]) -> list[tuple[str, int, int | None]]:
    """``(name, low, high)`` per segment: ``[5, 20]`` -> 1-5, 6-20, 21+.

    >>> segment_bounds([5, 20])
    [('1-5', 1, 5), ('6-20', 6, 20), ('21+', 21, None)]
    """
    out: list[tuple[str, int, int | None]] = []
    low = 1
    for high in bounds:
        out.append((f"{low}-{high}" if high > low else f"{low}", low, high))
        low = high + 1
    out.append((f"{low}+", low, None))
    return out


def evaluate_detail(
    model: Recommender,
    train: Interactions,
    test: Interactions,
    k: int = 10,
    *,
    ks: Sequence[int] = CURVE_KS,
    bounds: Sequence[int] = (5, 20),
) -> Detail:
    """Full-ranking evaluation of ``model`` (fitted on ``train``) on ``test``; see the
    module docstring."""
    if (train.n_users, train.n_items) != (test.n_users, test.n_items):
        raise UsageError("evaluate_detail: train and test must share their id maps")
    if k < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    seen = train.matrix(binary=True)
    relevant_all = test.matrix(binary=True)
    users = np.flatnonzero(np.diff(relevant_all.indptr))
    cut_offs = sorted({*(c for c in ks if c <= max(ks)), k})
    depth = min(max(cut_offs), train.n_items) if train.n_items else k
    recommended, _ = model.recommend(users, max(depth, 1), exclude_seen=True)
    relevant = relevant_all[users]
    hits = metrics.hit_matrix(recommended, relevant)
    popularity = np.asarray(seen.sum(axis=0)).ravel()
    head = _metrics_at(hits, relevant, recommended, popularity, k, train.n_items)
    curve_ks = [c for c in cut_offs if c <= recommended.shape[1]]
    curve = {
        "k": [float(c) for c in curve_ks],
        "ndcg": [metrics.ndcg_at_k(hits[:, :c], relevant) for c in curve_ks],
        "recall": [metrics.recall_at_k(hits[:, :c], relevant) for c in curve_ks],
    }
    history = np.diff(seen.indptr)[users]
    segments = []
    for name, low, high in segment_bounds(bounds):
        inside = (history >= low) & (history <= (high if high is not None else np.inf))
        if not inside.any():
            segments.append(SegmentResult(name, low, high, 0, {}))
            continue
        rows = np.flatnonzero(inside)
        part = _metrics_at(
            hits[rows], relevant[rows], recommended[rows], popularity, k, train.n_items
        )
        segments.append(SegmentResult(name, low, high, len(rows), part))
    trained = popularity > 0
    cold = int((~trained[test.item_codes]).sum()) if test.n_events else 0
    return Detail(
        k=k,
        metrics=head,
        curve=curve,
        segments=segments,
        popularity=_popularity_buckets(recommended[:, :k], popularity, seen),
        users=len(users),
        test_events=test.n_events,
        cold_item_events=cold,
        catalogue=train.n_items,
        trained_items=int(trained.sum()),
    )


def _metrics_at(
    hits: np.ndarray,
    relevant: sp.csr_matrix,
    recommended: np.ndarray,
    popularity: np.ndarray,
    k: int,
    n_items: int,
) -> dict[str, float]:
    h, r = hits[:, :k], recommended[:, :k]
    return {
        f"recall@{k}": metrics.recall_at_k(h, relevant),
        f"ndcg@{k}": metrics.ndcg_at_k(h, relevant),
        f"map@{k}": metrics.map_at_k(h, relevant),
        f"hit_rate@{k}": metrics.hit_rate_at_k(h, relevant),
        f"coverage@{k}": metrics.coverage(r, n_items),
        f"popularity_bias@{k}": metrics.popularity_bias(r, popularity) if n_items else 0.0,
    }


def _popularity_buckets(
    recommended: np.ndarray, popularity: np.ndarray, seen: sp.csr_matrix
) -> dict[str, list[float]]:
    """Shares per popularity decile (bucket 0: the most popular tenth of the catalogue)
    of recommendation slots, training events and catalogue items."""
    n_items = len(popularity)
    if n_items == 0:
        return {"recommended": [], "interactions": [], "catalogue": []}
    order = np.lexsort((np.arange(n_items), -popularity))  # most popular first
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items)
    bucket = np.minimum(rank * BUCKETS // n_items, BUCKETS - 1)
    slots = recommended[recommended >= 0]
    rec = np.bincount(bucket[slots], minlength=BUCKETS).astype(np.float64)
    events = np.bincount(bucket, weights=popularity, minlength=BUCKETS)
    items = np.bincount(bucket, minlength=BUCKETS).astype(np.float64)
    return {
        "recommended": _shares(rec),
        "interactions": _shares(events),
        "catalogue": _shares(items),
    }


def _shares(counts: np.ndarray) -> list[float]:
    total = float(counts.sum())
    return [float(c / total) if total else 0.0 for c in counts]
