"""open_source: format detection, the URI allowlist, and the errors around them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from forgeml.config.spec import DataSpec, Spec
from forgeml.data import MemorySource, open_source
from forgeml.data.csv_source import CsvSource
from forgeml.data.parquet_source import ParquetSource
from forgeml.data.sql_source import DuckDBSource, SqlSource
from forgeml.errors import DataSourceError, MissingExtraError


@pytest.fixture
def table() -> pl.DataFrame:
    return pl.DataFrame({"x": [1, 2, 3], "y": ["a", "b", None]})


def test_format_auto_from_extension_content_and_scheme(tmp_path: Path, table) -> None:
    table.write_csv(tmp_path / "a.txt")
    table.write_parquet(tmp_path / "b.pq")
    table.write_parquet(tmp_path / "no_extension")
    table.write_csv(tmp_path / "c.dat")
    kinds = {
        "a.txt": CsvSource,
        "b.pq": ParquetSource,
        "no_extension": ParquetSource,
        "c.dat": CsvSource,
    }
    for name, kind in kinds.items():
        source = open_source(DataSpec(source=str(tmp_path / name)))
        assert isinstance(source, kind), name
        assert source.read().frame.height == 3
    sql = open_source(DataSpec(source="postgresql+psycopg://u:secret@db.example/x", table="t"))
    assert isinstance(sql, SqlSource)
    assert "secret" not in sql.description
    assert isinstance(open_source(DataSpec(source="duckdb", query="select 1")), DuckDBSource)


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path, table) -> None:
    (tmp_path / "data").mkdir()
    table.write_parquet(tmp_path / "data" / "t.parquet")
    spec = Spec(name="m", task="regression", target="x", base_dir=tmp_path)
    source = open_source(DataSpec(source="data/t.parquet"), resolve=spec.resolve_path)
    assert source.read().frame.equals(table)
    assert source.description == str(tmp_path / "data" / "t.parquet")


def test_in_memory_frames_of_every_kind(table) -> None:
    for frame in (
        table,
        table.lazy(),
        table.to_pandas(),
        table.to_arrow(),
        table.to_dict(as_series=False),
    ):
        source = open_source(DataSpec(source="ignored.csv"), frame=frame)
        assert isinstance(source, MemorySource)
        assert source.read().frame.equals(table)
    assert "DataFrame" in open_source(DataSpec(), frame=table.to_pandas()).description


def test_parquet_glob_and_hive_directory(tmp_path: Path) -> None:
    for year in (2023, 2024):
        folder = tmp_path / "events" / f"year={year}"
        folder.mkdir(parents=True)
        pl.DataFrame({"v": [year * 10, year * 10 + 1]}).write_parquet(folder / "part-0.parquet")
    frame = open_source(DataSpec(source=str(tmp_path / "events"))).read().frame
    assert frame.sort("v").rows() == [(20230, 2023), (20231, 2023), (20240, 2024), (20241, 2024)]
    glob = open_source(DataSpec(source=str(tmp_path / "events" / "*" / "*.parquet")))
    assert glob.read().frame["v"].to_list() == [20230, 20231, 20240, 20241]


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataSourceError, match=rf"^data.source: {path} is not a valid Parquet file"):
        open_source(DataSpec(source=str(path))).read()


def test_empty_parquet_keeps_its_columns(tmp_path: Path) -> None:
    pl.DataFrame(schema={"a": pl.Int64, "b": pl.String}).write_parquet(tmp_path / "e.parquet")
    batches = list(open_source(DataSpec(source=str(tmp_path / "e.parquet"))).iter_batches())
    assert [(b.frame.schema, b.frame.height) for b in batches] == [
        (pl.Schema({"a": pl.Int64, "b": pl.String}), 0)
    ]


@pytest.mark.parametrize(
    "source",
    ["ftp://example.com/x.csv", "ssh://host/x.csv", "javascript:alert(1)", "oracle://db/x"],
)
def test_uri_schemes_outside_the_allowlist(source: str) -> None:
    with pytest.raises(DataSourceError) as info:
        open_source(DataSpec(source=source))
    message = str(info.value)
    assert message.startswith("data.source: unsupported URI scheme")
    assert f"'{source}'" in message
    for allowed in ("s3", "gs", "abfss", "https", "sqlite", "postgresql", "mysql", "duckdb"):
        assert allowed in message


def test_missing_fsspec_backend_names_the_package() -> None:
    with pytest.raises(MissingExtraError) as info:
        open_source(DataSpec(source="s3://bucket/train.parquet"))
    assert info.value.module == "s3fs"
    assert "s3://" in str(info.value)
    assert info.value.hint == "pip install 'forgeml[s3]'" and info.value.extra == "s3"
    with pytest.raises(MissingExtraError, match="adlfs"):
        open_source(DataSpec(source="abfss://container@account.dfs.core.windows.net/x.csv"))


def test_format_and_source_must_agree(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"does not match data\.source"):
        open_source(DataSpec(source="sqlite:///x.db", format="csv"))
    with pytest.raises(DataSourceError, match="only apply to SQL and DuckDB"):
        open_source(DataSpec(source=str(tmp_path / "x.csv"), format="csv", query="select 1"))
    with pytest.raises(DataSourceError, match=r"data\.source is not set"):
        open_source(DataSpec())


def test_query_without_source_is_duckdb(tmp_path: Path, table) -> None:
    table.write_csv(tmp_path / "t.csv")
    spec = Spec(name="m", task="regression", target="x", base_dir=tmp_path)
    source = open_source(
        DataSpec(query="select * from read_csv('t.csv') order by x"), resolve=spec.resolve_path
    )
    assert isinstance(source, DuckDBSource)
    assert source.read().frame.equals(table)


def test_to_polars_errors_name_the_type() -> None:
    with pytest.raises(DataSourceError, match="cannot use a 'list' as a table"):
        open_source(DataSpec(), frame=[1, 2])
    with pytest.raises(DataSourceError, match="cannot convert the 'dict' to a table"):
        open_source(DataSpec(), frame={"a": [1, 2], "b": [1]})
    with pytest.raises(DataSourceError, match="'Series'"):
        open_source(DataSpec(), frame=pd.Series([1]))
    assert open_source(DataSpec(), frame=pa.record_batch({"a": [1]})).read().frame.height == 1
