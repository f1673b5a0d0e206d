"""Adaptive micro-batching: concurrent requests share one model call.

Requests queue their rows; one worker task takes everything waiting (up to
``batch_rows``) and runs the model once: in a thread, while the event loop keeps accepting
requests — or, for batches of at most ``inline_rows`` rows of a model whose small calls
take under :data:`INLINE_SECONDS`, on the loop itself, which costs less than the hand-off. When the server is idle a request is computed at once — no artificial wait — and
the queue is empty again by the time the next one arrives; under load, requests that
arrive during a model call form the next batch, so throughput grows with load. When the
previous batch had company, the worker may wait ``batch_wait_ms`` for more. When more than
``max_queue_rows`` rows are waiting, new requests are refused at once
(:class:`ServiceError`, 503 with ``Retry-After``) instead of slowing everyone down.

>>> import asyncio
>>> async def demo():
...     batcher = MicroBatcher(lambda rows: [r * 2 for r in rows], batch_rows=8)
...     batcher.start()
...     results = await asyncio.gather(*(batcher.submit([i]) for i in range(3)))
...     await batcher.stop()
...     return results
>>> asyncio.run(demo())
[[0], [2], [4]]
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ServiceError

__all__ = ["BatchStats", "MicroBatcher"]

# A small batch runs on the event loop itself (no hand-off to the model thread) while its
# calls take less than this on average; a slower model always runs in the thread, where
# the loop keeps answering health checks and enforcing timeouts meanwhile.
INLINE_SECONDS = 0.002


@dataclass
class BatchStats:
    """What the batcher did, for metrics: sizes of the batches it ran and their time."""

    on_batch: Callable[[int, int, float], None] | None = None  # rows, requests, seconds
    batches: int = 0
    rows: int = 0


@dataclass
class _Pending:
    rows: Sequence[Any]
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Feeds ``predict(rows) -> outputs`` (one output per row, in order) from many callers."""

    def __init__(
        self,
        predict: Callable[[list[Any]], Any],
        *,
        batch_rows: int = 256,
        batch_wait_ms: float = 0.0,
        max_queue_rows: int = 4096,
        inline_rows: int = 0,
        inline_seconds: float = INLINE_SECONDS,
        stats: BatchStats | None = None,
    ) -> None:
        self.predict = predict
        self.batch_rows = batch_rows
        self.batch_wait = batch_wait_ms / 1000.0
        self.max_queue_rows = max_queue_rows
        self.inline_rows = inline_rows
        self.inline_seconds = inline_seconds
        self._small_cost: float | None = None  # seconds per call of a small batch
        self.stats = stats or BatchStats()
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgeml-predict")
        self._last_requests = 1
        self._busy = False  # a batch is inside the model

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued and the batch being computed, then stop the worker."""
        while self._queue or self._busy:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=True)

    async def submit(self, rows: Sequence[Any]) -> list[Any]:
        """The outputs for ``rows``; raises :class:`ServiceError` when the queue is full."""
        if self._wakeup is None:
            raise ServiceError("the model is not ready", retry_after=1.0)
        if self._queued_rows and self._queued_rows + len(rows) > self.max_queue_rows:
            raise ServiceError(
                f"overloaded: {self._queued_rows} rows are waiting for the model", retry_after=1.0
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(rows, future))
        self._queued_rows += len(rows)
        self._wakeup.set()
        result: list[Any] = await future
        return result

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0].rows) <= self.batch_rows):
            item = self._queue.popleft()
            if item.future.cancelled():  # its caller timed out or went away
                self._queued_rows -= len(item.rows)
                continue
            batch.append(item)
            size += len(item.rows)
        self._queued_rows -= size
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if (
                self.batch_wait > 0
                and self._last_requests > 1
                and self._queued_rows < self.batch_rows
            ):
                await asyncio.sleep(self.batch_wait)  # busy: let a few more join this batch
            batch = self._take()
            if not batch:
                continue
            rows = [row for item in batch for row in item.rows]
            started = time.perf_counter()
            self._busy = True
            try:
                small = len(rows) <= self.inline_rows
                if (
                    small
                    and self._small_cost is not None
                    and self._small_cost < self.inline_seconds
                ):
                    outputs = self.predict(rows)
                else:
                    outputs = await loop.run_in_executor(self._pool, self.predict, rows)
            except Exception as exc:  # every caller of the batch gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            finally:
                self._busy = False
            elapsed = time.perf_counter() - started
            if small:  # a moving average, so one slow call sends the next ones to the thread
                cost = self._small_cost
                self._small_cost = elapsed if cost is None else 0.8 * cost + 0.2 * elapsed
            self._last_requests = len(batch)
            self.stats.batches += 1
            self.stats.rows += len(rows)
            if self.stats.on_batch is not None:
                self.stats.on_batch(len(rows), len(batch), elapsed)
            start = 0
            for item in batch:
                end = start + len(item.rows)
                if not item.future.done():
                    item.future.set_result(outputs[start:end])
                start = end
