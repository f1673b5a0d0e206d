"""Writing one Parquet file batch by batch, atomically.

:class:`ParquetRowsWriter` appends frames to a temporary file in the target's folder; on
:meth:`~ParquetRowsWriter.close` the file is fsynced and renamed into place (and the
folder fsynced), so a reader sees the previous file or the whole new one, never half of
it. :meth:`~ParquetRowsWriter.abort` (or an exception inside ``with``) drops the temporary
file and leaves any previous file untouched. The quarantine file
(:class:`forgeml.data.quarantine.QuarantineWriter`) and the valid rows of
``forgeml validate`` are written this way.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.parquet"
>>> with ParquetRowsWriter(path) as writer:
...     writer.write(pl.DataFrame({"x": [1, 2]}))
...     writer.write(pl.DataFrame({"x": [3]}))
>>> pl.read_parquet(path)["x"].to_list(), writer.n_rows
([1, 2, 3], 3)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from forgeml.errors import DataError

__all__ = ["ParquetRowsWriter", "fsync_dir"]


class ParquetRowsWriter:
    """Appends frames of one schema to a Parquet file, atomically (temp file + rename).

    The schema is ``schema`` or else the first written frame's; later frames are cast to
    it (the validator gives every batch the same types, so this only settles Arrow details
    such as string vs large string). ``what`` names the file in error messages.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        schema: pa.Schema | None = None,
        compression: str = "zstd",
        what: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.compression = compression
        self.what = what or str(self.path)
        self.n_rows = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as exc:
            raise DataError(f"cannot write {self.what}: {exc}") from exc
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._schema = schema
        self._writer: pq.ParquetWriter | None = None
        if schema is not None:
            self._writer = pq.ParquetWriter(self._file, schema, compression=compression)
        self._closed = False

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame``'s rows (an empty frame only fixes the schema if none is yet)."""
        if self._closed:
            raise ValueError(f"the writer of {self.what} is closed")
        table = frame.to_arrow()
        if self._schema is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self._file, self._schema, compression=self.compression)
        elif table.schema != self._schema:
            try:
                table = table.cast(self._schema)
            except (pa.ArrowException, ValueError) as exc:
                raise DataError(
                    f"{self.what}: a batch's columns {table.schema.names} do not fit the "
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
        fsync_dir(self.path.parent)
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

    def __enter__(self) -> Self:
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


def fsync_dir(folder: Path) -> None:
    """Persist a rename itself (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
