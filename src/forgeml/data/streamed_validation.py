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

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from forgeml.config.spec import ColumnSpec
from forgeml.data.base import DataSource
from forgeml.data.quarantine import _fsync_dir
from forgeml.data.report import ValidationReport
from forgeml.data.stream import ValidationStream
from forgeml.errors import DataError, ValidationFailed

__all__ = ["ParquetRowsWriter", "validate_to_parquet"]


class ParquetRowsWriter:
    """Appends frames of one schema to a Parquet file, atomically (temp file + rename).

    The schema is the first written frame's; later frames are cast to it (the validator
    gives every batch the same types, so this only settles Arrow details such as string
    vs large string).
    """

    def __init__(self, path: str | Path, *, compression: str = "zstd") -> None:
        self.path = Path(path)
        self.compression = compression
        self.n_rows = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as exc:
            raise DataError(f"cannot write {self.path}: {exc}") from exc
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._closed = False

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame``'s rows (an empty frame only fixes the schema if none is yet)."""
        if self._closed:
            raise ValueError("the writer is closed")
        table = frame.to_arrow()
        if self._schema is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self._file, self._schema, compression=self.compression)
        elif table.schema != self._schema:
            try:
                table = table.cast(self._schema)
            except (pa.ArrowException, ValueError) as exc:
                raise DataError(
                    f"{self.path}: a batch's columns {table.schema.names} do not fit the "
                    f"file's schema: {exc}"
                ) from exc
        if table.num_rows:
            assert self._writer is not None
            self._writer.write_table(table)
            self.n_rows += table.num_rows

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self._closed:
            return self.path
        self._closed = True
        if self._writer is None:  # nothing at all was written: an empty, schemaless file
            self._writer = pq.ParquetWriter(self._file, pa.schema([]))
        self._writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._tmp.replace(self.path)
        _fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; any previous file at ``path`` stays as it was."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ParquetRowsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


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
