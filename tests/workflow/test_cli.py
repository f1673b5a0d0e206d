"""The CLI as a user drives it: init -> config check -> run -> predict -> models -> export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

import forgeml


def test_help_lists_every_command(cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in ("init", "run", "predict", "demo", "config", "models"):
        assert command in result.out
    assert cli("models", "--help").code == 0
    assert cli("version").out.strip() == forgeml.__version__


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from forgeml.cli.main import app; "
        "heavy = [m for m in ('polars', 'sklearn', 'lightgbm', 'optuna', 'sqlalchemy', 'pyarrow') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_full_flow_from_a_csv(
    cli,
    tmp_path: Path,
    flights_csv: Path,
    flights_small: pl.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    init = cli("init", str(flights_csv), "--target", "late", "-O", "json")
    assert init.code == 0, init.err
    info = json.loads(init.out)
    assert info["task"] == "classification" and info["name"] == "flights"
    assert info["columns"]["rownames"] == "id" and info["columns"]["carrier"] == "categorical"
    assert info["columns"]["time_hour"] == "datetime"
    assert cli("init", str(flights_csv), "--target", "late").code == 2  # exists: --force needed

    spec = yaml.safe_load(Path("forgeml.yaml").read_text())
    spec["tuning"] = {"budget": {"trials": 2}}
    spec["models"] = {"candidates": ["lightgbm", "linear"]}
    spec["split"]["folds"] = 2
    Path("forgeml.yaml").write_text(yaml.safe_dump(spec))
    check = cli("config", "check", "forgeml.yaml", "-O", "json")
    assert check.code == 0, check.err
    assert json.loads(check.out)["candidates"] == ["lightgbm", "linear"]
    assert "tuning:" in cli("config", "show", "forgeml.yaml").out

    run = cli("run", "forgeml.yaml", "-O", "json")
    assert run.code == 0, run.err
    result = json.loads(run.out)
    assert result["ref"] == "flights@1" and "champion" in result["aliases"]
    assert (
        result["validation"]["n_input"]
        == result["validation"]["n_valid"] + result["validation"]["n_quarantined"]
    )
    text = cli("run", "forgeml.yaml", "--set", "seed=3")
    assert text.code == 0 and "flights@2" in text.out and "report" in text.out

    new = tmp_path / "new.parquet"
    flights_small.drop("late").write_parquet(new)
    scored = cli("predict", "flights@champion", str(new), "-o", "scored.parquet", "-O", "json")
    assert scored.code == 0, scored.err
    assert json.loads(scored.out)["n_scored"] == flights_small.height
    out = pl.read_parquet("scored.parquet")
    assert out.height == flights_small.height and {"prediction", "proba_1", "carrier"} <= set(
        out.columns
    )
    model = forgeml.load_model("flights@champion")
    np.testing.assert_allclose(out["proba_1"].to_numpy(), model.predict_proba(flights_small)[:, 1])

    listing = json.loads(cli("models", "list", "-O", "json").out)
    assert listing[0]["name"] == "flights" and listing[0]["latest_version"] == 2
    assert "champion" in cli("models", "show", "flights").out


def test_predict_streams_csv_and_flags_bad_values(
    cli, tmp_path: Path, flights_csv: Path, flights_small: pl.DataFrame
) -> None:
    from tests.workflow.conftest import small_spec

    registry = tmp_path / "reg"
    forgeml.run(small_spec(str(flights_csv), registry, tuning={"budget": {"trials": 1}}))
    rows = flights_small.drop("late").head(50).with_columns(pl.col("dep_delay").cast(pl.String))
    rows = rows.with_columns(
        dep_delay=pl.when(pl.int_range(pl.len()) == 3)
        .then(pl.lit("soon"))
        .otherwise(pl.col("dep_delay"))
    )
    csv = tmp_path / "new.csv"
    rows.write_csv(csv)
    with csv.open("a") as fh:  # one line that cannot be parsed at all
        fh.write("1,2,3\n")
    out = tmp_path / "scored.parquet"
    result = cli(
        "predict",
        "flights@1",
        str(csv),
        "-o",
        str(out),
        "--registry",
        str(registry),
        "--chunk-rows",
        "1000",
        "-O",
        "json",
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert (
        summary["n_input"],
        summary["n_scored"],
        summary["n_unreadable"],
        summary["n_flagged"],
    ) == (51, 50, 1, 1)
    scored = pl.read_parquet(out)
    assert scored.height == 50 and scored["_issues"].to_list()[3] == "dep_delay"
    rejected = pl.read_parquet(summary["rejected"])
    assert rejected["_line"].to_list() == [52] and "expected" in rejected["reason"][0]


def test_mlflow_export_predicts_the_same(
    cli, tmp_path: Path, flights_csv: Path, flights_small: pl.DataFrame
) -> None:
    import mlflow.pyfunc
    from tests.workflow.conftest import small_spec

    registry = tmp_path / "reg"
    forgeml.run(small_spec(str(flights_csv), registry, tuning={"budget": {"trials": 1}}))
    target = tmp_path / "exported"
    result = cli(
        "models", "export", "flights@champion", "-o", str(target), "--registry", str(registry)
    )
    assert result.code == 0, result.err
    assert (target / "MLmodel").is_file() and (target / "model" / "forgeml-model.json").is_file()
    assert "python_function" in (target / "MLmodel").read_text()
    loaded = mlflow.pyfunc.load_model(str(target))
    assert loaded.metadata.signature is not None
    rows = flights_small.drop("late").head(100).to_pandas()
    got = loaded.predict(rows)
    want = forgeml.load_model("flights@champion", registry=str(registry)).predict_proba(rows)[:, 1]
    np.testing.assert_allclose(got["proba_1"].to_numpy(), want)
    assert (
        cli(
            "models", "export", "flights@champion", "-o", str(target), "--registry", str(registry)
        ).code
        == 2
    )


def test_run_honours_forgeml_registry(
    cli, tmp_path: Path, flights_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.workflow.conftest import small_spec

    spec = tmp_path / "forgeml.yaml"
    spec.write_text(
        yaml.safe_dump(
            small_spec(str(flights_csv), tmp_path / "in-spec", tuning={"budget": {"trials": 1}})
        )
    )
    monkeypatch.setenv("FORGEML_REGISTRY", str(tmp_path / "from-env"))
    result = cli("run", str(spec), "-O", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["registry"] == str(tmp_path / "from-env")
    assert (tmp_path / "from-env" / "registry.db").is_file() and not (tmp_path / "in-spec").exists()
    assert json.loads(cli("models", "list", "-O", "json").out)[0]["name"] == "flights"


def test_predict_reads_text_timestamps_in_the_declared_format(
    cli, tmp_path: Path, flights_small: pl.DataFrame
) -> None:
    from tests.workflow.conftest import small_spec

    frame = flights_small.with_columns(
        when=pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ").dt.strftime("%m/%d/%Y %H:%M")
    ).drop("time_hour")
    path = tmp_path / "dated.csv"
    frame.write_csv(path)
    spec = small_spec(
        str(path),
        tmp_path / "reg",
        tuning={"budget": {"trials": 1}},
        columns={"when": {"type": "datetime", "datetime_format": "%m/%d/%Y %H:%M"}},
    )
    forgeml.run(spec)
    out = tmp_path / "scored.parquet"
    result = cli(
        "predict", "flights@1", str(path), "-o", str(out), "--registry", str(tmp_path / "reg")
    )
    assert result.code == 0, result.err
    scored = pl.read_parquet(out)
    assert scored["_issues"].null_count() == scored.height  # every timestamp read
    model = forgeml.load_model("flights@1", registry=str(tmp_path / "reg"))
    np.testing.assert_allclose(
        scored["proba_1"].to_numpy(),
        model.predict_proba(pl.read_csv(path, infer_schema=False))[:, 1],
    )
