"""``forgeml predict``: score a file with a registered model, streamed in chunks.

The input is read chunk by chunk (never whole), each chunk goes through the model's saved
feature pipeline, and the predictions are appended to a Parquet file written atomically
(a temp file in the same folder, renamed at the end). Every parsed input row gets exactly
one output row, in input order. Values that do not fit the model's column types are scored
as missing and the row is flagged in an ``_issues`` column naming those columns; lines that
cannot be parsed at all are reported and written to a sidecar ``<out>.rejected.parquet``
with their line numbers — never dropped silently.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import DataError, DataSourceError
from forgeml.workflow.reporting import NullReporter, Reporter

__all__ = ["PredictResult", "predict_file"]


@dataclass
class PredictResult:
    model: str
    version: int
    input: str
    output: str
    n_input: int
    n_scored: int
    n_unreadable: int
    rejected_path: str | None
    seconds: float
    missing_columns: list[str] = field(default_factory=list)
    n_flagged: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "output": self.output,
            "n_input": self.n_input,
            "n_scored": self.n_scored,
            "n_unreadable": self.n_unreadable,
            "rejected": self.rejected_path,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.n_scored / self.seconds) if self.seconds > 0 else None,
            "missing_columns": self.missing_columns,
            "n_flagged": self.n_flagged,
        }


def predict_file(
    ref: str,
    input: str,
    out: Path,
    *,
    registry: str = ".forgeml",
    delimiter: str = ",",
    chunk_rows: int = 262_144,
    keep_columns: bool = True,
    reporter: Reporter | None = None,
) -> PredictResult:
    """Score ``input`` with the model ``ref`` and write ``out`` (Parquet)."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from forgeml.config.spec import DataSpec
    from forgeml.data import open_source
    from forgeml.workflow.models import load_bundle_ref

    reporter = reporter or NullReporter()
    started = time.monotonic()
    reporter.stage("load", ref)
    bundle = load_bundle_ref(ref, registry)
    meta = bundle.metadata or {}
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise DataSourceError(f"--out {out}: expected a .parquet file name")
    if not out.parent.exists():
        raise DataSourceError(f"--out {out}: folder {out.parent} does not exist")
    source = open_source(
        DataSpec(source=input, delimiter=delimiter, chunk_rows=max(1_000, chunk_rows))
    )
    reporter.stage("predict", f"{source.description} -> {out}")
    n_input = n_scored = n_flagged = 0
    bad_lines: list[Any] = []
    writer: pq.ParquetWriter | None = None
    missing: set[str] = set()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        for batch in source.iter_batches():
            bad_lines.extend(batch.bad_lines)
            frame = batch.frame
            n_input += frame.height
            missing.update(c for c in bundle.input_schema if c not in frame.columns)
            typed, issues = _typed(frame, bundle.input_schema, bundle.datetime_formats or {})
            n_flagged += int(issues.is_not_null().sum())
            scored = bundle.predict_frame(typed).with_columns(issues)
            if scored.height != frame.height:  # an internal invariant, checked on every chunk
                raise DataError(
                    f"row count mismatch in a chunk: {frame.height} in, {scored.height} out"
                )
            if keep_columns:
                clash = [c for c in scored.columns if c in frame.columns]
                frame = frame.rename({c: f"input_{c}" for c in clash})
                scored = pl.concat([frame, scored], how="horizontal")
            table = scored.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            elif table.schema != writer.schema:
                table = table.cast(writer.schema)
            writer.write_table(table)
            n_scored += scored.height
            reporter.rows(n_input)
        if writer is None:  # an input with a header and no rows: still write a valid file
            empty = bundle.predict_frame(pl.DataFrame({c: [] for c in bundle.input_schema}))
            pq.write_table(pa.Table.from_pylist([], schema=empty.to_arrow().schema), tmp)
        else:
            writer.close()
            writer = None
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    rejected = None
    if bad_lines:
        rejected = out.with_name(out.stem + ".rejected.parquet")
        pl.DataFrame(
            {
                "_line": [b.line for b in bad_lines],
                "_raw": [b.text for b in bad_lines],
                "reason": [b.reason for b in bad_lines],
            }
        ).write_parquet(rejected)
        reporter.warn(f"{len(bad_lines)} unreadable line(s) written to {rejected}")
    if n_flagged:
        reporter.warn(
            f"{n_flagged:,} row(s) had values that do not fit the model's column types; they "
            "were scored with those values as missing and are flagged in the _issues column"
        )
    if missing:
        reporter.warn(
            f"input lacks column(s) {', '.join(sorted(missing))}: treated as missing values"
        )
    return PredictResult(
        model=str(meta.get("name", ref)),
        version=int(meta.get("version", 0)),
        input=source.description,
        output=str(out),
        n_input=n_input + len(bad_lines),
        n_scored=n_scored,
        n_unreadable=len(bad_lines),
        rejected_path=str(rejected) if rejected else None,
        seconds=time.monotonic() - started,
        missing_columns=sorted(missing),
        n_flagged=n_flagged,
    )


def _typed(frame: Any, schema: dict[str, str], formats: dict[str, str]) -> tuple[Any, Any]:
    """Cast ``frame``'s model columns to their training types; a ``_issues`` column names,
    per row, the columns whose values did not fit (null when none)."""
    import polars as pl

    from forgeml.config.spec import ColumnSpec
    from forgeml.data import cast_to_schema

    present = {
        c: ColumnSpec(type=kind, datetime_format=formats.get(c))
        for c, kind in schema.items()
        if c in frame.columns
    }
    if not present:
        return frame, pl.Series("_issues", [None] * frame.height, dtype=pl.String)
    cast, failed = cast_to_schema(frame.select(list(present)), present)
    issues = failed.select(
        pl.concat_str(
            [pl.when(pl.col(c)).then(pl.lit(c)) for c in failed.columns],
            separator=", ",
            ignore_nulls=True,
        ).alias("_issues")
    )["_issues"]
    issues = pl.Series("_issues", issues).replace("", None)
    return frame.with_columns(cast), issues
