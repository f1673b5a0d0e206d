"""The data-source contract: a source streams :class:`Batch` es of parsed rows.

Every backend (CSV, Parquet, SQL, DuckDB, in-memory) implements :class:`DataSource`, and
one shared check suite in the tests runs the contract on each of them:

* ``iter_batches()`` streams; it never loads a whole file or query result. It yields at
  least one batch, possibly empty, so callers always learn the column names.
* ``Batch.row_offset`` is the 0-based ordinal, among *parsed* rows, of the batch's first
  row; offsets are contiguous from one batch to the next.
* Input records that cannot be parsed (a CSV line with the wrong number of fields) are
  not fatal: they come back as :class:`BadLine` s, so the run summary accounts for them.

>>> source = MemorySource(pl.DataFrame({"x": range(5)}), chunk_rows=2)
>>> [(b.row_offset, b.frame.height) for b in source.iter_batches()]
[(0, 2), (2, 2), (4, 1)]
>>> source.read().frame.height, source.head(3).height
(5, 3)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl

__all__ = ["BadLine", "Batch", "DataSource", "MemorySource"]


@dataclass
class BadLine:
    """An input record that could not be parsed.

    ``line`` is the 1-based physical line where the record starts (``None`` when the
    reader cannot know it), ``text`` its raw text and ``reason`` why it was rejected,
    e.g. ``"expected 14 fields, found 16"``.
    """

    line: int | None
    text: str
    reason: str


@dataclass
class Batch:
    """Parsed rows plus the unreadable records met while reading them; ``lines`` holds
    the 1-based physical line of each row when the reader knows it (CSV), else ``None``."""

    frame: pl.DataFrame
    row_offset: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    lines: pl.Series | None = None

    @property
    def n_input(self) -> int:
        """Input records in this batch: parsed rows plus unreadable lines."""
        return self.frame.height + len(self.bad_lines)


class DataSource(ABC):
    """A table that can be streamed in batches; see the module docstring for the contract."""

    description: str
    """What the user would call this source in a message (a path, a masked URL...)."""

    format: str
    """One of ``csv``, ``parquet``, ``sql``, ``duckdb``, ``memory``."""

    @abstractmethod
    def iter_batches(self) -> Iterator[Batch]:
        """Stream the source; see the module docstring for the guarantees."""

    def read(self) -> Batch:
        """Everything in one batch: all rows concatenated and all unreadable lines."""
        frames: list[pl.DataFrame] = []
        lines: list[pl.Series | None] = []
        bad: list[BadLine] = []
        for batch in self.iter_batches():
            frames.append(batch.frame)
            lines.append(batch.lines)
            bad.extend(batch.bad_lines)
        frame = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
        known = [s for s in lines if s is not None]
        return Batch(
            frame, 0, bad, pl.concat(known) if known and len(known) == len(lines) else None
        )

    def head(self, n_rows: int) -> pl.DataFrame:
        """The first ``n_rows`` parsed rows (reads only the batches it needs), e.g. to
        infer a schema from a sample."""
        frames: list[pl.DataFrame] = []
        total = 0
        for batch in self.iter_batches():
            frames.append(batch.frame)
            total += batch.frame.height
            if total >= n_rows:
                break
        return pl.concat(frames, how="vertical_relaxed").head(n_rows)

    def fingerprint_hint(self) -> str | None:
        """A cheap identity of the raw input, when the source has one (file sources: a
        sha256 of their bytes). ``None`` means: fingerprint the rows instead."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class MemorySource(DataSource):
    """A frame already in memory (from the Python API), served in ``chunk_rows`` slices."""

    format = "memory"

    def __init__(
        self, frame: pl.DataFrame, *, chunk_rows: int = 262_144, description: str | None = None
    ) -> None:
        self.frame = frame
        self.chunk_rows = max(1, chunk_rows)
        self.description = description or "<in-memory frame>"

    def iter_batches(self) -> Iterator[Batch]:
        yield Batch(self.frame.slice(0, self.chunk_rows), 0, [])
        for start in range(self.chunk_rows, self.frame.height, self.chunk_rows):
            yield Batch(self.frame.slice(start, self.chunk_rows), start, [])

    def read(self) -> Batch:
        return Batch(self.frame, 0, [])
