"""The fitted feature pipeline: transform any frame, save to and load from JSON.

Output columns: the dense blocks in input-column order, then the TF-IDF blocks. The matrix
is a C-ordered float32 ``numpy.ndarray``, or a float32 ``scipy.sparse.csr_matrix`` when the
pipeline has a text column. ``feature_names`` names every output column.

How a frame is transformed (the hot path, no per-row Python): the input columns are cast
to their canonical dtypes and every block's parts are computed by ONE lazy Polars query;
the output matrix is allocated once and filled with column copies (finished float32
values) and vectorised scatters (one-hot and hashed columns from integer codes). This
avoids materialising one float column per category in Polars and then transposing the
whole frame into a C-ordered array, which costs about 3x the time and twice the memory.
The query's expressions depend on the input's schema only, so they are built once per
schema and kept: building them cost more than running the query on a few rows.

A few raw records (a prediction request) take the fast path instead,
:meth:`FittedFeatures.transform_records` (:mod:`forgeml.features.records`): the same
matrix computed in plain Python, with no Polars query, in tens of microseconds a row.

At prediction time (see :mod:`forgeml.features.inputs`): extra columns are ignored; a
column of another dtype is cast with ``strict=False`` (unreadable values are imputed); a
missing column is treated as all-null (numerics imputed, categoricals missing) and listed by
:meth:`FittedFeatures.missing_columns`, or refused with ``transform(frame, strict=True)``;
an empty frame gives a ``(0, n_features)`` matrix;
pandas and Arrow frames are accepted.

The JSON form (:meth:`FittedFeatures.to_dict`) holds only strings, numbers, booleans,
None, lists and dicts, with a format name and version; :meth:`FittedFeatures.from_dict`
checks every field and raises :class:`~forgeml.errors.ArtifactIntegrityError` naming the
bad one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, get_args

import numpy as np
import polars as pl
import scipy.sparse as sp

from forgeml.config.spec import ColumnType
from forgeml.errors import ArtifactIntegrityError, DataError
from forgeml.features import target_encoding as te
from forgeml.features._json import Fields
from forgeml.features.base import DenseBlock, Matrix, Sink, assemble
from forgeml.features.categorical import CategoricalBlock
from forgeml.features.datetime_parts import DatetimeBlock
from forgeml.features.hashing import HASH_VERSION
from forgeml.features.inputs import canonical_columns, to_polars
from forgeml.features.numeric import NumericBlock
from forgeml.features.records import RecordEncoder
from forgeml.features.text import TextBlock

__all__ = ["FORMAT", "FORMAT_VERSION", "ROLES", "FittedFeatures", "Matrix"]

FORMAT = "forgeml.features"
FORMAT_VERSION = 1

# Which block kind handles each column type; "id" columns are never features.
ROLES: dict[str, str] = {
    "int": "numeric",
    "float": "numeric",
    "bool": "numeric",
    "string": "categorical",
    "categorical": "categorical",
    "datetime": "datetime",
    "text": "text",
}
_LOADERS: dict[str, Any] = {
    "numeric": NumericBlock,
    "categorical": CategoricalBlock,
    "datetime": DatetimeBlock,
    "text": TextBlock,
}
# Input schemas whose query a pipeline keeps (a server sees one or two); past that the
# memory starts over.
_QUERIES_KEPT = 16
# The query is a single projection of an in-memory frame: the streaming engine ("auto")
# and the optimiser passes cost a millisecond of fixed time and gain nothing here
# (measured on 1 to 1,000,000 rows).
_PLAIN = pl.QueryOptFlags.none()


def _unique(names: list[str]) -> list[str]:
    """Feature names made unique (a column literally called ``age__missing``...)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}~{count + 1}")
    return out


class FittedFeatures:
    """A fitted feature pipeline: ``transform`` frames, save with ``to_dict``.

    Built by :class:`~forgeml.features.FeaturePipeline` or :meth:`from_dict`.

    >>> import json
    >>> from forgeml.config.spec import FeaturesSpec
    >>> from forgeml.features import FeaturePipeline
    >>> from forgeml.tasks.info import TaskInfo
    >>> frame = pl.DataFrame({"age": [30, None, 50], "plan": ["pro", "free", "pro"]})
    >>> pipe = FeaturePipeline(FeaturesSpec(), {"age": "int", "plan": "string"}, TaskInfo("regression"))
    >>> fitted = pipe.fit(frame, np.array([1.0, 2.0, 3.0]))
    >>> fitted.feature_names
    ['age', 'age__missing', 'plan=free', 'plan=pro']
    >>> fitted.transform(frame.head(1)).tolist()
    [[-1.2247449159622192, 0.0, 0.0, 1.0]]
    >>> again = FittedFeatures.from_dict(json.loads(json.dumps(fitted.to_dict())))
    >>> bool((again.transform(frame) == fitted.transform(frame)).all())
    True
    >>> fitted.missing_columns(frame.drop("plan"))
    ['plan']
    >>> [(d["column"], d["kind"], d["n_outputs"]) for d in fitted.describe()]
    [('age', 'numeric', 2), ('plan', 'categorical', 2)]
    """

    def __init__(self, blocks: list[Any], input_columns: dict[str, ColumnType]) -> None:
        self.input_columns = dict(input_columns)
        self._dense: list[tuple[DenseBlock, str, int]] = []
        self._text: list[TextBlock] = []
        start = 0
        for block in blocks:
            if isinstance(block, TextBlock):
                self._text.append(block)
            else:
                self._dense.append((block, f"b{len(self._dense)}", start))
                start += len(block.names())
        self.n_dense = start
        names = [n for b, _, _ in self._dense for n in b.names()]
        names += [n for b in self._text for n in b.names()]
        self.feature_names: list[str] = _unique(names)
        self._queries: dict[tuple[Any, ...], tuple[list[pl.Expr], list[str]]] = {}
        self._parts: list[pl.Expr] | None = None
        self._records: RecordEncoder | None = None

    @property
    def blocks(self) -> list[Any]:
        """The fitted blocks in output order (dense blocks first, then text)."""
        return [b for b, _, _ in self._dense] + list(self._text)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def is_sparse(self) -> bool:
        """Whether :meth:`transform` returns a CSR matrix (there is a text column)."""
        return bool(self._text)

    def missing_columns(self, frame: Any) -> list[str]:
        """Input columns absent from ``frame`` (or of an unusable dtype, such as a list):
        :meth:`transform` treats them as all-null. Callers report them (the CLI warns, the
        server counts them); ``transform`` itself stays silent so serving logs stay clean."""
        return self._query(to_polars(frame).schema)[1]

    def transform(self, frame: Any, *, strict: bool = False) -> Matrix:
        """The feature matrix of a Polars, pandas or Arrow frame.

        Missing input columns are treated as all-null (see :meth:`missing_columns`);
        with ``strict=True`` they raise :class:`~forgeml.errors.DataError` instead.
        """
        dense, texts, _ = self._compute(frame, strict=strict)
        return assemble(dense, texts)

    def transform_records(self, records: Iterable[Mapping[str, Any]]) -> Matrix:
        """The feature matrix of raw records (a prediction request), without Polars.

        Each record maps column names to JSON-like values (str, int, float, bool, None;
        timestamps as ISO strings or ``datetime`` objects) and gives exactly the row
        :meth:`transform` gives a one-row frame of it: absent keys are missing values,
        extra keys are ignored, unreadable values are imputed. Meant for a few rows at a
        time; for large batches :meth:`transform` is faster.

        >>> from forgeml.config.spec import FeaturesSpec
        >>> from forgeml.features import FeaturePipeline
        >>> from forgeml.tasks.info import TaskInfo
        >>> frame = pl.DataFrame({"age": [30, None, 50], "plan": ["pro", "free", "pro"]})
        >>> pipe = FeaturePipeline(FeaturesSpec(), {"age": "int", "plan": "string"}, TaskInfo("regression"))
        >>> fitted = pipe.fit(frame, np.array([1.0, 2.0, 3.0]))
        >>> fitted.transform_records([{"age": "30", "plan": "pro", "extra": 1}]).tolist()
        [[-1.2247449159622192, 0.0, 0.0, 1.0]]
        >>> bool((fitted.transform_records(frame.to_dicts()) == fitted.transform(frame)).all())
        True
        """
        encoder = self._records
        if encoder is None:
            dense = [(b, start) for b, _, start in self._dense]
            encoder = RecordEncoder(dense, self._text, self.input_columns, self.n_dense)
            self._records = encoder
        return encoder.encode(records)

    def _query(self, schema: Mapping[str, pl.DataType]) -> tuple[list[pl.Expr], list[str]]:
        """The canonical-column expressions for inputs of ``schema`` (kept per schema)."""
        key = tuple(schema.get(c) for c in self.input_columns)
        query = self._queries.get(key)
        if query is None:
            query = canonical_columns(schema, self.input_columns)
            if len(self._queries) >= _QUERIES_KEPT:
                self._queries.clear()
            self._queries[key] = query
        return query

    def _part_exprs(self) -> list[pl.Expr]:
        """Every block's part expressions over the canonical columns (built once)."""
        if self._parts is None:
            exprs = [e for b, key, _ in self._dense for e in b.parts(pl.col(b.column), key)]
            exprs += [pl.col(b.column).alias(f"t{i}") for i, b in enumerate(self._text)]
            self._parts = exprs
        return self._parts

    def _compute(
        self, frame: Any, *, strict: bool = False
    ) -> tuple[np.ndarray, list[sp.csr_matrix], pl.DataFrame]:
        """Dense block matrix, text matrices and the parts frame (for out-of-fold TE)."""
        frame = to_polars(frame)
        canonical, missing = self._query(frame.schema)
        if missing and strict:
            raise DataError(f"input lacks (or cannot cast) column(s): {', '.join(missing)}")
        query = frame.lazy().select(canonical).select(self._part_exprs())
        parts = query.collect(engine="in-memory", optimizations=_PLAIN)
        dense = np.zeros((frame.height, self.n_dense), dtype=np.float32)
        sink = Sink(dense)
        for block, key, start in self._dense:
            block.write(parts, key, sink, start)
        texts = [b.transform_sparse(parts.get_column(f"t{i}")) for i, b in enumerate(self._text)]
        return dense, texts, parts

    def training_matrix(
        self,
        frame: Any,
        targets: tuple[np.ndarray, np.ndarray, list[str]],
        folds: list[tuple[np.ndarray, np.ndarray]],
    ) -> Matrix:
        """:meth:`transform` of the training rows, with out-of-fold target encodings.

        ``targets`` is :func:`~forgeml.features.target_encoding.target_matrix` of the
        training targets; :meth:`FeaturePipeline.fit_transform` is the usual way in.
        """
        dense, texts, parts = self._compute(frame)
        Y, valid, _ = targets
        for block, key, start in self._dense:
            if not isinstance(block, CategoricalBlock) or block.target is None:
                continue
            where = block.target_slice()
            assert where is not None
            codes = parts.get_column(f"{key}:0").to_numpy()
            values, covered = te.out_of_fold(
                codes, len(block.categories), Y, valid, block.target.smoothing, folds
            )
            rows = np.flatnonzero(covered)
            cols = np.arange(start + where.start, start + where.stop)
            dense[np.ix_(rows, cols)] = values[rows].astype(np.float32)
        return assemble(dense, texts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fitted state (plain types only), with a format name and version."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "hash_version": HASH_VERSION,
            "input_columns": dict(self.input_columns),
            "feature_names": list(self.feature_names),
            "blocks": [b.to_dict() for b in self.blocks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FittedFeatures:
        """Rebuild from :meth:`to_dict` output; malformed input raises
        :class:`~forgeml.errors.ArtifactIntegrityError` naming the field."""
        root = Fields(data, "$")
        if root.string("format") != FORMAT:
            raise root.fail("format", f"expected {FORMAT!r}")
        for key, supported in (("version", FORMAT_VERSION), ("hash_version", HASH_VERSION)):
            if root.integer(key) != supported:
                raise root.fail(key, f"this forgeml reads {key} {supported} only")
        types = root.child("input_columns")
        known = get_args(ColumnType)
        columns: dict[str, ColumnType] = {}
        for name in types.raw_keys():
            ctype = types.string(name)
            if ctype not in known or ctype not in ROLES:
                raise types.fail(name, f"unknown column type {ctype!r}")
            columns[name] = ctype  # type: ignore[assignment]
        blocks = []
        for fields in root.children("blocks"):
            kind = fields.string("kind")
            if kind not in _LOADERS:
                raise fields.fail("kind", f"unknown block kind {kind!r}")
            try:
                block = _LOADERS[kind].from_dict(fields)
            except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
                raise ArtifactIntegrityError(f"feature pipeline: {fields.path}: {exc}") from exc
            if ROLES.get(columns.get(block.column, "id")) != kind:
                raise fields.fail("column", f"{block.column!r} is not a {kind} input column")
            blocks.append(block)
        fitted = cls(blocks, columns)
        if root.strings("feature_names") != fitted.feature_names:
            raise root.fail("feature_names", "do not match the blocks (edited or truncated file?)")
        return fitted

    def describe(self) -> list[dict[str, Any]]:
        """Per input column, in input order: type, kind, encoders and number of outputs."""
        by_column = {b.column: b.describe() for b in self.blocks}
        return [
            {"column": c, "type": t, **by_column[c]}
            for c, t in self.input_columns.items()
            if c in by_column
        ]
