"""The quarantine file: every row that failed validation, with its reason.

Schema (Parquet): every input column **as a string**, so a bad value survives exactly as
it was read; then ``_row`` (int64, 0-based ordinal among parsed rows; null for an
unreadable line), ``_line`` (int64, physical line in the file when known), ``_raw`` (the
text of an unreadable line, else null) and ``reason`` (all failed rules, ``"; "``-joined).
An input column whose name clashes with one of these is stored as ``<name>_input``.

The file is always written when a path is given, with zero rows if nothing was
quarantined, so the path in the run summary always names this run's file and never a
stale one. Writes are atomic (:mod:`forgeml.data.parquet_file`): a temporary file in the
same folder, fsync, then a rename on :meth:`QuarantineWriter.close`;
:meth:`~QuarantineWriter.abort` (or an exception inside ``with``) leaves any previous
file untouched.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "quarantine.parquet"
>>> with QuarantineWriter(path, ["age"]) as writer:
...     writer.write(quarantine_frame(pl.DataFrame({"age": ["x"]}), pl.Series([4]), pl.Series(["age: 'x' is not a valid int"]), []))
>>> pl.read_parquet(path).rows()
[('x', 4, None, None, "age: 'x' is not a valid int")]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa

from forgeml.data.base import BadLine
from forgeml.data.casting import as_text
from forgeml.data.parquet_file import ParquetRowsWriter

__all__ = ["RESERVED", "QuarantineWriter", "quarantine_frame", "quarantine_names"]

RESERVED = ("_row", "_line", "_raw", "reason")


def quarantine_names(columns: Sequence[str]) -> list[str]:
    """The stored names of the input ``columns`` (clashes with :data:`RESERVED` renamed).

    >>> quarantine_names(["a", "reason"])
    ['a', 'reason_input']
    """
    taken = set(columns) | set(RESERVED)
    names = []
    for name in columns:
        if name in RESERVED:
            new = f"{name}_input"
            while new in taken:
                new += "_"
            taken.add(new)
            name = new
        names.append(name)
    return names


def quarantine_frame(
    raw: pl.DataFrame,
    rows: pl.Series,
    reasons: pl.Series,
    bad_lines: Sequence[BadLine],
    lines: pl.Series | None = None,
) -> pl.DataFrame:
    """Quarantined rows (``raw``, their ordinals, reasons and, when known, physical
    lines) plus unreadable lines, in the quarantine schema."""
    names = quarantine_names(raw.columns)
    parsed = pl.DataFrame(
        [as_text(raw[c]).alias(n) for c, n in zip(raw.columns, names, strict=True)],
        schema=dict.fromkeys(names, pl.String),
    ).with_columns(
        rows.cast(pl.Int64).alias("_row"),
        (pl.lit(None, pl.Int64) if lines is None else pl.lit(lines.cast(pl.Int64))).alias("_line"),
        pl.lit(None, pl.String).alias("_raw"),
        reasons.cast(pl.String).alias("reason"),
    )
    if not bad_lines:
        return parsed
    unreadable = pl.DataFrame(
        {
            "_line": [b.line for b in bad_lines],
            "_raw": [b.text for b in bad_lines],
            "reason": [f"unreadable line: {b.reason}" for b in bad_lines],
        },
        schema={"_line": pl.Int64, "_raw": pl.String, "reason": pl.String},
    )
    return pl.concat([parsed, unreadable], how="diagonal")


class QuarantineWriter(ParquetRowsWriter):
    """Streams quarantine frames into one Parquet file, atomically (see module docs)."""

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        names = [*quarantine_names(columns), *RESERVED]
        types = [pa.string()] * len(columns) + [pa.int64(), pa.int64(), pa.string(), pa.string()]
        super().__init__(
            path,
            schema=pa.schema(list(zip(names, types, strict=True))),
            compression="snappy",
            what=f"the quarantine file {Path(path)}",
        )
