"""Where recommenders keep new interactions: each worker's memory, or a real Redis shared
by every worker. Both stores answer alike; bad locations are start-up errors that name
``--interactions`` (never a password); a Redis lost while serving is a 503."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeml.errors import ConfigError, RequestError
from forgeml.serving.interactions import (
    MemoryInteractions,
    RedisInteractions,
    catalogue_fingerprint,
    open_interactions,
)

ITEMS = np.array([f"item-{i}" for i in range(50)])
events = st.lists(
    st.tuples(st.sampled_from(["ann", "bob", "cy", "dé", "e:f"]), st.integers(0, 49)), max_size=40
)


def _grouped(batch: list[tuple[str, int]]) -> dict[str, set[int]]:
    grouped: dict[str, set[int]] = {}
    for user, code in batch:
        grouped.setdefault(user, set()).add(code)
    return grouped


@pytest.mark.redis
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(events, max_size=4))
def test_redis_and_memory_hold_the_same_interactions(redis_url: str, batches) -> None:
    url = f"{redis_url}-{uuid.uuid4().hex[:8]}"  # a prefix of each example's own
    shared = open_interactions(url, ITEMS)
    other_worker = open_interactions(url, ITEMS)
    memory = MemoryInteractions()
    users = ["ann", "bob", "cy", "dé", "e:f", "nobody"]
    for batch in batches:
        if batch:
            shared.add(_grouped(batch))
            memory.add(_grouped(batch))
    seen = other_worker.get(users)
    expected = memory.get(users)
    assert seen.keys() == expected.keys()
    for user, codes in expected.items():
        assert np.array_equal(seen[user], codes), user
    assert all(v.dtype == np.int64 and np.all(np.diff(v) > 0) for v in seen.values())
    shared.close()
    other_worker.close()


@pytest.mark.redis
def test_keys_are_per_catalogue_and_expire(redis_url: str) -> None:
    import redis

    store = open_interactions(redis_url + "&ttl=120", ITEMS)
    store.add({"ann": {1, 2}})
    reordered = open_interactions(redis_url, ITEMS[::-1])  # another catalogue: other codes
    assert reordered.get(["ann"]) == {}
    assert isinstance(store, RedisInteractions) and store.ttl == 120
    client = redis.Redis.from_url(redis_url.split("?")[0])
    key = f"{store.prefix}:{catalogue_fingerprint(ITEMS)}:ann"
    assert 0 < client.ttl(key) <= 120
    client.close()
    assert store.users() is None and store.location == redis_url.split("?")[0]


def test_memory_forgets_the_least_recently_updated_user() -> None:
    store = MemoryInteractions(max_users=2)
    store.add({"a": {1}})
    store.add({"b": {2}})
    store.add({"a": {3}})  # a is fresher than b now
    store.add({"c": {4}})
    assert sorted(store.get(["a", "b", "c"])) == ["a", "c"] and store.users() == 2
    assert store.get(["a"])["a"].tolist() == [1, 3]


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("redis://127.0.0.1:1/0", "--interactions: cannot use redis://127.0.0.1:1/0"),
        ("redis://me:s3cret@127.0.0.1:1/0", "cannot use redis://me:***@127.0.0.1:1/0"),
        ("http://127.0.0.1:6379", "expected memory or a redis:// URL"),
        ("redis://127.0.0.1:6379/0?ttl=0", "ttl must be a whole number of seconds"),
        ("redis://127.0.0.1:6379/0?ttl=soon", "ttl must be a whole number of seconds"),
        ("redis://127.0.0.1:6379/0?prefix=", "prefix non-empty"),
    ],
)
def test_bad_locations_are_config_errors(location: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_interactions(location, ITEMS)
    assert message in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.redis
def test_a_redis_lost_while_serving_is_a_503(redis_url: str) -> None:
    import redis

    store = open_interactions(redis_url, ITEMS)
    assert isinstance(store, RedisInteractions)
    store._client.close()
    store._client = redis.Redis(port=1, socket_connect_timeout=1)  # the server went away
    for call in (lambda: store.add({"ann": {1}}), lambda: store.get(["ann"])):
        with pytest.raises(RequestError) as info:
            call()
        assert info.value.http_status == 503 and "interaction store" in str(info.value)
