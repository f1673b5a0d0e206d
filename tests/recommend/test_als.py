"""ALS through the optional ``implicit`` library: the shared contract and MovieLens quality."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from forgeml.errors import UsageError
from forgeml.recommend import ALS, Interactions, Popularity, evaluate, leave_last_n_out

pytest.importorskip("implicit", reason="ALS needs the 'rec' extra (implicit)")


def test_recommend_excludes_seen_and_similar_items_excludes_itself():
    frame = pl.DataFrame({"user_id": [0, 0, 1, 1, 2, 2, 3], "item_id": [0, 1, 0, 1, 2, 3, 2]})
    log = Interactions.from_frame(frame)
    model = ALS(factors=4, iterations=5).fit(log)
    assert model.user_factors_.shape == (4, 4) and model.item_factors_.shape == (4, 4)
    items, _ = model.recommend(np.arange(4), k=4)
    seen = log.matrix(binary=True).toarray().astype(bool)
    for user in range(4):
        valid = items[user][items[user] >= 0]
        assert not seen[user, valid].any()
        assert len(valid) == int((~seen[user]).sum())
    similar, _ = model.similar_items([0, 1, 2, 3], k=2)
    assert not np.any(similar == np.arange(4)[:, None])


def test_bad_parameters_are_refused():
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0], "item_id": [0]}))
    with pytest.raises(UsageError, match="ALS: factors"):
        ALS(factors=0).fit(log)


def test_als_beats_popularity_on_movielens(movielens):
    split = leave_last_n_out(movielens, n=1)
    als = evaluate(ALS(factors=32).fit(split.train), split.train, split.test, k=10)
    popularity = evaluate(Popularity().fit(split.train), split.train, split.test, k=10)
    for metric in ("ndcg@10", "recall@10"):
        assert als[metric] > popularity[metric], metric


def test_get_params_are_the_constructor_arguments():
    model = ALS(factors=8, regularization=0.1, alpha=3.0, iterations=4, seed=2)
    assert model.get_params() == {
        "factors": 8,
        "regularization": 0.1,
        "alpha": 3.0,
        "iterations": 4,
        "seed": 2,
    }
