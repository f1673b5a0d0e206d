"""The prediction log: every served prediction, appended off the request path.

A request hands its rows to :meth:`PredictionLog.record`, which only appends to a bounded
in-memory queue — it never blocks and never does I/O. Every ``flush_seconds`` (or as soon
as ``flush_rows`` wait) what is queued becomes one Arrow table, written by a writer thread
as one Parquet file under ``folder/date=YYYY-MM-DD/`` (written to a temporary name, then renamed: a
reader never sees half a file). When the queue is full, new rows are dropped and counted
(``dropped``, exported as ``forgeml_prediction_log_dropped_total``) instead of slowing
requests down.

Each row: ``request_id``, ``ts`` (UTC), ``model``, ``version``, ``variant`` (null outside
experiments), ``row`` (its position in the request), ``inputs`` (the row's JSON),
``prediction`` (JSON: the label or value), ``score`` (positive-class probability or value,
null for multiclass) and ``latency_ms`` of the whole request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError

__all__ = ["Decoder", "PredictionLog"]

# raw model output of many rows -> (one prediction per row, one score per row or None)
Decoder = Callable[[Any], tuple[list[Any], list[float] | None]]


def _runs_by_decoder(entries: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """Consecutive entries with the same decoder (the same model version), in order."""
    runs: list[list[tuple[Any, ...]]] = []
    for entry in entries:
        if runs and runs[-1][0][7] is entry[7]:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs


class PredictionLog:
    """A bounded queue of logged requests, written to Parquet by the event loop's timer."""

    def __init__(
        self,
        folder: str | Path,
        *,
        max_queue_rows: int = 100_000,
        flush_rows: int = 10_000,
        flush_seconds: float = 0.25,
    ) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--prediction-log {folder}: cannot create it ({exc})") from None
        if not os.access(self.folder, os.W_OK):
            raise ConfigError(f"--prediction-log {folder}: not writable")
        self.max_queue_rows = max_queue_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self.written = 0
        self.files = 0
        self._queue: deque[tuple[Any, ...]] = deque()  # one entry per request
        self._queued_rows = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgeml-predlog")
        self._sequence = 0

    # --- the request side ----------------------------------------------------------------
    def record(
        self,
        *,
        request_id: str,
        model: str,
        version: int | str,
        records: list[dict[str, Any]],
        raw: Any,
        decode: Decoder,
        latency_ms: float,
        variant: str | None = None,
    ) -> None:
        """Queue one request's rows and raw model output; drops (and counts) them when the
        queue is full. ``decode(raw) -> (predictions, scores)`` runs later, on whole
        batches at once (it is vectorised), not on the request path."""
        n = len(records)
        if self._queued_rows + n > self.max_queue_rows:
            self.dropped += n
            return
        entry = (request_id, time.time(), model, str(version), variant, records, raw)
        self._queue.append((*entry, decode, latency_ms))
        self._queued_rows += n
        if self._queued_rows >= self.flush_rows and self._wake is not None:
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
        """Write everything queued, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        table = self._take()
        if table is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._write, *table)
        self._pool.shutdown(wait=True)

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            table = self._take()
            if table is not None:
                with contextlib.suppress(OSError):  # a full disk must not stop serving
                    await loop.run_in_executor(self._pool, self._write, *table)

    def flush(self) -> None:
        """Write what is queued now, in the calling thread."""
        table = self._take()
        if table is not None:
            self._write(*table)

    def _take(self) -> tuple[Any, str, int] | None:
        """Everything queued as one Arrow table (and its day, and its row count)."""
        import numpy as np
        import orjson
        import pyarrow as pa

        if not self._queue:
            return None
        entries = list(self._queue)
        self._queue.clear()
        self._queued_rows = 0
        ids: list[str] = []
        ts: list[int] = []
        models: list[str] = []
        versions: list[str] = []
        variants: list[str | None] = []
        rows: list[int] = []
        inputs: list[bytes] = []
        predictions: list[bytes] = []
        scores: list[float | None] = []
        latency: list[float] = []
        for group in _runs_by_decoder(entries):
            decode = group[0][7]
            raw = np.concatenate([np.asarray(e[6]) for e in group])
            labels, values = decode(raw)
            predictions += [orjson.dumps(p, default=str) for p in labels]
            scores += values if values is not None else [None] * len(labels)
            for rid, t, model, version, variant, records, _, _, ms in group:
                n = len(records)
                ids += [rid] * n
                ts += [int(t * 1_000_000)] * n
                models += [model] * n
                versions += [version] * n
                variants += [variant] * n
                rows += range(n)
                inputs += [orjson.dumps(r, default=str) for r in records]
                latency += [ms] * n
        table = pa.table(
            {
                "request_id": pa.array(ids, pa.string()),
                "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "model": pa.array(models, pa.string()),
                "version": pa.array(versions, pa.string()),
                "variant": pa.array(variants, pa.string()),
                "row": pa.array(rows, pa.int32()),
                "inputs": pa.array(inputs, pa.binary()).cast(pa.string()),
                "prediction": pa.array(predictions, pa.binary()).cast(pa.string()),
                "score": pa.array(scores, pa.float64()),
                "latency_ms": pa.array(latency, pa.float64()),
            }
        )
        day = datetime.fromtimestamp(entries[0][1], UTC).strftime("%Y-%m-%d")
        return table, day, len(ids)

    def _write(self, table: Any, day: str, n: int) -> None:
        import pyarrow.parquet as pq

        folder = self.folder / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"part-{int(time.time() * 1000)}-{os.getpid()}-{self._sequence:06d}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        tmp.replace(folder / name)
        self.written += n
        self.files += 1
