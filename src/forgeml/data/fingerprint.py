"""A content fingerprint of a table, recorded in a model's lineage.

Choice: the fingerprint hashes the *rows as parsed* (not file bytes), so it is the same
for the same content whichever way it is read and however it is chunked: a Parquet file,
the same table through DuckDB or SQL, or the same frame from Python, batch by batch or
at once. It does depend on column order and on values: a CSV file, read as text, does not
fingerprint like its typed Parquet twin. (File sources also offer
:meth:`~forgeml.data.base.DataSource.fingerprint_hint`, a sha256 of their raw bytes.)

How: each column keeps three running sha256 streams fed per batch, which is why
chunking cannot change them: a null mask (one byte per row), the non-null values in a
canonical encoding by *kind* (little-endian int64 for every integer width, float64 with
-0.0 and NaN normalised, UTF-8 bytes for strings, microseconds for datetimes...), and for
variable-width kinds their byte lengths. The final sha256 covers, per column, its name,
kind and three digests, and the row count. Everything is vectorised (NumPy/Polars).

>>> frame = pl.DataFrame({"x": [1, 2, None], "s": ["a", None, "bc"]})
>>> whole, parts = Fingerprinter(), Fingerprinter()
>>> whole.update(frame)
>>> parts.update(frame[:1]); parts.update(frame[1:])
>>> whole.result() == parts.result(), whole.result().schema
(True, {'x': 'int', 's': 'str'})
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from forgeml.data.base import DataSource
from forgeml.data.casting import as_text

__all__ = ["Fingerprint", "Fingerprinter", "fingerprint_frame", "fingerprint_source"]

_VERSION = "forgeml-fingerprint-v1"


@dataclass(frozen=True)
class Fingerprint:
    """``sha256`` of the content, ``n_rows``, and each column's canonical kind."""

    sha256: str
    n_rows: int
    schema: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Column:
    def __init__(self) -> None:
        self.kind: str | None = None
        self.mask = hashlib.sha256()
        self.lengths = hashlib.sha256()
        self.data = hashlib.sha256()

    def update(self, series: pl.Series) -> None:
        self.mask.update(series.is_null().to_numpy().astype(np.uint8).tobytes())
        values = series.drop_nulls()
        if values.len() == 0:
            return
        kind, lengths, data = _encode(values)
        self.kind = self.kind or kind
        if lengths is not None:
            self.lengths.update(lengths)
        self.data.update(data)

    def digest(self, name: str) -> list[str]:
        parts = (self.mask, self.lengths, self.data)
        return [name, self.kind or "null", *(h.hexdigest() for h in parts)]


class Fingerprinter:
    """Feed batches with :meth:`update`, in order; :meth:`result` gives the fingerprint."""

    def __init__(self) -> None:
        self._columns: dict[str, _Column] = {}
        self._names: list[str] | None = None
        self._n_rows = 0

    def update(self, frame: pl.DataFrame) -> None:
        if self._names is None:
            self._names = list(frame.columns)
            self._columns = {name: _Column() for name in self._names}
        elif frame.columns != self._names:
            raise ValueError(f"columns changed between batches: {frame.columns} != {self._names}")
        for name in self._names:
            self._columns[name].update(frame[name])
        self._n_rows += frame.height

    def result(self) -> Fingerprint:
        names = self._names or []
        parts = [self._columns[name].digest(name) for name in names]
        payload = json.dumps([_VERSION, self._n_rows, parts], separators=(",", ":"))
        return Fingerprint(
            sha256=hashlib.sha256(payload.encode()).hexdigest(),
            n_rows=self._n_rows,
            schema={name: self._columns[name].kind or "null" for name in names},
        )


def fingerprint_frame(frame: pl.DataFrame) -> Fingerprint:
    """The :class:`Fingerprint` of one frame.

    >>> fingerprint_frame(pl.DataFrame({"x": [1]})).n_rows
    1
    """
    fingerprinter = Fingerprinter()
    fingerprinter.update(frame)
    return fingerprinter.result()


def fingerprint_source(source: DataSource) -> Fingerprint:
    """The :class:`Fingerprint` of every row of ``source``, streamed batch by batch.

    :func:`~forgeml.data.stream.validate_source` computes the same value while it
    validates (``report.fingerprint``), without reading the source a second time.

    >>> from forgeml.data.base import MemorySource
    >>> frame = pl.DataFrame({"x": range(5)})
    >>> fingerprint_source(MemorySource(frame, chunk_rows=2)) == fingerprint_frame(frame)
    True
    """
    fingerprinter = Fingerprinter()
    for batch in source.iter_batches():
        fingerprinter.update(batch.frame)
    return fingerprinter.result()


def _encode(values: pl.Series) -> tuple[str, bytes | None, bytes]:
    """``(kind, lengths, data)`` bytes of non-null ``values``."""
    dtype = values.dtype
    if dtype == pl.Boolean:
        return "bool", None, values.cast(pl.UInt8).to_numpy().tobytes()
    if dtype.is_integer():
        return "int", None, values.to_numpy().astype("<i8").tobytes()
    if dtype.is_float():
        floats = values.cast(pl.Float64).to_numpy().astype("<f8") + 0.0  # -0.0 -> 0.0
        floats[np.isnan(floats)] = np.nan
        return "float", None, floats.tobytes()
    if dtype == pl.Date:
        return "date", None, values.cast(pl.Int32).to_numpy().astype("<i8").tobytes()
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            values = values.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        micros = values.cast(pl.Datetime("us")).cast(pl.Int64)
        return "datetime", None, micros.to_numpy().astype("<i8").tobytes()
    if isinstance(dtype, pl.Duration):
        micros = values.cast(pl.Duration("us")).cast(pl.Int64)
        return "duration", None, micros.to_numpy().astype("<i8").tobytes()
    if dtype == pl.Binary:
        kind, values = "binary", values.bin.encode("hex")
    elif dtype.is_decimal():
        kind, values = "decimal", as_text(values)
    elif dtype in (pl.String, pl.Categorical, pl.Enum):
        kind, values = "str", values.cast(pl.String)
    else:
        kind, values = "nested", as_text(values)
    lengths = values.str.len_bytes().cast(pl.Int64).to_numpy().astype("<i8").tobytes()
    joined = values.str.join("").item()
    return kind, lengths, str(joined).encode("utf-8")
