"""The record fast path: a few raw JSON-like rows to the feature matrix, without Polars.

A prediction server transforms one request (or a small micro-batch) at a time, where the
Polars query of :meth:`~forgeml.features.FittedFeatures.transform` costs about a
millisecond however few the rows. :class:`RecordEncoder` computes the same matrix in plain
Python from the fitted blocks' parameters: each input value is brought to its canonical
type by :mod:`~forgeml.features.scalars` (the per-value twin of
:mod:`~forgeml.features.inputs`) and written into a row by its block's ``row_writer``;
the rows become one float32 array at the end. Text columns go through the same rebuilt
TF-IDF vectorizer as ``transform``.

The contract is parity: each record gives the row ``transform`` gives a one-row frame of
it (each value with its natural Polars dtype), bit for bit. A key that is absent reads as
None (a missing column is all-null), keys that are not input columns are ignored, and a
value of a type that cannot hold the column's values (a list, a number in a datetime
column, a date in a numeric one) is missing, as the Polars path treats such a column.

>>> import numpy as np
>>> from forgeml.features.numeric import NumericBlock
>>> block = NumericBlock("x", None, fill=2.0, center=1.0, scale=2.0, indicator=True)
>>> encoder = RecordEncoder([(block, 0)], [], {"x": "float"}, 2)
>>> encoder.encode([{"x": 5}, {"x": "oops"}, {}]).tolist()
[[2.0, 0.0], [0.5, 1.0], [0.5, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from forgeml.config.spec import ColumnType
from forgeml.errors import DataError
from forgeml.features.base import DenseBlock, Matrix, assemble
from forgeml.features.scalars import to_number, to_text, to_timestamp
from forgeml.features.text import TextBlock

__all__ = ["READERS", "RecordEncoder"]


def _number(value: Any) -> float | None:
    return to_number(value, boolean=False)


def _flag(value: Any) -> float | None:
    return to_number(value, boolean=True)


# Per column type, the reader of one raw value (its canonical value, None when missing).
READERS: dict[ColumnType, Callable[[Any], Any]] = {
    "int": _number,
    "float": _number,
    "bool": _flag,
    "string": to_text,
    "categorical": to_text,
    "text": to_text,
    "datetime": to_timestamp,
}


class RecordEncoder:
    """The fast path of one fitted pipeline: ``dense`` blocks with their first output
    column, ``texts`` (TF-IDF blocks, after the dense outputs), the input column types and
    the number of dense outputs."""

    def __init__(
        self,
        dense: list[tuple[DenseBlock, int]],
        texts: list[TextBlock],
        input_columns: Mapping[str, ColumnType],
        width: int,
    ) -> None:
        self.width = width
        self._steps = [
            (b.column, READERS[input_columns[b.column]], b.row_writer(start)) for b, start in dense
        ]
        self._texts = texts

    def encode(self, records: Iterable[Mapping[str, Any]]) -> Matrix:
        """The feature matrix of ``records`` (see the module docstring)."""
        steps = self._steps
        blank = [0.0] * self.width
        rows: list[list[float]] = []
        documents: list[list[str]] = [[] for _ in self._texts]
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise DataError(f"record {i} is a {type(record).__name__}, not a mapping")
            get = record.get
            row = blank.copy()
            for column, read, write in steps:
                write(read(get(column)), row)
            rows.append(row)
            for docs, block in zip(documents, self._texts, strict=True):
                docs.append(to_text(get(block.column)) or "")
        dense = np.array(rows, dtype=np.float32).reshape(len(rows), self.width)
        texts = [b.transform_documents(d) for b, d in zip(self._texts, documents, strict=True)]
        return assemble(dense, texts)
