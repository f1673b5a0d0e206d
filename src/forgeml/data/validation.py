"""Validate batches against the declared schema: valid rows out, bad rows quarantined.

A :class:`Validator` sees the batches of one input in order. On the first batch with
rows it settles the schema: declared types win, the rest are inferred from that batch
(:func:`~forgeml.data.schema.infer_schema`). Every later batch is cast to it, so a
column whose later values do not fit quarantines those rows with a ``type:`` reason
instead of failing the run. Each row is either returned valid (cast to its types) or
quarantined with every reason it failed; :meth:`Validator.finish` checks the column rule
``max_null_fraction`` over all rows and returns the :class:`ValidationReport`.

>>> from forgeml.data.base import Batch
>>> validator = Validator({"age": ColumnSpec(type="int", min=0), "y": ColumnSpec()}, target="y")
>>> valid, quarantined = validator.validate(Batch(pl.DataFrame({"age": ["4", "-1", "x"], "y": ["a", "b", None]})))
>>> valid.rows()
[(4, 'a')]
>>> quarantined["reason"].to_list()
['age: -1 is below min 0', "age: 'x' is not a valid int; target 'y' is null"]
>>> report = validator.finish()
>>> report.n_valid + report.n_quarantined == report.n_input, report.reasons
(True, {'range:age': 1, 'target_null:y': 1, 'type:age': 1})
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from forgeml.config.spec import ColumnSpec
from forgeml.data.base import Batch
from forgeml.data.casting import cast_to_schema
from forgeml.data.quarantine import quarantine_frame
from forgeml.data.report import ValidationReport
from forgeml.data.rules import Failure, UniqueState, check_rules, row_failures
from forgeml.data.schema import column_missing, infer_schema
from forgeml.data.summary import ColumnStats
from forgeml.errors import DataError, DataSourceError

__all__ = ["ROW_INDEX", "Validator"]

ROW_INDEX = "_row"
_EXAMPLES = 3


class Validator:
    """Stateful row and column validation over the batches of one input.

    ``row_index=True`` adds a ``_row`` column (the input ordinal) first in valid frames,
    so a caller can tie predictions or splits back to input rows.
    """

    def __init__(
        self,
        columns: Mapping[str, ColumnSpec],
        *,
        target: str | None = None,
        source: str = "the data",
        row_index: bool = False,
    ) -> None:
        self.declared = dict(columns)
        self.target = target
        self.source = source
        self.row_index = row_index
        self.schema: dict[str, ColumnSpec] | None = None
        self._columns: list[str] | None = None
        self._unique = UniqueState()
        self._stats: dict[str, ColumnStats] = {}
        self._report = ValidationReport(source=source)

    @property
    def columns(self) -> list[str] | None:
        """The input's column names, once the first batch was seen."""
        return self._columns

    def validate(self, batch: Batch) -> tuple[pl.DataFrame, pl.DataFrame]:
        """``(valid, quarantined)`` rows of ``batch``; see the module docstring.

        Until a batch with rows settles the schema, an empty batch's (empty) valid frame
        comes back uncast: leave such frames out when concatenating.
        """
        frame = batch.frame
        self._check_columns(frame)
        if self.schema is None and frame.height:
            self.schema = infer_schema(
                frame, target=self.target, declared=self.declared, source=self.source
            )
            check_rules(self.schema, self.target)
        report = self._report
        report.n_input += batch.n_input
        report.n_unreadable += len(batch.bad_lines)
        if batch.bad_lines:
            report.reasons["unreadable_line"] = report.reasons.get("unreadable_line", 0) + len(
                batch.bad_lines
            )
            self._examples(
                "unreadable_line", [f"line {b.line}: {b.reason}" for b in batch.bad_lines]
            )
        rows = pl.int_range(
            batch.row_offset, batch.row_offset + frame.height, dtype=pl.Int64, eager=True
        )
        if self.schema is None:  # no row seen yet: nothing to cast
            bad_rows = quarantine_frame(
                frame, rows, pl.Series([], dtype=pl.String), batch.bad_lines, batch.lines
            )
            report.n_quarantined += bad_rows.height
            return self._with_index(frame, rows), bad_rows
        cast, failed = cast_to_schema(frame, self.schema)
        failures = row_failures(frame, cast, failed, self.schema, self.target, self._unique)
        bad = pl.repeat(False, frame.height, eager=True)
        for failure in failures:
            bad = bad | failure.mask
        reasons = self._reasons(frame, cast, failures, bad)
        valid = self._with_index(cast.filter(~bad), rows.filter(~bad))
        lines = None if batch.lines is None else batch.lines.filter(bad)
        bad_rows = quarantine_frame(
            frame.filter(bad), rows.filter(bad), reasons, batch.bad_lines, lines
        )
        self._account(frame, valid, bad_rows.height)
        return valid, bad_rows

    def finish(self) -> ValidationReport:
        """The report over every batch seen; checks ``max_null_fraction`` column rules."""
        report = self._report
        n_rows = report.n_input - report.n_unreadable
        schema = self.schema or {}
        for name in self._columns or []:
            spec = schema.get(name, ColumnSpec(type="string"))
            stats = self._stats.get(name, ColumnStats())
            summary = stats.summary(spec.type or "string", n_rows)
            report.columns[name] = summary
            if n_rows and stats.nulls == n_rows and name != self.target:
                report.warnings.append(
                    f"column '{name}' is entirely null; it will not be used as a feature"
                )
            limit = spec.max_null_fraction
            if limit is not None and n_rows and summary.null_fraction > limit:
                report.column_errors.append(
                    f"column '{name}' is {summary.null_fraction:.1%} null, more than its "
                    f"max_null_fraction of {limit:.1%}"
                )
        report.reasons = dict(sorted(report.reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        return report

    def _check_columns(self, frame: pl.DataFrame) -> None:
        if self._columns is None:
            for name in [*self.declared, *([self.target] if self.target else [])]:
                if name not in frame.columns:
                    what = "target column" if name == self.target else "declared column"
                    raise column_missing(name, frame.columns, self.source, what=what)
            if self.row_index and ROW_INDEX in frame.columns:
                raise DataError(
                    f"{self.source} has a column named '{ROW_INDEX}', which forgeml uses for "
                    "row numbers; rename it"
                )
            self._columns = list(frame.columns)
            self._stats = {name: ColumnStats() for name in self._columns}
        elif frame.columns != self._columns:
            raise DataSourceError(
                f"data.source: the columns of {self.source} changed while reading: "
                f"{frame.columns} after {self._columns}"
            )

    def _reasons(
        self, frame: pl.DataFrame, cast: pl.DataFrame, failures: list[Failure], bad: pl.Series
    ) -> pl.Series:
        """The ``"; "``-joined messages of the failing rows, and the report's counts."""
        if not failures:
            return pl.Series("reason", [], dtype=pl.String)
        columns = dict.fromkeys(f.code.split(":", 1)[1] for f in failures)
        needed = [frame[c].alias(f"raw:{c}") for c in columns]
        needed += [cast[c].alias(f"cast:{c}") for c in columns]
        masks = [f.mask.alias(f"mask:{i}") for i, f in enumerate(failures)]
        work = pl.DataFrame(needed + masks).filter(bad)
        messages = work.select(
            pl.when(pl.col(f"mask:{i}")).then(f.message).alias(f"msg:{i}")
            for i, f in enumerate(failures)
        )
        for i, failure in enumerate(failures):
            n = int(failure.mask.sum())
            self._report.reasons[failure.code] = self._report.reasons.get(failure.code, 0) + n
            if len(self._report.examples.get(failure.code, [])) < _EXAMPLES:
                self._examples(
                    failure.code, messages[f"msg:{i}"].drop_nulls().head(_EXAMPLES).to_list()
                )
        return messages.select(
            pl.concat_str(pl.all(), separator="; ", ignore_nulls=True).alias("reason")
        ).to_series()

    def _examples(self, code: str, messages: list[str]) -> None:
        shown = self._report.examples.setdefault(code, [])
        shown.extend(messages[: _EXAMPLES - len(shown)])

    def _account(self, frame: pl.DataFrame, valid: pl.DataFrame, n_bad: int) -> None:
        self._report.n_valid += valid.height
        self._report.n_quarantined += n_bad
        for name, stats in self._stats.items():
            stats.nulls += frame[name].null_count()
            stats.sketch.update(valid[name])

    def _with_index(self, frame: pl.DataFrame, rows: pl.Series) -> pl.DataFrame:
        return frame.insert_column(0, rows.alias(ROW_INDEX)) if self.row_index else frame
