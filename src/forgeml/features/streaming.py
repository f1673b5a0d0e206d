"""Fit the feature pipeline from batches: training rows that do not fit in memory.

:func:`fit_streamed` gives the :class:`~forgeml.features.FittedFeatures` that
:meth:`FeaturePipeline.fit <forgeml.features.FeaturePipeline.fit>` gives on all the rows
at once, while holding one batch at a time. ``batches`` is a function returning a fresh
iterable of frames (pandas, Polars or Arrow) each time it is called, because some
statistics need more than one pass (a Parquet file re-read column by column is cheap;
:func:`parquet_batches` builds such a function).

What is computed, and how close it is to the in-memory fit:

* categories, their counts, null counts, the choice of encoders, and target-encoding
  tables of classification tasks: **exact** (integer counts merged across batches);
* quantiles (clip bounds, medians for ``impute: median``), minima and maxima, and
  therefore every boolean block, ``scale: minmax`` and ``scale: none``: **exact**.
  Order statistics are found by radix selection on the float's bits: one pass builds a
  65,536-bin histogram of the top 16 bits, the next collects the few values in the bin
  holding each wanted rank (or refines the histogram by the next 16 bits when that bin
  is large; at most four refinements), and the quantile is interpolated from the exact
  order statistics exactly as Polars does;
* means and standard deviations (``scale: standard``, ``impute: mean``) and
  regression target means: per-batch two-pass moments merged with Chan's formula,
  equal to Polars' single-frame result within a relative ``1e-9`` (summation order
  differs; on real data the difference is a few units in the last place).

Passes over the data: one, plus one or two for quantiles (rarely up to four, for
columns with very many equal values), plus one when a clipped column needs its mean.
Text (TF-IDF) columns are not supported streamed: their vocabulary must be built in
memory.

Memory: one batch, a 512 KiB histogram per numeric input, the distinct values of each
categorical column (exact categories need them; the in-memory fit holds them too) and at
most :data:`COLLECT` values per wanted order statistic.

>>> import numpy as np
>>> from forgeml.config.spec import FeaturesSpec
>>> from forgeml.features import FeaturePipeline
>>> from forgeml.tasks.info import TaskInfo
>>> frame = pl.DataFrame({"x": [3.0, None, 1.0, 8.0, 2.0], "c": ["a", "b", "a", None, "a"]})
>>> pipe = FeaturePipeline(FeaturesSpec(), {"x": "float", "c": "string"}, TaskInfo("regression"))
>>> streamed = fit_streamed(pipe, lambda: (frame.slice(i, 2) for i in range(0, 5, 2)))
>>> in_memory = pipe.fit(frame, np.zeros(5))
>>> streamed.feature_names == in_memory.feature_names, streamed.blocks[0].fill == in_memory.blocks[0].fill
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from forgeml.errors import ConfigError, DataError
from forgeml.features import target_encoding as te
from forgeml.features._json import finite
from forgeml.features.categorical import CategoricalBlock, TargetStats, choose_encoders
from forgeml.features.datetime_parts import DatetimeBlock, _part
from forgeml.features.fitted import ROLES, FittedFeatures
from forgeml.features.inputs import canonical_columns, to_polars
from forgeml.features.numeric import NumericBlock
from forgeml.tasks.info import TaskInfo

__all__ = ["COLLECT", "Batches", "StreamedFit", "fit_streamed", "parquet_batches"]

Batches = Callable[[], Iterable[Any]]
"""A function returning a fresh iterable of frames each time it is called."""

COLLECT = 1 << 18
"""At most this many values are gathered to pick one order statistic exactly."""

_BITS = 16
_BINS = 1 << _BITS
_SIGN = np.uint64(1 << 63)
_MASK = np.uint64(_BINS - 1)


def _keys(values: np.ndarray) -> np.ndarray:
    """Float64 values as uint64 keys in the same order (IEEE-754 bits, sign-flipped)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _value(key: int) -> float:
    """The float64 whose :func:`_keys` key is ``key``."""
    k = np.uint64(key)
    bits = k & ~_SIGN if k & _SIGN else ~k
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


# ----------------------------------------------------------------------------- moments


@dataclass
class _Moments:
    """Count, mean, sum of squared deviations, min and max, merged across batches."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add_values(self, v: np.ndarray) -> None:
        if not len(v):
            return
        with np.errstate(over="ignore", invalid="ignore"):  # as Polars: inf, then scale 1
            mean = float(v.mean())
            m2 = float(np.square(v - mean).sum())
        self.merge(len(v), mean, m2)
        self.lo = min(self.lo, float(v.min()))
        self.hi = max(self.hi, float(v.max()))

    def merge(self, n: int, mean: float, m2: float) -> None:
        """Chan et al.'s parallel update with a group of ``n`` values."""
        if n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        with np.errstate(over="ignore", invalid="ignore"):
            delta = mean - self.mean
            self.mean += delta * (n / total)
            self.m2 += m2 + delta * delta * (self.n * n / total)
        self.n = total

    def with_fill(self, n_null: int, fill: float) -> _Moments:
        """The moments after ``n_null`` missing values were replaced by ``fill``."""
        out = _Moments(self.n, self.mean, self.m2, self.lo, self.hi)
        if n_null:
            out.merge(n_null, fill, 0.0)
            out.lo, out.hi = min(out.lo, fill), max(out.hi, fill)
        return out


# ------------------------------------------------------------------- order statistics


@dataclass
class _Request:
    """Where the search for one rank stands: the keys with ``key >> shift == prefix`` hold
    the ``rank``-th smallest key (0-based, among all keys); ``before`` keys sort below
    them. ``collect`` means: gather those keys next pass and pick the answer."""

    rank: int
    prefix: int = 0
    shift: int = 64
    before: int = 0
    collect: bool = False
    key: int | None = None  # the answer

    def settle(self, hist: np.ndarray) -> None:
        """Descend one level: ``hist`` counts the keys under ``prefix`` by their next 16
        bits."""
        cumulative = np.cumsum(hist)
        b = int(np.searchsorted(cumulative, self.rank - self.before, side="right"))
        self.before += int(cumulative[b - 1]) if b else 0
        self.prefix = (self.prefix << _BITS) | b
        self.shift -= _BITS
        if self.shift == 0:
            self.key = self.prefix
        elif hist[b] <= COLLECT:
            self.collect = True


class _Numeric:
    """One numeric stream (a numeric column or one datetime part): counts, histogram of
    the top key bits, raw moments, and the order statistics asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.n_rows = 0
        self.n_null = 0
        self.hist = np.zeros(_BINS, dtype=np.int64)
        self.raw = _Moments()
        self.clipped = _Moments()
        self.requests: dict[int, _Request] = {}

    @property
    def n(self) -> int:
        return self.n_rows - self.n_null

    def first_pass(self, values: np.ndarray, n_rows: int) -> None:
        self.n_rows += n_rows
        self.n_null += n_rows - len(values)
        if len(values):
            top = (_keys(values) >> np.uint64(64 - _BITS)).astype(np.int64)
            self.hist += np.bincount(top, minlength=_BINS)
            self.raw.add_values(values)

    def ask(self, rank: int) -> None:
        if rank not in self.requests:
            self.requests[rank] = _Request(rank)

    def order_stat(self, rank: int) -> float:
        key = self.requests[rank].key
        assert key is not None
        return _value(key)

    def _position(self, q: float) -> tuple[int, float]:
        """Lower rank and interpolation weight of quantile ``q``, computed as Polars does:
        on the sorted column with its nulls first, so the weight is the fractional part
        of ``n_null + q * (n - 1)`` (which differs in the last bits from that of
        ``q * (n - 1)``)."""
        position = self.n_null + q * (self.n - 1)
        lower = math.floor(position)
        return lower - self.n_null, position - lower

    def quantile(self, q: float, clip: tuple[float, float] | None = None) -> float:
        """Polars' ``quantile(q, "linear")`` of the values (clipped first, if given)."""
        lo, weight = self._position(q)
        hi = min(lo + 1, self.n - 1)
        a, b = self.order_stat(lo), self.order_stat(hi)
        if clip is not None:
            a, b = min(max(a, clip[0]), clip[1]), min(max(b, clip[0]), clip[1])
        if lo == hi:
            return a
        return a + (b - a) * weight

    def ask_quantile(self, q: float) -> None:
        if self.n:
            lo, _ = self._position(q)
            self.ask(lo)
            self.ask(min(lo + 1, self.n - 1))

    def pending(self) -> list[_Request]:
        return [r for r in self.requests.values() if r.key is None]


class _Category:
    """Counts of one categorical column's values, and target sums per value."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.n_rows = 0
        self.n_null = 0
        self.table: pl.DataFrame | None = None  # value, n, n_valid, s0..s(k-1)


# ---------------------------------------------------------------------------- fitting


@dataclass
class StreamedFit:
    """What :func:`fit_streamed` did besides fitting: passes over the data and rows."""

    fitted: FittedFeatures
    passes: int
    n_rows: int
    notes: list[str] = field(default_factory=list)


def parquet_batches(
    paths: str | Path | Sequence[str | Path],
    *,
    columns: Sequence[str] | None = None,
    chunk_rows: int = 262_144,
) -> Batches:
    """A :data:`Batches` function reading Parquet file(s) in ``chunk_rows`` batches, only
    ``columns`` (all when ``None``), one batch in memory at a time.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.parquet"
    >>> pl.DataFrame({"x": range(5), "y": range(5)}).write_parquet(path)
    >>> [f.shape for f in parquet_batches(path, columns=["x"], chunk_rows=2)()]
    [(2, 1), (2, 1), (1, 1)]
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    listed = [str(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    try:
        dataset = ds.dataset(listed, format="parquet")
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {', '.join(listed)}: {exc}") from exc
    wanted = None if columns is None else list(columns)
    if wanted is not None:
        absent = [c for c in wanted if c not in dataset.schema.names]
        if absent:
            raise DataError(f"{', '.join(listed)} lacks column(s): {', '.join(absent)}")

    def batches() -> Iterator[pl.DataFrame]:
        scanner = dataset.to_batches(
            columns=wanted,
            batch_size=chunk_rows,
            batch_readahead=0,
            fragment_readahead=0,
            use_threads=False,
            fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
        )
        for record_batch in scanner:
            frame = pl.from_arrow(record_batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame

    return batches


def fit_streamed(pipeline: Any, batches: Batches, *, target: str | None = None) -> FittedFeatures:
    """The pipeline fitted on every row of ``batches()`` (see the module docstring).

    ``pipeline`` is a :class:`~forgeml.features.FeaturePipeline`. Target encoding needs
    the raw target values: each batch must then hold the ``target`` column (default: the
    task's target), encoded with the task's classes (classification) or read as floats.
    """
    return StreamingFitter(pipeline, target=target).fit(batches).fitted


class StreamingFitter:
    """The passes of :func:`fit_streamed`; ``fit`` returns a :class:`StreamedFit`."""

    def __init__(self, pipeline: Any, *, target: str | None = None) -> None:
        self.pipeline = pipeline
        self.spec = pipeline.spec
        self.task: TaskInfo = pipeline.task
        self.target = target or self.task.target
        self.columns = pipeline.feature_columns()
        text = [c for c, t in self.columns.items() if ROLES[t] == "text"]
        if text:
            raise ConfigError(
                f"features: text column(s) {', '.join(text)} cannot be fitted streamed "
                "(TF-IDF builds its vocabulary in memory); fit in memory or add them to "
                "features.drop"
            )
        self.numeric: dict[str, _Numeric] = {}
        self.parts: dict[str, list[str]] = {}
        self.categories: dict[str, _Category] = {}
        for name, ctype in self.columns.items():
            role = ROLES[ctype]
            if role == "numeric":
                self.numeric[name] = _Numeric(name)
            elif role == "datetime":
                names = list(dict.fromkeys(self.spec.datetime.parts))
                self.parts[name] = names
                for p in names:
                    self.numeric[f"{name}\x00{p}"] = _Numeric(f"{name}__{p}")
            else:
                self.categories[name] = _Category(name)
        self.need_target = bool(self.categories) and (
            self.spec.categorical.target_encoding
            or any("target" in o.encoders for o in self.spec.columns.values())
        )
        self.n_targets = 1
        if self.task.kind == "classification" and self.task.n_classes > 2:
            self.n_targets = self.task.n_classes
        self.passes = 0
        self.n_rows = 0
        self._prior_n = 0
        self.lacks_target = False
        self._prior_sum = np.zeros(self.n_targets)
        self._queries: dict[tuple[Any, ...], list[pl.Expr]] = {}

    # -- reading

    def _frames(self, batches: Batches) -> Iterator[pl.DataFrame]:
        """Canonical feature columns (plus ``__y*``/``__valid`` target columns) per batch."""
        self.passes += 1
        for raw in batches():
            frame = to_polars(raw)
            key = tuple(frame.schema.get(c) for c in [*self.columns, self.target])
            exprs = self._queries.get(key)
            if exprs is None:
                exprs, unusable = canonical_columns(frame.schema, self.columns)
                if unusable:
                    raise DataError(
                        "training batches lack (or cannot cast) feature column(s): "
                        f"{', '.join(unusable)}"
                    )
                if self.need_target and self.target not in frame.columns:
                    if self.passes > 1 or self.n_rows:
                        raise DataError(f"a training batch lacks the target column '{self.target}'")
                    self.need_target = False  # unless a column turns out to need it
                    self.lacks_target = True
                self._queries[key] = exprs
            data = frame.select(exprs)
            for name, parts in self.parts.items():
                data = data.with_columns(
                    _part(pl.col(name), p).alias(f"{name}\x00{p}") for p in parts
                )
            if self.need_target:
                data = data.with_columns(self._targets(frame.get_column(self.target)))
            yield data

    def _targets(self, raw: pl.Series) -> list[pl.Series]:
        """``__valid`` and ``__y0..`` columns: what ``te.target_matrix`` gives."""
        task = self.task
        if task.kind == "regression":
            y = raw.cast(pl.Float64, strict=False).to_numpy().astype(np.float64)
        else:
            y = self._class_codes(raw)
        Y, valid, _ = te.target_matrix(y, task)
        return [pl.Series("__valid", valid)] + [
            pl.Series(f"__y{j}", Y[:, j]) for j in range(Y.shape[1])
        ]

    def _class_codes(self, raw: pl.Series) -> np.ndarray:
        classes = list(self.task.classes)
        try:
            codes = raw.replace_strict(
                classes, list(range(len(classes))), default=-1, return_dtype=pl.Int64
            )
            return codes.fill_null(-1).to_numpy()
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            index = {c: i for i, c in enumerate(classes)}
            return np.array([index.get(v, -1) for v in raw.to_list()], dtype=np.int64)

    # -- the passes

    def fit(self, batches: Batches) -> StreamedFit:
        for frame in self._frames(batches):
            self.n_rows += frame.height
            if self.need_target:
                self._add_prior(frame)
            for key, stream in self.numeric.items():
                values = frame.get_column(key).drop_nulls().to_numpy()
                stream.first_pass(values.astype(np.float64, copy=False), frame.height)
            for name, cat in self.categories.items():
                self._count(cat, frame, name)
        if self.n_rows == 0:
            raise DataError("cannot fit features on an empty input")
        clips = self._ask_ranks()
        self._select(batches)
        clip_bounds = {key: self._clip(key, q) for key, q in clips.items()}
        needs_clipped = [
            key
            for key, bounds in clip_bounds.items()
            if bounds is not None
            and (self.spec.numeric.scale == "standard" or self.spec.numeric.impute == "mean")
        ]
        if needs_clipped:
            for frame in self._frames(batches):
                for key in needs_clipped:
                    lo, hi = clip_bounds[key]
                    values = frame.get_column(key).drop_nulls().to_numpy()
                    self.numeric[key].clipped.add_values(np.clip(values, lo, hi))
        blocks: list[Any] = []
        for name, ctype in self.columns.items():
            role = ROLES[ctype]
            if role == "numeric":
                blocks.append(self._numeric_block(name, ctype, clip_bounds.get(name)))
            elif role == "datetime":
                blocks.append(self._datetime_block(name))
            else:
                blocks.append(self._categorical_block(name))
        return StreamedFit(FittedFeatures(blocks, self.columns), self.passes, self.n_rows)

    def _count(self, cat: _Category, frame: pl.DataFrame, name: str) -> None:
        col = frame.get_column(name)
        cat.n_rows += len(col)
        cat.n_null += col.null_count()
        aggs = [pl.len().cast(pl.Int64).alias("n")]
        if self.need_target:
            valid = pl.col("__valid")
            aggs.append(valid.sum().cast(pl.Int64).alias("n_valid"))
            aggs += [
                pl.col(f"__y{j}").filter(valid).sum().alias(f"s{j}") for j in range(self.n_targets)
            ]
        part = (
            frame.filter(pl.col(name).is_not_null()).group_by(pl.col(name).alias("value")).agg(aggs)
        )
        merged = part if cat.table is None else pl.concat([cat.table, part])
        if cat.table is not None:
            merged = merged.group_by("value").agg(pl.all().sum())
        cat.table = merged

    def _add_prior(self, frame: pl.DataFrame) -> None:
        """Valid target rows and their target sums (for the prior)."""
        valid = frame.get_column("__valid").to_numpy()
        self._prior_n += int(valid.sum())
        for j in range(self.n_targets):
            self._prior_sum[j] += float(frame.get_column(f"__y{j}").to_numpy()[valid].sum())

    def _ask_ranks(self) -> dict[str, tuple[float, float]]:
        """Ask each stream for the order statistics its fit needs; returns the clip
        quantiles per numeric column that is clipped."""
        spec = self.spec.numeric
        clips: dict[str, tuple[float, float]] = {}
        for name, ctype in self.columns.items():
            role = ROLES[ctype]
            keys = []
            if role == "numeric":
                keys = [name]
                stream = self.numeric[name]
                if spec.clip_quantiles is not None and ctype != "bool" and stream.n:
                    clips[name] = spec.clip_quantiles
                    stream.ask_quantile(spec.clip_quantiles[0])
                    stream.ask_quantile(spec.clip_quantiles[1])
            elif role == "datetime":
                keys = [f"{name}\x00{p}" for p in self.parts[name]]
            if spec.impute == "median":
                for key in keys:
                    self.numeric[key].ask_quantile(0.5)
        return clips

    def _select(self, batches: Batches) -> None:
        """Resolve every asked rank: settle from the first histogram, then one pass per
        level (collecting small bins, refining large ones)."""
        for stream in self.numeric.values():
            for request in stream.pending():
                request.settle(stream.hist)
        while any(s.pending() for s in self.numeric.values()):
            groups: dict[tuple[str, int, int, bool], Any] = {}
            for key, stream in self.numeric.items():
                for r in stream.pending():
                    group = (key, r.prefix, r.shift, r.collect)
                    if group not in groups:
                        groups[group] = [] if r.collect else np.zeros(_BINS, dtype=np.int64)
            for frame in self._frames(batches):
                by_stream: dict[str, np.ndarray] = {}
                for key, prefix, shift, collect in groups:
                    keys = by_stream.get(key)
                    if keys is None:
                        values = frame.get_column(key).drop_nulls().to_numpy()
                        keys = by_stream[key] = _keys(values.astype(np.float64, copy=False))
                    chosen = keys[(keys >> np.uint64(shift)) == np.uint64(prefix)]
                    if collect:
                        groups[key, prefix, shift, collect].append(chosen)
                    else:
                        sub = ((chosen >> np.uint64(shift - _BITS)) & _MASK).astype(np.int64)
                        groups[key, prefix, shift, collect] += np.bincount(sub, minlength=_BINS)
            for key, stream in self.numeric.items():
                for r in stream.pending():
                    found = groups[key, r.prefix, r.shift, r.collect]
                    if r.collect:
                        ordered = np.sort(np.concatenate(found))
                        r.key = int(ordered[r.rank - r.before])
                    else:
                        r.settle(found)

    def _clip(self, key: str, q: tuple[float, float]) -> tuple[float, float]:
        stream = self.numeric[key]
        lo = finite(stream.quantile(q[0]))
        hi = finite(stream.quantile(q[1]))
        return lo, max(lo, hi)

    # -- blocks

    def _fill_and_moments(
        self, stream: _Numeric, clip: tuple[float, float] | None, impute: str
    ) -> tuple[float, _Moments]:
        """The fill value and the moments of the clipped, filled values."""
        if clip is None:
            nonnull = stream.raw
        else:
            nonnull = stream.clipped
            if not nonnull.n and stream.n:  # moments not needed: only min and max
                lo, hi = clip
                nonnull = _Moments(
                    stream.n,
                    0.0,
                    0.0,
                    min(max(stream.raw.lo, lo), hi),
                    min(max(stream.raw.hi, lo), hi),
                )
        if impute == "zero" or not stream.n:
            fill = 0.0
        elif impute == "median":
            fill = finite(stream.quantile(0.5, clip))
        else:
            fill = finite(nonnull.mean)
        return fill, nonnull.with_fill(stream.n_null, fill)

    @staticmethod
    def _scaling(moments: _Moments, how: str) -> tuple[float, float]:
        center, scale = 0.0, 1.0
        if moments.n and how == "standard":
            center = finite(moments.mean)
            scale = finite(math.sqrt(max(moments.m2, 0.0) / moments.n))
        elif moments.n and how == "minmax":
            center = finite(moments.lo)
            scale = finite(moments.hi) - center
        if not scale > 0.0 or scale == float("inf"):
            scale = 1.0
        return center, scale

    def _numeric_block(
        self, name: str, ctype: str, clip: tuple[float, float] | None
    ) -> NumericBlock:
        spec = self.spec.numeric
        stream = self.numeric[name]
        boolean = ctype == "bool"
        fill, moments = self._fill_and_moments(stream, clip, spec.impute)
        scaling = "none" if boolean else spec.scale
        center, scale = self._scaling(moments, scaling)
        return NumericBlock(
            column=name,
            clip=clip,
            fill=fill,
            center=center,
            scale=scale,
            indicator=spec.missing_indicator and stream.n_null > 0,
            impute=spec.impute,
            scaling=scaling,
        )

    def _datetime_block(self, name: str) -> DatetimeBlock:
        spec = self.spec.numeric
        fills, centers, scales = [], [], []
        n_null = 0
        for p in self.parts[name]:
            stream = self.numeric[f"{name}\x00{p}"]
            fill, moments = self._fill_and_moments(stream, None, spec.impute)
            center, scale = self._scaling(moments, spec.scale)
            fills.append(fill)
            centers.append(center)
            scales.append(scale)
            n_null = stream.n_null
        return DatetimeBlock(
            column=name,
            part_names=tuple(self.parts[name]),
            fills=tuple(fills),
            indicator=spec.missing_indicator and n_null > 0,
            impute=spec.impute,
            centers=tuple(centers),
            scales=tuple(scales),
        )

    def _categorical_block(self, name: str) -> CategoricalBlock:
        spec = self.spec.categorical
        cat = self.categories[name]
        table = cat.table
        if table is None or table.height == 0:
            table = pl.DataFrame({"value": [], "n": []}, schema={"value": pl.String, "n": pl.Int64})
        table = table.sort("value")
        override = self.spec.columns.get(name)
        encoders = choose_encoders(
            table.height, spec, None if override is None else override.encoders
        )
        block = CategoricalBlock(
            column=name,
            categories=tuple(table.get_column("value").to_list()),
            counts=table.get_column("n").to_numpy().astype(np.int64),
            n_rows=cat.n_rows,
            encoders=encoders,
            indicator=self.spec.numeric.missing_indicator and cat.n_null > 0,
            min_frequency=spec.min_frequency,
            buckets=spec.hash_buckets,
        )
        if "target" in encoders:
            if self.lacks_target:
                raise DataError(
                    f"column '{name}' is target-encoded, but the training batches lack the "
                    f"target column '{self.target}'"
                )
            k = self.n_targets
            if self._prior_n:
                prior = self._prior_sum / self._prior_n
            else:
                prior = np.full(k, 0.0 if k == 1 else 1.0 / k)
            if "n_valid" in table.columns:
                counts = table.get_column("n_valid").to_numpy().astype(np.float64)
                sums = np.stack(
                    [table.get_column(f"s{j}").to_numpy().astype(np.float64) for j in range(k)],
                    axis=1,
                )
            else:
                counts, sums = np.zeros(table.height), np.zeros((table.height, k))
            smoothing = spec.target_smoothing
            denom = counts + smoothing
            with np.errstate(invalid="ignore", divide="ignore"):
                values = (sums + smoothing * prior) / denom[:, None]
            values[denom == 0] = prior
            labels = [str(c) for c in self.task.classes] if k > 1 else []
            block.target = TargetStats(prior, values, tuple(labels), smoothing)
        return block
