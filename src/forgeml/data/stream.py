"""Run a whole source through validation: quarantine file, fingerprint, limits.

Two ways in, one implementation:

* :func:`validate_source` returns every valid row in one frame (training).
* :func:`iter_validated` yields ``(valid, batch)`` pairs, one per source batch, and keeps
  only one batch in memory: batch scoring of inputs larger than memory. Its
  :attr:`ValidationStream.report` is ready once the iteration has finished.

Both write the quarantine file (always, when a path is given; see
:mod:`forgeml.data.quarantine`) before raising :class:`ValidationFailed`, and raise
:class:`DataError` for an input without rows or without its target column.

>>> from forgeml.data.base import MemorySource
>>> source = MemorySource(pl.DataFrame({"x": [1, 2, None, 4], "y": ["a", "b", "a", None]}), chunk_rows=2)
>>> valid, report = validate_source(source, {"x": ColumnSpec(not_null=True)}, target="y", max_bad_fraction=0.5, quarantine_path=None)
>>> valid.height, report.n_quarantined, report.reasons
(2, 2, {'not_null:x': 1, 'target_null:y': 1})
>>> validate_source(source, {}, target="y", max_bad_fraction=0.1, quarantine_path=None)
Traceback (most recent call last):
...
forgeml.errors.ValidationFailed: 25.0% of the rows of <in-memory frame> failed validation, more than the 10.0% allowed (validation.max_bad_fraction); top reasons: target_null:y (1, e.g. target 'y' is null)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import polars as pl

from forgeml.config.spec import ColumnSpec
from forgeml.data.base import Batch, DataSource
from forgeml.data.fingerprint import Fingerprinter
from forgeml.data.quarantine import QuarantineWriter
from forgeml.data.report import ValidationReport
from forgeml.data.validation import Validator
from forgeml.errors import DataError, ValidationFailed

__all__ = ["ValidationStream", "iter_validated", "validate_source"]


class ValidationStream:
    """Iterate to validate: yields ``(valid_rows, source_batch)`` per batch."""

    def __init__(
        self,
        source: DataSource,
        columns: Mapping[str, ColumnSpec],
        *,
        target: str | None = None,
        max_bad_fraction: float | None = None,
        quarantine_path: str | Path | None = None,
        progress: Callable[[int], None] | None = None,
        row_index: bool = False,
    ) -> None:
        self.source = source
        self.validator = Validator(
            columns, target=target, source=source.description, row_index=row_index
        )
        self.max_bad_fraction = max_bad_fraction
        self.quarantine_path = None if quarantine_path is None else Path(quarantine_path)
        self.progress = progress
        self._report: ValidationReport | None = None

    @property
    def report(self) -> ValidationReport:
        """The report, once the stream was iterated to its end."""
        if self._report is None:
            raise RuntimeError("the validation report is ready after iterating to the end")
        return self._report

    def __iter__(self) -> Iterator[tuple[pl.DataFrame, Batch]]:
        fingerprinter = Fingerprinter()
        writer: QuarantineWriter | None = None
        n_input = 0
        try:
            for batch in self.source.iter_batches():
                valid, quarantined = self.validator.validate(batch)
                fingerprinter.update(batch.frame)
                if self.quarantine_path is not None:
                    if writer is None:
                        writer = QuarantineWriter(self.quarantine_path, batch.frame.columns)
                    writer.write(quarantined)
                n_input += batch.n_input
                if self.progress is not None:
                    self.progress(n_input)
                yield valid, batch
            if n_input == 0:
                raise DataError(f"data source {self.source.description} has no rows")
            report = self.validator.finish()
            report.fingerprint = fingerprinter.result()
            if writer is not None:
                report.quarantine_path = str(writer.close())
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        self._report = report
        message = None if self.max_bad_fraction is None else report.failure(self.max_bad_fraction)
        if message is not None:
            error = ValidationFailed(message)
            error.report = report  # type: ignore[attr-defined]  # for callers that show it
            raise error


def iter_validated(
    source: DataSource,
    columns: Mapping[str, ColumnSpec],
    *,
    target: str | None = None,
    max_bad_fraction: float | None = None,
    quarantine_path: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    row_index: bool = False,
) -> ValidationStream:
    """A :class:`ValidationStream` over ``source``: score valid rows batch by batch.

    >>> from forgeml.data.base import MemorySource
    >>> stream = iter_validated(MemorySource(pl.DataFrame({"x": [1, 2, 3]}), chunk_rows=2), {}, row_index=True)
    >>> [valid["_row"].to_list() for valid, _ in stream], stream.report.n_valid
    ([[0, 1], [2]], 3)
    """
    return ValidationStream(
        source,
        columns,
        target=target,
        max_bad_fraction=max_bad_fraction,
        quarantine_path=quarantine_path,
        progress=progress,
        row_index=row_index,
    )


def validate_source(
    source: DataSource,
    columns: Mapping[str, ColumnSpec],
    *,
    target: str | None,
    max_bad_fraction: float,
    quarantine_path: str | Path | None,
    progress: Callable[[int], None] | None = None,
    row_index: bool = False,
) -> tuple[pl.DataFrame, ValidationReport]:
    """All valid rows of ``source`` cast to their types, and the report; raises
    :class:`ValidationFailed` (after writing the quarantine file) when more than
    ``max_bad_fraction`` of the input was quarantined or a column rule failed; the
    exception's ``report`` attribute holds the :class:`ValidationReport`.

    >>> from forgeml.data.base import MemorySource
    >>> source = MemorySource(pl.DataFrame({"x": ["1", "2", "three"]}))
    >>> valid, report = validate_source(source, {"x": ColumnSpec(type="int")}, target=None, max_bad_fraction=0.5, quarantine_path=None)
    >>> valid["x"].to_list(), report.reasons
    ([1, 2], {'type:x': 1})
    """
    stream = ValidationStream(
        source,
        columns,
        target=target,
        max_bad_fraction=max_bad_fraction,
        quarantine_path=quarantine_path,
        progress=progress,
        row_index=row_index,
    )
    frames = [valid for valid, _ in stream]
    # Batches seen before the first row were not cast: leave them out (the last batch was).
    typed = [f for f in frames if f.height] or frames[-1:]
    return pl.concat(typed, how="vertical_relaxed"), stream.report
