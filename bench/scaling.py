"""Scaling curve: wall time and peak memory per stage at 1e5, 1e6, 1e7 rows.

Issue 6 asks how the cost grows with the work. Realistic mixed-type rows are generated
(an id, integers with a few unreadable values, a log-normal income with 5% nulls, a
5-value plan, a Zipf-distributed city of 3,000 values, a timestamp, a flag, two Gaussian
measures and a churn label that depends on them) into one Parquet file per size, chunk by
chunk. Each stage then runs in its own process, and its wall time and peak RSS are
measured from outside (``wait4``):

* ``validate``: ``forgeml.workflow.validate.validate_spec`` — the spec's schema and rules,
  streamed; valid rows to Parquet, quarantine to Parquet;
* ``features``: the streamed feature fit (:mod:`forgeml.features.streaming`) over the
  valid rows;
* ``train``: the feature matrix of every valid row (transformed chunk by chunk into one
  float32 array) and one LightGBM configuration with fixed parameters (100 trees, 31
  leaves, 2 threads);
* ``score``: ``forgeml predict`` of the whole file with a model registered once (trained
  on 20,000 rows: scoring cost depends on the rows scored, not on how many trained it).

The growth exponent of each stage is the least-squares slope of log(time) on log(rows)
(and of log(peak memory), whose baseline is the interpreter and libraries); the goal is
linear time (slope <= 1.1).

Run: ``.venv/bin/python bench/scaling.py [--sizes 1e5 1e6 1e7]``.
Results: a table on stdout and ``bench/results/scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    CACHE,
    SHARED_NOTE,
    format_table,
    machine_info,
    now_iso,
    run_json,
    versions,
    write_result,
)

ENV = {
    **os.environ,
    "POLARS_MAX_THREADS": "2",
    "OMP_NUM_THREADS": "2",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "MALLOC_ARENA_MAX": "2",
}
STAGES = ("validate", "features", "train", "score")
CHUNK_ROWS = 262_144


def generate(path: Path, rows: int, *, seed: int = 0, chunk_rows: int = 500_000) -> None:
    """Write ``rows`` generated rows to a Parquet file, chunk by chunk."""
    import polars as pl
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    cities = pl.Series([f"city_{i:04d}" for i in range(3000)])
    plans = pl.Series(["free", "basic", "pro", "team", "enterprise"])
    writer = None
    tmp = path.with_suffix(".tmp")
    for start in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - start)
        m0, m1 = rng.normal(0, 1, n), rng.normal(5, 3, n)
        plan = plans.gather(rng.integers(0, 5, n))
        logit = 0.8 * m0 - 0.2 * m1 + (plan == "free").to_numpy() * 1.0
        seconds = rng.integers(0, 4 * 365 * 86400, n).astype("timedelta64[s]")
        frame = pl.DataFrame(
            {
                "customer_id": pl.int_range(start, start + n, eager=True).cast(pl.String),
                "age": pl.Series(rng.integers(18, 90, n))
                .cast(pl.String)
                .scatter(np.flatnonzero(rng.random(n) < 0.001), "n/a"),
                "income": pl.Series(np.round(rng.lognormal(10, 0.8, n), 2)).scatter(
                    np.flatnonzero(rng.random(n) < 0.05), None
                ),
                "plan": plan,
                "city": cities.gather(np.minimum(rng.zipf(1.3, n), 3000) - 1),
                "signup": (np.datetime64("2020-01-01T00:00:00") + seconds).astype("datetime64[us]"),
                "active": rng.random(n) < 0.7,
                "m0": m0,
                "m1": m1,
                "churn": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64),
            }
        ).to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(tmp, frame.schema, compression="zstd")
        writer.write_table(frame)
    assert writer is not None
    writer.close()
    tmp.replace(path)


def spec_for(data: Path, registry: Path) -> dict[str, Any]:
    return {
        "name": "churn",
        "task": "classification",
        "target": "churn",
        "data": {"source": str(data), "chunk_rows": CHUNK_ROWS},
        "columns": {"customer_id": {"type": "id"}, "age": {"type": "int", "min": 18, "max": 120}},
        "validation": {"max_bad_fraction": 0.05},
        "split": {"folds": 2},
        "models": {"candidates": ["lightgbm"]},
        "tuning": {"budget": {"trials": 1}},
        "engine": {"workers": 1},
        "registry": {"uri": str(registry)},
        "seed": 0,
    }


VALIDATE = """
import json, sys
from forgeml.workflow.validate import validate_spec
r = validate_spec(sys.argv[1], out=sys.argv[2])
print(json.dumps({"n_input": r.n_input, "n_valid": r.n_valid, "types": r.column_types}))
"""

FEATURES = """
import json, sys
from forgeml.config.loader import load_spec
from forgeml.features import FeaturePipeline
from forgeml.features.streaming import StreamingFitter, parquet_batches
from forgeml.tasks.info import TaskInfo
spec = load_spec(sys.argv[1])
types = json.loads(sys.argv[3])
task = TaskInfo("classification", target="churn", classes=(0, 1))
done = StreamingFitter(FeaturePipeline(spec.features, types, task)).fit(parquet_batches(sys.argv[2]))
open(sys.argv[4], "w").write(json.dumps(done.fitted.to_dict()))
print(json.dumps({"passes": done.passes, "n_features": done.fitted.n_features}))
"""

TRAIN = """
import json, sys, numpy as np, polars as pl
from forgeml.features import FittedFeatures
from forgeml.features.streaming import parquet_batches
from forgeml.models import get_adapter
fitted = FittedFeatures.from_dict(json.load(open(sys.argv[2])))
n = pl.scan_parquet(sys.argv[1]).select(pl.len()).collect().item()
X = np.empty((n, fitted.n_features), dtype=np.float32)
y = np.empty(n, dtype=np.int64)
at = 0
for frame in parquet_batches(sys.argv[1])():
    X[at : at + frame.height] = fitted.transform(frame)
    y[at : at + frame.height] = frame["churn"].to_numpy()
    at += frame.height
params = {"n_estimators": 100, "num_leaves": 31, "learning_rate": 0.1}
model = get_adapter("lightgbm").fit(X, y, subtype="binary", n_classes=2, params=params, seed=0, threads=2)
print(json.dumps({"rows": n, "features": fitted.n_features}))
"""

SCORE = """
import json, sys
from pathlib import Path
from forgeml.workflow.predict import predict_file
r = predict_file("churn", sys.argv[1], Path(sys.argv[2]), registry=sys.argv[3], keep_columns=False)
print(json.dumps({"n_input": r.n_input, "n_scored": r.n_scored}))
"""


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) on log(x)."""
    if len(xs) < 2:
        return None
    lx, ly = np.log(xs), np.log(ys)
    return round(float(np.polyfit(lx, ly, 1)[0]), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e5, 1e6, 1e7])
    parser.add_argument("--keep", action="store_true", help="Keep the generated files.")
    args = parser.parse_args()
    import yaml

    work = CACHE / "scaling"
    work.mkdir(parents=True, exist_ok=True)
    registry = work / "registry"
    shutil.rmtree(registry, ignore_errors=True)
    # one small model for the scoring stage
    sample = work / "sample.parquet"
    generate(sample, 20_000, seed=1)
    spec_path = work / "sample.yaml"
    spec_path.write_text(yaml.safe_dump(spec_for(sample, registry)))
    subprocess.run(
        [sys.executable, "-m", "forgeml.cli.main", "run", str(spec_path), "-q"],
        check=True,
        env=ENV,
        capture_output=True,
    )
    rows_out: list[dict[str, Any]] = []
    for size in args.sizes:
        n = int(size)
        data = work / f"rows-{n}.parquet"
        if not data.exists():
            print(f"generating {n:,} rows ...", flush=True)
            generate(data, n)
        spec_path = work / f"spec-{n}.yaml"
        spec_path.write_text(yaml.safe_dump(spec_for(data, registry)))
        valid, features, scored = (
            work / f"valid-{n}.parquet",
            work / f"features-{n}.json",
            work / f"scored-{n}.parquet",
        )
        result: dict[str, Any] = {"rows": n, "file_mib": round(data.stat().st_size / 2**20, 1)}
        v = run_json(sys.executable, VALIDATE, [str(spec_path), str(valid)], env=ENV)
        f = run_json(
            sys.executable,
            FEATURES,
            [str(spec_path), str(valid), json.dumps(v["types"]), str(features)],
            env=ENV,
        )
        t = run_json(sys.executable, TRAIN, [str(valid), str(features)], env=ENV)
        s = run_json(sys.executable, SCORE, [str(data), str(scored), str(registry)], env=ENV)
        assert s["n_scored"] == n == v["n_input"]
        for stage, out in zip(STAGES, (v, f, t, s), strict=True):
            result[stage] = {
                "seconds": out["_process"]["wall_seconds"],
                "peak_rss_mib": out["_process"]["max_rss_mib"],
            }
        result["feature_passes"] = f["passes"]
        result["n_features"] = f["n_features"]
        rows_out.append(result)
        print(
            f"{n:>12,} rows: "
            + ", ".join(
                f"{s} {result[s]['seconds']:.1f}s/{result[s]['peak_rss_mib']:.0f}MiB"
                for s in STAGES
            ),
            flush=True,
        )
        if not args.keep:
            for p in (data, valid, features, scored):
                p.unlink(missing_ok=True)
    sizes = [r["rows"] for r in rows_out]
    exponents = {
        stage: {
            "time": slope(sizes, [r[stage]["seconds"] for r in rows_out]),
            "peak_memory": slope(sizes, [r[stage]["peak_rss_mib"] for r in rows_out]),
        }
        for stage in STAGES
    }
    table = [
        [f"{r['rows']:,}"]
        + [f"{r[s]['seconds']:.1f} s / {r[s]['peak_rss_mib']:.0f} MiB" for s in STAGES]
        for r in rows_out
    ]
    table.append(
        ["exponent (time / mem)"]
        + [f"{exponents[s]['time']} / {exponents[s]['peak_memory']}" for s in STAGES]
    )
    print(format_table(["rows", *STAGES], table))
    write_result(
        "scaling",
        {
            "benchmark": "scaling",
            "date": now_iso(),
            "machine": machine_info(),
            "versions": versions(["forgeml", "polars", "pyarrow", "lightgbm", "numpy"]),
            "note": SHARED_NOTE,
            "goal": {
                "text": "the time of every stage grows at most linearly with the rows "
                "(log-log slope <= 1.1)",
                "measured": ", ".join(f"{stage} {e['time']}" for stage, e in exponents.items()),
                "met": all(e["time"] is not None and e["time"] <= 1.1 for e in exponents.values()),
            },
            "chunk_rows": CHUNK_ROWS,
            "results": rows_out,
            "exponents": exponents,
            "meets_goal": {
                s: (e["time"] is not None and e["time"] <= 1.1) for s, e in exponents.items()
            },
        },
    )


if __name__ == "__main__":
    main()
