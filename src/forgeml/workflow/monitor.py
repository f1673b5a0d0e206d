"""``forgeml monitor drift``: compare data (or served traffic) with a model's training profile.

The reference is the ``profile.json`` registered with the model (no training data is
read). The current rows come from any data source ``forgeml predict`` reads, or, with
``from_log``, from a ``forgeml serve --prediction-log`` folder: the model's logged inputs,
and its logged scores as the ``__prediction__`` column (prediction drift).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import DataError, DataSourceError, UsageError

__all__ = ["DriftResult", "drift_check"]


@dataclass
class DriftResult:
    model: str
    version: int
    source: str
    rows: int
    truncated: bool
    features: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        return sorted({f["feature"] for f in self.features if f["drifted"]})

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "rows": self.rows,
            "truncated": self.truncated,
            "drifted": self.drifted,
            "features": self.features,
        }


def drift_check(
    ref: str,
    source: str,
    *,
    registry: str = ".forgeml",
    from_log: bool = False,
    max_rows: int = 1_000_000,
) -> DriftResult:
    """Drift of ``source``'s rows (at most ``max_rows``, the first ones) against ``ref``."""
    from forgeml.monitoring import PROFILE_FILE, Profile, detect_drift
    from forgeml.workflow.workspace import Workspace

    if max_rows < 1:
        raise UsageError(f"--max-rows must be at least 1, got {max_rows}")
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        version = reg.resolve(ref)
        directory = Path(reg.open_artifacts(version))
        path = directory / PROFILE_FILE
        if not path.is_file():
            raise UsageError(
                f"{version.name}@{version.version} has no {PROFILE_FILE}: it was registered "
                "before forgeml kept training profiles; run forgeml run again to get one"
            )
        profile = Profile.from_dict(json.loads(path.read_text()))
    if from_log:
        frame, truncated = _from_log(source, version.name, max_rows)
    else:
        frame, truncated = _from_source(source, max_rows)
    if frame.height == 0:
        raise DataError(f"{source}: no rows to compare")
    results = detect_drift(profile, frame)
    return DriftResult(
        model=version.name,
        version=version.version,
        source=source,
        rows=frame.height,
        truncated=truncated,
        features=[
            {
                "feature": d.feature,
                "method": d.method,
                "score": round(d.score, 6),
                "p_value": None if d.p_value is None else float(f"{d.p_value:.3g}"),
                "drifted": d.drifted,
                "rows": d.rows,
            }
            for d in results
        ],
    )


def _from_source(source: str, max_rows: int) -> tuple[Any, bool]:
    import polars as pl

    from forgeml.config.spec import DataSpec
    from forgeml.data import open_source

    frames, rows = [], 0
    for batch in open_source(DataSpec(source=source)).iter_batches():
        frames.append(batch.frame)
        rows += batch.frame.height
        if rows >= max_rows:
            break
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return frame.head(max_rows), rows > max_rows


def _from_log(folder: str, model: str, max_rows: int) -> tuple[Any, bool]:
    import polars as pl

    from forgeml.monitoring import PREDICTION_COLUMN

    root = Path(folder)
    files = sorted(root.rglob("*.parquet")) if root.is_dir() else []
    if not files:
        raise DataSourceError(f"{folder}: no prediction log files (Parquet) found there")
    scan = pl.scan_parquet(files).filter(pl.col("model") == model)
    logged = scan.sort("ts", descending=True).head(max_rows + 1).collect()  # the latest rows
    if logged.height == 0:
        raise DataError(f"{folder}: no logged predictions of model '{model}'")
    truncated = logged.height > max_rows
    logged = logged.head(max_rows)
    inputs = pl.DataFrame([json.loads(text) for text in logged["inputs"].to_list()])
    return inputs.with_columns(logged["score"].alias(PREDICTION_COLUMN)), truncated
