"""Streamed validation (valid rows + quarantine straight to Parquet, one batch in memory)
gives exactly what the in-memory validation of a run gives: counts, reasons, examples,
valid rows (typed) and quarantined rows; and ``forgeml validate`` exposes it."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from forgeml.config.spec import ColumnSpec, DataSpec
from forgeml.data import open_source, validate_source
from forgeml.data.streamed_validation import ParquetRowsWriter, validate_to_parquet
from forgeml.errors import DataError, DataSourceError, ValidationFailed

RULES = {
    "rownames": ColumnSpec(type="id", unique=True),
    "dep_delay": ColumnSpec(type="float", min=-20, max=300),
    "carrier": ColumnSpec(allowed=["UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN"]),
    "tailnum": ColumnSpec(regex=r"N[0-9]{3,4}[A-Z]{0,2}"),
    "dep_time": ColumnSpec(not_null=True),
    "time_hour": ColumnSpec(type="datetime"),
}


@pytest.fixture(scope="module")
def flights_csv(flights_sample: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 real flights as CSV, with a few duplicated ids and damaged values added so
    every kind of reason occurs."""
    frame = flights_sample.with_columns(pl.col(pl.Float64).round(3)).cast(
        dict.fromkeys(flights_sample.columns, pl.String)
    )
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 997 == 5)
        .then(pl.lit("n/a"))
        .otherwise(pl.col("dep_delay"))
        .alias("dep_delay"),
        pl.when(pl.int_range(pl.len()) % 1499 == 7)
        .then(pl.lit("yesterday"))
        .otherwise(pl.col("time_hour"))
        .alias("time_hour"),
    )
    frame = pl.concat([frame, frame.slice(100, 25)])  # duplicated rownames
    path = tmp_path_factory.mktemp("flights") / "flights.csv"
    frame.write_csv(path)
    return path


def source(path: Path, chunk_rows: int = 1_000):
    return open_source(DataSpec(source=str(path), chunk_rows=chunk_rows))


@pytest.mark.parametrize("chunk_rows", [1_000, 7_777, 100_000])
def test_streamed_equals_in_memory_on_real_data(
    flights_csv: Path, tmp_path: Path, chunk_rows
) -> None:
    mem_q = tmp_path / "mem-quarantine.parquet"
    valid, mem = validate_source(
        source(flights_csv, chunk_rows),
        RULES,
        target="late",
        max_bad_fraction=1.0,
        quarantine_path=mem_q,
    )
    out, q = tmp_path / "valid.parquet", tmp_path / "quarantine.parquet"
    report = validate_to_parquet(
        source(flights_csv, chunk_rows),
        RULES,
        target="late",
        valid_path=out,
        quarantine_path=q,
        max_bad_fraction=1.0,
    )
    assert (report.n_input, report.n_valid, report.n_quarantined) == (
        mem.n_input,
        mem.n_valid,
        mem.n_quarantined,
    )
    assert report.n_valid + report.n_quarantined == report.n_input == 20_025
    # every kind of reason happened, with the same counts and examples
    assert {c.split(":")[0] for c in report.reasons} >= {
        "unique",
        "range",
        "allowed",
        "regex",
        "not_null",
        "type",
        "target_null",
    }
    assert report.reasons == mem.reasons
    assert report.examples == mem.examples
    assert report.column_types == mem.column_types
    assert report.fingerprint == mem.fingerprint
    written = pl.read_parquet(out)
    assert written.schema == valid.schema
    assert written.equals(valid)
    assert pl.read_parquet(q).equals(pl.read_parquet(mem_q))
    assert report.quarantine_path == str(q)


def test_parquet_input_and_row_index(flights_sample: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "flights.parquet"
    flights_sample.write_parquet(path, row_group_size=3_000)
    rules = {
        "dep_delay": ColumnSpec(max=120),
        "month": ColumnSpec(type="int", allowed=[1, 2, 3, 4, 5, 6]),
    }
    valid, mem = validate_source(
        source(path, 2_000),
        rules,
        target="late",
        max_bad_fraction=1.0,
        quarantine_path=None,
        row_index=True,
    )
    out = tmp_path / "valid.parquet"
    report = validate_to_parquet(
        source(path, 2_000),
        rules,
        target="late",
        valid_path=out,
        quarantine_path=None,
        row_index=True,
    )
    assert report.reasons == mem.reasons and report.quarantine_path is None
    assert pl.read_parquet(out).equals(valid)
    assert pl.read_parquet(out)["_row"].is_sorted()


def test_too_many_bad_rows_still_writes_both_files(flights_csv: Path, tmp_path: Path) -> None:
    out, q = tmp_path / "valid.parquet", tmp_path / "quarantine.parquet"
    with pytest.raises(ValidationFailed, match="max_bad_fraction") as info:
        validate_to_parquet(
            source(flights_csv),
            RULES,
            target="late",
            valid_path=out,
            quarantine_path=q,
            max_bad_fraction=0.01,
        )
    report = info.value.report  # type: ignore[attr-defined]
    assert pl.read_parquet(out).height == report.n_valid
    assert pl.read_parquet(q).height == report.n_quarantined > 0


def test_a_failure_midway_leaves_previous_files_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    pl.DataFrame({"x": ["1"] * 3000, "y": ["a"] * 3000}).write_csv(folder / "a.csv")
    pl.DataFrame({"x": ["1"] * 10, "z": ["b"] * 10}).write_csv(folder / "b.csv")  # other columns
    out, q = tmp_path / "valid.parquet", tmp_path / "q.parquet"
    out.write_bytes(b"old valid")
    q.write_bytes(b"old quarantine")
    with pytest.raises(DataSourceError, match="columns"):
        validate_to_parquet(
            source(folder / "*.csv"), {}, target=None, valid_path=out, quarantine_path=q
        )
    assert out.read_bytes() == b"old valid" and q.read_bytes() == b"old quarantine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts", "q.parquet", "valid.parquet"]


def test_empty_input_and_same_paths(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("x,y\n")
    with pytest.raises(DataError, match="no rows"):
        validate_to_parquet(
            source(path), {}, target=None, valid_path=tmp_path / "v.parquet", quarantine_path=None
        )
    assert not (tmp_path / "v.parquet").exists()
    with pytest.raises(DataError, match="both go to"):
        validate_to_parquet(
            source(path),
            {},
            target=None,
            valid_path=tmp_path / "a.parquet",
            quarantine_path=tmp_path / "a.parquet",
        )


def test_rows_writer_casts_later_batches_and_refuses_misfits(tmp_path: Path) -> None:
    with ParquetRowsWriter(tmp_path / "w.parquet") as writer:
        writer.write(pl.DataFrame({"a": [1], "b": ["x"]}))
        writer.write(pl.DataFrame({"a": [2], "b": [None]}))  # b: Null dtype, cast to string
    assert pl.read_parquet(tmp_path / "w.parquet").rows() == [(1, "x"), (2, None)]
    writer = ParquetRowsWriter(tmp_path / "bad.parquet")
    writer.write(pl.DataFrame({"a": [1]}))
    with pytest.raises(DataError, match="do not fit"):
        writer.write(pl.DataFrame({"c": ["z"]}))
    writer.abort()
    assert not (tmp_path / "bad.parquet").exists()


# ---------------------------------------------------------------------------- the CLI


def write_spec(folder: Path, data: Path, **extra) -> Path:
    spec = {
        "name": "flights",
        "task": "classification",
        "target": "late",
        "data": {"source": str(data), "chunk_rows": 5_000},
        "columns": {
            "dep_delay": {"type": "float", "min": -20, "max": 300},
            "carrier": {"allowed": ["UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN"]},
        },
        "validation": {"max_bad_fraction": 0.5},
        **extra,
    }
    path = folder / "forgeml.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_cli_validate_writes_files_and_reports_json(cli, flights_csv: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, flights_csv)
    out = tmp_path / "valid.parquet"
    result = cli("validate", str(spec), "-o", str(out), "--output", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["ok"] and data["failure"] is None
    assert data["n_valid"] + data["n_quarantined"] == data["n_input"] == 20_025
    assert data["quarantine"] == str(tmp_path / "valid.quarantine.parquet")
    assert pl.read_parquet(out).height == data["n_valid"]
    assert pl.read_parquet(data["quarantine"]).height == data["n_quarantined"]
    assert data["reasons"]["allowed:carrier"] > 0
    # text output names the counts and the files
    text = cli("validate", str(spec), "-o", str(out), "--quiet")
    assert text.code == 0 and "20,025 rows" in text.out and "allowed:carrier" in text.out


def test_cli_validate_exit_codes(cli, flights_csv: Path, tmp_path: Path) -> None:
    strict = write_spec(tmp_path, flights_csv, validation={"max_bad_fraction": 0.001})
    q = tmp_path / "bad.parquet"
    failed = cli("validate", str(strict), "--quarantine", str(q), "--quiet")
    assert failed.code == 1
    assert "FAILED" in failed.out and "max_bad_fraction" in failed.out
    assert pl.read_parquet(q).height > 0
    assert cli("validate", str(strict), "-o", str(tmp_path / "valid.csv")).code == 2
    assert "expected a .parquet" in cli("validate", str(strict), "-o", str(tmp_path / "v.csv")).err
    missing = cli("validate", str(strict), "-o", str(tmp_path / "no" / "v.parquet"))
    assert missing.code == 2 and "does not exist" in missing.err
    bad_spec = cli("validate", str(strict), "--set", "data.chunk_rows=5")
    assert bad_spec.code == 2 and "chunk_rows" in bad_spec.err
