"""Micro-batching: concurrent requests share model calls; overload sheds; timeouts answer."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from forgeml.errors import ServiceError
from forgeml.serving.batching import BatchStats, MicroBatcher


def test_concurrent_requests_share_batches() -> None:
    calls: list[int] = []

    def predict(rows: list[int]) -> list[int]:
        calls.append(len(rows))
        time.sleep(0.01)  # a model call long enough for others to queue behind it
        return [r * 10 for r in rows]

    async def run() -> list[list[int]]:
        batcher = MicroBatcher(predict, batch_rows=64)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([i, i]) for i in range(40)))
        await batcher.stop()
        return results

    results = asyncio.run(run())
    assert results == [[i * 10, i * 10] for i in range(40)]  # each caller gets its own rows back
    assert max(calls) > 2 and len(calls) < 40 and sum(calls) == 80


def test_a_lone_request_is_computed_at_once() -> None:
    seen: list[int] = []

    async def run() -> None:
        batcher = MicroBatcher(
            lambda rows: seen.append(len(rows)) or rows, batch_rows=64, batch_wait_ms=500
        )
        batcher.start()
        for i in range(3):
            assert await asyncio.wait_for(batcher.submit([i]), timeout=0.4) == [i]
        await batcher.stop()

    asyncio.run(run())
    assert seen == [1, 1, 1]


def test_a_full_queue_sheds_new_requests() -> None:
    gate = threading.Event()

    def predict(rows: list[int]) -> list[int]:
        gate.wait(5)
        return rows

    async def run() -> None:
        batcher = MicroBatcher(predict, batch_rows=4, max_queue_rows=6)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.05)  # the first batch is now inside the model
        queued = [asyncio.ensure_future(batcher.submit([1, 2, 3])) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(ServiceError, match="overloaded") as info:
            await batcher.submit([4])
        assert info.value.http_status == 503 and info.value.retry_after >= 1
        gate.set()
        assert await first == [0]
        assert [await q for q in queued] == [[1, 2, 3], [1, 2, 3]]
        await batcher.stop()

    asyncio.run(run())


def test_errors_reach_every_caller_of_the_batch() -> None:
    def predict(rows: list[int]) -> list[int]:
        raise ValueError("model exploded")

    async def run() -> None:
        stats = BatchStats()
        batcher = MicroBatcher(predict, stats=stats)
        batcher.start()
        outcomes = await asyncio.gather(
            *(batcher.submit([i]) for i in range(3)), return_exceptions=True
        )
        assert all(isinstance(o, ValueError) for o in outcomes)
        await batcher.stop()

    asyncio.run(run())


def test_slow_predictions_time_out_with_503(served_registry, flights_rows) -> None:
    from tests.serving.conftest import make_client

    rows = json.loads(flights_rows.head(2).write_json())
    with make_client(served_registry, ["flights"], timeout_seconds=0.001) as c:
        model = c.app.state.service.catalog.get("flights")
        original = model.batcher.predict
        model.batcher.predict = lambda batch: (time.sleep(0.2), original(batch))[1]
        response = c.post("/predict", json={"records": rows})
        assert response.status_code == 503 and "took longer" in response.json()["error"]
        assert response.headers["retry-after"] == "1"


def test_stop_waits_for_the_batch_inside_the_model() -> None:
    def predict(rows: list[int]) -> list[int]:
        time.sleep(0.1)
        return rows

    async def run() -> None:
        batcher = MicroBatcher(predict)
        batcher.start()
        pending = asyncio.ensure_future(batcher.submit([7]))
        await asyncio.sleep(0.02)  # the batch is now being computed
        await batcher.stop()
        assert pending.done() and pending.result() == [7]

    asyncio.run(run())


def test_small_batches_run_on_the_loop_while_the_model_is_fast() -> None:
    where: list[str] = []
    delay = [0.0]

    def predict(rows: list[int]) -> list[int]:
        where.append("thread" if threading.current_thread().name.startswith("forgeml") else "loop")
        time.sleep(delay[0])
        return rows

    async def run() -> None:
        # A generous line between cheap and slow (0.1 s), so a busy machine that preempts
        # a cheap call for a few milliseconds does not move it to the thread.
        batcher = MicroBatcher(predict, inline_rows=32, inline_seconds=0.1)
        batcher.start()
        await batcher.submit([1])  # no cost known yet: the thread
        await batcher.submit([1])  # cheap: on the loop
        delay[0] = 0.6
        await batcher.submit([1])  # still on the loop, and now known to be slow
        await batcher.submit([1])  # so the thread, where timeouts keep working
        await batcher.submit(list(range(40)))  # more rows than inline_rows: the thread
        delay[0] = 0.0
        for _ in range(12):  # cheap again: the average decays, back to the loop
            await batcher.submit([1])
        await batcher.stop()

    asyncio.run(run())
    assert where[:5] == ["thread", "loop", "loop", "thread", "thread"]
    assert where[-1] == "loop"
