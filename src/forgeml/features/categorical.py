"""Categorical columns: one-hot for few categories; hashing, frequency and target
encoding for many.

Encoders are chosen per column at fit time (:func:`choose_encoders`): a column with at most
``onehot_max_cardinality`` distinct non-null training values is one-hot encoded, a wider
one gets the hashing trick plus frequency and target encoding (each per its spec flag);
``features.columns[name].encoders`` overrides the choice. Every row is mapped to an integer
code once (the fitted categories as a Polars ``Enum``; ``-1`` null, ``-2`` unseen) and each
encoder is a vectorised lookup or scatter on that code.

What unusual values become:

* one-hot: ``name=value`` for each category with at least ``min_frequency`` training rows;
  when some training categories were rarer, a ``name=__other__`` column collects them and,
  at prediction time, unseen values too. Without rare categories an unseen value is all
  zeros. Null is all zeros.
* hashing: ``name__hash_<i>`` signed buckets (:mod:`forgeml.features.hashing`); unseen
  values hash like any other (the buckets of the fitted categories are computed once, those
  of up to :data:`UNSEEN_CACHE` unseen values are remembered); null is all zeros.
* frequency (``name__freq``): share of training rows with the value; unseen and null: 0.
* target (``name__te``, or ``name__te_<class>`` per class for multiclass): see
  :mod:`forgeml.features.target_encoding`; unseen and null: the prior.
* ``name__missing`` (0/1) when ``numeric.missing_indicator`` is on and the column had
  nulls in training, whatever the encoders, so "no value" stays distinguishable.

>>> from forgeml.config.spec import CategoricalSpec
>>> x = pl.Series("plan", ["pro", "free", None, "pro"])
>>> block = CategoricalBlock.fit("plan", x, ("onehot",), CategoricalSpec(), indicator=True)
>>> block.names()
['plan=free', 'plan=pro', 'plan__missing']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import polars as pl

from forgeml.config.spec import CategoricalSpec, Encoder
from forgeml.features import target_encoding as te
from forgeml.features._json import Fields
from forgeml.features.base import RowWriter, Sink, part
from forgeml.features.hashing import signed_bucket, signed_buckets, split_signed

__all__ = ["ENCODERS", "UNSEEN_CACHE", "CategoricalBlock", "TargetStats", "choose_encoders"]

ENCODERS: tuple[Encoder, ...] = ("onehot", "hash", "frequency", "target")
NULL, UNSEEN = -1, -2
# How many unseen values' buckets a block remembers (a server sees the same ones again);
# past that the memory starts over, so a stream of distinct values cannot grow it.
UNSEEN_CACHE = 65_536
# Up to this many unseen rows are hashed one by one through that memory; more go through
# one Polars distinct (a large batch).
_FEW_UNSEEN = 256


def choose_encoders(
    cardinality: int, spec: CategoricalSpec, override: list[Encoder] | None = None
) -> tuple[Encoder, ...]:
    """The encoders of a column, in output order.

    >>> choose_encoders(4000, CategoricalSpec())
    ('hash', 'frequency', 'target')
    """
    if override is not None:
        chosen: set[str] = set(override)
    elif cardinality <= spec.onehot_max_cardinality:
        chosen = {"onehot"}
    else:
        chosen = {"hash"}
        if spec.frequency:
            chosen.add("frequency")
        if spec.target_encoding:
            chosen.add("target")
    return tuple(e for e in ENCODERS if e in chosen)


@dataclass(frozen=True)
class TargetStats:
    """Fitted target encoding: ``prior`` (k,), ``table`` (n_categories, k), class labels."""

    prior: np.ndarray
    table: np.ndarray
    labels: tuple[str, ...]
    smoothing: float


@dataclass
class CategoricalBlock:
    """Fitted categories (sorted, with training counts) and the chosen encoders' state."""

    kind: ClassVar[str] = "categorical"
    column: str
    categories: tuple[str, ...]
    counts: np.ndarray
    n_rows: int
    encoders: tuple[Encoder, ...]
    indicator: bool
    min_frequency: int = 1
    buckets: int = 32
    target: TargetStats | None = None
    # Lookup tables indexed by code + 2 (0: unseen, 1: null, 2...: categories).
    _enum: pl.Enum = field(init=False, repr=False)
    _onehot: np.ndarray = field(init=False, repr=False)
    _hash: np.ndarray = field(init=False, repr=False)
    _unseen: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._unseen = {}
        self._enum = pl.Enum(list(self.categories))
        kept = self.counts >= self.min_frequency
        self.n_kept = int(kept.sum())
        self.has_other = "onehot" in self.encoders and self.n_kept < len(self.categories)
        other = self.n_kept if self.has_other else -1
        position = np.where(kept, np.cumsum(kept) - 1, other)
        self._onehot = np.concatenate([[other, -1], position]).astype(np.int64)
        self._hash = np.zeros(len(self.categories) + 2, dtype=np.int32)
        if "hash" in self.encoders:
            self._hash[2:] = signed_buckets(self.categories, self.buckets)

    @classmethod
    def fit(
        cls,
        column: str,
        values: pl.Series,
        encoders: tuple[Encoder, ...],
        spec: CategoricalSpec,
        *,
        indicator: bool,
        targets: tuple[np.ndarray, np.ndarray, list[str]] | None = None,
    ) -> CategoricalBlock:
        """Fit on canonical (String) training values; ``targets`` is
        :func:`~forgeml.features.target_encoding.target_matrix` output, needed for "target"."""
        counts = values.drop_nulls().rename("value").value_counts(name="n").sort("value")
        block = cls(
            column=column,
            categories=tuple(counts.get_column("value").to_list()),
            counts=counts.get_column("n").to_numpy().astype(np.int64),
            n_rows=len(values),
            encoders=encoders,
            indicator=indicator and values.null_count() > 0,
            min_frequency=spec.min_frequency,
            buckets=spec.hash_buckets,
        )
        if "target" in encoders:
            if targets is None:
                raise ValueError("target encoding needs the training targets")
            Y, valid, labels = targets
            prior, table = te.fit_table(
                block.codes(values), len(block.categories), Y, valid, spec.target_smoothing
            )
            block.target = TargetStats(prior, table, tuple(labels), spec.target_smoothing)
        return block

    def code_expr(self, source: pl.Expr) -> pl.Expr:
        """Int32 code of each row: category index, -1 for null, -2 for unseen."""
        code = source.cast(self._enum, strict=False).to_physical().cast(pl.Int32)
        return (
            pl.when(source.is_null()).then(pl.lit(NULL, pl.Int32)).otherwise(code.fill_null(UNSEEN))
        )

    def codes(self, values: pl.Series) -> np.ndarray:
        """:meth:`code_expr` evaluated on a Series."""
        return (
            pl.DataFrame({"v": values}).select(self.code_expr(pl.col("v"))).to_series().to_numpy()
        )

    def names(self) -> list[str]:
        c = self.column
        names: list[str] = []
        if "onehot" in self.encoders:
            names += [
                f"{c}={v}"
                for v, n in zip(self.categories, self.counts, strict=True)
                if n >= self.min_frequency
            ]
            names += [f"{c}=__other__"] if self.has_other else []
        if "hash" in self.encoders:
            names += [f"{c}__hash_{i}" for i in range(self.buckets)]
        if "frequency" in self.encoders:
            names.append(f"{c}__freq")
        if self.target is not None:
            labels = self.target.labels
            names += [f"{c}__te_{label}" for label in labels] if labels else [f"{c}__te"]
        return names + ([f"{c}__missing"] if self.indicator else [])

    def target_slice(self) -> slice | None:
        """Where the target-encoding columns sit among :meth:`names` (None without them)."""
        if self.target is None:
            return None
        stop = len(self.names()) - int(self.indicator)
        return slice(stop - self.target.table.shape[1], stop)

    def parts(self, source: pl.Expr, key: str) -> list[pl.Expr]:
        exprs = [self.code_expr(source).alias(part(key, 0))]
        if "hash" in self.encoders:  # raw values, to hash the unseen ones (zero-copy)
            exprs.append(source.alias(part(key, 1)))
        return exprs

    def unseen_bucket(self, value: str) -> int:
        """The signed bucket of a value that is not a fitted category (remembered)."""
        code = self._unseen.get(value)
        if code is None:
            code = signed_bucket(value, self.buckets)
            if len(self._unseen) >= UNSEEN_CACHE:
                self._unseen.clear()
            self._unseen[value] = code
        return code

    def _unseen_hashes(self, raw: pl.Series, unseen: np.ndarray) -> np.ndarray:
        values = raw.filter(pl.Series(unseen))
        if len(values) <= _FEW_UNSEEN:
            return np.array([self.unseen_bucket(v) for v in values.to_list()], dtype=np.int32)
        distinct = values.unique(maintain_order=True)
        index = values.cast(pl.Enum(distinct.to_list())).to_physical().to_numpy()
        return signed_buckets(distinct.to_list(), self.buckets)[index]

    def write(self, parts: pl.DataFrame, key: str, sink: Sink, start: int) -> None:
        code = parts.get_column(part(key, 0)).to_numpy()
        lookup = code.astype(np.int64) + 2
        at = start
        if "onehot" in self.encoders:
            offsets = self._onehot[lookup]
            sink.scatter(at, offsets, offsets >= 0)
            at += self.n_kept + int(self.has_other)
        if "hash" in self.encoders:
            signed = self._hash[lookup]
            unseen = code == UNSEEN
            if unseen.any():
                signed[unseen] = self._unseen_hashes(parts.get_column(part(key, 1)), unseen)
            present = signed != 0
            bucket, sign = split_signed(np.where(present, signed, 1))
            sink.scatter(at, bucket, present, sign)
            at += self.buckets
        if "frequency" in self.encoders:
            share = self.counts / max(self.n_rows, 1)
            sink.column(at, np.concatenate([[0.0, 0.0], share]).astype(np.float32)[lookup])
            at += 1
        if self.target is not None:
            table = self._target_lookup()
            for j in range(table.shape[1]):
                sink.column(at + j, table[:, j][lookup])
            at += table.shape[1]
        if self.indicator:
            sink.column(at, (code == NULL).astype(np.float32))

    def _target_lookup(self) -> np.ndarray:
        """Target encodings as float32, indexed by code + 2 (unseen and null: the prior)."""
        assert self.target is not None
        prior = self.target.prior[None, :]
        return np.vstack([prior, prior, self.target.table]).astype(np.float32)

    def row_writer(self, start: int) -> RowWriter:
        # The tables write() uses, indexed by code + 2 (0: unseen, 1: null); the float ones
        # stay NumPy arrays so that a wide column costs no Python float per category.
        index = {c: i for i, c in enumerate(self.categories, start=2)}
        onehot = self._onehot.tolist() if "onehot" in self.encoders else None
        hashes = self._hash.tolist() if "hash" in self.encoders else None
        freq: np.ndarray | None = None
        if "frequency" in self.encoders:
            freq = np.concatenate([[0.0, 0.0], self.counts / max(self.n_rows, 1)])
            freq = freq.astype(np.float32)
        target = self._target_lookup() if self.target is not None else None
        at_hash = start + (self.n_kept + int(self.has_other) if onehot is not None else 0)
        at_freq = at_hash + (self.buckets if hashes is not None else 0)
        at_target = at_freq + (1 if freq is not None else 0)
        flag = start + len(self.names()) - 1 if self.indicator else -1
        unseen_bucket = self.unseen_bucket

        def write(value: str | None, row: list[float]) -> None:
            k = 1 if value is None else index.get(value, 0)
            if onehot is not None and (offset := onehot[k]) >= 0:
                row[start + offset] = 1.0
            if hashes is not None and value is not None:
                signed = hashes[k] if k else unseen_bucket(value)
                row[at_hash + abs(signed) - 1] = 1.0 if signed > 0 else -1.0
            if freq is not None:
                row[at_freq] = freq.item(k)
            if target is not None:
                row[at_target : at_target + target.shape[1]] = target[k].tolist()
            if k == 1 and flag >= 0:
                row[flag] = 1.0

        return write

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "column": self.column,
            "encoders": list(self.encoders),
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "n_rows": self.n_rows,
            "indicator": self.indicator,
            "min_frequency": self.min_frequency,
            "buckets": self.buckets,
            "target": None,
        }
        if self.target is not None:
            out["target"] = {
                "prior": self.target.prior.tolist(),
                "table": self.target.table.T.tolist(),  # one list per output column
                "labels": list(self.target.labels),
                "smoothing": self.target.smoothing,
            }
        return out

    @classmethod
    def from_dict(cls, fields: Fields) -> CategoricalBlock:
        encoders = fields.strings("encoders")
        if (
            not encoders
            or any(e not in ENCODERS for e in encoders)
            or len(set(encoders)) < len(encoders)
        ):
            raise fields.fail("encoders", f"expected distinct values among {', '.join(ENCODERS)}")
        categories = fields.strings("categories")
        if len(set(categories)) != len(categories):
            raise fields.fail("categories", "contains duplicates")
        counts = fields.array("counts", integer=True)
        if len(counts) != len(categories) or (counts < 0).any():
            raise fields.fail("counts", f"expected {len(categories)} counts >= 0")
        target = None
        if "target" in encoders:
            t = fields.child("target")
            prior = t.array("prior")
            columns = t.array("table", ndim=2)
            labels = t.strings("labels")
            shape = (len(prior), len(categories))
            if not len(prior) or columns.shape != shape or len(labels) not in (0, len(prior)):
                raise t.fail("table", "shape does not match categories, prior and labels")
            target = TargetStats(prior, columns.T, tuple(labels), t.number("smoothing"))
        return cls(
            column=fields.string("column"),
            categories=tuple(categories),
            counts=counts,
            n_rows=fields.integer("n_rows"),
            encoders=tuple(e for e in ENCODERS if e in encoders),
            indicator=fields.boolean("indicator"),
            min_frequency=fields.integer("min_frequency", minimum=1),
            buckets=fields.integer("buckets", minimum=2),
            target=target,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "encoders": list(self.encoders),
            "n_outputs": len(self.names()),
            "cardinality": len(self.categories),
            "missing_indicator": self.indicator,
        }
