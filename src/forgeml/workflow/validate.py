"""``forgeml validate``: run a spec's schema and rules over its data, streamed.

The data source (``data.source``) is read batch by batch, never whole, and every row goes
through the same validation as ``forgeml run`` (:mod:`forgeml.data.streamed_validation`):
valid rows, cast to their types, are appended to a Parquet file (``-o``), quarantined rows
with their reasons to the quarantine file. Memory stays at about one batch
(``data.chunk_rows``), so a file larger than memory validates like a small one, and the
valid file can be scored or trained on afterwards.

Where the quarantine goes: ``--quarantine`` if given, else ``validation.quarantine_dir``
(``<dir>/quarantine.parquet``), else next to the valid file
(``<valid stem>.quarantine.parquet``), else ``quarantine.parquet`` in the current folder.

The result accounts for 100% of the input rows (``n_valid + n_quarantined == n_input``);
``failure`` says why the data would stop a run (``validation.max_bad_fraction`` exceeded or
a column rule failed), ``None`` when it would not. The CLI exits 1 in that case.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.config.loader import load_spec
from forgeml.config.spec import Spec
from forgeml.errors import DataSourceError, ValidationFailed
from forgeml.workflow.reporting import NullReporter, Reporter

__all__ = ["ValidateResult", "validate_spec"]


@dataclass
class ValidateResult:
    """What ``forgeml validate`` found; ``to_dict()`` is the ``--output json`` summary."""

    source: str
    valid_path: str | None
    quarantine_path: str | None
    n_input: int
    n_valid: int
    n_quarantined: int
    n_unreadable: int
    reasons: dict[str, int]
    examples: dict[str, list[str]]
    column_types: dict[str, str]
    warnings: list[str]
    failure: str | None
    seconds: float
    fingerprint: str | None = None
    report: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "valid": self.valid_path,
            "quarantine": self.quarantine_path,
            "n_input": self.n_input,
            "n_valid": self.n_valid,
            "n_quarantined": self.n_quarantined,
            "n_unreadable": self.n_unreadable,
            "bad_fraction": self.n_quarantined / self.n_input if self.n_input else 0.0,
            "reasons": self.reasons,
            "examples": self.examples,
            "column_types": self.column_types,
            "warnings": self.warnings,
            "ok": self.ok,
            "failure": self.failure,
            "fingerprint": self.fingerprint,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.n_input / self.seconds) if self.seconds > 0 else None,
        }


def _parquet_path(path: str | Path, option: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise DataSourceError(f"{option} {out}: expected a .parquet file name")
    if out.exists() and out.is_dir():
        raise DataSourceError(f"{option} {out}: is a folder, expected a .parquet file name")
    return out


def _quarantine_path(spec: Spec, valid: Path | None, given: str | Path | None) -> Path:
    if given is not None:
        return _parquet_path(given, "--quarantine")
    if spec.validation.quarantine_dir:
        return Path(spec.resolve_path(spec.validation.quarantine_dir)) / "quarantine.parquet"
    if valid is not None:
        return valid.with_name(f"{valid.stem}.quarantine.parquet")
    return Path("quarantine.parquet")


def validate_spec(
    spec: str | Path | Spec | dict[str, Any],
    *,
    out: str | Path | None = None,
    quarantine: str | Path | None = None,
    overrides: Iterable[str] = (),
    reporter: Reporter | None = None,
) -> ValidateResult:
    """Validate the spec's ``data.source`` streamed; write valid rows to ``out`` (optional)
    and quarantined rows to the quarantine file (see the module docstring).

    Raises :class:`~forgeml.errors.ConfigError` / :class:`~forgeml.errors.DataSourceError`
    for a bad spec, source or path; data that fails the spec's limits is not an exception
    but ``result.failure``.
    """
    from forgeml.data import open_source
    from forgeml.data.streamed_validation import validate_to_parquet

    reporter = reporter or NullReporter()
    started = time.monotonic()
    loaded = load_spec(spec, overrides)
    if loaded.data.source is None and not loaded.data.query:
        raise DataSourceError("data.source is not set; forgeml validate needs a file or URL")
    valid_path = None if out is None else _parquet_path(out, "--out")
    quarantine_path = _quarantine_path(loaded, valid_path, quarantine)
    if valid_path is not None and valid_path.resolve() == quarantine_path.resolve():
        raise DataSourceError(
            f"--out and the quarantine file are the same file ({valid_path}); choose another"
        )
    for path, option in ((valid_path, "--out"), (quarantine_path, "--quarantine")):
        if path is not None and not path.parent.exists():
            raise DataSourceError(f"{option} {path}: folder {path.parent} does not exist")
    source = open_source(loaded.data, resolve=loaded.resolve_path)
    reporter.stage("validate", source.description)
    failure = None
    try:
        report = validate_to_parquet(
            source,
            loaded.columns,
            target=loaded.target,
            valid_path=valid_path,
            quarantine_path=quarantine_path,
            max_bad_fraction=loaded.validation.max_bad_fraction,
            progress=reporter.rows,
        )
    except ValidationFailed as exc:
        if getattr(exc, "report", None) is None:
            raise
        report = exc.report  # type: ignore[attr-defined]
        failure = str(exc)
    for warning in report.warnings:
        reporter.warn(warning)
    reporter.info(
        f"{report.source}: {report.n_input:,} rows = {report.n_valid:,} valid + "
        f"{report.n_quarantined:,} quarantined"
    )
    return ValidateResult(
        source=report.source,
        valid_path=None if valid_path is None else str(valid_path),
        quarantine_path=report.quarantine_path,
        n_input=report.n_input,
        n_valid=report.n_valid,
        n_quarantined=report.n_quarantined,
        n_unreadable=report.n_unreadable,
        reasons=dict(report.reasons),
        examples=dict(report.examples),
        column_types=report.column_types,
        warnings=list(report.warnings),
        failure=failure,
        seconds=time.monotonic() - started,
        fingerprint=None if report.fingerprint is None else report.fingerprint.sha256,
        report=report,
    )
