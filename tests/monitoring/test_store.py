"""The log store: the same suite on a Parquet folder and on PostgreSQL.

Each PostgreSQL test gets its own schema (``search_path`` in the URL) inside the session's
throwaway database, so tests stay isolated in parallel workers; the property tests share one
store per backend and keep apart by model name.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from forgeml.errors import ConfigError, DataSourceError, ForgeError, UsageError
from forgeml.monitoring import LOG_KINDS, PREDICTIONS_SCHEMA, LogStore, open_store

T0 = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")
# Written out by hand: both backends must return exactly these columns and dtypes.
EXPECTED = {
    "predictions": {
        "request_id": pl.String,
        "ts": TS,
        "model": pl.String,
        "version": pl.String,
        "variant": pl.String,
        "unit": pl.String,
        "shadow": pl.Boolean,
        "row": pl.Int32,
        "inputs": pl.String,
        "prediction": pl.String,
        "score": pl.Float64,
        "latency_ms": pl.Float64,
    },
    "feedback": {
        "ts": TS,
        "model": pl.String,
        "request_id": pl.String,
        "row": pl.Int32,
        "unit": pl.String,
        "experiment": pl.String,
        "label": pl.String,
        "event_id": pl.String,
    },
    "events": {
        "ts": TS,
        "model": pl.String,
        "kind": pl.String,
        "count": pl.Int64,
        "variant": pl.String,
    },
}
TRICKY = ["café ☕ 日本語", "", 'a "quoted", comma', "two\nlines\r\n", "\\.", "NULL", "😀"]


def _schema_url(pg_url: str, schema: str) -> str:
    url = sa.make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def pg_location(pg_url: str) -> Iterator[str]:
    """A URL whose search path is a fresh, empty schema."""
    schema = f"log_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _schema_url(pg_url, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


BACKENDS = ["parquet", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "parquet":
        return str(tmp_path / "log")
    pg: str = request.getfixturevalue("pg_location")
    return pg


@pytest.fixture
def store(location: str) -> Iterator[LogStore]:
    with open_store(location) as opened:
        yield opened


def predictions(
    n: int, *, model: str = "churn", start: datetime = T0, step: timedelta = timedelta(seconds=1)
) -> pa.Table:
    """``n`` prediction rows, one request per row, ``step`` apart."""
    return pa.table(
        {
            "request_id": [f"{model}-{i}" for i in range(n)],
            "ts": pa.array([start + i * step for i in range(n)], pa.timestamp("us", tz="UTC")),
            "model": [model] * n,
            "version": ["3"] * n,
            "variant": [None if i % 3 else "champion" for i in range(n)],
            "unit": [f"user-{i % 5}" for i in range(n)],
            "shadow": [i % 4 == 0 for i in range(n)],
            "row": pa.array([0] * n, pa.int32()),
            "inputs": [  # every sixth request's inputs not sampled (--log-inputs)
                None
                if i % 6 == 5
                else orjson.dumps({"x": i, "city": TRICKY[i % len(TRICKY)]}).decode()
                for i in range(n)
            ],
            "prediction": [orjson.dumps(i % 2).decode() for i in range(n)],
            "score": [None if i % 7 == 3 else i / n for i in range(n)],
            "latency_ms": [1.5 + i for i in range(n)],
        }
    )


def tables(model: str) -> dict[str, pa.Table]:
    """One table of each kind with nulls in every nullable column and awkward text."""
    n = len(TRICKY)
    ts = pa.array([T0 + timedelta(minutes=i) for i in range(n)], pa.timestamp("us", tz="UTC"))
    return {
        "predictions": predictions(n, model=model),
        "feedback": pa.table(
            {
                "ts": ts,
                "model": [model] * n,
                "request_id": [None if i % 2 else f"r{i}" for i in range(n)],
                "row": pa.array([None if i % 3 == 0 else i for i in range(n)], pa.int32()),
                "unit": [None, *TRICKY[1:]],
                "experiment": [TRICKY[i] if i % 2 else None for i in range(n)],
                "label": [orjson.dumps(t).decode() for t in TRICKY],
                "event_id": [None] * n,
            }
        ),
        "events": pa.table(
            {
                "ts": ts,
                "model": [None if i == 0 else model for i in range(n)],
                "kind": TRICKY,
                "count": pa.array([2**40 + i for i in range(n)], pa.int64()),
                "variant": [TRICKY[i] if i % 3 else None for i in range(n)],
            }
        ),
    }


def as_read(kind: str, table: pa.Table) -> pl.DataFrame:
    """What reading ``table`` back must give: the same rows, by time."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.select(list(EXPECTED[kind])).cast(EXPECTED[kind])  # type: ignore[arg-type]
    return frame.sort("ts", maintain_order=True)


# --- round trips -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", LOG_KINDS)
def test_each_kind_round_trips_with_nulls_and_unicode(store: LogStore, kind: str) -> None:
    table = tables("churn")[kind]
    store.write(kind, table)
    got = store.read(kind)
    assert got.schema == pl.Schema(EXPECTED[kind])
    assert_frame_equal(got, as_read(kind, table))


def test_columns_in_any_order_and_missing_nullable_columns_are_filled(store: LogStore) -> None:
    full = predictions(4)
    shuffled = full.select(list(reversed(full.column_names))).drop_columns(
        ["variant", "unit", "shadow", "score"]
    )
    store.write("predictions", shuffled)
    got = store.read("predictions")
    assert got["variant"].is_null().all() and got["unit"].is_null().all()
    assert got["score"].is_null().all()
    assert got["shadow"].to_list() == [False] * 4
    assert got["inputs"].to_list() == full["inputs"].to_pylist()


def test_polars_frames_other_time_zones_and_nanoseconds_are_accepted(store: LogStore) -> None:
    frame = pl.DataFrame(
        {
            "ts": [datetime(2026, 3, 14, 10, 0, 0, 123456)],
            "kind": ["reload"],
            "count": [1],
        }
    ).with_columns(
        pl.col("ts").cast(pl.Datetime("ns")).dt.replace_time_zone("Europe/Paris")
        + pl.duration(nanoseconds=789)
    )
    store.write("events", frame)
    assert store.read("events")["ts"].to_list() == [datetime(2026, 3, 14, 9, 0, 0, 123456, UTC)]


def test_an_empty_write_writes_nothing(store: LogStore) -> None:
    store.write("predictions", predictions(0))
    assert store.read("predictions").height == 0


# --- reading -----------------------------------------------------------------------------
def test_filters_by_model_time_and_limit(store: LogStore) -> None:
    hour = timedelta(hours=1)
    start = datetime(2026, 3, 13, 22, 0, tzinfo=UTC)  # four hours over midnight
    store.write("predictions", predictions(4, model="churn", start=start, step=hour))
    store.write("predictions", predictions(4, model="fraud", start=start, step=hour))
    churn = store.read("predictions", model="churn")
    assert churn["request_id"].to_list() == ["churn-0", "churn-1", "churn-2", "churn-3"]
    assert store.read("predictions", model="nobody").height == 0

    window = store.read("predictions", since=start + hour, until=start + 3 * hour)
    assert sorted(window["request_id"].to_list()) == ["churn-1", "churn-2", "fraud-1", "fraud-2"]
    naive = store.read("predictions", model="churn", since=datetime(2026, 3, 14, 0, 0))
    assert naive["request_id"].to_list() == ["churn-2", "churn-3"]
    berlin = (start + 2 * hour).astimezone(ZoneInfo("Europe/Berlin"))
    assert store.read("predictions", model="fraud", until=berlin).height == 2

    latest = store.read("predictions", model="churn", limit=2, latest_first=True)
    assert latest["request_id"].to_list() == ["churn-3", "churn-2"]
    assert store.read("predictions", model="churn", limit=2)["request_id"].to_list() == [
        "churn-0",
        "churn-1",
    ]
    assert store.read("predictions", limit=0).schema == pl.Schema(EXPECTED["predictions"])
    assert store.read("predictions", since=start + hour, until=start).height == 0


def test_rows_with_the_same_time_keep_their_write_order_both_ways(store: LogStore) -> None:
    first = predictions(3, model="m", step=timedelta(0))
    second = first.set_column(0, "request_id", pa.array(["b0", "b1", "b2"]))
    store.write("predictions", first)
    store.write("predictions", second)
    ids = ["m-0", "m-1", "m-2", "b0", "b1", "b2"]
    assert store.read("predictions")["request_id"].to_list() == ids
    assert store.read("predictions", latest_first=True)["request_id"].to_list() == ids


@pytest.mark.parametrize("kind", LOG_KINDS)
def test_empty_reads_have_every_column_with_the_same_dtypes(store: LogStore, kind: str) -> None:
    assert store.read(kind).schema == pl.Schema(EXPECTED[kind])
    store.write(kind, tables("someone")[kind])
    empty = store.read(kind, model="nobody", since=T0, limit=5, latest_first=True)
    assert (empty.height, empty.schema) == (0, pl.Schema(EXPECTED[kind]))


def test_find_returns_every_row_of_one_request(store: LogStore) -> None:
    request = predictions(3, step=timedelta(0)).set_column(
        0, "request_id", pa.array(["req-42"] * 3)
    )
    request = request.set_column(7, "row", pa.array([0, 1, 2], pa.int32()))
    store.write("predictions", predictions(5, start=T0 - timedelta(days=30)))
    store.write("predictions", request)
    found = store.find("req-42")
    assert found["row"].to_list() == [0, 1, 2]
    assert found.schema == pl.Schema(EXPECTED["predictions"])
    assert store.find("req-0").height == 0 and store.find("churn-4").height == 1


# --- errors ------------------------------------------------------------------------------
def test_unknown_kinds_and_columns_are_usage_errors(store: LogStore) -> None:
    with pytest.raises(UsageError, match="unknown log kind 'metrics'"):
        store.write("metrics", predictions(1))
    with pytest.raises(UsageError, match="unknown log kind 'metrics'"):
        store.read("metrics")
    with pytest.raises(
        UsageError, match=r"missing required column\(s\) 'prediction', 'latency_ms'"
    ):
        store.write("predictions", predictions(2).drop_columns(["prediction", "latency_ms"]))
    with pytest.raises(UsageError, match=r"unknown column.*'colour'"):
        store.write("events", pa.table({"ts": [T0], "kind": ["x"], "count": [1], "colour": [1]}))
    with pytest.raises(UsageError, match="column 'kind' is required but has 1 null"):
        store.write(
            "events", pa.table({"ts": [T0], "kind": pa.array([None], pa.string()), "count": [1]})
        )
    with pytest.raises(UsageError, match="column 'count' has type string"):
        store.write("events", pa.table({"ts": [T0], "kind": ["x"], "count": ["many"]}))
    with pytest.raises(UsageError, match="limit"):
        store.read("events", limit=-1)
    with pytest.raises(UsageError, match="since must be a datetime"):
        store.read("events", since="yesterday")  # type: ignore[arg-type]
    assert store.read("events").height == 0  # nothing was half-written


def test_create_false_on_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "log"
    with pytest.raises(DataSourceError) as info:
        open_store(str(missing), create=False)
    assert str(info.value) == (
        f"{missing}: no prediction log there "
        f"(start `forgeml serve --prediction-log {missing}` to write one)"
    )
    assert not missing.exists()


@pytest.mark.postgres
def test_create_false_on_a_database_without_tables(pg_location: str) -> None:
    with pytest.raises(DataSourceError, match=r"postgresql\+psycopg://.*: no prediction log there"):
        open_store(pg_location, create=False)


def test_a_reader_of_a_new_log_sees_empty_kinds(location: str) -> None:
    open_store(location).close()  # a server started and wrote nothing yet
    with open_store(location, create=False) as reader:
        assert reader.read("feedback").schema == pl.Schema(EXPECTED["feedback"])
        assert reader.find("r1").height == 0


def test_an_unwritable_folder_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"cannot create the prediction log folder .*file/log"):
        open_store(str(tmp_path / "file" / "log"))


@pytest.mark.parametrize("create", [True, False])
def test_an_unreachable_database_names_the_host_not_the_password(create: bool) -> None:
    url = "postgresql://forge:s3cr3t-pw@127.0.0.1:1/log"
    with pytest.raises(ConfigError if create else DataSourceError) as info:
        open_store(url, create=create)
    message = str(info.value)
    assert message.startswith(
        "cannot reach the prediction log database postgresql+psycopg://forge:***@127.0.0.1:1/log"
    )
    assert "s3cr3t" not in message and "\n" not in message


@pytest.mark.parametrize(
    "location", ["mysql://u:pw-x@h/db", "s3://bucket/log", "postgresql://u:pw-x@h:port/db", " "]
)
def test_unsupported_or_malformed_locations(location: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(location)
    assert "pw-x" not in str(info.value)


def test_file_urls_and_path_objects_are_folders(tmp_path: Path) -> None:
    for location in (f"file://{tmp_path}/a", f"FILE:{tmp_path}/a", tmp_path / "a"):
        with open_store(location) as store:
            assert store.location == str(tmp_path / "a")


@pytest.mark.postgres
def test_plain_postgresql_urls_use_psycopg_and_tables_are_created_once(pg_location: str) -> None:
    plain = pg_location.replace("postgresql+psycopg://", "postgresql://")
    for _ in range(2):
        with open_store(plain) as store:
            assert store.location.startswith("postgresql+psycopg://")
            store.write("events", tables("m")["events"])
    with open_store(pg_location, create=False) as store:
        assert store.read("events").height == 2 * len(TRICKY)


@pytest.mark.postgres
def test_an_older_table_with_required_inputs_takes_rows_without_them(pg_location: str) -> None:
    """Tables made before inputs could be sampled had "inputs" NOT NULL: opening the log
    for writing relaxes that, keeping the rows already there."""
    with open_store(pg_location) as store:
        store.write("predictions", predictions(3).drop_columns(["inputs"]).append_column(
            "inputs", pa.array(["{}"] * 3)
        ))  # fmt: skip
    engine = sa.create_engine(pg_location, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text('ALTER TABLE forgeml_log_predictions ALTER COLUMN "inputs" SET NOT NULL')
        )
    with open_store(pg_location) as store:
        store.write("predictions", predictions(6, model="new"))  # one row without inputs
        logged = store.read("predictions")
    engine.dispose()
    assert logged.height == 9 and logged["inputs"].null_count() == 1


@pytest.mark.postgres
def test_a_database_error_while_writing_is_one_forge_error(pg_location: str) -> None:
    with open_store(pg_location) as store:
        with pytest.raises(ForgeError, match=r"writing events failed: .*0x00") as info:
            store.write("events", pa.table({"ts": [T0], "kind": ["nul\x00"], "count": [1]}))
        assert store.location in str(info.value)
        assert store.read("events").height == 0


# --- concurrency and atomicity -----------------------------------------------------------
def test_writers_in_two_threads_never_collide_or_lose_rows(location: str) -> None:
    stores = [open_store(location), open_store(location)]  # same pid: names must still differ
    batches, rows = 15, 40
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def write(store: LogStore, model: str) -> None:
        barrier.wait()
        try:
            for b in range(batches):
                store.write(
                    "predictions", predictions(rows, model=f"{model}-{b}", step=timedelta(0))
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(stores[0], "a"))]
    threads += [threading.Thread(target=write, args=(stores[1], "b"))]
    threads += [threading.Thread(target=write, args=(stores[1], "c"))]  # one store, two threads
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = stores[0].read("predictions")
    assert got.height == 3 * batches * rows
    assert got.select("request_id").n_unique() == 3 * batches * rows
    if not location.startswith("postgresql"):
        files = list(Path(location).rglob("*.parquet"))
        assert len(files) == 3 * batches
        assert not [p for p in Path(location).rglob("*") if p.name.startswith(".")]
    for store in stores:
        store.close()


def test_a_reader_never_sees_half_a_write(store: LogStore) -> None:
    rows, seen = 250, []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(store.read("predictions").height)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for b in range(12):
            store.write("predictions", predictions(rows, model=f"m{b}"))
    finally:
        done.set()
        reader.join()
    assert seen and all(n % rows == 0 for n in seen)


# --- the Parquet layout ------------------------------------------------------------------
def legacy_file(folder: Path, day: str, ids: list[str], ts: datetime) -> None:
    """A file as the prediction log wrote them before this store: no unit, no shadow."""
    n = len(ids)
    table = pa.table(
        {
            "request_id": pa.array(ids, pa.string()),
            "ts": pa.array([ts] * n, pa.timestamp("us", tz="UTC")),
            "model": pa.array(["churn"] * n, pa.string()),
            "version": pa.array(["1"] * n, pa.string()),
            "variant": pa.array([None] * n, pa.string()),
            "row": pa.array(range(n), pa.int32()),
            "inputs": pa.array(['{"x": 1}'] * n, pa.string()),
            "prediction": pa.array(["0"] * n, pa.string()),
            "score": pa.array([0.25] * n, pa.float64()),
            "latency_ms": pa.array([3.0] * n, pa.float64()),
        }
    )
    (folder / f"date={day}").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"date={day}" / f"part-1700000000000-7-{ids[0]}.parquet")


def test_the_previous_layout_is_read_as_predictions(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    legacy_file(folder, "2026-03-13", ["old-a", "old-a"], T0 - timedelta(days=1))
    legacy_file(folder, "2026-03-14", ["old-b"], T0 + timedelta(seconds=1))
    (folder / "date=2026-03-14" / ".part-9-9-000001.parquet.tmp").write_bytes(b"half a file")
    with open_store(str(folder), create=False) as store:
        got = store.read("predictions")
        assert got.schema == pl.Schema(EXPECTED["predictions"])
        assert got["request_id"].to_list() == ["old-a", "old-a", "old-b"]
        assert got["unit"].is_null().all() and got["shadow"].to_list() == [False] * 3
        assert store.find("old-a")["row"].to_list() == [0, 1]
        assert store.read("events").height == 0  # the legacy files are predictions only
    with open_store(str(folder)) as store:
        store.write("predictions", predictions(1, start=T0))
        (folder / "predictions" / ".part-1-1-x-000001.parquet.tmp").write_bytes(b"junk")
        both = store.read("predictions", since=T0)
        assert both["request_id"].to_list() == ["churn-0", "old-b"]


def test_files_land_in_the_day_of_their_first_row(tmp_path: Path) -> None:
    with open_store(str(tmp_path)) as store:
        late = datetime(2026, 3, 13, 23, 59, 59, 999_999, tzinfo=UTC)
        store.write("predictions", predictions(2, start=late, step=timedelta(microseconds=1)))
        store.write("events", pa.table({"ts": [T0], "kind": ["reload"], "count": [1]}))
        wide = predictions(3, model="backfill", start=late, step=timedelta(days=2))
        store.write("predictions", wide)  # rows on 13, 15 and 17 March: one file per day
    days = sorted(p.parent.name for p in tmp_path.rglob("*.parquet"))
    assert days == [
        "date=2026-03-13",
        "date=2026-03-13",
        "date=2026-03-14",
        "date=2026-03-15",
        "date=2026-03-17",
    ]
    assert (tmp_path / "events" / "date=2026-03-14").is_dir()


def test_only_columns_of_repeating_values_get_a_parquet_dictionary(tmp_path: Path) -> None:
    """Dictionaries on request ids and input rows cost CPU on the writer and bytes on disk."""
    with open_store(str(tmp_path)) as store:
        store.write("predictions", predictions(500))
        (path,) = tmp_path.rglob("*.parquet")
        meta = pq.ParquetFile(path).metadata.row_group(0)
        encodings = {
            meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
        }
        dictionary = {name for name, used in encodings.items() if "RLE_DICTIONARY" in used}
        assert dictionary == {"model", "version", "variant", "prediction"}
        assert store.read("predictions").height == 500  # and it reads back


# --- properties --------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LogStore]:
    """One store per backend for every example; examples keep apart by model name."""
    if request.param == "parquet":
        location = str(tmp_path_factory.mktemp("log"))
    else:
        url: str = request.getfixturevalue("pg_url")
        schema = f"prop_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        location = _schema_url(url, schema)  # dropped with the session's database
    with open_store(location) as opened:
        yield opened


_models = itertools.count()
# PostgreSQL text cannot hold NUL; surrogates are not UTF-8.
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
times = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
rows = st.fixed_dictionaries(
    {
        "request_id": texts,
        "ts": times,
        "version": texts,
        "variant": st.none() | texts,
        "unit": st.none() | texts,
        "shadow": st.booleans(),
        "row": st.integers(-(2**31), 2**31 - 1),
        "inputs": texts,
        "prediction": texts,
        "score": st.none() | st.floats(allow_nan=True),
        "latency_ms": st.floats(),
    }
)


def _table_of(model: str, drawn: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{**r, "model": model} for r in drawn], schema=PREDICTIONS_SCHEMA)


@settings(max_examples=25)
@given(drawn=st.lists(rows, min_size=1, max_size=30), split=st.integers(0, 30))
def test_whatever_is_written_is_read_back(
    shared_store: LogStore, drawn: list[dict[str, Any]], split: int
) -> None:
    model = f"prop-{next(_models)}"
    table = _table_of(model, drawn)
    shared_store.write("predictions", table.slice(0, split))
    shared_store.write("predictions", table.slice(split))
    assert_frame_equal(shared_store.read("predictions", model=model), as_read("predictions", table))


@settings(max_examples=25)
@given(
    stamps=st.lists(times, min_size=1, max_size=20),
    since=st.none() | times,
    span=st.none() | st.timedeltas(timedelta(0), timedelta(days=4)),
)
def test_time_windows_select_exactly_their_rows(
    shared_store: LogStore, stamps: list[datetime], since: datetime | None, span: timedelta | None
) -> None:
    model = f"window-{next(_models)}"
    stamps = stamps + [s + timedelta(hours=h) for s in stamps[:3] for h in (1, 25, 49)]
    table = predictions(len(stamps), model=model).set_column(
        1, "ts", pa.array(stamps, pa.timestamp("us", tz="UTC"))
    )
    shared_store.write("predictions", table)
    until = None if since is None or span is None else since + span
    got = shared_store.read("predictions", model=model, since=since, until=until)
    want = [s for s in stamps if (since is None or s >= since) and (until is None or s < until)]
    assert sorted(got["ts"].to_list()) == sorted(want)


# --- the package -------------------------------------------------------------------------
def test_importing_the_store_stays_light() -> None:
    code = (
        "import sys, forgeml.monitoring\n"
        "print(sorted(m for m in ('polars', 'pyarrow', 'sqlalchemy', 'psycopg') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_prune_deletes_old_rows_and_never_newer_ones(store: LogStore, location: str) -> None:
    """Retention: what is older than the cutoff goes (Parquet: by whole days, two days
    behind the cutoff); nothing newer than the cutoff is ever deleted."""
    day = timedelta(days=1)
    for k in range(10):  # ten days of one row a day, at noon
        store.write("predictions", predictions(1, model=f"m{k}", start=T0 + k * day))
    store.write("events", pa.table({"ts": [T0], "kind": ["log_dropped"], "count": [3]}))
    cutoff = datetime.combine((T0 + 6 * day).date(), datetime.min.time(), UTC)
    removed = store.prune(cutoff)
    left = store.read("predictions")
    kept = sorted(left["model"].to_list())
    if location.startswith("postgresql"):  # row by row: exactly the old ones
        assert removed == {"predictions": 6, "events": 1}
        assert kept == [f"m{k}" for k in range(6, 10)]
    else:  # whole day folders whose rows (that day or the next) are all older: 0..4
        assert removed == {"predictions": 5, "events": 1}
        assert kept == [f"m{k}" for k in range(5, 10)]
    assert store.read("events").height == 0
    assert store.prune(cutoff) == {}  # nothing more to do


def test_prune_from_the_command_line(tmp_path: Path, cli) -> None:
    folder = tmp_path / "log"
    with open_store(str(folder)) as store:
        store.write("predictions", predictions(2, start=datetime(2020, 1, 1, tzinfo=UTC)))
        store.write("predictions", predictions(2, model="new", start=datetime.now(UTC)))
    result = cli("monitor", "prune", "--log", str(folder), "--older-than", "30d", "-O", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["removed"] == {"predictions": 1}
    with open_store(str(folder), create=False) as store:
        assert set(store.read("predictions")["model"]) == {"new"}
    bad = cli("monitor", "prune", "--log", str(folder), "--older-than", "soon")
    assert bad.code == 2 and "soon" in bad.err and "Traceback" not in bad.err
