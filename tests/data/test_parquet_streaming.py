"""Parquet is streamed: a slow consumer never makes the reader hold more than a few chunks.

pyarrow's threaded scanner decodes ahead of its consumer without bound, whatever the
readahead settings; scoring a 6M-row file then peaked at 1.7 GiB. This pins the fix.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from forgeml.config.spec import DataSpec
from forgeml.data import open_source


def test_a_slow_consumer_holds_only_a_few_chunks(tmp_path: Path) -> None:
    rows, groups = 20_000, 30
    text = pa.array([f"category-{i % 97}-{i}" for i in range(rows)])
    chunk = pa.table({"a": text, "b": text, "x": pa.array(range(rows), pa.float64())})
    path = tmp_path / "big.parquet"
    with pq.ParquetWriter(path, chunk.schema) as writer:
        for _ in range(groups):
            writer.write_table(chunk, row_group_size=rows)
    one_chunk = chunk.nbytes
    before = pa.total_allocated_bytes()
    peak, seen = 0, 0
    for batch in open_source(DataSpec(source=str(path), chunk_rows=rows)).iter_batches():
        seen += batch.frame.height
        time.sleep(0.02)  # a consumer slower than the reader, as a model is
        peak = max(peak, pa.total_allocated_bytes() - before)
    assert seen == rows * groups
    # The threaded scanner held ~42 chunks here (the whole file); now a handful (decode
    # buffers and a little I/O readahead).
    assert peak < 15 * one_chunk, f"the reader held {peak / one_chunk:.1f} chunks"
