"""CSV reading: malformed lines become BadLines with their physical line numbers, and
every mistake a user can make with a CSV file is a one-line DataSourceError."""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.config.spec import DataSpec
from forgeml.data import BadLine, open_source
from forgeml.data.csv_source import CsvSource
from forgeml.data.locations import find_files
from forgeml.errors import DataSourceError


def read(path: Path, **spec) -> tuple[pl.DataFrame, list[BadLine]]:
    batch = open_source(DataSpec(source=str(path), **spec)).read()
    return batch.frame, batch.bad_lines


def test_malformed_lines_are_kept_with_line_numbers_and_reasons(write_text) -> None:
    path = write_text(
        "t.csv",
        'a,b,c\n1,2,3\n4,5\n\n"multi\nline",x,y\n6,7,8,9\n10,11,12\n',
    )
    frame, bad = read(path)
    assert frame.rows() == [("1", "2", "3"), ("multi\nline", "x", "y"), ("10", "11", "12")]
    assert open_source(DataSpec(source=str(path))).read().lines.to_list() == [2, 5, 8]
    assert bad == [
        BadLine(3, "4,5", "expected 3 fields, found 2"),
        BadLine(7, "6,7,8,9", "expected 3 fields, found 4"),
    ]


def test_real_data_with_injected_bad_lines(flights_sample: pl.DataFrame, tmp_path: Path) -> None:
    """Bad lines spread over several parse blocks keep their exact line numbers."""
    frame = flights_sample.head(12_000)
    lines = frame.write_csv().splitlines()
    wanted = {}
    for line_no in (5, 4_001, 9_999, 12_001):  # 1-based physical lines, header is line 1
        text = lines[line_no - 1] + ",surplus,fields"
        lines[line_no - 1] = text
        wanted[line_no] = text
    path = tmp_path / "flights.csv"
    path.write_text("\n".join(lines) + "\n")
    source = CsvSource(find_files(str(path), {}), block_size=1 << 18)
    batches = list(source.iter_batches())
    assert len(batches) > 3
    bad = [b for batch in batches for b in batch.bad_lines]
    assert {b.line: b.text for b in bad} == wanted
    assert {b.reason for b in bad} == {"expected 21 fields, found 23"}
    parsed = pl.concat([b.frame for b in batches])
    assert parsed.height == frame.height - len(wanted)
    assert [b.row_offset for b in batches] == [
        0,
        *(pl.Series([b.frame.height for b in batches]).cum_sum()[:-1]),
    ]


field = st.text(alphabet='ab,"\n ', min_size=0, max_size=6)
record = st.one_of(
    st.tuples(st.just("good"), st.lists(field, min_size=3, max_size=3)),
    st.tuples(
        st.just("bad"), st.lists(field, min_size=1, max_size=5).filter(lambda f: len(f) != 3)
    ),
    st.tuples(st.just("blank"), st.just([])),
)


@given(
    records=st.lists(record, max_size=40),
    block=st.sampled_from([None, 160, 400]),
    eol=st.sampled_from(["\n", "\r\n"]),
)
def test_line_numbers_are_physical_for_any_layout(tmp_path_factory, records, block, eol) -> None:
    """Quoted newlines, blank lines and bad records anywhere, across block boundaries."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=eol)
    writer.writerow(["a", "b", "c"])
    expected_bad, expected_rows, expected_lines = [], [], []
    for kind, fields in records:
        line = out.getvalue().count("\n") + 1
        if kind == "blank":
            out.write(eol)
            continue
        if kind == "bad" and fields == [""]:  # that would be a blank line
            fields = ["z"]
        if kind == "good" and all(f == "" for f in fields):  # all-empty rows read as blank
            fields = ["z", *fields[1:]]
        writer.writerow(fields)
        if kind == "bad":
            expected_bad.append(line)
        else:
            expected_rows.append(tuple(fields))
            expected_lines.append(line)
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_bytes(out.getvalue().encode())
    source = CsvSource(find_files(str(path), {}), null_values=[], block_size=block)
    batch = source.read()
    assert [b.line for b in batch.bad_lines] == expected_bad
    assert batch.frame.rows() == expected_rows
    assert batch.lines is not None and batch.lines.to_list() == expected_lines


def test_null_values_and_types_stay_text(write_text) -> None:
    path = write_text("t.csv", "id,score,note\n001,1.5,NA\n002,,ok\n003,n/a,null\n")
    frame, bad = read(path)
    assert bad == []
    assert frame.schema == pl.Schema({"id": pl.String, "score": pl.String, "note": pl.String})
    assert frame.rows() == [("001", "1.5", None), ("002", None, "ok"), ("003", "n/a", None)]
    frame, _ = read(path, null_values=["n/a"])
    assert frame.rows() == [("001", "1.5", "NA"), ("002", "", "ok"), ("003", None, "null")]


def test_gzip_by_name_and_by_content(tmp_path: Path) -> None:
    text = b"a,b\n1,2\n3,4\n"
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(text))
    (tmp_path / "disguised.csv").write_bytes(gzip.compress(text))
    for name in ("t.csv.gz", "disguised.csv"):
        frame, _ = read(tmp_path / name)
        assert frame.rows() == [("1", "2"), ("3", "4")]


def test_other_encodings_delimiters_and_no_header(write_text) -> None:
    latin = write_text("latin.csv", "name;city\nJosé;Zürich\n".encode("latin-1"))
    frame, _ = read(latin, delimiter=";", encoding="latin1")
    assert frame.rows() == [("José", "Zürich")]
    tsv = write_text("t.tsv", "a\tb\n1\t2\n")
    assert read(tsv)[0].rows() == [("1", "2")]
    bare = write_text("bare.csv", "1,2\n3,4,5\n")
    frame, bad = read(bare, header=False)
    assert frame.columns == ["column_1", "column_2"]
    assert frame.rows() == [("1", "2")]
    assert bad == [BadLine(2, "3,4,5", "expected 2 fields, found 3")]


def test_a_directory_of_csv_files_is_one_table(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("x,y\n1,2\n3\n")
    (tmp_path / "d" / "b.csv").write_text("x,y\n4,5\n")
    source = open_source(DataSpec(source=str(tmp_path / "d")))
    batches = list(source.iter_batches())
    assert [(b.row_offset, b.frame.rows()) for b in batches if b.frame.height] == [
        (0, [("1", "2")]),
        (1, [("4", "5")]),
    ]
    (bad,) = [line for b in batches for line in b.bad_lines]
    assert bad.line == 3 and "a.csv" in bad.reason
    (tmp_path / "d" / "c.csv").write_text("x,z\n1,2\n")
    with pytest.raises(DataSourceError, match=r"c\.csv\) has columns \['x', 'z'\]"):
        open_source(DataSpec(source=str(tmp_path / "d"))).read()


# --- every error a user can make is one line naming the file ------------------------


def error_of(path: Path | str, **spec) -> str:
    with pytest.raises(DataSourceError) as info:
        open_source(DataSpec(source=str(path), **spec)).read()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert error_of(path) == f"data.source: file not found: {path}"


def test_directory_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    assert error_of(tmp_path) == (
        f"data.source: directory {tmp_path} has no data files (.csv, .tsv, .txt, .parquet, .pq)"
    )


def test_glob_matching_nothing(tmp_path: Path) -> None:
    assert "no files match" in error_of(tmp_path / "*.csv")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file(write_text) -> None:
    path = write_text("locked.csv", "a\n1\n")
    path.chmod(0)
    try:
        assert error_of(path) == f"data.source: cannot read {path}: permission denied"
    finally:
        path.chmod(0o600)


def test_unreadable_object_in_a_store(memory_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that denies reading (as S3 does without s3:GetObject) gives the same error."""
    import importlib

    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class LockedStore(MemoryFileSystem):
        def _open(self, path, mode="rb", **kwargs):
            if "r" in mode:
                raise PermissionError(path)
            return super()._open(path, mode, **kwargs)

    with fsspec.open(f"{memory_url}/t.csv", "wb") as out:
        out.write(b"a\n1\n")
    registry = importlib.import_module("fsspec.registry")
    monkeypatch.setitem(registry._registry, "memory", LockedStore)
    assert error_of(f"{memory_url}/t.csv") == (
        f"data.source: cannot read {memory_url}/t.csv: permission denied"
    )


def test_bad_encoding_names_the_file_and_the_setting(write_text) -> None:
    head = write_text("h.csv", "name,city\nJos\xe9,x\n".encode("latin-1"))
    message = error_of(head)
    assert message.startswith(f"data.source: {head} is not valid utf-8 text (line 2)")
    assert "set data.encoding" in message
    # Past the sniffed head, the parser finds it, and names the column.
    late = write_text("late.csv", ("a,b\n" + "1,2\n" * 40_000 + "3,Jos\xe9\n").encode("latin-1"))
    message = error_of(late)
    assert f"{late} is not valid utf-8 text (column 'b'" in message
    assert "set data.encoding" in message
    assert "data.encoding" in error_of(head, encoding="klingon")


@pytest.mark.parametrize(("sep", "shown"), [(";", "';'"), ("\t", '"\\t"'), ("|", "'|'")])
def test_wrong_delimiter_is_detected(write_text, sep: str, shown: str) -> None:
    path = write_text("t.csv", f"a{sep}b{sep}c\n1{sep}2{sep}3\n")
    assert error_of(path) == (
        f"data.source: {path} looks like {shown}-delimited; set data.delimiter: {shown}"
    )


def test_comma_file_read_with_another_delimiter(write_text) -> None:
    path = write_text("t.csv", "a,b\n1,2\n")
    assert "looks like ','-delimited" in error_of(path, delimiter=";")


def test_binary_and_parquet_files_are_not_csv(tmp_path: Path, write_text) -> None:
    png = write_text("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert (
        error_of(png)
        == f"data.source: {png} does not look like a CSV file (it contains binary data)"
    )
    pq = tmp_path / "t.csv"
    pl.DataFrame({"a": [1]}).write_parquet(pq)
    assert error_of(pq) == f"data.source: {pq} looks like a Parquet file; set data.format: parquet"


def test_empty_files(write_text) -> None:
    for content in ("", "\n\n"):
        path = write_text("empty.csv", content)
        assert error_of(path) == f"data.source: {path} is empty (no header line)"


def test_header_problems(write_text) -> None:
    path = write_text("dup.csv", "a,b,a\n1,2,3\n")
    assert error_of(path) == f"data.source: {path} has duplicate column names in its header: a"
    path = write_text("gap.csv", "a,,c\n1,2,3\n")
    assert read(path)[0].columns == ["a", "column_2", "c"]


def test_unclosed_quote_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('a,b\n"open,1\n' + "2,3\n" * 50)
    source = CsvSource(find_files(str(path), {}), block_size=64)
    with pytest.raises(
        DataSourceError, match=r"q\.csv has a quoted value longer than the read block"
    ):
        source.read()


def test_header_only_file_has_columns_and_no_rows(write_text) -> None:
    path = write_text("h.csv", "a,b\n")
    batches = list(open_source(DataSpec(source=str(path))).iter_batches())
    assert [(b.frame.columns, b.frame.height) for b in batches] == [(["a", "b"], 0)]
