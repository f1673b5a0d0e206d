"""Batch scoring: ``forgeml predict`` vs calling the model's ``predict_proba`` on pandas chunks.

Issue 3 asks for batch scoring rows/s next to what a user writes by hand: read a Parquet
file chunk by chunk with pandas, call the model's ``predict_proba`` on each chunk, and
append the probabilities to a Parquet file. Two such loops run: with the same forgeml model
(``forgeml.load_model``, its scikit-learn face), and with the scikit-learn pipeline the
serving peers use (``OrdinalEncoder`` + the same LightGBM, every core, see
``_adult_models.py``). forgeml runs its CLI:
``forgeml predict adult@champion rows.parquet -o scored.parquet --no-keep-columns`` (chunked
reading, typing of every value against the model's schema, the saved feature pipeline,
row-count checks, atomic write), and once more with its default of copying the input
columns into the output. Both read the same file of ``--rows``
rows resampled from UCI Adult's test split (without the target) in chunks of the same size,
each in its own process; wall time and peak memory (PSS of the process tree) are measured
from outside, alternately, ``--repeats`` times. Output row counts are checked against the
input's.

Run: ``.venv/bin/python bench/batch_scoring.py [--rows 2000000 --repeats 3]``.
Results: a table on stdout and ``bench/results/batch_scoring.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from _adult_models import TARGET, adult_frames, booster_shape, forgeml_registry, peer_pipeline
from _common import (
    CACHE,
    format_table,
    machine_info,
    now_iso,
    run_json,
    versions,
    write_result,
)

NAME = "batch_scoring"
WORK = CACHE / "batch_scoring"
CHUNK = 262_144
PANDAS_LOOP = """
import json, sys, time
import pyarrow as pa, pyarrow.parquet as pq

source, out, which, model_ref, registry, chunk = sys.argv[1:7]
started = time.perf_counter()
if which == "forgeml":  # the same model as forgeml predict, through its scikit-learn face
    import forgeml
    model = forgeml.load_model(model_ref, registry=registry)
else:  # the peers' pipeline (OrdinalEncoder + the same LightGBM), every core for predict
    import joblib
    model = joblib.load(model_ref)
    model.set_params(lightgbm__n_jobs=None)
writer, rows = None, 0
for batch in pq.ParquetFile(source).iter_batches(batch_size=int(chunk)):
    frame = batch.to_pandas()
    proba = model.predict_proba(frame)[:, 1]
    table = pa.table({"probability": proba})
    if writer is None:
        writer = pq.ParquetWriter(out, table.schema)
    writer.write_table(table)
    rows += len(frame)
writer.close()
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
"""
FORGEML = "forgeml predict --no-keep-columns"
FORGEML_KEEP = "forgeml predict (inputs copied)"
SAME_MODEL = "pandas loop, forgeml model"
PIPELINE = "pandas loop, scikit-learn pipeline"


def make_input(work: Path, rows: int) -> Path:
    """``rows`` rows resampled (seed 0) from Adult's test split, target removed."""
    import numpy as np

    path = work / f"adult_{rows}.parquet"
    if path.is_file():
        return path
    _, test = adult_frames()
    pick = np.random.default_rng(0).integers(0, test.height, size=rows)
    test.drop(TARGET)[pick].write_parquet(path)
    return path


def forgeml_once(source: Path, registry: Path, out: Path, *, keep: bool) -> dict[str, Any]:
    forgeml = str(Path(sys.executable).parent / "forgeml")
    args = ["predict", "adult@champion", str(source), "-o", str(out), "--registry", str(registry)]
    args.append("--keep-columns" if keep else "--no-keep-columns")
    result = run_json(sys.executable, _CLI, [forgeml, *args, "--chunk-rows", str(CHUNK)])
    return {
        "rows": result["n_scored"],
        "input_rows": result["n_input"],
        "wall_seconds": result["_process"]["wall_seconds"],
        "peak_pss_mib": result["_process"]["tree_peak_pss_mib"],
    }


# ``run_json`` runs a Python script and reads one JSON line: this one runs the CLI with JSON
# output and prints its summary on one line.
_CLI = """
import json, subprocess, sys
done = subprocess.run([*sys.argv[1:], "-O", "json"], capture_output=True, text=True)
if done.returncode:
    sys.exit(done.stderr)
print(json.dumps(json.loads(done.stdout)))
"""


def pandas_once(source: Path, out: Path, which: str, model: str, registry: Path) -> dict:
    args = [str(source), str(out), which, model, str(registry), str(CHUNK)]
    result = run_json(sys.executable, PANDAS_LOOP, args)
    return {
        "rows": result["rows"],
        "input_rows": None,
        "wall_seconds": result["_process"]["wall_seconds"],
        "peak_pss_mib": result["_process"]["tree_peak_pss_mib"],
    }


def main() -> None:
    import joblib
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    registry = forgeml_registry(CACHE / "serving")
    model_path = WORK / "peer_model.joblib"
    if not model_path.is_file():
        joblib.dump(peer_pipeline(booster_shape(registry)), model_path)
    source = make_input(WORK, args.rows)
    n_input = pq.ParquetFile(source).metadata.num_rows

    runs: dict[str, list[dict[str, Any]]] = {
        FORGEML: [],
        SAME_MODEL: [],
        PIPELINE: [],
        FORGEML_KEEP: [],
    }
    for i in range(args.repeats):
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for name in order:
            out = WORK / f"scored-{list(runs).index(name)}.parquet"
            out.unlink(missing_ok=True)
            if name in (FORGEML, FORGEML_KEEP):
                run = forgeml_once(source, registry, out, keep=name == FORGEML_KEEP)
            elif name == SAME_MODEL:
                run = pandas_once(source, out, "forgeml", "adult@champion", registry)
            else:
                run = pandas_once(source, out, "pipeline", str(model_path), registry)
            run["output_rows"] = pq.ParquetFile(out).metadata.num_rows
            runs[name].append(run)
            print(f"{name}: {run['wall_seconds']:.2f} s, {run['peak_pss_mib']:.0f} MiB", flush=True)

    headers = ["contender", "median s", "rows/s", "peak MiB", "output rows == input"]
    rows, medians = [], {}
    for name, done in runs.items():
        seconds = statistics.median(r["wall_seconds"] for r in done)
        medians[name] = seconds
        equal = all(r["output_rows"] == n_input for r in done)
        peak = max(r["peak_pss_mib"] for r in done)
        rows.append([name, f"{seconds:.2f}", f"{n_input / seconds:,.0f}", f"{peak:.0f}", equal])
    print("\n" + format_table(headers, rows))
    same = medians[SAME_MODEL] / medians[FORGEML]
    native = medians[PIPELINE] / medians[FORGEML]
    counts_ok = all(r["output_rows"] == n_input for done in runs.values() for r in done)
    data = {
        "title": "Batch scoring: forgeml predict vs a pandas predict_proba loop",
        "command": "bench/batch_scoring.py",
        "date": now_iso(),
        "machine": machine_info(),
        "versions": versions(
            ["forgeml", "polars", "pandas", "pyarrow", "lightgbm", "scikit-learn"]
        ),
        "parameters": {
            "rows": n_input,
            "chunk_rows": CHUNK,
            "repeats": args.repeats,
            "input": "Parquet, UCI Adult test split resampled",
        },
        "runs": runs,
        "table": {"headers": headers, "rows": rows},
        "goal": {
            "text": "forgeml predict (typing every value, checking row counts, writing "
            "atomically) scores at least 0.95x the rows/s of a bare pandas predict loop over "
            "chunks with the same model, with output rows == input rows",
            "measured": f"forgeml {same:.2f}x the rows/s of the loop with the same model, "
            f"{native:.2f}x the loop with the scikit-learn pipeline; row counts equal: "
            f"{counts_ok}",
            "met": same >= 0.95 and counts_ok,
        },
        "notes": [
            "Both sides spend most of their time inside LightGBM's predict (the same model): "
            "parity is the expected outcome; the machinery around it costs little.",
            "forgeml reads one chunk at a time: its peak memory is flat in the file size "
            "(0.63-0.71 GiB for 2M to 12M rows of this data, measured separately).",
            "Wall time includes each process's start-up and model loading; forgeml's "
            "includes the CLI, validation of every row against the model's input schema, "
            "its row-count checks and the atomic rename of the output.",
            "The scikit-learn pipeline encodes the text columns as ordinals (14 model "
            "inputs); forgeml's model one-hot encodes the low-cardinality ones (100 inputs), "
            "and LightGBM's prediction cost grows with the row width: most of the gap to that "
            "loop, if any, is the model, not the scoring machinery.",
            "The loops write one column of probabilities; forgeml --no-keep-columns writes "
            "the label, both class probabilities and the _issues column, and by default "
            "(inputs copied) every input column as well.",
        ],
    }
    write_result(NAME, data, args.out)


if __name__ == "__main__":
    main()
