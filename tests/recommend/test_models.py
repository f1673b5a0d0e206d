"""Recommenders: the shared contract on random logs, and quality on real MovieLens data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forgeml.errors import UsageError
from forgeml.recommend import (
    EASE,
    Interactions,
    ItemKNN,
    Popularity,
    Recommender,
    evaluate,
    leave_last_n_out,
)

MODELS = [Popularity, lambda: ItemKNN(neighbours=3), lambda: EASE(lam=1.0)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, 9)), min_size=1, max_size=50),
    st.integers(1, 12),
    st.sampled_from(range(len(MODELS))),
)
def test_exclude_seen_never_returns_a_train_item(events, k, which):
    users, items = (list(column) for column in zip(*events, strict=True))
    log = Interactions.from_frame(pl.DataFrame({"user_id": users, "item_id": items}))
    model: Recommender = MODELS[which]().fit(log)
    codes = np.arange(log.n_users)
    recommended, scores = model.recommend(codes, k)
    assert recommended.shape == scores.shape == (log.n_users, k)
    seen = log.matrix(binary=True).toarray().astype(bool)
    for user in codes:
        row = recommended[user]
        valid = row[row >= 0]
        assert not seen[user, valid].any()
        assert len(set(valid.tolist())) == len(valid)  # no duplicates
        # Every unseen item is listed before padding starts.
        assert len(valid) == min(k, int((~seen[user]).sum()))
        assert np.all(np.diff(scores[user][row >= 0]) <= 0)  # best first
    every, _ = model.recommend(codes, k, exclude_seen=False)
    assert (every >= 0).sum() == log.n_users * min(k, log.n_items)


def test_similar_items_never_returns_the_item_itself():
    frame = pl.DataFrame({"user_id": [0, 0, 1, 1, 2, 2, 2], "item_id": [0, 1, 0, 1, 1, 2, 3]})
    log = Interactions.from_frame(frame)
    for model in (ItemKNN(), EASE(lam=0.5)):
        items, scores = model.fit(log).similar_items([0, 1, 2, 3], k=3)
        assert items.shape == (4, 3)
        assert not np.any(items == np.arange(4)[:, None])
        assert items[0, 0] == 1  # item 0 is only ever seen with item 1
        assert np.isfinite(scores[0, 0])


def test_popularity_ranks_by_distinct_users_not_events():
    # Item 5 has the most events (one user, three times), item 6 the most users.
    frame = pl.DataFrame({"user_id": [0, 0, 0, 1, 2, 3], "item_id": [5, 5, 5, 6, 6, 7]})
    log = Interactions.from_frame(frame)
    items, scores = Popularity().fit(log).recommend([3], k=3, exclude_seen=False)
    assert log.item_ids[items[0]].tolist() == [6, 5, 7]
    assert scores[0].tolist() == [2.0, 1.0, 1.0]


def test_contract_errors_are_clear():
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 1], "item_id": [0, 1]}))
    with pytest.raises(UsageError, match="not fitted"):
        Popularity().recommend([0])
    model = ItemKNN().fit(log)
    with pytest.raises(UsageError, match=r"user codes must be integers in \[0, 2\)"):
        model.recommend([2])
    with pytest.raises(UsageError, match="k must be >= 1"):
        model.recommend([0], k=0)
    with pytest.raises(UsageError, match="above max_items=1"):
        EASE(max_items=1).fit(log)
    with pytest.raises(UsageError, match="EASE: lam must be a number > 0, got 0"):
        EASE(lam=0).fit(log)
    with pytest.raises(UsageError, match="EASE: min_item_users must be an integer >= 1"):
        EASE(min_item_users=0).fit(log)
    with pytest.raises(UsageError, match="neighbours"):
        ItemKNN(neighbours=0).fit(log)
    assert Popularity().fit(log) is not None and model.fit(log) is model  # fit returns self


def test_item_knn_keeps_only_the_top_neighbours_per_item(movielens):
    model = ItemKNN(neighbours=5).fit(movielens)
    per_item = np.diff(model.similarity_.indptr)
    assert per_item.max() <= 5 and per_item.min() >= 0
    assert np.all(model.similarity_.data > 0) and np.all(model.similarity_.data <= 1 + 1e-5)


@pytest.fixture(scope="module")
def movielens_results(movielens):
    split = leave_last_n_out(movielens, n=1)
    return {
        name: evaluate(model.fit(split.train), split.train, split.test, k=10)
        for name, model in {
            "popularity": Popularity(),
            "itemknn": ItemKNN(neighbours=100),
            "ease": EASE(lam=500.0),
        }.items()
    }


@pytest.mark.parametrize("name", ["itemknn", "ease"])
@pytest.mark.parametrize("metric", ["ndcg@10", "recall@10"])
def test_personalised_models_beat_popularity_on_movielens(movielens_results, name, metric):
    assert movielens_results[name][metric] > movielens_results["popularity"][metric]


def test_movielens_evaluation_is_sane(movielens_results):
    for result in movielens_results.values():
        assert result["users"] > 600
        for name, value in result.items():
            if name != "users":
                assert 0.0 <= value <= 1.0, name
    # Popularity recommends the same head to everyone: lowest coverage, highest bias.
    popularity = movielens_results["popularity"]
    for other in ("itemknn", "ease"):
        assert movielens_results[other]["coverage@10"] > popularity["coverage@10"]
        assert movielens_results[other]["popularity_bias@10"] < popularity["popularity_bias@10"]


def _random_log(seed: int) -> Interactions:
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({"user_id": rng.integers(0, 30, 200), "item_id": rng.integers(0, 15, 200)})
    return Interactions.from_frame(frame)


@pytest.mark.parametrize("seed", [0, 1])
def test_ease_equals_the_closed_form(seed):
    log = _random_log(seed)
    x = log.matrix(binary=True).toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 10.0 * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    model = EASE(lam=10.0).fit(log)
    np.testing.assert_allclose(model.similarity_, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("min_item_users", [3, 6])
def test_ease_with_min_item_users_solves_the_kept_items_and_ranks_the_rest_last(min_item_users):
    rng = np.random.default_rng(min_item_users)
    weights = 1.0 / np.arange(1, 41) ** 1.2  # a long tail of rarely seen items
    frame = pl.DataFrame(
        {
            "user_id": rng.integers(0, 40, 300),
            "item_id": rng.choice(40, 300, p=weights / weights.sum()),
        }
    )
    log = Interactions.from_frame(frame)
    x = log.matrix(binary=True).toarray().astype(np.float64)
    kept = np.flatnonzero(x.sum(axis=0) >= min_item_users)
    assert 0 < len(kept) < log.n_items  # some items are left out
    sub = x[:, kept]
    p = np.linalg.inv(sub.T @ sub + 10.0 * np.eye(len(kept)))
    b = np.eye(len(kept)) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    model = EASE(lam=10.0, min_item_users=min_item_users).fit(log)
    np.testing.assert_array_equal(model.items_, kept)
    np.testing.assert_allclose(model.similarity_, b, rtol=1e-4, atol=1e-6)
    # Every item is ranked: the kept ones by their EASE scores, then the others by
    # popularity.
    users = np.arange(log.n_users)
    items, scores = model.recommend(users, log.n_items, exclude_seen=False)
    assert np.all(items >= 0) and np.all(np.isfinite(scores))
    n_kept = len(kept)
    assert np.isin(items[:, :n_kept], kept).all()
    position = np.full(log.n_items, -1)
    position[kept] = np.arange(n_kept)
    expected = np.take_along_axis(sub @ b, position[items[:, :n_kept]], axis=1)
    np.testing.assert_allclose(scores[:, :n_kept], expected, rtol=1e-4, atol=1e-5)
    tail = x.sum(axis=0)[items[:, n_kept:]]
    assert np.all(np.diff(tail, axis=1) <= 0)
    # A left-out item has no EASE similarity (no link was learned).
    dropped = np.setdiff1d(np.arange(log.n_items), kept)
    assert not model._similarity_rows(dropped).any()
    assert not model._similarity_rows(kept)[:, dropped].any()


def test_ease_leaves_out_items_nobody_interacted_with_without_changing_scores():
    frame = pl.DataFrame(
        {"user_id": [0, 0, 1, 1, 2, 2, 3], "item_id": [0, 1, 0, 1, 1, 2, 3], "r": [5] * 6 + [1]}
    )
    log = Interactions.from_frame(frame, weight="r", positive_threshold=4)
    assert log.n_items == 4  # item 3 is only in a rating below the threshold
    model = EASE(lam=1.0).fit(log)
    assert model.items_.tolist() == [0, 1, 2]
    x = log.matrix(binary=True).toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + np.eye(4))  # the solve with item 3's empty column
    b = np.eye(4) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(b[3], 0.0, atol=1e-12)
    np.testing.assert_allclose(model.similarity_, b[:3, :3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_item_knn_with_all_neighbours_is_plain_cosine(seed):
    from sklearn.metrics.pairwise import cosine_similarity

    log = _random_log(seed)
    x = log.matrix(binary=True).toarray()
    expected = cosine_similarity(x.T)
    np.fill_diagonal(expected, 0.0)
    model = ItemKNN(neighbours=log.n_items).fit(log)
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "model",
    [Popularity(), ItemKNN(neighbours=7, shrink=2.0), EASE(lam=3.0, max_items=50)],
)
def test_get_params_rebuilds_an_equal_model(model):
    params = model.get_params()
    assert type(model)(**params).get_params() == params
    assert all(getattr(model, name) == value for name, value in params.items())
