"""The prediction log: every served prediction, appended off the request path.

A request hands its rows to :meth:`PredictionLog.record`, which only appends to a bounded
in-memory queue — it never blocks and never does I/O. Every ``flush_seconds`` (or as soon
as ``flush_rows`` wait) what is queued becomes one Arrow table, handed to a writer thread
that appends it to the log store (:mod:`forgeml.monitoring.store`: Parquet files in a
folder, or PostgreSQL tables). When the queue is full, new rows are dropped and counted
(``dropped``, exported as ``forgeml_prediction_log_dropped_total`` and written to the
store as ``log_dropped`` events, so reports show them) instead of slowing requests down.
Feedback (delayed ground truth) goes through the same queue and writer.

Each prediction row: ``request_id``, ``ts`` (UTC), ``model``, ``version``, ``variant`` and
``unit`` (set inside experiments), ``shadow`` (a challenger's answer that was not
returned), ``row`` (its position in the request), ``inputs`` (the row's JSON),
``prediction`` (JSON: the label or value), ``score`` (positive-class probability or value,
null for multiclass) and ``latency_ms`` of the whole request.

With ``input_fraction`` below 1, only that fraction of requests (drawn at random, a whole
request at a time) keeps its ``inputs``; the others' are null. Every prediction is still
logged, so feedback, live metrics and traffic counts see all of them, while drift reads
the sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from forgeml.errors import ConfigError, ForgeError

logger = logging.getLogger("forgeml.server")

__all__ = ["Decoder", "OnTake", "PredictionLog"]

# raw model output of many rows -> (one prediction per row, one score per row or None)
Decoder = Callable[[Any], tuple[list[Any], list[float] | None]]


def _json_values(values: list[Any]) -> list[bytes]:
    """``values`` as JSON, each distinct value encoded once (labels repeat a lot).

    Only when every value has the same type, and that type is not ``float``: across types
    ``True == 1`` would encode as ``1``, and ``0.0 == -0.0``. Builds no tuple per value —
    tens of thousands of them per flush set the garbage collector off mid-flush.
    """
    kinds = set(map(type, values))
    if len(kinds) == 1 and not kinds & {float, list, dict}:
        try:
            encoded = {v: orjson.dumps(v, default=str) for v in dict.fromkeys(values)}
        except TypeError:  # unhashable
            pass
        else:
            return [encoded[v] for v in values]
    return [orjson.dumps(v, default=str) for v in values]


def _runs(decoders: list[Any]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive requests with the same decoder (the
    same model version), in order."""
    if _constant(decoders):  # the usual case: one model version
        return [(0, len(decoders))]
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(decoders)):
        if decoders[i] is not decoders[i - 1]:
            runs.append((start, i))
            start = i
    runs.append((start, len(decoders)))
    return runs


def _constant(values: list[Any]) -> bool:
    return values.count(values[0]) == len(values)


class _Columns:
    """The queued requests, column by column.

    A request appends one value to each list (its rows to ``rows``) and allocates nothing
    the garbage collector tracks: a tuple per request did, and thousands of them waiting
    for the next flush made the collector run dozens of times more often, walking every
    in-flight request's objects each time — on a saturated server the largest cost of
    logging.
    """

    __slots__ = (
        "counts", "decoders", "ids", "latencies", "models", "raws", "rows", "shadows",
        "times", "units", "variants", "versions",
    )  # fmt: skip

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.times: list[float] = []
        self.models: list[str] = []
        self.versions: list[Any] = []
        self.variants: list[str | None] = []
        self.units: list[str | None] = []
        self.shadows: list[bool] = []
        self.counts: list[int] = []  # rows per request
        # every row's JSON, request after request (None: inputs not sampled)
        self.rows: list[bytes | None] = []
        self.raws: list[Any] = []
        self.decoders: list[Decoder] = []
        self.latencies: list[float] = []


# Called with each batch of queued requests as it is taken, on the event loop: the
# server feeds its drift window from it (in bulk, rather than per request).
OnTake = Callable[[_Columns], None]


def _per_request(array: Any, expand: Any) -> Any:
    """An Arrow array of one value per request, repeated over each request's rows."""
    return array if expand is None else array.take(expand)


class PredictionLog:
    """A bounded queue of logged requests, written to Parquet by the event loop's timer."""

    def __init__(
        self,
        location: str | Path,
        *,
        max_queue_rows: int = 100_000,
        flush_rows: int = 10_000,
        flush_seconds: float = 0.25,
        write_seconds: float = 5.0,
        write_rows: int = 50_000,
        input_fraction: float = 1.0,
        seed: int | None = None,
    ) -> None:
        from forgeml.monitoring.store import open_store

        if not 0 <= input_fraction <= 1:
            raise ConfigError(f"--log-inputs must be between 0 and 1, not {input_fraction:g}")

        try:
            self.store = open_store(str(location), create=True)
        except ForgeError as exc:  # the store names the location (without a password)
            raise ConfigError(f"--prediction-log: {exc}") from None
        self.max_queue_rows = max_queue_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.write_seconds = write_seconds
        self.write_rows = write_rows
        self.input_fraction = input_fraction
        self._draw = random.Random(seed).random  # which requests keep their inputs
        self._pending: list[tuple[str, Any, int]] = []  # taken, not yet written
        self._closing = False
        self.dropped = 0
        self.errors = 0  # failed writes (a full disk, a lost database)
        self.last_error = ""
        self.written = 0
        self.files = 0
        self._queue = _Columns()
        self.on_take: OnTake | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgeml-predlog")
        self._feedback: list[dict[str, Any]] = []
        self._events: dict[tuple[str, str, str | None], int] = {}  # (model, kind, variant)

    # --- the request side ----------------------------------------------------------------
    def record(
        self,
        request_id: str,
        model: str,
        version: int | str,
        records: list[dict[str, Any]],
        raw: Any,
        decode: Decoder,
        latency_ms: float,
        variant: str | None = None,
        unit: str | None = None,
        shadow: bool = False,
    ) -> None:
        """Queue one request's rows and raw model output; drops (and counts) them when the
        queue is full. The rows are encoded to JSON here, once (the request's dicts then
        die young). ``decode(raw) -> (predictions, scores)`` runs later, on whole batches
        at once (it is vectorised), not on the request path."""
        n = len(records)
        queue = self._queue
        queued = len(queue.rows) + n
        if queued > self.max_queue_rows:
            self.dropped += n
            self.count_event(model, "log_dropped", n)
            return
        if self.input_fraction < 1 and self._draw() >= self.input_fraction:
            queue.rows.extend([None] * n)  # not sampled: the prediction only
        elif n == 1:
            queue.rows.append(orjson.dumps(records[0], default=str))
        else:
            queue.rows.extend([orjson.dumps(r, default=str) for r in records])
        queue.counts.append(n)
        queue.ids.append(request_id)
        queue.times.append(time.time())
        queue.models.append(model)
        queue.versions.append(version)
        queue.variants.append(variant)
        queue.units.append(unit)
        queue.shadows.append(shadow)
        queue.raws.append(raw)
        queue.decoders.append(decode)
        queue.latencies.append(latency_ms)
        if queued >= self.flush_rows and self._wake is not None:
            self._wake.set()

    def count_event(self, model: str, kind: str, n: int = 1, variant: str | None = None) -> None:
        """Count an event (``log_dropped`` rows, a ``request_error`` of an experiment
        variant); counts are written as ``events`` rows with each flush."""
        key = (model, kind, variant)
        self._events[key] = self._events.get(key, 0) + n

    def record_feedback(self, rows: list[dict[str, Any]]) -> None:
        """Queue feedback rows (the store's ``feedback`` columns; ``ts`` is set here).
        Feedback is never dropped: it is small, and each row was acknowledged."""
        now = int(time.time() * 1_000_000)
        self._feedback.extend({**row, "ts": now} for row in rows)
        if self._wake is not None:
            self._wake.set()

    # --- the writer ----------------------------------------------------------------------
    # Building the table is Python work and happens on the event loop, in one short burst
    # per flush; a thread doing it would hold the GIL for milliseconds at a time and stall
    # the loop (requests waited for it: p99 rose tenfold). Only the Parquet encoding and
    # the file I/O, which release the GIL, run in the writer thread.
    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Write everything queued, then stop.

        The writer loop is asked to stop (a flag, then a wake-up) rather than cancelled:
        on Python 3.11 cancelling a task inside ``asyncio.wait_for`` whose event was just
        set swallows the cancellation, and the loop ran on for ever — a server that never
        finished shutting down when SIGTERM came while a flush was due.
        """
        if self._task is not None:
            assert self._wake is not None
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        tables, self._pending = [*self._pending, *self._take()], []
        if tables:
            try:
                await asyncio.get_running_loop().run_in_executor(self._pool, self._write, tables)
            except (OSError, ForgeError) as exc:
                self.errors += 1
                self.last_error = str(exc)
        self._pool.shutdown(wait=True)
        self.store.close()

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            if self._closing:
                return  # close() writes what is left
            # Tables are built often, in short bursts (the event loop is not held for
            # long); they are written less often, together (fewer, larger files).
            self._pending += self._take()
            rows = sum(n for kind, _, n in self._pending if kind == "predictions")
            due = loop.time() - last_write >= self.write_seconds or rows >= self.write_rows
            if not self._pending or not due:
                continue
            tables, self._pending = self._pending, []
            last_write = loop.time()
            try:
                await loop.run_in_executor(self._pool, self._write, tables)
            except (OSError, ForgeError) as exc:  # a full disk must not stop serving
                self.errors += 1
                self.last_error = str(exc)

    def take(self) -> None:
        """Take what is queued now (the drift window gets it), to be written with the
        next write."""
        self._pending += self._take()

    def flush(self) -> None:
        """Write what is queued now, in the calling thread."""
        tables, self._pending = [*self._pending, *self._take()], []
        if tables:
            self._write(tables)

    def _take(self) -> list[tuple[str, Any, int]]:
        """Everything queued, as Arrow tables per kind: ``(kind, table, rows)``."""
        import pyarrow as pa

        out: list[tuple[str, Any, int]] = []
        if self._queue.ids:
            out.append(self._take_predictions())
        if self._feedback:
            rows, self._feedback = self._feedback, []
            table = pa.Table.from_pylist(rows)
            table = table.set_column(
                table.schema.get_field_index("ts"),
                "ts",
                table["ts"].cast(pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            )
            out.append(("feedback", table, len(rows)))
        if self._events:
            counted, self._events = self._events, {}
            now = int(time.time() * 1_000_000)
            events = pa.table(
                {
                    "ts": pa.array([now] * len(counted), pa.int64()).cast(
                        pa.timestamp("us", tz="UTC")
                    ),
                    "model": pa.array([m for m, _, _ in counted], pa.string()),
                    "kind": pa.array([k for _, k, _ in counted], pa.string()),
                    "count": pa.array(list(counted.values()), pa.int64()),
                    "variant": pa.array([v for _, _, v in counted], pa.string()),
                }
            )
            out.append(("events", events, len(counted)))
        return out

    def _take_predictions(self) -> tuple[str, Any, int]:
        import numpy as np
        import pyarrow as pa

        queue, self._queue = self._queue, _Columns()
        if self.on_take is not None:
            try:
                self.on_take(queue)
            except Exception:  # the drift window's trouble must not cost the log its rows
                logger.warning("the prediction log's on_take hook failed", exc_info=True)
        requests, total = len(queue.ids), len(queue.rows)
        expand = None  # request -> its rows, when some request has several
        rows: Any = np.zeros(total, np.int32)
        if total != requests:
            counts = np.asarray(queue.counts, np.int64)
            expand = pa.array(np.repeat(np.arange(requests), counts))
            starts = np.cumsum(counts) - counts
            rows = np.arange(total, dtype=np.int32) - np.repeat(starts, counts).astype(np.int32)

        def per_request(values: list[Any], kind: Any) -> Any:
            """One value per row; a column with one value throughout (the model, the
            version, no variant: the usual case) is not converted value by value."""
            if _constant(values):
                value = values[0]
                if value is None:
                    return pa.nulls(total, kind)
                return pa.repeat(pa.scalar(value, kind), total)
            array = pa.array(values, kind)
            return array if expand is None else array.take(expand)

        predictions: list[bytes] = []
        scores: list[Any] = []
        for start, stop in _runs(queue.decoders):
            raw = np.concatenate([np.asarray(r) for r in queue.raws[start:stop]])
            labels, values = queue.decoders[start](raw)
            predictions += _json_values(labels)
            scores += values if values is not None else [None] * len(labels)
        stamps = (np.asarray(queue.times, np.float64) * 1e6).astype(np.int64)
        versions = queue.versions
        table = pa.table(
            {
                "request_id": per_request(queue.ids, pa.string()),
                "ts": _per_request(pa.array(stamps), expand).cast(pa.timestamp("us", tz="UTC")),
                "model": per_request(queue.models, pa.string()),
                "version": per_request(
                    [str(versions[0])] if _constant(versions) else list(map(str, versions)),
                    pa.string(),
                ),
                "variant": per_request(queue.variants, pa.string()),
                "unit": per_request(queue.units, pa.string()),
                "shadow": per_request(queue.shadows, pa.bool_()),
                "row": pa.array(rows, pa.int32()),
                # orjson writes UTF-8: a view, not a validating cast
                "inputs": pa.array(queue.rows, pa.binary()).view(pa.string()),
                "prediction": pa.array(predictions, pa.binary()).view(pa.string()),
                "score": pa.array(scores, pa.float64()),
                "latency_ms": _per_request(
                    pa.array(np.asarray(queue.latencies, np.float64)), expand
                ),
            }
        )
        return "predictions", table, total

    def _write(self, tables: list[tuple[str, Any, int]]) -> None:
        """One store write per kind (the writer thread)."""
        import pyarrow as pa

        for kind in ("predictions", "feedback", "events"):
            parts = [(table, n) for k, table, n in tables if k == kind]
            if not parts:
                continue
            table = pa.concat_tables([t for t, _ in parts], promote_options="permissive")
            self.store.write(kind, table)
            if kind == "predictions":
                self.written += sum(n for _, n in parts)
                self.files += 1
