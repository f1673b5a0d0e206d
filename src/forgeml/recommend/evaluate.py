"""Offline evaluation of a fitted recommender on a held-out log, full ranking.

Every user with at least one test event gets a top-``k`` list over the whole catalogue
(their training items excluded) and the metrics of :mod:`forgeml.recommend.metrics` are
averaged over those users.

>>> import polars as pl
>>> from forgeml.recommend.interactions import Interactions
>>> from forgeml.recommend.models import Popularity
>>> from forgeml.recommend.split import leave_last_n_out
>>> frame = pl.DataFrame({"user_id": [0, 0, 1, 1, 2, 2], "item_id": [0, 1, 0, 1, 0, 2],
...                       "t": [1, 2, 1, 2, 1, 2]})
>>> split = leave_last_n_out(Interactions.from_frame(frame, time="t"))
>>> result = evaluate(Popularity().fit(split.train), split.train, split.test, k=1)
>>> result["hit_rate@1"], result["users"]
(0.6666666666666666, 3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from forgeml.errors import UsageError
from forgeml.recommend import metrics

if TYPE_CHECKING:
    from forgeml.recommend.interactions import Interactions
    from forgeml.recommend.models import Recommender

__all__ = ["evaluate"]


def evaluate(
    model: Recommender, train: Interactions, test: Interactions, k: int = 10
) -> dict[str, float]:
    """``recall@k``, ``ndcg@k``, ``map@k``, ``hit_rate@k``, ``coverage@k``,
    ``popularity_bias@k`` and ``users`` (how many were evaluated)."""
    if (train.n_users, train.n_items) != (test.n_users, test.n_items):
        raise UsageError(
            "evaluate: train and test must share their id maps (split one Interactions)"
        )
    relevant_all = test.matrix(binary=True)
    users = np.flatnonzero(np.diff(relevant_all.indptr))
    recommended, _ = model.recommend(users, k, exclude_seen=True)
    relevant = relevant_all[users]
    hits = metrics.hit_matrix(recommended, relevant)
    popularity = np.asarray(train.matrix(binary=True).sum(axis=0)).ravel()
    return {
        f"recall@{k}": metrics.recall_at_k(hits, relevant),
        f"ndcg@{k}": metrics.ndcg_at_k(hits, relevant),
        f"map@{k}": metrics.map_at_k(hits, relevant),
        f"hit_rate@{k}": metrics.hit_rate_at_k(hits, relevant),
        f"coverage@{k}": metrics.coverage(recommended, train.n_items),
        f"popularity_bias@{k}": metrics.popularity_bias(recommended, popularity),
        "users": len(users),
    }
