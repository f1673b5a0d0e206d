"""BPR through the optional ``implicit`` library: the shared contract and MovieLens quality."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from forgeml.errors import UsageError
from forgeml.recommend import BPR, Interactions, Popularity, evaluate, leave_last_n_out

pytest.importorskip("implicit", reason="BPR needs the 'rec' extra (implicit)")


def test_factors_carry_the_item_bias_and_the_contract_holds():
    frame = pl.DataFrame({"user_id": [0, 0, 1, 1, 2, 2, 3, 3], "item_id": [0, 1, 0, 1, 2, 3, 2, 4]})
    log = Interactions.from_frame(frame)
    model = BPR(factors=4, iterations=10, threads=1).fit(log)
    assert model.user_factors_.shape == (4, 5) and model.item_factors_.shape == (5, 5)
    np.testing.assert_array_equal(model.user_factors_[:, -1], 1.0)  # the bias multiplier
    items, scores = model.recommend(np.arange(4), k=5)
    seen = log.matrix(binary=True).toarray().astype(bool)
    for user in range(4):
        valid = items[user][items[user] >= 0]
        assert not seen[user, valid].any()
        assert len(valid) == int((~seen[user]).sum())
        expected = model.user_factors_[user] @ model.item_factors_[valid].T
        np.testing.assert_allclose(scores[user][: len(valid)], expected, rtol=1e-5)
    similar, _ = model.similar_items(np.arange(5), k=2)
    assert not np.any(similar == np.arange(5)[:, None])


def test_one_thread_is_reproducible():
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"user_id": rng.integers(0, 50, 500), "item_id": rng.integers(0, 40, 500)})
    log = Interactions.from_frame(frame)
    a = BPR(factors=8, iterations=20, threads=1, seed=3).fit(log)
    b = BPR(factors=8, iterations=20, threads=1, seed=3).fit(log)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"factors": 0},
        {"iterations": 0},
        {"learning_rate": 0},
        {"regularization": -1},
        {"threads": -1},
    ],
)
def test_bad_parameters_are_refused(kwargs):
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0], "item_id": [0]}))
    (name,) = kwargs
    with pytest.raises(UsageError, match=f"BPR: {name} must be "):
        BPR(**kwargs).fit(log)


def test_bpr_beats_popularity_on_movielens(movielens):
    split = leave_last_n_out(movielens, n=1)
    # Default hyper-parameters; one SGD thread so the result is the same on every run.
    bpr = evaluate(BPR(threads=1).fit(split.train), split.train, split.test, k=10)
    popularity = evaluate(Popularity().fit(split.train), split.train, split.test, k=10)
    for metric in ("ndcg@10", "recall@10"):
        assert bpr[metric] > popularity[metric], metric
