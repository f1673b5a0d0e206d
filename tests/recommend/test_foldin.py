"""Fold-in (recommendations from a given history, no retraining) and business filters."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from forgeml.errors import UsageError
from forgeml.recommend import (
    ALS,
    BPR,
    EASE,
    Interactions,
    ItemKNN,
    Popularity,
    Recommender,
    leave_last_n_out,
)


def _has_implicit() -> bool:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


needs_implicit = pytest.mark.skipif(not _has_implicit(), reason="needs implicit (rec extra)")


def _histories(model: Recommender, users: np.ndarray) -> list[np.ndarray]:
    return [model.seen_[u].indices for u in users]


@pytest.fixture(scope="module")
def train(movielens) -> Interactions:
    return leave_last_n_out(movielens, n=1).train


@pytest.mark.parametrize("make", [lambda: ItemKNN(neighbours=50), lambda: EASE(lam=300.0)])
def test_item_models_fold_in_exactly_like_fitted_users(train, make):
    model = make().fit(train)
    users = np.arange(train.n_users)
    fitted = model.recommend(users, 10)
    folded = model.recommend_history(_histories(model, users), 10)
    np.testing.assert_array_equal(fitted[0], folded[0])
    np.testing.assert_allclose(fitted[1], folded[1], rtol=1e-6)
    # The same as a sparse matrix of histories.
    as_matrix = model.recommend_history(model.seen_[users], 10)
    np.testing.assert_array_equal(fitted[0], as_matrix[0])


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


@needs_implicit
@pytest.mark.parametrize("weighting", ["none", "bm25", "tfidf"])
def test_als_fold_in_solves_nearly_the_fitted_user_factors(train, weighting):
    # A folded-in history is weighed as the same user was in training: same factors.
    model = ALS(factors=32, weighting=weighting).fit(train)
    users = np.arange(train.n_users)
    fitted, _ = model.recommend(users, 10)
    folded, _ = model.recommend_history(_histories(model, users), 10)
    # Measured 0.98-0.99 for each weighting; a fold-in that left the weights out
    # measured 0.68 (bm25) and 0.88 (tfidf).
    assert _overlap(fitted, folded) > 0.93
    vectors = model.fold_in(_histories(model, users[:50]))
    cosine = np.sum(vectors * model.user_factors_[:50], axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(model.user_factors_[:50], axis=1)
    )
    assert np.median(cosine) > 0.995  # measured > 0.999 (without the weights: 0.97 bm25)


@needs_implicit
def test_bpr_fold_in_ranks_like_the_fitted_model(movielens):
    from forgeml.recommend import evaluate

    split = leave_last_n_out(movielens, n=1)
    model = BPR(threads=1).fit(split.train)
    users = np.arange(split.train.n_users)
    fitted, _ = model.recommend(users, 10)
    folded, _ = model.recommend_history(_histories(model, users), 10)
    assert _overlap(fitted, folded) > 0.3  # measured 0.55: BPR's own factors are noisy

    class FoldedIn(Recommender):
        """Scores every user through fold-in of their training history."""

        def __init__(self, inner: BPR) -> None:
            self.inner = inner
            self.seen_ = inner.seen_

        def _scores(self, users: np.ndarray) -> np.ndarray:
            return self.inner._scores_history(self.seen_[users])

    folded_ndcg = evaluate(FoldedIn(model), split.train, split.test)["ndcg@10"]
    popularity = evaluate(Popularity().fit(split.train), split.train, split.test)["ndcg@10"]
    assert folded_ndcg > popularity


@pytest.mark.parametrize(
    "make",
    [
        Popularity,
        lambda: ItemKNN(neighbours=50),
        lambda: EASE(lam=300.0),
        pytest.param(lambda: ALS(factors=16), marks=needs_implicit),
        pytest.param(lambda: BPR(factors=16, iterations=30), marks=needs_implicit),
    ],
)
def test_new_interactions_change_the_recommendations_and_are_excluded(train, make):
    model = make().fit(train)
    user = int(np.argmax(np.diff(model.seen_.indptr) == 5))  # a light user: 5 items
    history = model.seen_[user].indices
    before, _ = model.recommend_history([history], 10)
    new = before[0, :3]  # the user goes on to consume the three top recommendations
    after, scores = model.recommend_history([np.concatenate([history, new])], 10)
    assert not set(new) & set(after[0])
    assert not set(history) & set(after[0])
    assert np.all(np.isfinite(scores))
    if not isinstance(model, Popularity):
        # Not just the old list shifted by three: the new items changed the scores.
        assert after[0, :7].tolist() != before[0, 3:].tolist()
    else:
        assert after[0, :7].tolist() == before[0, 3:].tolist()
    # A brand-new user (empty history) still gets k items.
    empty, _ = model.recommend_history([np.array([], dtype=np.int64)], 10)
    assert (empty >= 0).all()


@settings(max_examples=40, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 11)), min_size=1, max_size=40),
    exclude=st.lists(st.integers(0, 11), max_size=12),
    allow=st.one_of(st.none(), st.lists(st.integers(0, 11), max_size=12)),
    k=st.integers(1, 14),
    which=st.sampled_from(["pop", "knn", "ease"]),
    history=st.booleans(),
)
def test_filters_are_always_honoured(events, exclude, allow, k, which, history):
    users, items = (list(c) for c in zip(*events, strict=True))
    log = Interactions.from_frame(pl.DataFrame({"user_id": users, "item_id": items}))
    model = {"pop": Popularity, "knn": ItemKNN, "ease": lambda: EASE(lam=1.0)}[which]()
    model.fit(log)
    n_items = log.n_items
    exclude = [e for e in exclude if e < n_items]
    allow = None if allow is None else [a for a in allow if a < n_items]
    codes = np.arange(log.n_users)
    if history:
        got, scores = model.recommend_history(
            _histories(model, codes), k, exclude=exclude, allow=allow
        )
    else:
        got, scores = model.recommend(codes, k, exclude=exclude, allow=allow)
    seen = log.matrix(binary=True).toarray().astype(bool)
    possible = np.ones(n_items, bool)
    possible[exclude] = False
    if allow is not None:
        mask = np.zeros(n_items, bool)
        mask[allow] = True
        possible &= mask
    for user in codes:
        row = got[user][got[user] >= 0]
        candidates = possible & ~seen[user]
        assert candidates[row].all()
        assert len(row) == len(set(row.tolist())) == min(k, int(candidates.sum()))
        assert np.all(scores[user][got[user] < 0] == -np.inf)  # padding


def test_a_filter_that_excludes_everything_gives_padding():
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 2]}))
    model = ItemKNN().fit(log)
    for kwargs in ({"allow": []}, {"exclude": [0, 1, 2]}, {"allow": [0], "exclude": [0]}):
        items, scores = model.recommend([0, 1], 3, exclude_seen=False, **kwargs)
        assert (items == -1).all() and (scores == -np.inf).all()


def test_fold_in_input_errors_are_clear():
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 1], "item_id": [0, 1]}))
    model = ItemKNN().fit(log)
    with pytest.raises(UsageError, match=r"history item codes must be integers in \[0, 2\)"):
        model.recommend_history([np.array([5])])
    with pytest.raises(UsageError, match="list of item-code arrays"):
        model.recommend_history(np.array([0, 1]))
    with pytest.raises(UsageError, match="needs 2 columns"):
        model.recommend_history(sp.csr_matrix((1, 3)))
    with pytest.raises(UsageError, match="exclude item codes"):
        model.recommend([0], exclude=[7])
    with pytest.raises(UsageError, match="allow item codes"):
        model.recommend([0], allow=["a"])
    with pytest.raises(UsageError, match="not fitted"):
        ItemKNN().recommend_history([np.array([0])])


@needs_implicit
def test_fold_in_latency_at_100k_items_is_printed(capsys):
    # Random factors stand in for a trained model: fold-in cost does not depend on them.
    rng = np.random.default_rng(0)
    n_items, factors = 100_000, 64
    model = ALS(factors=factors)
    model.seen_ = sp.csr_matrix((1, n_items), dtype=np.float32)
    model.user_factors_ = rng.normal(size=(1, factors)).astype(np.float32)
    model.item_factors_ = (rng.normal(size=(n_items, factors)) * 0.1).astype(np.float32)
    history = rng.choice(n_items, size=50, replace=False)
    model.recommend_history([history], 10)  # caches YᵀY once (done at load in serving)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        items, _ = model.recommend_history([history], 10)
        times.append(time.perf_counter() - start)
    assert not set(items[0]) & set(history)
    with capsys.disabled():
        print(
            f"\nALS fold-in + top-10 at 100k items x 64 factors, 50-item history: "
            f"p50 {np.median(times) * 1e3:.2f} ms, max {max(times) * 1e3:.2f} ms"
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: ItemKNN(neighbours=50),
        lambda: EASE(lam=300.0),
        pytest.param(lambda: ALS(factors=16), marks=needs_implicit),
        pytest.param(lambda: BPR(factors=16, iterations=30), marks=needs_implicit),
    ],
)
def test_users_without_history_get_the_popular_items(train, make):
    model = make().fit(train)
    popular, _ = Popularity().fit(train).recommend_history([np.array([], np.int64)], 10)
    new_user, _ = model.recommend_history([np.array([], np.int64)], 10, exclude=[popular[0, 0]])
    assert new_user[0].tolist() == [*popular[0, 1:].tolist(), new_user[0, 9]]
    # A known user whose every rating was below the positive threshold: no training event.
    frame = pl.DataFrame(
        {"user_id": [0, 0, 1, 1, 2], "item_id": [0, 1, 1, 2, 0], "rating": [5, 5, 5, 4, 1]}
    )
    log = Interactions.from_frame(frame, weight="rating", positive_threshold=4)
    small = make().fit(log)
    assert small.recommend([2], 3)[0].tolist() == [[1, 0, 2]]  # by distinct users, then code
