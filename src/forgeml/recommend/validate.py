"""Validate an interaction log: valid events out, bad events quarantined with a reason.

Every input row is either a valid event or a row of the quarantine file (the spine's
format, :mod:`forgeml.data.quarantine`), so ``n_valid + n_quarantined == n_input``. A row
is quarantined when:

* its user or item id is null or empty (``null:<column>``);
* its time is null (``null:<column>``), cannot be read as a point in time
  (``time:<column>``), or lies after *now* plus ``future_tolerance_s`` (``future:<column>``);
* its weight is null (``null:<column>``), not a number (``weight:<column>``) or NaN/infinite
  (``not_finite:<column>``);
* it repeats an earlier event exactly (``duplicate``: same user, item, time and weight).
  Only logs with a time column are checked: without times, a repeated (user, item) row is
  a repeated interaction, not a copy.

Ids become text (``42`` and ``"42"`` are the same user; an integral float id ``42.0`` is
``"42"``), so a CSV and a Parquet copy of one log agree. Times become UTC datetimes
(microseconds): datetimes and dates as they are (naive ones taken as UTC), ISO strings
parsed, numbers read as epoch values in ``time_unit`` (seconds by default). What a column
holds (numbers or datetime strings) is settled on the first batch with values, like the
spine's schema; later values that do not fit are quarantined.

>>> from forgeml.data.base import MemorySource
>>> frame = pl.DataFrame({"u": [1, 1, None, 2, 2], "i": ["a", "b", "a", "a", "a"],
...                       "t": [10, 20, 30, 40, 40]})
>>> valid, report = validate_interactions(MemorySource(frame), InteractionColumns("u", "i", "t"))
>>> valid.select("u", "i").rows(), report.reasons
([('1', 'a'), ('1', 'b'), ('2', 'a')], {'duplicate': 1, 'null:u': 1})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from forgeml.data.base import Batch, DataSource
from forgeml.data.fingerprint import Fingerprinter
from forgeml.data.quarantine import QuarantineWriter, quarantine_frame
from forgeml.data.report import ValidationReport
from forgeml.data.schema import column_missing
from forgeml.data.summary import ColumnSummary
from forgeml.errors import DataError, ValidationFailed

__all__ = ["ROW", "InteractionColumns", "validate_interactions"]

ROW = "_row"  # the input ordinal of each valid event (first column of the valid frame)
_UNIT_TO_US = {"s": 1_000_000.0, "ms": 1_000.0, "us": 1.0, "ns": 0.001}
_MAX_US = 9.2e18  # beyond int64 microseconds
_EXAMPLES = 3
_NUMERIC_SHARE = 0.99  # a string time column is numeric when this share of values parses


@dataclass(frozen=True)
class InteractionColumns:
    """Which input columns hold the user id, the item id and, optionally, time and weight."""

    user: str
    item: str
    time: str | None = None
    weight: str | None = None

    @property
    def roles(self) -> list[tuple[str, str]]:
        """``(role, column)`` for every named column."""
        named = [("user", self.user), ("item", self.item), ("time", self.time)]
        named.append(("weight", self.weight))
        return [(role, column) for role, column in named if column is not None]


class _Checker:
    """Per-batch checks with what must carry across batches (the time column's kind)."""

    def __init__(
        self,
        columns: InteractionColumns,
        *,
        time_unit: str,
        now: datetime,
        future_tolerance_s: float,
        source: str,
    ) -> None:
        self.columns = columns
        self.time_unit = time_unit
        self.source = source
        aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        self.limit = aware.astimezone(UTC).replace(tzinfo=None)
        self.limit_us = int(aware.timestamp() * 1_000_000 + future_tolerance_s * 1_000_000)
        self.tolerance_s = future_tolerance_s
        self.time_kind: str | None = None  # "numeric" | "datetime" | "temporal", once settled
        self.report = ValidationReport(source=source)
        self.nulls = {column: 0 for _, column in columns.roles}  # null input values

    def check(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series, pl.Series]:
        """``(cast role columns, bad mask, reasons of the bad rows)`` for one batch."""
        cols = self.columns
        cast: dict[str, pl.Series] = {}
        for column in self.nulls:
            self.nulls[column] += frame[column].null_count()
        failures: list[tuple[str, pl.Series, pl.Series]] = []  # (code, mask, message)
        for column in (cols.user, cols.item):
            ids = _as_id(frame[column])
            missing = ids.is_null() | (ids.str.strip_chars() == "").fill_null(True)
            failures.append(
                (f"null:{column}", missing, _const(f"{column} is null or empty", frame))
            )
            cast[column] = ids
        if cols.time is not None:
            times, failed_time = self._times(frame[cols.time])
            failures += failed_time
            cast[cols.time] = times
        if cols.weight is not None:
            weights, failed_weight = _weights(frame[cols.weight])
            failures += failed_weight
            cast[cols.weight] = weights
        bad = pl.repeat(False, frame.height, eager=True)
        for _, mask, _ in failures:
            bad = bad | mask
        reasons = self._reasons(failures, bad)
        return pl.DataFrame(list(cast.values())), bad, reasons

    def _times(self, raw: pl.Series) -> tuple[pl.Series, list[tuple[str, pl.Series, pl.Series]]]:
        column = raw.name
        null = raw.is_null()
        if self.time_kind is None and raw.null_count() < len(raw):
            self.time_kind = _time_kind(raw)
        kind = self.time_kind or "numeric"
        if raw.dtype.is_temporal() and raw.dtype not in (pl.Time, pl.Duration):
            times = _temporal_to_utc(raw)
        elif raw.dtype in (pl.Time, pl.Duration):
            raise DataError(
                f"time column '{column}' of {self.source}: {raw.dtype} is not a point in time"
            )
        elif kind == "numeric" or raw.dtype.is_numeric():
            times = self._numeric_times(raw)
        else:
            times = _parse_datetimes(raw.cast(pl.String))
        unreadable = times.is_null() & ~null
        micros = times.dt.epoch("us")
        future = (micros > self.limit_us).fill_null(False)
        text = _text(raw)
        unit = f" (numbers are read as epoch {self.time_unit}: recommendation.time_unit)"
        after = f"{self.limit:%Y-%m-%d %H:%M:%S} UTC + {self.tolerance_s / 3600:g} h"
        failures: list[tuple[str, pl.Series, pl.Expr | pl.Series]] = [
            (f"null:{column}", null, _const(f"{column} is null", raw)),
            (
                f"time:{column}",
                unreadable,
                pl.format("{}: '{}' is not a date or time", pl.lit(column), text),
            ),
            (
                f"future:{column}",
                future,
                pl.format(
                    "{}: {} is in the future (after {}){}",
                    pl.lit(column),
                    text,
                    pl.lit(after),
                    pl.lit(unit if kind == "numeric" else ""),
                ),
            ),
        ]
        return times.alias(column), [(c, m, _eval(e, m)) for c, m, e in failures]

    def _numeric_times(self, raw: pl.Series) -> pl.Series:
        values = raw.cast(pl.Float64, strict=False) if raw.dtype == pl.String else raw
        values = values.cast(pl.Float64)
        micros = values * _UNIT_TO_US[self.time_unit]
        ok = micros.is_finite() & (micros.abs() < _MAX_US)
        clean = pl.select(pl.when(ok).then(micros).otherwise(None)).to_series()
        return clean.round(0).cast(pl.Int64).cast(pl.Datetime("us")).alias(raw.name)

    def _reasons(
        self, failures: list[tuple[str, pl.Series, pl.Series]], bad: pl.Series
    ) -> pl.Series:
        report = self.report
        if not bool(bad.any()):
            return pl.Series("reason", [], dtype=pl.String)
        messages = []
        for code, mask, message in failures:
            n = int(mask.sum())
            if n:
                report.reasons[code] = report.reasons.get(code, 0) + n
                shown = report.examples.setdefault(code, [])
                shown.extend(message.filter(mask).head(_EXAMPLES - len(shown)).to_list())
            messages.append(pl.select(pl.when(mask).then(message)).to_series().alias(code))
        joined = pl.DataFrame(messages).filter(bad)
        return joined.select(
            pl.concat_str(pl.all(), separator="; ", ignore_nulls=True).alias("reason")
        ).to_series()


def validate_interactions(
    source: DataSource,
    columns: InteractionColumns,
    *,
    time_unit: str = "s",
    now: datetime | None = None,
    future_tolerance_s: float = 86_400.0,
    max_bad_fraction: float | None = None,
    quarantine_path: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[pl.DataFrame, ValidationReport]:
    """The valid events and the report accounting for every input row.

    The valid frame has ``_row`` (input ordinal) then the named columns, cast: ids as
    text, time as ``Datetime("us")`` (UTC), weight as ``Float64``. The quarantine file
    (when ``quarantine_path`` is given) is always written, even with zero rows. Raises
    :class:`DataError` when no row is valid, :class:`ValidationFailed` (with ``report``)
    when more than ``max_bad_fraction`` of the rows were quarantined, and
    :class:`ConfigError` naming the column when a named column is not in the data.
    """
    if time_unit not in _UNIT_TO_US:
        raise ValueError(f"time_unit must be one of {sorted(_UNIT_TO_US)}, got {time_unit!r}")
    checker = _Checker(
        columns,
        time_unit=time_unit,
        now=now or datetime.now(UTC),
        future_tolerance_s=future_tolerance_s,
        source=source.description,
    )
    report = checker.report
    fingerprinter = Fingerprinter()
    writer: QuarantineWriter | None = None
    raw_parts: list[pl.DataFrame] = []
    cast_parts: list[pl.DataFrame] = []
    n_input = 0
    input_columns: list[str] | None = None
    try:
        for batch in source.iter_batches():
            if input_columns is None:
                input_columns = list(batch.frame.columns)
                for role, column in columns.roles:
                    if column not in input_columns:
                        raise column_missing(
                            column, input_columns, source.description, what=f"{role} column"
                        )
                if ROW in input_columns:
                    raise DataError(
                        f"{source.description} has a column named '{ROW}', which forgeml uses "
                        "for row numbers; rename it"
                    )
            elif batch.frame.columns != input_columns:
                raise DataError(
                    f"the columns of {source.description} changed while reading: "
                    f"{batch.frame.columns} after {input_columns}"
                )
            if quarantine_path is not None and writer is None:
                writer = QuarantineWriter(quarantine_path, input_columns)
            fingerprinter.update(batch.frame)
            raw, cast, bad_rows = _check_batch(checker, batch)
            if writer is not None:
                writer.write(bad_rows)
            raw_parts.append(raw)
            cast_parts.append(cast)
            n_input += batch.n_input
            report.n_input += batch.n_input
            if progress is not None:
                progress(n_input)
        if n_input == 0:
            raise DataError(f"data source {source.description} has no rows")
        assert input_columns is not None
        raw = pl.concat(raw_parts, how="vertical_relaxed") if raw_parts else pl.DataFrame()
        cast = pl.concat(cast_parts, how="vertical") if cast_parts else pl.DataFrame()
        if columns.time is not None and cast.height:
            raw, cast = _quarantine_duplicates(raw, cast, columns, checker, writer)
        report.n_valid = cast.height
        report.n_quarantined = report.n_input - report.n_valid
        report.fingerprint = fingerprinter.result()
        report.columns = _summaries(
            cast, columns, checker.nulls, report.n_input - report.n_unreadable
        )
        report.reasons = dict(sorted(report.reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        if writer is not None:
            report.quarantine_path = str(writer.close())
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    _check_outcome(report, max_bad_fraction)
    return cast, report


def _check_batch(
    checker: _Checker, batch: Batch
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(raw valid rows, cast valid rows with _row, quarantine rows)`` of one batch."""
    frame = batch.frame
    report = checker.report
    if batch.bad_lines:
        report.n_unreadable += len(batch.bad_lines)
        report.reasons["unreadable_line"] = report.reasons.get("unreadable_line", 0) + len(
            batch.bad_lines
        )
        shown = report.examples.setdefault("unreadable_line", [])
        shown.extend(
            f"line {b.line}: {b.reason}" for b in batch.bad_lines[: _EXAMPLES - len(shown)]
        )
    rows = pl.int_range(
        batch.row_offset, batch.row_offset + frame.height, dtype=pl.Int64, eager=True
    ).alias(ROW)
    if frame.height == 0:
        empty = quarantine_frame(frame, rows, pl.Series([], dtype=pl.String), batch.bad_lines)
        return frame, pl.DataFrame([rows]), empty
    cast, bad, reasons = checker.check(frame)
    lines = None if batch.lines is None else batch.lines.filter(bad)
    bad_rows = quarantine_frame(
        frame.filter(bad), rows.filter(bad), reasons, batch.bad_lines, lines
    )
    keep = ~bad
    return frame.filter(keep), cast.filter(keep).insert_column(0, rows.filter(keep)), bad_rows


def _quarantine_duplicates(
    raw: pl.DataFrame,
    cast: pl.DataFrame,
    columns: InteractionColumns,
    checker: _Checker,
    writer: QuarantineWriter | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Quarantine events identical (user, item, time, weight) to an earlier one."""
    keys = [c for _, c in columns.roles]
    first = cast.select(pl.struct(keys).is_first_distinct()).to_series()
    if bool(first.all()):
        return raw, cast
    original = cast.group_by(keys, maintain_order=True).agg(pl.col(ROW).first().alias("_first"))
    dupes = cast.filter(~first).join(original, on=keys, how="left", nulls_equal=True)
    reasons = pl.format("duplicate of row {} (same {})", pl.col("_first"), pl.lit(", ".join(keys)))
    messages = dupes.select(reasons.alias("reason")).to_series()
    n = dupes.height
    report = checker.report
    report.reasons["duplicate"] = report.reasons.get("duplicate", 0) + n
    shown = report.examples.setdefault("duplicate", [])
    shown.extend(messages.head(_EXAMPLES - len(shown)).to_list())
    if writer is not None:
        dupe_raw = raw.filter(~first)
        # Order of rows in dupes follows cast's order (a left join keeps the left order).
        writer.write(quarantine_frame(dupe_raw, dupes[ROW], messages, []))
    return raw.filter(first), cast.filter(first)


def _check_outcome(report: ValidationReport, max_bad_fraction: float | None) -> None:
    if report.n_valid == 0:
        reasons = ", ".join(f"{code} ({n})" for code, n in report.top_reasons())
        where = f"; they are in {report.quarantine_path}" if report.quarantine_path else ""
        error = DataError(
            f"{report.source}: none of the {report.n_input:,} rows is a usable event "
            f"(top reasons: {reasons}){where}"
        )
        error.report = report  # type: ignore[attr-defined]  # for failure.json
        raise error
    message = None if max_bad_fraction is None else report.failure(max_bad_fraction)
    if message is not None:
        failed = ValidationFailed(message)
        failed.report = report  # type: ignore[attr-defined]
        raise failed


def _summaries(
    cast: pl.DataFrame, columns: InteractionColumns, nulls: dict[str, int], n_rows: int
) -> dict[str, ColumnSummary]:
    """Type, null fraction (of the input values) and distinct valid values per column."""
    kinds = {"user": "id", "item": "id", "time": "datetime", "weight": "float"}
    out = {}
    for role, column in columns.roles:
        n_unique = int(cast[column].n_unique()) if cast.height else 0
        fraction = nulls[column] / n_rows if n_rows else 0.0
        out[column] = ColumnSummary(kinds[role], round(fraction, 6), n_unique)
    return out


def _as_id(series: pl.Series) -> pl.Series:
    """Ids as text; integral floats (ids that went through a float column) without ``.0``."""
    dtype = series.dtype
    if dtype == pl.String:
        return series
    if dtype.is_float():
        integral = series.is_finite() & (series == series.round(0))
        if bool((integral | series.is_null() | series.is_nan()).all()):
            return series.cast(pl.Int64, strict=False).cast(pl.String)
    try:
        return series.cast(pl.String)
    except pl.exceptions.PolarsError:
        from forgeml.data.casting import as_text

        return as_text(series)


def _time_kind(raw: pl.Series) -> str:
    if raw.dtype.is_temporal():
        return "temporal"
    if raw.dtype.is_numeric():
        return "numeric"
    values = raw.drop_nulls().cast(pl.String)
    parsed = values.cast(pl.Float64, strict=False)
    share = 1.0 - parsed.null_count() / len(values) if len(values) else 0.0
    return "numeric" if share >= _NUMERIC_SHARE else "datetime"


def _temporal_to_utc(raw: pl.Series) -> pl.Series:
    series = raw
    if series.dtype == pl.Date:
        return series.cast(pl.Datetime("us"))
    assert isinstance(series.dtype, pl.Datetime)
    if series.dtype.time_zone is not None:
        series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return series.cast(pl.Datetime("us"))


def _parse_datetimes(text: pl.Series) -> pl.Series:
    """ISO dates/datetimes (with or without an offset) as naive UTC; unparseable -> null."""
    stripped = text.str.strip_chars().str.replace(r"(?i)z$", "+00:00")
    frame = pl.DataFrame([stripped.alias("t")])
    aware = frame.select(
        pl.col("t").str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us", time_zone="UTC"
        )
    ).to_series()
    parsed = aware.dt.replace_time_zone(None)
    for fmt in ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        missing = parsed.is_null()
        if not bool(missing.any()):
            break
        attempt = frame.select(
            pl.col("t").str.to_datetime(fmt, strict=False, time_unit="us")
        ).to_series()
        parsed = pl.select(pl.when(missing).then(attempt).otherwise(parsed)).to_series()
    return parsed.cast(pl.Datetime("us")).alias(text.name)


def _weights(raw: pl.Series) -> tuple[pl.Series, list[tuple[str, pl.Series, pl.Series]]]:
    column = raw.name
    null = raw.is_null()
    if raw.dtype == pl.String:
        values = raw.str.strip_chars().cast(pl.Float64, strict=False)
    elif raw.dtype.is_numeric() or raw.dtype == pl.Boolean:
        values = raw.cast(pl.Float64)
    else:
        values = pl.Series(column, [None] * len(raw), dtype=pl.Float64)
    not_number = values.is_null() & ~null
    not_finite = (~values.is_finite()).fill_null(False)
    text = _text(raw)
    failures: list[tuple[str, pl.Series, pl.Expr | pl.Series]] = [
        (f"null:{column}", null, _const(f"{column} is null", raw)),
        (
            f"weight:{column}",
            not_number,
            pl.format("{}: '{}' is not a number", pl.lit(column), text),
        ),
        (
            f"not_finite:{column}",
            not_finite,
            pl.format("{}: {} is not finite", pl.lit(column), text),
        ),
    ]
    return values.alias(column), [(c, m, _eval(e, m)) for c, m, e in failures]


def _text(raw: pl.Series) -> pl.Expr:
    from forgeml.data.casting import as_text

    return pl.lit(as_text(raw))


def _const(message: str, like: pl.DataFrame | pl.Series) -> pl.Series:
    return pl.repeat(message, len(like), eager=True, dtype=pl.String)


def _eval(expr: pl.Expr | pl.Series, mask: pl.Series) -> pl.Series:
    """A message per row (only rows in ``mask`` are read later)."""
    if isinstance(expr, pl.Series):
        return expr
    return pl.select(expr.alias("m")).to_series().alias("m")
