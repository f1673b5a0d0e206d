"""What every fitted transform ("block") provides, and the matrix they write into.

A block turns one input column into one or more output columns. Dense blocks work in two
steps so that a whole frame is transformed by a single Polars query:

1. ``parts(source, key)`` returns Polars expressions over the canonical input column
   (finished float32 values for numeric columns, small integer codes for categorical
   ones), named ``key:0``, ``key:1``, ...; the pipeline runs every block's parts in one
   ``select``.
2. ``write(parts, key, sink, start)`` copies finished values into the output matrix and
   scatters codes into one-hot / hashed columns with NumPy: a one-hot block costs one
   integer column and one vectorised write, not one float column per category.

Text blocks produce a sparse matrix instead (``transform_sparse``).

The record fast path (:mod:`forgeml.features.records`) skips Polars: ``row_writer(start)``
returns a function that writes one canonical value's outputs into a row (a list of
floats), with the same arithmetic as ``parts`` so both paths give the same float32 values.

>>> sink = Sink(np.zeros((2, 3), dtype=np.float32))
>>> sink.scatter(1, np.array([0, 1]), np.array([True, False]))
>>> sink.out.tolist()
[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeAlias

import numpy as np
import polars as pl
import scipy.sparse as sp

__all__ = ["F32_MAX", "DenseBlock", "Matrix", "RowWriter", "Sink", "assemble", "part"]

Matrix: TypeAlias = np.ndarray | sp.csr_matrix
RowWriter: TypeAlias = Callable[[Any, list[float]], None]

# Every float output is clipped into float32's finite range before the cast.
F32_MAX = float(np.finfo(np.float32).max)


def assemble(dense: np.ndarray, texts: list[sp.csr_matrix]) -> Matrix:
    """The output matrix: ``dense`` itself, or a float32 CSR of ``dense`` and the TF-IDF
    blocks side by side when there are text blocks.

    >>> assemble(np.ones((2, 1), np.float32), [sp.csr_matrix(np.eye(2))]).toarray().tolist()
    [[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    """
    if not texts:
        return dense
    stacked = sp.hstack([sp.csr_matrix(dense), *texts], format="csr", dtype=np.float32)
    return sp.csr_matrix(stacked)


def part(key: str, index: int) -> str:
    """The name of a block's ``index``-th part column inside the pipeline's query."""
    return f"{key}:{index}"


class Sink:
    """The C-ordered float32 output matrix, with helpers for column and scatter writes."""

    def __init__(self, out: np.ndarray) -> None:
        self.out = out
        self.flat = out.reshape(-1)
        self.n_rows, self.width = out.shape
        self.row_base = np.arange(self.n_rows, dtype=np.int64) * self.width

    def column(self, index: int, values: np.ndarray) -> None:
        """Write one output column."""
        self.out[:, index] = values

    def scatter(
        self,
        start: int,
        offsets: np.ndarray,
        mask: np.ndarray,
        values: np.ndarray | float = 1.0,
    ) -> None:
        """Set ``out[i, start + offsets[i]] = values[i]`` for each row ``i`` where ``mask``."""
        target = self.row_base[mask] + (start + offsets[mask])
        self.flat[target] = values[mask] if isinstance(values, np.ndarray) else values


class DenseBlock(Protocol):
    """A fitted transform of one input column into dense float32 output columns."""

    kind: ClassVar[str]
    column: str

    def names(self) -> list[str]:
        """Output feature names, in output order."""
        ...

    def parts(self, source: pl.Expr, key: str) -> list[pl.Expr]:
        """Expressions (over the canonical column ``source``) this block needs computed."""
        ...

    def write(self, parts: pl.DataFrame, key: str, sink: Sink, start: int) -> None:
        """Write this block's outputs into ``sink`` columns ``start:start + len(names())``."""
        ...

    def row_writer(self, start: int) -> RowWriter:
        """A function writing the outputs of one canonical value (None when missing) into
        ``row[start:start + len(names())]``, equal to what :meth:`write` writes."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Fitted state as plain JSON values."""
        ...

    def describe(self) -> dict[str, Any]:
        """Kind, encoders and output count, for reports."""
        ...
