"""SQL (SQLite files, PostgreSQL) and DuckDB sources on real data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import polars as pl
import pytest

from forgeml.config.spec import DataSpec, Spec
from forgeml.data import open_source
from forgeml.errors import DataSourceError, MissingExtraError


def spec_in(folder: Path) -> Spec:
    return Spec(name="m", task="classification", target="cultivar", base_dir=folder)


def test_sqlite_table_names_are_quoted_and_paths_resolved(tmp_path: Path, wine, sql_table) -> None:
    sql_table(f"sqlite:///{tmp_path / 'wine.db'}", "order", wine)
    sql_table(f"sqlite:///{tmp_path / 'wine.db'}", "My Wine", wine.head(5))
    resolve = spec_in(tmp_path).resolve_path
    # "sqlite:///wine.db" is relative: to the spec's folder, not the working directory.
    read = open_source(DataSpec(source="sqlite:///wine.db", table="order"), resolve=resolve).read()
    assert read.frame.equals(wine)
    spaced = open_source(DataSpec(source="sqlite:///wine.db", table="My Wine"), resolve=resolve)
    assert spaced.read().frame.height == 5


def test_sqlite_query_and_empty_result(tmp_path: Path, wine, sql_table) -> None:
    url = f"sqlite:///{tmp_path / 'wine.db'}"
    sql_table(url, "wine", wine)
    query = "select alcohol, cultivar from wine where cultivar = 'class_1' order by alcohol"
    frame = open_source(DataSpec(source=url, query=query)).read().frame
    expected = wine.filter(pl.col("cultivar") == "class_1").select("alcohol", "cultivar")
    assert frame.equals(expected.sort("alcohol"))
    batches = list(
        open_source(DataSpec(source=url, query="select * from wine where 0")).iter_batches()
    )
    assert [(b.frame.columns, b.frame.height) for b in batches] == [(wine.columns, 0)]


def test_sql_errors_are_one_line_and_name_the_source(tmp_path: Path, wine, sql_table) -> None:
    url = f"sqlite:///{tmp_path / 'wine.db'}"
    sql_table(url, "wines", wine)
    with pytest.raises(DataSourceError) as info:
        open_source(DataSpec(source=url, table="wine")).read()
    assert str(info.value) == (
        f"data.table: table 'wine' not found in {url} (did you mean 'wines'?); tables are: wines"
    )
    with pytest.raises(
        DataSourceError, match=r"^data.source: query failed on sqlite:///.*no such column: nope$"
    ):
        open_source(DataSpec(source=url, query="select nope from wines")).read()
    missing = tmp_path / "missing.db"
    with pytest.raises(DataSourceError, match=f"^data.source: file not found: {missing}$"):
        open_source(DataSpec(source=f"sqlite:///{missing}", table="t"))
    assert not missing.exists()  # SQLAlchemy would have created an empty database


def test_missing_database_driver_names_the_package() -> None:
    with pytest.raises(MissingExtraError) as info:
        open_source(DataSpec(source="postgresql+psycopg2://u@localhost/db", table="t")).read()
    assert info.value.module == "psycopg2"
    assert "postgresql+psycopg://" in (info.value.hint or "")
    with pytest.raises(MissingExtraError, match="pymysql"):
        open_source(DataSpec(source="mysql+pymysql://u@localhost/db", table="t")).read()


@pytest.mark.postgres
def test_postgresql_streams_a_real_table_in_key_order(pg_url: str, breast_cancer) -> None:
    import sqlalchemy as sa

    frame = breast_cancer.with_row_index("id").with_columns(pl.col("id").cast(pl.Int64))
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                'create table "Tumours" (id bigint primary key, mean_radius float8, diagnosis text)'
            )
        )
        rows = frame.select("id", "mean_radius", "diagnosis").sample(
            fraction=1.0, shuffle=True, seed=3
        )
        conn.execute(
            sa.text('insert into "Tumours" values (:id, :mean_radius, :diagnosis)'), rows.to_dicts()
        )
    engine.dispose()
    source = open_source(DataSpec(source=pg_url, table="Tumours", chunk_rows=1_000))
    batches = list(source.iter_batches())
    assert [b.frame.height for b in batches] == [569]
    got = batches[0].frame
    assert got["id"].to_list() == list(range(569))  # primary-key order, not insertion order
    assert got.equals(frame.select("id", "mean_radius", "diagnosis"))
    assert "Tumours" in source.description


@pytest.mark.postgres
def test_postgresql_errors(pg_url: str) -> None:
    with pytest.raises(DataSourceError, match=r"^data.table: table 'nope' not found in postgresql"):
        open_source(DataSpec(source=pg_url, table="nope")).read()
    with pytest.raises(
        DataSourceError, match=r"^data.source: query failed on postgresql.*syntax error"
    ):
        open_source(DataSpec(source=pg_url, query="selec 1")).read()


def test_duckdb_reads_files_relative_to_the_spec(tmp_path: Path, wine) -> None:
    wine.write_csv(tmp_path / "wine.csv")
    spec = DataSpec(format="duckdb", query="select * from read_csv('wine.csv')", chunk_rows=1_000)
    source = open_source(spec, resolve=spec_in(tmp_path).resolve_path)
    assert source.read().frame.equals(wine)


def test_duckdb_database_file_table(tmp_path: Path, diabetes) -> None:
    path = tmp_path / "d.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.register("frame", diabetes.to_arrow())
        conn.execute('create table "select" as select * from frame')
    resolve = spec_in(tmp_path).resolve_path
    for source in ("duckdb:///d.duckdb", "d.duckdb", f"duckdb:///{path}"):
        spec = DataSpec(source=source, format="duckdb", table="select", chunk_rows=1_000)
        assert open_source(spec, resolve=resolve).read().frame.equals(diabetes), source


def test_duckdb_errors(tmp_path: Path) -> None:
    with pytest.raises(
        DataSourceError, match=r"^data.query: DuckDB failed on duckdb:memory: .*nope"
    ):
        open_source(DataSpec(source="duckdb", query="select * from nope")).read()
    with pytest.raises(DataSourceError, match="file not found"):
        open_source(DataSpec(source=str(tmp_path / "x.duckdb"), format="duckdb", table="t"))


def test_sqlite_reads_in_chunks(tmp_path: Path, diabetes) -> None:
    db = tmp_path / "d.db"
    big = pl.concat([diabetes] * 5)
    with sqlite3.connect(db) as conn:
        conn.execute(f"create table d ({', '.join(big.columns)})")
        conn.executemany(f"insert into d values ({', '.join('?' * big.width)})", big.rows())
    source = open_source(
        DataSpec(source=f"sqlite:///{db}", query="select * from d", chunk_rows=1_000)
    )
    assert [(b.row_offset, b.frame.height) for b in source.iter_batches()] == [
        (0, 1_000),
        (1_000, 1_000),
        (2_000, 210),
    ]
