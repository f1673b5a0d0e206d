"""Fingerprints: same content, same fingerprint, however it is read and chunked."""

from __future__ import annotations

import hashlib
import itertools
from datetime import datetime
from pathlib import Path

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from forgeml.config.spec import DataSpec
from forgeml.data import Fingerprinter, fingerprint_frame, fingerprint_source, open_source


@st.composite
def frames_and_cuts(draw):
    n = draw(st.integers(0, 30))

    def column(values):
        return draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n))

    frame = pl.DataFrame(
        {
            "i": column(st.integers(-(2**63), 2**63 - 1)),
            "f": column(st.floats(allow_nan=True, allow_infinity=True)),
            "s": column(st.text(max_size=5)),
            "b": column(st.booleans()),
            "t": column(
                st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
            ),
        },
        schema={
            "i": pl.Int64,
            "f": pl.Float64,
            "s": pl.String,
            "b": pl.Boolean,
            "t": pl.Datetime("us"),
        },
    )
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    return frame, cuts


@given(frames_and_cuts())
def test_chunking_never_changes_the_fingerprint(case) -> None:
    frame, cuts = case
    bounds = [0, *cuts, frame.height]
    fingerprinter = Fingerprinter()
    for lo, hi in itertools.pairwise(bounds):
        fingerprinter.update(frame.slice(lo, hi - lo))
    assert fingerprinter.result() == fingerprint_frame(frame)


def test_every_engine_reading_the_same_table_agrees(
    flights_sample: pl.DataFrame, tmp_path: Path, sql_table
) -> None:
    frame = flights_sample.head(5_000)
    frame.write_parquet(tmp_path / "f.parquet", row_group_size=700)
    sql_table(f"sqlite:///{tmp_path / 'f.db'}", "f", frame)
    sources = [
        open_source(DataSpec(source=str(tmp_path / "f.parquet"), chunk_rows=1_000)),
        open_source(
            DataSpec(
                source="duckdb", query=f"select * from '{tmp_path / 'f.parquet'}'", chunk_rows=1_500
            )
        ),
        open_source(DataSpec(source=f"sqlite:///{tmp_path / 'f.db'}", table="f", chunk_rows=2_000)),
        open_source(DataSpec(), frame=frame.to_pandas(use_pyarrow_extension_array=True)),
        open_source(DataSpec(), frame=frame.with_columns(pl.col("year").cast(pl.Int32))),
    ]
    fingerprint, *others = [fingerprint_source(s) for s in sources]
    assert others == [fingerprint] * len(others)
    assert fingerprint.n_rows == 5_000
    assert fingerprint.schema["carrier"] == "str" and fingerprint.schema["dep_time"] == "float"


def test_any_change_in_content_changes_the_fingerprint() -> None:
    base = pl.DataFrame({"a": [1, 2, 3], "s": ["x", "", None]})
    variants = [
        base.with_columns(pl.Series("a", [1, 2, 4])),
        base.reverse(),
        base.rename({"a": "b"}),
        base.select("s", "a"),
        base.with_columns(pl.Series("s", ["x", None, None])),  # "" is not null
        base.with_columns(pl.Series("s", ["x", "", ""])),
        base.with_columns(pl.col("a").cast(pl.Float64)),  # 1 is not 1.0
        base.head(2),
        pl.DataFrame({"a": [1, 2, 3], "s": ["x", "", None]}).with_columns(
            pl.Series("s", ["", "x", None])
        ),
    ]
    seen = {fingerprint_frame(base).sha256} | {fingerprint_frame(v).sha256 for v in variants}
    assert len(seen) == len(variants) + 1
    # String boundaries matter: ["ab", "c"] is not ["a", "bc"].
    assert fingerprint_frame(pl.DataFrame({"s": ["ab", "c"]})) != fingerprint_frame(
        pl.DataFrame({"s": ["a", "bc"]})
    )


def test_the_encoding_is_stable_across_versions() -> None:
    """Lineage compares fingerprints recorded months apart: the value must not drift."""
    frame = pl.DataFrame(
        {
            "n": [1, None, -3],
            "x": [0.5, -0.0, float("nan")],
            "s": ["é", None, ""],
            "b": [True, False, None],
        }
    )
    result = fingerprint_frame(frame)
    assert result.to_dict() == {
        "sha256": "2a5765fb5cc15488a1f15599483c5fe83eb353440303fde35c08deb506901dac",
        "n_rows": 3,
        "schema": {"n": "int", "x": "float", "s": "str", "b": "bool"},
    }
    # -0.0 and 0.0 are one value (as are all NaNs).
    assert fingerprint_frame(frame.with_columns(pl.Series("x", [0.5, 0.0, float("nan")]))) == result


def test_file_sources_hash_their_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    source = open_source(DataSpec(source=str(path)))
    assert source.fingerprint_hint() == "csv:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert open_source(DataSpec(), frame={"a": [1]}).fingerprint_hint() is None
