"""validate_source / iter_validated end to end: the quarantine file, limits and errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from forgeml.config.spec import ColumnSpec, DataSpec
from forgeml.data import (
    MemorySource,
    QuarantineWriter,
    fingerprint_source,
    iter_validated,
    open_source,
    validate_source,
)
from forgeml.data.quarantine import quarantine_frame
from forgeml.errors import ConfigError, DataError, DataSourceError, ValidationFailed

QUARANTINE_SCHEMA_TAIL = {
    "_row": pl.Int64,
    "_line": pl.Int64,
    "_raw": pl.String,
    "reason": pl.String,
}


@pytest.fixture
def messy_flights(flights_sample: pl.DataFrame, tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    """The real sample as CSV, with three unreadable lines and two unparseable distances."""
    frame = flights_sample  # 2 MB of CSV: several parse blocks
    lines = frame.write_csv().splitlines()
    lines[10] += ",oops"  # line 11: one field too many
    lines[2_000] = "garbage"  # line 2001
    distance = frame.columns.index("distance")
    for i in (100, 4_000):  # data rows 99 and 3999
        fields = lines[i].split(",")
        fields[distance] = "far"
        lines[i] = ",".join(fields)
    lines.insert(15_000, "a,b")  # line 15001
    path = tmp_path / "flights.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, frame


def test_validate_a_messy_real_csv(messy_flights, tmp_path: Path) -> None:
    path, frame = messy_flights
    source = open_source(DataSpec(source=str(path), chunk_rows=1_000))
    seen: list[int] = []
    quarantine = tmp_path / "out" / "quarantine.parquet"
    valid, report = validate_source(
        source,
        {"distance": ColumnSpec(type="int")},
        target="late",
        max_bad_fraction=0.2,
        quarantine_path=quarantine,
        progress=seen.append,
        row_index=True,
    )
    n_rows = frame.height - 2  # two data lines became unreadable
    assert report.n_input == n_rows + 3 == seen[-1]
    assert seen == sorted(seen) and len(seen) > 1
    assert report.n_unreadable == 3
    parsed = frame.with_row_index().filter(~pl.col("index").is_in([9, 1_999]))
    assert report.reasons == {
        "target_null:late": parsed["late"].null_count(),
        "unreadable_line": 3,
        "type:distance": 2,
    }
    assert report.n_valid + report.n_quarantined == report.n_input
    assert report.quarantine_path == str(quarantine)
    assert report.fingerprint == fingerprint_source(source)
    assert valid.height == report.n_valid and valid.schema["distance"] == pl.Int64

    stored = pl.read_parquet(quarantine)
    assert stored.height == report.n_quarantined
    assert dict(stored.schema) == {
        **dict.fromkeys(frame.columns, pl.String),
        **QUARANTINE_SCHEMA_TAIL,
    }
    unreadable = stored.filter(pl.col("_row").is_null()).sort("_line")
    assert unreadable["_line"].to_list() == [11, 2_001, 15_001]
    assert unreadable["_raw"][1:].to_list() == ["garbage", "a,b"]
    assert unreadable["reason"][1] == "unreadable line: expected 21 fields, found 1"
    far = stored.filter(pl.col("distance") == "far")
    assert far["reason"].to_list() == ["distance: 'far' is not a valid int"] * 2
    assert far["_line"].to_list() == [101, 4_001]  # where to look in the file
    assert stored.filter(pl.col("_row").is_not_null())["_line"].null_count() == 0
    assert set(valid["_row"]) | set(stored["_row"].drop_nulls()) == set(range(n_rows))
    assert not [p for p in quarantine.parent.iterdir() if p.name != quarantine.name]


def test_too_many_bad_rows_stop_the_run_after_writing_the_quarantine(
    messy_flights, tmp_path
) -> None:
    path, _frame = messy_flights
    quarantine = tmp_path / "q.parquet"
    with pytest.raises(ValidationFailed) as info:
        validate_source(
            open_source(DataSpec(source=str(path))),
            {"distance": ColumnSpec(type="int")},
            target="late",
            max_bad_fraction=0.001,
            quarantine_path=quarantine,
        )
    message = str(info.value)
    report = info.value.report
    assert message.startswith(f"{report.bad_fraction:.1%} of the rows of {path} failed validation")
    assert "more than the 0.1% allowed (validation.max_bad_fraction)" in message
    assert "top reasons: target_null:late (" in message and "e.g. target 'late' is null" in message
    assert message.endswith(f"; quarantined rows are in {quarantine}")
    assert pl.read_parquet(quarantine).height == report.n_quarantined


def test_column_rules_stop_the_run(flights_sample) -> None:
    with pytest.raises(
        ValidationFailed,
        match=r"^column 'dep_time' is 2\.\d% null, more than its max_null_fraction of 1\.0%$",
    ):
        validate_source(
            MemorySource(flights_sample),
            {"dep_time": ColumnSpec(max_null_fraction=0.01)},
            target=None,
            max_bad_fraction=1.0,
            quarantine_path=None,
        )


def test_empty_inputs_and_a_missing_target(write_text, tmp_path: Path) -> None:
    header_only = write_text("h.csv", "a,b\n")
    quarantine = tmp_path / "q.parquet"
    with pytest.raises(DataError, match=f"^data source {header_only} has no rows$"):
        validate_source(
            open_source(DataSpec(source=str(header_only))),
            {},
            target="b",
            max_bad_fraction=0.1,
            quarantine_path=quarantine,
        )
    assert not quarantine.exists()
    with pytest.raises(ConfigError) as info:
        validate_source(
            open_source(DataSpec(source=str(header_only))),
            {},
            target="B",
            max_bad_fraction=0.1,
            quarantine_path=quarantine,
        )
    assert (
        str(info.value)
        == f"target column 'B' not found in {header_only}; columns are: a, b (did you mean 'b'?)"
    )
    only_bad = write_text("bad.csv", "a,b\n1\n2\n")
    with pytest.raises(
        ValidationFailed,
        match=r"^100\.0% of the rows .* top reasons: unreadable_line \(2, e\.g\. line 2: expected 2 fields, found 1\)",
    ):
        validate_source(
            open_source(DataSpec(source=str(only_bad))),
            {},
            target="b",
            max_bad_fraction=0.5,
            quarantine_path=quarantine,
        )
    assert pl.read_parquet(quarantine)["_line"].to_list() == [2, 3]


def test_the_quarantine_file_is_always_this_runs(tmp_path: Path) -> None:
    quarantine = tmp_path / "q.parquet"
    pl.DataFrame({"stale": [1]}).write_parquet(quarantine)
    source = MemorySource(pl.DataFrame({"x": [1, 2], "reason": ["a", "b"]}))
    _, report = validate_source(
        source, {}, target="x", max_bad_fraction=0.0, quarantine_path=quarantine
    )
    stored = pl.read_parquet(quarantine)
    assert report.n_quarantined == stored.height == 0
    assert stored.columns == ["x", "reason_input", "_row", "_line", "_raw", "reason"]


def test_a_failure_mid_stream_leaves_the_previous_quarantine_untouched(
    write_text, tmp_path
) -> None:
    quarantine = tmp_path / "q.parquet"
    pl.DataFrame({"previous": [1]}).write_parquet(quarantine)
    broken = write_text("late.csv", ("a,b\n" + "1,\n" * 200_000 + "2,Jos\xe9\n").encode("latin-1"))
    source = open_source(DataSpec(source=str(broken), chunk_rows=1_000))
    with pytest.raises(DataSourceError, match="is not valid utf-8"):
        validate_source(source, {}, target="b", max_bad_fraction=1.0, quarantine_path=quarantine)
    assert pl.read_parquet(quarantine).columns == ["previous"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.csv", "q.parquet"]


def test_quarantine_writer_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "q.parquet"
    rows = quarantine_frame(pl.DataFrame({"a": [1]}), pl.Series([0]), pl.Series(["why"]), [])
    with QuarantineWriter(path, ["a"]) as writer:
        writer.write(rows)
        assert not path.exists()  # nothing visible until close
    assert pl.read_parquet(path)["reason"].to_list() == ["why"]
    with pytest.raises(RuntimeError), QuarantineWriter(path, ["a"]) as writer:
        writer.write(rows)
        writer.write(rows)
        raise RuntimeError("crash")
    assert pl.read_parquet(path).height == 1
    assert [p.name for p in tmp_path.iterdir()] == ["q.parquet"]


def test_iter_validated_scores_batch_by_batch(flights_sample: pl.DataFrame) -> None:
    source = MemorySource(flights_sample, chunk_rows=5_000)
    stream = iter_validated(source, {"air_time": ColumnSpec(max=300)}, row_index=True)
    with pytest.raises(RuntimeError, match="after iterating"):
        _ = stream.report
    sizes, rows = [], []
    for valid, batch in stream:
        assert valid.height <= batch.frame.height == 5_000
        assert valid["_row"].min() >= batch.row_offset
        sizes.append(valid.height)
        rows.extend(valid["_row"].to_list())
    expected = flights_sample.with_row_index("_row").filter(
        ~(pl.col("air_time") > 300).fill_null(False)
    )
    assert rows == expected["_row"].to_list()
    assert sum(sizes) == stream.report.n_valid == expected.height
    assert stream.report.quarantine_path is None
