"""Every bad input gets a one-line error naming its cause, the right exit code (2 for
usage/config errors, 1 for run failures), no traceback, and leaves the registry exactly as
it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from tests.workflow.conftest import registry_state, small_spec

import forgeml


@pytest.fixture(scope="module")
def _registry_template(
    tmp_path_factory: pytest.TempPathFactory, flights_small: pl.DataFrame
) -> Path:
    """A registry holding one model version, built once and copied into each test."""
    folder = tmp_path_factory.mktemp("template")
    data = folder / "flights.csv"
    flights_small.write_csv(data)
    forgeml.run(small_spec(str(data), folder / "reg", tuning={"budget": {"trials": 1}}))
    return folder / "reg"


@pytest.fixture
def project(tmp_path: Path, flights_csv: Path, _registry_template: Path) -> Path:
    """A project folder (with ``flights.csv``) and a registry holding one model version."""
    shutil.copytree(_registry_template, tmp_path / "reg", symlinks=False)
    return tmp_path


def _spec_file(folder: Path, spec: dict, name: str = "forgeml.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def _fails(cli, registry: Path, args: list[str], code: int, *fragments: str) -> str:
    before = registry_state(registry)
    result = cli(*args)
    assert result.code == code, (result.code, result.err)
    assert "Traceback" not in result.err and "Traceback" not in result.out
    # Progress lines may come first; the error itself is exactly one line, and the last.
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.err
    message = errors[0]
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert registry_state(registry) == before
    return message


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_missing_file(cli, project: Path) -> None:
    spec = _spec_file(project, small_spec(str(project / "nope.csv"), project / "reg"))
    _fails(cli, project / "reg", ["run", str(spec)], 2, "file not found", "nope.csv")


def test_unreadable_binary_file(cli, project: Path) -> None:
    data = _write(project, "model.csv", bytes(range(256)) * 64)
    spec = _spec_file(project, small_spec(str(data), project / "reg"))
    _fails(cli, project / "reg", ["run", str(spec)], 2, "model.csv")


def test_wrong_delimiter(cli, project: Path, flights_small: pl.DataFrame) -> None:
    data = project / "semi.csv"
    flights_small.write_csv(data, separator=";")
    spec = _spec_file(project, small_spec(str(data), project / "reg"))
    _fails(cli, project / "reg", ["run", str(spec)], 2, "semi.csv", "delimiter", "';'")


def test_wrong_encoding(cli, project: Path) -> None:
    rows = "city,late\n" + "".join(f"{c},{i % 2}\n" for i, c in enumerate(["Zürich", "Köln"] * 50))
    data = _write(project, "latin.csv", rows.encode("latin-1"))
    spec = _spec_file(project, small_spec(str(data), project / "reg"))
    _fails(cli, project / "reg", ["run", str(spec)], 2, "latin.csv", "encoding")


def test_target_column_absent(cli, project: Path, flights_csv: Path) -> None:
    spec = _spec_file(project, small_spec(str(flights_csv), project / "reg", target="lat"))
    _fails(
        cli,
        project / "reg",
        ["run", str(spec)],
        2,
        "target column 'lat' not found",
        "did you mean 'late'",
    )


def test_target_with_one_class(cli, project: Path, flights_small: pl.DataFrame) -> None:
    data = project / "one.csv"
    flights_small.with_columns(late=pl.lit(1)).write_csv(data)
    spec = _spec_file(project, small_spec(str(data), project / "reg"))
    _fails(cli, project / "reg", ["run", str(spec)], 1, "target 'late' has only 1", "two classes")


def test_empty_table(cli, project: Path) -> None:
    data = _write(project, "empty.csv", "dep_delay,carrier,late\n")
    spec = _spec_file(project, small_spec(str(data), project / "reg"))
    _fails(cli, project / "reg", ["run", str(spec)], 1, "empty.csv", "no rows")


def test_all_null_columns_are_reported_not_fatal(
    cli, project: Path, flights_small: pl.DataFrame
) -> None:
    data = project / "nulls.csv"
    flights_small.with_columns(empty=pl.lit(None, dtype=pl.String)).write_csv(data)
    spec = _spec_file(project, small_spec(str(data), project / "reg"))
    result = cli("run", str(spec), "-O", "json")
    assert result.code == 0, result.err
    assert "column 'empty' is entirely null" in result.err
    model = forgeml.load_model(
        f"flights@{json.loads(result.out)['version']}", registry=str(project / "reg")
    )
    assert "empty" not in model.input_schema and not any(
        n.startswith("empty") for n in model.features.feature_names
    )


def test_too_many_bad_rows_stop_the_run_and_keep_the_evidence(
    cli, project: Path, flights_small: pl.DataFrame
) -> None:
    data = project / "bad.csv"
    flights_small.write_csv(data)
    spec = _spec_file(
        project, small_spec(str(data), project / "reg", columns={"dep_delay": {"max": 0}})
    )
    message = _fails(
        cli,
        project / "reg",
        ["run", str(spec)],
        1,
        "failed validation",
        "range:dep_delay",
        "quarantine",
    )
    quarantine = message.rsplit(" ", 1)[-1].rstrip(")")
    failures = list((project / "reg" / "runs").glob("*/failure.json"))
    assert failures, "a failed run leaves failure.json"
    assert (
        any(Path(f).with_name("quarantine.parquet").exists() for f in failures)
        or Path(quarantine).exists()
    )


def test_typo_in_spec(cli, project: Path, flights_csv: Path) -> None:
    spec = small_spec(str(flights_csv), project / "reg")
    spec["tunning"] = spec.pop("tuning")
    path = _spec_file(project, spec)
    _fails(
        cli,
        project / "reg",
        ["run", str(path)],
        2,
        "tunning: unknown field (did you mean 'tuning'?)",
    )
    _fails(cli, project / "reg", ["config", "check", str(path)], 2, "tunning")


def test_unknown_model_parameter_fails_before_training(
    cli, project: Path, flights_csv: Path
) -> None:
    models = {"candidates": [{"name": "lightgbm", "params": {"num_leaf": 8}}]}
    spec = _spec_file(project, small_spec(str(flights_csv), project / "reg", models=models))
    before = set((project / "reg" / "runs").glob("*/quarantine.parquet"))
    _fails(
        cli,
        project / "reg",
        ["run", str(spec)],
        2,
        "models.candidates[0].params",
        "no parameter 'num_leaf'",
    )
    assert set((project / "reg" / "runs").glob("*/quarantine.parquet")) == before  # no data read
    _fails(cli, project / "reg", ["config", "check", str(spec)], 2, "num_leaf")


def test_missing_optional_package_names_the_extra(cli, project: Path) -> None:
    message = _fails(
        cli, project / "reg", ["init", "s3://bucket/data.csv", "--target", "y"], 2, "s3fs"
    )
    assert "pip install 'forgeml[s3]'" in message  # printed as is, not eaten as markup


def test_unknown_model_name(cli, project: Path, flights_csv: Path) -> None:
    spec = _spec_file(
        project,
        small_spec(str(flights_csv), project / "reg", models={"candidates": ["lightgbm", "lgbm"]}),
    )
    _fails(
        cli, project / "reg", ["run", str(spec)], 2, "models.candidates[1]: unknown model 'lgbm'"
    )
    _fails(cli, project / "reg", ["config", "check", str(spec)], 2, "models.candidates[1]")


def test_budget_of_zero(cli, project: Path, flights_csv: Path) -> None:
    spec = _spec_file(
        project, small_spec(str(flights_csv), project / "reg", tuning={"budget": {"trials": 0}})
    )
    _fails(cli, project / "reg", ["run", str(spec)], 2, "tuning.budget.trials")
    good = _spec_file(project, small_spec(str(flights_csv), project / "reg"), "good.yaml")
    _fails(
        cli,
        project / "reg",
        ["run", str(good), "--set", "tuning.budget.seconds=0"],
        2,
        "tuning.budget.seconds",
    )


def test_registry_path_not_writable(cli, project: Path, flights_csv: Path) -> None:
    blocker = project / "a-file"
    blocker.write_text("not a folder")
    spec = _spec_file(project, small_spec(str(flights_csv), blocker / "reg"))
    _fails(cli, project / "reg", ["run", str(spec)], 2, "a-file")
    assert blocker.read_text() == "not a folder"


def test_model_name_that_does_not_exist(cli, project: Path, flights_csv: Path) -> None:
    reg = str(project / "reg")
    _fails(
        cli,
        project / "reg",
        [
            "predict",
            "flihgts@champion",
            str(flights_csv),
            "-o",
            str(project / "o.parquet"),
            "--registry",
            reg,
        ],
        2,
        "no model named 'flihgts'",
        "did you mean 'flights'",
    )
    _fails(cli, project / "reg", ["models", "show", "nope", "--registry", reg], 2, "nope")
    _fails(cli, project / "reg", ["models", "promote", "flights", "7", "--registry", reg], 2, "7")
    _fails(
        cli,
        project / "reg",
        [
            "predict",
            "flights@champ",
            str(flights_csv),
            "-o",
            str(project / "o.parquet"),
            "--registry",
            reg,
        ],
        2,
        "alias 'champ'",
    )
    assert not (project / "o.parquet").exists()


def test_tampered_artifact(cli, project: Path, flights_csv: Path) -> None:
    reg = project / "reg"
    model_dir = reg / "artifacts" / "flights" / "1"
    target = next(p for p in model_dir.iterdir() if p.name.startswith("estimator."))
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    out = project / "scored.parquet"
    _fails(
        cli,
        reg,
        ["predict", "flights@champion", str(flights_csv), "-o", str(out), "--registry", str(reg)],
        1,
        "sha256 mismatch",
        target.name,
    )
    assert not out.exists()
    with pytest.raises(forgeml.ForgeError, match="sha256 mismatch"):
        forgeml.load_model("flights@1", registry=str(reg))


def test_spec_file_problems(cli, project: Path) -> None:
    _fails(
        cli, project / "reg", ["run", str(project / "missing.yaml")], 2, "missing.yaml", "not found"
    )
    broken = _write(project, "broken.yaml", "name: [oops\n")
    _fails(cli, project / "reg", ["run", str(broken)], 2, "broken.yaml", "invalid YAML")
