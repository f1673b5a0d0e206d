"""CSV files (local or fsspec, plain or compressed), streamed with pyarrow's CSV reader.

Decisions, and why:

* **Every column is read as a string.** Type inference per block would crash a run when
  a column looks like integers for a million rows and then holds ``"n/a"``. Reading text
  and casting later (:mod:`forgeml.data.casting`) turns such values into quarantined rows
  with a reason, never into a crash, and keeps bad values intact for the quarantine file.
* **Malformed records are not fatal.** A record with the wrong number of fields becomes a
  :class:`BadLine` (``"expected 14 fields, found 16"``) via pyarrow's
  ``invalid_row_handler``.
* **Line numbers are physical**, for bad records and for every parsed row
  (``Batch.lines``, which the quarantine file keeps as ``_line``). pyarrow numbers
  *records* (and only when parsing on one thread, hence ``use_threads=False``). A record
  spanning several lines (a quoted newline) shifts later lines, so :class:`_LineMapper`
  adds the line breaks held by earlier records, counted in the parsed values. Blank lines
  are kept by the parser (so they are counted) and rows whose fields are all empty are
  then dropped: a blank line is not a record. With several files, lines are per file.
* ``null_values`` are applied after parsing, on the string columns.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "t.csv").write_text("a,b\\n1,x\\n2,y,extra\\n3,NA\\n")
>>> from forgeml.data.locations import find_files
>>> batch = CsvSource(find_files(str(folder / "t.csv"), {})).read()
>>> batch.frame.rows(), batch.bad_lines
([('1', 'x'), ('3', None)], [BadLine(line=3, text='2,y,extra', reason='expected 2 fields, found 3')])
>>> batch.lines.to_list()
[2, 4]
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import deque
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from forgeml.config.redact import hide_password
from forgeml.data.base import BadLine, Batch, DataSource
from forgeml.data.locations import Files
from forgeml.errors import DataSourceError

__all__ = ["CsvSource"]

DEFAULT_NULLS = ("", "NA", "N/A", "NaN", "null", "NULL")
_SNIFF_BYTES = 1 << 16
_MIN_BLOCK = 1 << 20  # a record must fit in one block
_MAX_BLOCK = 1 << 28
_DELIMITERS = (",", ";", "\t", "|")
_ARROW_ROW = re.compile(r"CSV column #(\d+): Row #(\d+)")


class CsvSource(DataSource):
    """One or more CSV files read as string columns; see the module docstring."""

    format = "csv"

    def __init__(
        self,
        files: Files,
        *,
        delimiter: str = ",",
        encoding: str = "utf8",
        header: bool = True,
        null_values: Sequence[str] = DEFAULT_NULLS,
        chunk_rows: int = 262_144,
        block_size: int | None = None,
    ) -> None:
        try:
            self.encoding = codecs.lookup(encoding).name
        except LookupError as exc:
            raise DataSourceError(f"data.encoding: unknown encoding '{encoding}'") from exc
        self.files = files
        self.delimiter = delimiter
        self.header = header
        self.null_values = list(null_values)
        self.chunk_rows = chunk_rows
        self.block_size = block_size  # bytes per parse block (and one batch each)
        self.description = hide_password(files.source)

    def fingerprint_hint(self) -> str | None:
        return f"csv:{self.files.content_sha256()}"

    def iter_batches(self) -> Iterator[Batch]:
        offset = 0
        columns: list[str] | None = None
        for path in self.files.paths:
            for batch in self._read_file(path, offset):
                if columns is None:
                    columns = batch.frame.columns
                elif batch.frame.columns != columns:
                    raise DataSourceError(
                        f"data.source: {self.files.name(path)} has columns "
                        f"{batch.frame.columns} but the first file has {columns}"
                    )
                elif batch.frame.height == 0 and not batch.bad_lines:
                    continue
                offset += batch.frame.height
                yield batch

    def _read_file(self, path: str, offset: int) -> Iterator[Batch]:
        name = self.files.name(path)
        head, compression = self._head(path, name)
        names = _header_names(
            head, name=name, sep=self.delimiter, enc=self.encoding, header=self.header
        )
        header_breaks = sum(n.count("\n") for n in names) if self.header else 0
        mapper = _LineMapper(header_records=int(self.header), header_breaks=header_breaks)

        def on_invalid(row: Any) -> str:
            found = f"expected {row.expected_columns} fields, found {row.actual_columns}"
            mapper.add(row.number, row.text, found if self.files.single else f"{name}: {found}")
            return "skip"

        read_options = pacsv.ReadOptions(
            use_threads=False,  # record numbers are only known when parsing on one thread
            block_size=self.block_size or _block_size(head),
            column_names=names,
            skip_rows=int(self.header),
            encoding="utf8" if self.encoding == "utf-8" else self.encoding,
        )
        parse_options = pacsv.ParseOptions(
            delimiter=self.delimiter,
            newlines_in_values=True,
            ignore_empty_lines=False,  # keeps pyarrow's record numbers equal to line numbers
            invalid_row_handler=on_invalid,
        )
        convert_options = pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        yielded = False
        with self._open(path, compression, name) as stream:
            try:
                reader = pacsv.open_csv(stream, read_options, parse_options, convert_options)
                for frame in self._coalesce(reader):
                    batch = self._to_batch(frame, mapper, offset)
                    offset += batch.frame.height
                    yielded = True
                    yield batch
            except pa.ArrowInvalid as exc:
                raise _parse_error(exc, name, names, self.encoding) from exc
            except (OSError, EOFError) as exc:
                raise DataSourceError(f"data.source: cannot read {name}: {exc}") from exc
        tail = mapper.finish()
        if tail or not yielded:
            empty = pl.DataFrame(schema=dict.fromkeys(names, pl.String))
            yield Batch(empty, offset, tail, pl.Series("_line", [], dtype=pl.Int64))

    def _coalesce(self, reader: Any) -> Iterator[pl.DataFrame]:
        """Frames of about ``chunk_rows`` rows from the reader's small parse blocks (one
        frame per block when ``block_size`` was given)."""
        pending: list[pa.RecordBatch] = []
        rows = 0
        for record_batch in reader:
            pending.append(record_batch)
            rows += record_batch.num_rows
            if self.block_size is None and rows < self.chunk_rows:
                continue
            frame = pl.from_arrow(pa.Table.from_batches(pending))
            assert isinstance(frame, pl.DataFrame)
            pending, rows = [], 0
            yield frame
        if pending:
            frame = pl.from_arrow(pa.Table.from_batches(pending))
            assert isinstance(frame, pl.DataFrame)
            yield frame

    def _to_batch(self, frame: pl.DataFrame, mapper: _LineMapper, offset: int) -> Batch:
        cols = frame.columns
        breaks = frame.select(
            pl.sum_horizontal(pl.col(c).str.count_matches("\n", literal=True) for c in cols)
        )
        bad, lines = mapper.feed(breaks.to_series().to_numpy())
        blank = frame.select(pl.all_horizontal(pl.col(c) == "" for c in cols)).to_series()
        frame = frame.filter(~blank).with_columns(
            pl.when(pl.col(c).is_in(self.null_values)).then(None).otherwise(pl.col(c)).alias(c)
            for c in cols
        )
        return Batch(frame, offset, bad, pl.Series("_line", lines).filter(~blank))

    def _head(self, path: str, name: str) -> tuple[bytes, str | None]:
        from fsspec.utils import infer_compression

        compression = infer_compression(path)
        with self._open(path, compression, name) as stream:
            try:
                head = stream.read(_SNIFF_BYTES)
            except (OSError, EOFError) as exc:
                raise DataSourceError(f"data.source: cannot read {name}: {exc}") from exc
        if compression is None and head.startswith(b"\x1f\x8b"):  # gzip without a .gz name
            return self._head_of_gzip(path, name)
        return head, compression

    def _head_of_gzip(self, path: str, name: str) -> tuple[bytes, str | None]:
        with self._open(path, "gzip", name) as stream:
            try:
                return stream.read(_SNIFF_BYTES), "gzip"
            except (OSError, EOFError) as exc:
                raise DataSourceError(f"data.source: cannot read {name}: {exc}") from exc

    def _open(self, path: str, compression: str | None, name: str) -> IO[bytes]:
        try:
            return self.files.fs.open(path, "rb", compression=compression)
        except PermissionError as exc:
            raise DataSourceError(f"data.source: cannot read {name}: permission denied") from exc
        except FileNotFoundError as exc:
            raise DataSourceError(f"data.source: file not found: {name}") from exc
        except OSError as exc:
            raise DataSourceError(f"data.source: cannot read {name}: {exc}") from exc


class _LineMapper:
    """Turns pyarrow's 1-based record numbers into physical line numbers.

    The record number of a bad record counts the header, the data rows and the bad
    records before it. Its physical line adds every line break *inside* those earlier
    records, which are known once the batch holding the rows before it was parsed.
    """

    def __init__(self, *, header_records: int, header_breaks: int) -> None:
        self._pending: deque[tuple[int, str, str]] = deque()
        self._header = header_records
        self._rows_seen = 0
        self._breaks = header_breaks  # line breaks inside the records resolved so far
        self._bad_seen = 0

    def add(self, record: int | None, text: str, reason: str) -> None:
        self._pending.append((record or 0, text, reason))

    def feed(self, breaks_per_row: np.ndarray) -> tuple[list[BadLine], np.ndarray]:
        """Account for the next parsed rows: the bad records now placed, and the physical
        line of each of the rows."""
        n = len(breaks_per_row)
        cumulative = np.concatenate([[0], np.cumsum(breaks_per_row, dtype=np.int64)])
        breaks_before, bad_before = self._breaks, self._bad_seen
        rows_before_bad: list[
            int
        ] = []  # for each bad record placed now: rows of this batch before it
        bad_breaks = [0]  # running line breaks inside those bad records
        placed: list[BadLine] = []
        while self._pending:
            record, text, reason = self._pending[0]
            rows_before = record - 1 - self._header - self._bad_seen - self._rows_seen
            if rows_before > n:
                break
            rows_before = max(rows_before, 0)
            line = record + self._breaks + int(cumulative[rows_before]) if record else None
            placed.append(BadLine(line, text, reason))
            self._pending.popleft()
            rows_before_bad.append(rows_before)
            bad_breaks.append(bad_breaks[-1] + text.count("\n"))
            self._breaks += text.count("\n")
            self._bad_seen += 1
        row = np.arange(n, dtype=np.int64)
        bad = np.searchsorted(np.asarray(rows_before_bad, dtype=np.int64), row, side="right")
        records = self._header + 1 + self._rows_seen + row + bad_before + bad
        lines = records + breaks_before + cumulative[:-1] + np.asarray(bad_breaks)[bad]
        self._rows_seen += n
        self._breaks += int(cumulative[-1])
        return placed, lines

    def finish(self) -> list[BadLine]:
        """Place the bad records after the last parsed row."""
        return self.feed(np.zeros(0, dtype=np.int64))[0] + [
            BadLine(None, text, reason) for _, text, reason in self._pending
        ]


def _block_size(head: bytes) -> int:
    """Bytes per parse block: 1 MiB, or 64 rows when rows are longer than 16 KiB.

    pyarrow's streaming reader reads 32 to 48 blocks ahead of the parser on a background
    thread, whatever ``use_threads`` says; blocks of ``chunk_rows`` rows (19 MiB for 262,144
    rows of 75 bytes) made it buffer a whole 220 MB file at once. Small blocks bound that
    read-ahead to tens of MiB; :meth:`CsvSource._coalesce` joins them into batches of about
    ``chunk_rows`` rows.
    """
    row_bytes = len(head) / max(1, head.count(b"\n"))
    return int(min(_MAX_BLOCK, max(_MIN_BLOCK, row_bytes * 64)))


def _header_names(head: bytes, *, name: str, sep: str, enc: str, header: bool) -> list[str]:
    """Column names from the first record, after checks that turn common mistakes
    (empty, binary, wrong encoding, wrong delimiter) into one-line errors."""
    if not head.strip():
        raise DataSourceError(f"data.source: {name} is empty" + (" (no header line)" * header))
    if head.startswith(b"PAR1"):
        raise DataSourceError(
            f"data.source: {name} looks like a Parquet file; set data.format: parquet"
        )
    if b"\x00" in head and not enc.startswith(("utf-16", "utf-32")):
        raise DataSourceError(
            f"data.source: {name} does not look like a CSV file (it contains binary data)"
        )
    try:
        text = codecs.getincrementaldecoder(enc)().decode(head, final=False)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise DataSourceError(
            f"data.source: {name} is not valid {enc} text (line {line}); "
            "set data.encoding to the file's encoding, e.g. data.encoding: latin1"
        ) from exc
    try:
        fields = next(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=sep))
    except (csv.Error, StopIteration) as exc:
        raise DataSourceError(f"data.source: cannot parse the first line of {name}") from exc
    _check_delimiter(fields, name=name, sep=sep)
    if not header:
        return [f"column_{i + 1}" for i in range(len(fields))]
    names = [f or f"column_{i + 1}" for i, f in enumerate(fields)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataSourceError(
            f"data.source: {name} has duplicate column names in its header: {', '.join(duplicates)}"
        )
    return names


def _check_delimiter(fields: list[str], *, name: str, sep: str) -> None:
    if len(fields) != 1:
        return
    counts = {d: fields[0].count(d) for d in _DELIMITERS if d != sep}
    best = max(counts, key=lambda d: counts[d])
    if counts[best]:
        shown = '"\\t"' if best == "\t" else f"'{best}'"
        raise DataSourceError(
            f"data.source: {name} looks like {shown}-delimited; set data.delimiter: {shown}"
        )


def _parse_error(exc: pa.ArrowInvalid, name: str, names: list[str], enc: str) -> DataSourceError:
    message = str(exc).strip().splitlines()[0]
    where = ""
    match = _ARROW_ROW.search(message)
    if match is not None:
        column = int(match.group(1))
        where = f" (column '{names[column] if column < len(names) else column}', record {match.group(2)})"
    if "invalid UTF8" in message or "UnicodeDecodeError" in message:
        return DataSourceError(
            f"data.source: {name} is not valid {enc} text{where}; "
            "set data.encoding to the file's encoding, e.g. data.encoding: latin1"
        )
    if "straddling" in message:
        return DataSourceError(
            f"data.source: {name} has a quoted value longer than the read block "
            "(an unclosed quote?)"
        )
    return DataSourceError(f"data.source: cannot parse {name} as CSV{where}: {message}")
