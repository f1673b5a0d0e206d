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
    model = ALS(factors=8, regularization=0.1, alpha=3.0, iterations=4, seed=2, weighting="bm25")
    assert model.get_params() == {
        "factors": 8,
        "regularization": 0.1,
        "alpha": 3.0,
        "iterations": 4,
        "seed": 2,
        "weighting": "bm25",
        "bm25_k1": 100.0,
        "bm25_b": 0.8,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"weighting": "bm52"},
            r"ALS: weighting must be one of 'none', 'bm25', 'tfidf', got 'bm52'",
        ),
        ({"bm25_b": 1.5}, r"ALS: bm25_b must be a number >= 0 and <= 1, got 1.5"),
        ({"bm25_k1": -1.0}, r"ALS: bm25_k1 must be a number >= 0, got -1.0"),
        ({"alpha": 0.0}, r"ALS: alpha must be a number > 0, got 0.0"),
        ({"factors": 2.5}, r"ALS: factors must be an integer >= 1, got 2.5"),
        ({"iterations": True}, r"ALS: iterations must be an integer >= 1, got True"),
    ],
)
def test_every_parameter_is_checked_by_name(params, message):
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 1], "item_id": [0, 1]}))
    with pytest.raises(UsageError, match=message):
        ALS(**params).fit(log)


@pytest.mark.parametrize("weighting", ["bm25", "tfidf"])
def test_the_weighting_is_implicits_own(movielens, weighting):
    from implicit.nearest_neighbours import bm25_weight, tfidf_weight

    model = ALS(weighting=weighting, bm25_k1=50.0, bm25_b=0.75, iterations=1).fit(movielens)
    seen = model.seen_
    # implicit's examples weigh the item x user matrix (items are the documents).
    if weighting == "bm25":
        expected = bm25_weight(seen.T.tocsr(), K1=50.0, B=0.75).T.tocsr()
    else:
        expected = tfidf_weight(seen.T.tocsr()).T.tocsr()
    got = model.weighted(seen)
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-5, atol=1e-7)
    assert got.nnz == seen.nnz and np.all(got.data > 0)


def test_weighting_changes_the_model_and_none_is_the_binary_matrix(movielens):
    plain = ALS(factors=16, seed=3).fit(movielens)
    assert (plain.weighted(plain.seen_) != plain.seen_).nnz == 0
    bm25 = ALS(factors=16, seed=3, weighting="bm25").fit(movielens)
    assert not np.allclose(plain.item_factors_, bm25.item_factors_, atol=1e-3)
    users = np.arange(movielens.n_users)
    a, _ = plain.recommend(users, 10)
    b, _ = bm25.recommend(users, 10)
    assert (a != b).any(axis=1).mean() > 0.5  # most users get a different list
    # BM25 damps popular items: its lists lean less on the most popular ones.
    counts = np.diff(plain.seen_.tocsc().indptr)
    assert counts[b].mean() < counts[a].mean()
