"""Validate a source larger than memory: valid rows and quarantined rows straight to Parquet.

:func:`validate_to_parquet` runs the same :class:`~forgeml.data.stream.ValidationStream`
as training (same schema inference on the first batch, same rules, same reasons) but
keeps one batch in memory at a time: each batch's valid rows are appended to a Parquet
file (cast to their validated types) and its quarantined rows to the quarantine file, so
the counts, reasons and rows equal :func:`~forgeml.data.stream.validate_source` on the
same input, whatever its size. ``forgeml validate`` is the command-line way in.

Both files are written atomically (a temporary file in the same folder, fsync, rename);
on a failure other than too many bad rows neither replaces an existing file. When the
input fails ``validation.max_bad_fraction`` (or a column rule), both files are still
written, so the user can look at them, and :class:`~forgeml.errors.ValidationFailed` is
raised with the report attached (``error.report``).

Memory: one batch (``data.chunk_rows``) plus fixed-size sketches; a ``unique`` rule
remembers every distinct value of its column, so it grows with that column's
cardinality.

>>> import tempfile, pathlib
>>> from forgeml.data.base import MemorySource
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> source = MemorySource(pl.DataFrame({"x": ["1", "2", "x", "4"], "y": [0, 1, 0, 1]}), chunk_rows=2)
>>> report = validate_to_parquet(source, {"x": ColumnSpec(type="int")}, target="y",
...     valid_path=folder / "valid.parquet", quarantine_path=folder / "bad.parquet")
>>> report.n_valid, report.reasons, pl.read_parquet(folder / "valid.parquet")["x"].to_list()
(3, {'type:x': 1}, [1, 2, 4])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from forgeml.config.spec import ColumnSpec
from forgeml.data.base import DataSource
from forgeml.data.parquet_file import ParquetRowsWriter
from forgeml.data.report import ValidationReport
from forgeml.data.stream import ValidationStream
from forgeml.errors import DataError, ValidationFailed

__all__ = ["ParquetRowsWriter", "validate_to_parquet"]


def validate_to_parquet(
    source: DataSource,
    columns: Mapping[str, ColumnSpec],
    *,
    target: str | None,
    valid_path: str | Path | None,
    quarantine_path: str | Path | None,
    max_bad_fraction: float | None = None,
    progress: Callable[[int], None] | None = None,
    row_index: bool = False,
) -> ValidationReport:
    """Stream ``source`` through validation, writing valid rows to ``valid_path`` and
    quarantined rows to ``quarantine_path`` (either may be ``None``: counted only).

    Returns the :class:`ValidationReport` (``quarantine_path`` set when written). Raises
    :class:`ValidationFailed` after writing both files when more than
    ``max_bad_fraction`` of the input was quarantined or a column rule failed.
    ``row_index=True`` keeps each valid row's input ordinal in a ``_row`` column.
    """
    if (
        valid_path is not None
        and quarantine_path is not None
        and Path(valid_path).resolve() == Path(quarantine_path).resolve()
    ):
        raise DataError(f"the valid rows and the quarantine cannot both go to {valid_path}")
    stream = ValidationStream(
        source,
        columns,
        target=target,
        max_bad_fraction=max_bad_fraction,
        quarantine_path=quarantine_path,
        progress=progress,
        row_index=row_index,
    )
    writer = None if valid_path is None else ParquetRowsWriter(valid_path)
    last: pl.DataFrame | None = None
    try:
        for valid, _ in stream:
            if writer is not None:
                # Batches before the first row are uncast (see Validator.validate): they
                # carry no rows; keep only the last one, for an input without any row.
                if stream.validator.schema is None:
                    last = valid
                else:
                    writer.write(valid)
                    last = None
    except ValidationFailed:
        if writer is not None:
            if last is not None:
                writer.write(last)
            writer.close()
        raise
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        if last is not None:
            writer.write(last)
        writer.close()
    return stream.report
