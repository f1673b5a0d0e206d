"""Larger than memory on one machine: validation, feature fitting and batch scoring of a
CSV file three times larger than the memory the process may use.

Each stage runs in a subprocess whose private writable memory (``RLIMIT_DATA``: heap and
anonymous mappings, which is what a too-large frame would need) is capped at
:data:`CAP_MB`. ``RLIMIT_AS`` cannot be used: the shared libraries of pyarrow/polars alone
reserve more address space than the cap. Allocators that reserve address space ahead are
told not to (``ARROW_DEFAULT_MEMORY_POOL=system``, ``MALLOC_ARENA_MAX=2``, two Polars
threads), so the cap measures memory actually asked for; peak RSS is reported too.

Results are compared with the in-memory path in this (uncapped) process: the streamed
fit equals ``FeaturePipeline.fit`` on every valid row, the valid rows of the first batch
equal the in-memory validation of the same rows, and the scores of a sample equal the
model's in-memory predictions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

pytestmark = pytest.mark.slow

CAP_MB = 640
ROWS = 6_400_000
CHUNK_ROWS = 30_000
ENV = {
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "MALLOC_ARENA_MAX": "2",
    "POLARS_MAX_THREADS": "2",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "FORGEML_DEBUG": "1",
}
_AGENTS = [
    f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    f"Chrome/{100 + i}.0.{i * 37}.{i * 11} Safari/537.36"
    for i in range(40)
]
_NOTES = [
    f"customer contacted support about {topic}; follow-up scheduled, ticket {i:05d} closed "
    "after the second reply from the account team"
    for i, topic in enumerate(["billing", "login", "export", "latency", "invoices"] * 8)
]


def _chunk(rng: np.random.Generator, start: int, n: int) -> pl.DataFrame:
    cities = pl.Series([f"city_{i:04d}" for i in range(3000)])
    age = pl.Series(rng.integers(18, 90, n)).cast(pl.String)
    seconds = rng.integers(0, 4 * 365 * 86400, n).astype("timedelta64[s]")
    m0, m1 = rng.normal(0, 1, n), rng.normal(5, 3, n)
    plan = pl.Series(["free", "basic", "pro", "team", "enterprise"]).gather(rng.integers(0, 5, n))
    logit = 0.8 * m0 - 0.2 * m1 + (plan == "free").to_numpy() * 1.0
    return pl.DataFrame(
        {
            "customer_id": pl.int_range(start, start + n, eager=True).cast(pl.String),
            "age": age.scatter(np.flatnonzero(rng.random(n) < 0.001), "n/a"),
            "income": pl.Series(np.round(rng.lognormal(10, 0.8, n), 2)).scatter(
                np.flatnonzero(rng.random(n) < 0.05), None
            ),
            "plan": plan,
            "city": cities.gather(np.minimum(rng.zipf(1.3, n), 3000) - 1),
            "user_agent": pl.Series(_AGENTS).gather(rng.integers(0, len(_AGENTS), n)),
            "note": pl.Series(_NOTES).gather(rng.integers(0, len(_NOTES), n)),
            "signup": (np.datetime64("2020-01-01T00:00:00") + seconds).astype("datetime64[us]"),
            "active": rng.random(n) < 0.7,
            "m0": np.round(m0, 4),
            "m1": np.round(m1, 4),
            "churn": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64),
        }
    )


def generate(path: Path, rows: int, *, seed: int = 0, chunk_rows: int = 250_000) -> None:
    """A realistic mixed-type CSV written chunk by chunk (never whole in memory)."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as fh:
        for start in range(0, rows, chunk_rows):
            frame = _chunk(rng, start, min(chunk_rows, rows - start))
            frame.write_csv(fh, include_header=start == 0)


def capped(code: str, cwd: Path) -> dict:
    """Run ``code`` in a subprocess under the memory cap; returns its JSON result plus
    ``peak_rss_mb``. The code sets ``result`` (a dict)."""
    script = (
        textwrap.dedent(
            f"""
        import json, resource, sys
        cap = {CAP_MB} * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
        result = {{}}
        """
        )
        + textwrap.dedent(code)
        + textwrap.dedent(
            """
        # VmHWM: this process's own peak. ru_maxrss would not do: Linux carries the
        # parent's high-water mark over exec (the subprocess is spawned by this test,
        # which by then holds millions of rows in memory).
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
        result["peak_rss_mb"] = int(hwm.split()[1]) / 1024
        print("RESULT " + json.dumps(result, default=str))
        """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_validate_fit_and_score_a_file_three_times_the_memory_cap(tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    generate(data, ROWS)
    size_mb = data.stat().st_size / 2**20
    assert size_mb >= 3 * CAP_MB, f"the file ({size_mb:.0f} MiB) must be 3x the cap"
    spec_path = tmp_path / "forgeml.yaml"
    spec = {
        "name": "churn",
        "task": "classification",
        "target": "churn",
        "data": {"source": str(data), "chunk_rows": CHUNK_ROWS},
        "columns": {
            "customer_id": {"type": "id", "unique": False},
            "age": {"type": "int", "min": 18, "max": 120},
            "signup": {"type": "datetime"},
        },
        "validation": {"max_bad_fraction": 0.05},
        "features": {"drop": ["note"]},
        "split": {"folds": 2},
        "models": {"candidates": ["lightgbm"]},
        "tuning": {"budget": {"trials": 1}},
        "engine": {"workers": 1},
        "registry": {"uri": str(tmp_path / "registry")},
        "seed": 0,
    }
    spec_path.write_text(yaml.safe_dump(spec))

    # 1. streamed validation under the cap
    valid = tmp_path / "valid.parquet"
    validated = capped(
        f"""
        from forgeml.workflow.validate import validate_spec
        r = validate_spec({str(spec_path)!r}, out={str(valid)!r})
        result.update(r.to_dict())
        """,
        tmp_path,
    )
    assert validated["ok"], validated["failure"]
    assert validated["n_input"] == ROWS
    assert validated["n_valid"] + validated["n_quarantined"] == ROWS
    assert set(validated["reasons"]) == {"type:age"}
    assert validated["peak_rss_mb"] < CAP_MB
    n_bad = pl.scan_csv(data, infer_schema=False).filter(pl.col("age") == "n/a").select(pl.len())
    assert validated["n_quarantined"] == n_bad.collect(engine="streaming").item()
    # the first batch's valid rows equal the in-memory validation of those rows
    from forgeml.config.loader import load_spec
    from forgeml.data import open_source, validate_source

    loaded = load_spec(spec_path)
    head = tmp_path / "head.csv"
    pl.read_csv(data, n_rows=CHUNK_ROWS, infer_schema=False).write_csv(head)
    head_spec = loaded.data.model_copy(update={"source": str(head)})
    in_memory, _ = validate_source(
        open_source(head_spec),
        loaded.columns,
        target="churn",
        max_bad_fraction=1.0,
        quarantine_path=None,
    )
    streamed_head = pl.scan_parquet(valid).head(in_memory.height).collect()
    assert streamed_head.equals(in_memory)

    # 2. streamed feature fit over every valid row, under the cap
    types = dict(validated["column_types"])
    fitted_path = tmp_path / "features.json"
    fit = capped(
        f"""
        from forgeml.config.loader import load_spec
        from forgeml.features import FeaturePipeline
        from forgeml.features.streaming import StreamingFitter, parquet_batches
        from forgeml.tasks.info import TaskInfo
        spec = load_spec({str(spec_path)!r})
        types = {types!r}
        task = TaskInfo("classification", target="churn", classes=(0, 1))
        pipe = FeaturePipeline(spec.features, types, task, seed=0)
        done = StreamingFitter(pipe).fit(parquet_batches({str(valid)!r}, chunk_rows=100_000))
        open({str(fitted_path)!r}, "w").write(json.dumps(done.fitted.to_dict()))
        result.update(passes=done.passes, n_rows=done.n_rows)
        """,
        tmp_path,
    )
    assert fit["n_rows"] == validated["n_valid"]
    assert fit["peak_rss_mb"] < CAP_MB
    # ... equal to the in-memory fit on the same rows (this process is not capped)
    from forgeml.config.spec import FeaturesSpec
    from forgeml.features import FeaturePipeline, FittedFeatures
    from forgeml.tasks.info import TaskInfo

    streamed = FittedFeatures.from_dict(json.loads(fitted_path.read_text()))
    frame = pl.read_parquet(valid)
    task = TaskInfo("classification", target="churn", classes=(0, 1))
    pipe = FeaturePipeline(FeaturesSpec.model_validate(spec["features"]), types, task)
    reference = pipe.fit(frame, frame["churn"].to_numpy()).to_dict()
    del frame
    got = streamed.to_dict()
    assert got["feature_names"] == reference["feature_names"]
    for a, b in zip(got["blocks"], reference["blocks"], strict=True):
        for key in a:
            if key in ("center", "scale", "centers", "scales"):
                np.testing.assert_allclose(a[key], b[key], rtol=1e-9, err_msg=a["column"])
            else:
                assert a[key] == b[key], (a["column"], key)

    # 3. a small model trained on a sample, then `forgeml predict` of the whole file
    sample = tmp_path / "sample.csv"
    pl.read_csv(data, n_rows=20_000, infer_schema=False).write_csv(sample)
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "forgeml.cli.main",
            "run",
            str(spec_path),
            "-q",
            "--set",
            f"data.source={sample}",
        ],
        cwd=tmp_path,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    scored = tmp_path / "scored.parquet"
    predicted = capped(
        f"""
        from forgeml.workflow.predict import predict_file
        r = predict_file("churn", {str(data)!r}, __import__("pathlib").Path({str(scored)!r}),
                         registry={str(tmp_path / "registry")!r}, chunk_rows={CHUNK_ROWS},
                         keep_columns=False)
        result.update(r.to_dict())
        """,
        tmp_path,
    )
    assert predicted["n_input"] == ROWS == predicted["n_scored"]
    assert predicted["peak_rss_mb"] < CAP_MB
    assert pl.scan_parquet(scored).select(pl.len()).collect().item() == ROWS
    # the scores of a sample equal the model's in-memory predictions
    from forgeml.workflow.models import load_bundle_ref

    bundle = load_bundle_ref("churn", str(tmp_path / "registry"))
    rows = pl.read_csv(data, n_rows=5_000, infer_schema=False)
    from forgeml.workflow.predict import _typed

    typed, _ = _typed(rows, bundle.input_schema, bundle.datetime_formats or {})
    expected = bundle.predict_frame(typed)
    got_scores = pl.scan_parquet(scored).head(5_000).collect()
    for column in expected.columns:
        if expected[column].dtype.is_float():
            np.testing.assert_allclose(
                got_scores[column].to_numpy(), expected[column].to_numpy(), rtol=1e-6
            )
        else:
            assert got_scores[column].equals(expected[column]), column
