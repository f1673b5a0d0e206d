"""``forgeml run`` end to end on real data: accounting, registry, parity, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from tests.workflow.conftest import registry_state, small_spec

import forgeml
from forgeml.config import load_spec
from forgeml.models.bundle import load_bundle, make_bundle
from forgeml.workflow.prepare import prepare
from forgeml.workflow.reporting import NullReporter
from forgeml.workflow.workspace import Workspace


def test_run_accounts_for_every_row_and_registers_a_champion(
    tmp_path: Path, flights_csv: Path
) -> None:
    registry = tmp_path / "reg"
    result = forgeml.run(small_spec(str(flights_csv), registry))
    assert (result.model_name, result.version) == ("flights", 1)
    assert set(result.aliases) == {"champion", "challenger"}
    v = result.validation
    assert v["n_input"] == 3_000 == v["n_valid"] + v["n_quarantined"]
    assert v["n_quarantined"] > 0 and set(v["reasons"]) == {"target_null:late"}
    quarantine = pl.read_parquet(v["quarantine_path"])
    assert quarantine.height == v["n_quarantined"]
    assert quarantine["reason"].str.contains("target 'late' is null").all()
    assert quarantine["_line"].min() >= 2  # physical CSV lines, after the header
    assert 0.8 < result.test_metrics["roc_auc"] <= 1.0  # real signal in real data
    html = Path(result.report_path).read_text()
    assert "roc_auc" in html and "<svg" in html and "flights" in html
    summary = json.loads(Path(result.summary_path).read_text())
    assert (
        summary["version"] == 1
        and summary["fingerprint"]["n_rows"] == v["n_valid"] + v["n_quarantined"]
    )
    assert len(summary["leaderboard"]) == 3
    with Workspace.from_uri(str(registry)).open_registry(create=False) as reg:
        run = reg.get_run(result.run_id)
        version = reg.resolve("flights@champion")
    assert run.seed == 0 and run.data_fingerprint["sha256"] == summary["fingerprint"]["sha256"]
    assert "lightgbm" in run.library_versions and run.config["target"] == "late"
    assert {"forgeml-model.json", "features.json", "report.html", "summary.json"} <= set(
        version.files
    )


def test_same_seed_and_trial_budget_give_identical_models(
    tmp_path: Path, flights_csv: Path
) -> None:
    first = forgeml.run(small_spec(str(flights_csv), tmp_path / "a", engine={"workers": 2}))
    second = forgeml.run(small_spec(str(flights_csv), tmp_path / "b", engine={"workers": 2}))
    assert first.test_metrics == second.test_metrics
    assert first.best == second.best and first.threshold == second.threshold
    a, b = registry_state(tmp_path / "a"), registry_state(tmp_path / "b")
    model_files = [
        k
        for k in a
        if k.startswith("artifacts/")
        and not k.endswith(("report.html", "summary.json", "forgeml-model.json"))
    ]
    assert model_files and all(a[k] == b[k] for k in model_files)


def test_saved_model_predicts_exactly_like_the_in_memory_one(
    tmp_path: Path, flights_csv: Path, flights_small: pl.DataFrame
) -> None:
    from forgeml.models import get_adapter

    spec = load_spec(small_spec(str(flights_csv), tmp_path / "reg"))
    prepared = prepare(spec, tmp_path / "run", NullReporter(), lambda *a: None)
    task = prepared.task
    estimator = get_adapter("lightgbm").fit(
        prepared.X_train,
        prepared.y_train,
        subtype=task.subtype,
        n_classes=task.n_classes,
        params={**get_adapter("lightgbm").default_params(task.subtype), "n_estimators": 50},
        seed=0,
    )
    in_memory = make_bundle(prepared.fitted, estimator, task, threshold=0.4)
    in_memory.save(tmp_path / "model")
    loaded = load_bundle(tmp_path / "model")
    raw = flights_small.drop("late")  # raw rows, as a caller would send them
    np.testing.assert_array_equal(loaded.predict_proba(raw), in_memory.predict_proba(raw))
    np.testing.assert_array_equal(loaded.predict(raw), in_memory.predict(raw))
    # The same rows as CSV text (every value a string) give the same predictions.
    as_text = pl.read_csv(flights_csv, infer_schema=False).drop("late")
    np.testing.assert_allclose(
        loaded.predict_proba(as_text), in_memory.predict_proba(raw), rtol=0, atol=1e-12
    )


def test_registered_model_is_a_scikit_learn_estimator(
    tmp_path: Path, flights_csv: Path, flights_small: pl.DataFrame
) -> None:
    registry = tmp_path / "reg"
    forgeml.run(small_spec(str(flights_csv), registry))
    model = forgeml.load_model("flights@champion", registry=str(registry))
    assert is_classifier(model) and list(model.classes_) == [0, 1]
    rows = flights_small.drop_nulls("late")
    proba = model.predict_proba(rows.to_pandas())
    assert proba.shape == (rows.height, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert 0.7 < model.score(rows.drop("late").to_pandas(), rows["late"].to_numpy()) <= 1.0
    assert set(model.get_params()) >= {"features", "estimator", "task", "threshold"}
    copy = clone(model)
    np.testing.assert_array_equal(copy.predict_proba(rows), proba)
    frame = forgeml.predict("flights@champion", rows, registry=str(registry))
    assert frame.height == rows.height and {"prediction", "proba_0", "proba_1"} <= set(
        frame.columns
    )


def test_regression_and_multiclass_from_python_frames(
    tmp_path: Path, diabetes: pl.DataFrame, wine: pl.DataFrame
) -> None:
    base = {
        "models": {"candidates": ["lightgbm", "linear"]},
        "tuning": {"budget": {"trials": 2}},
        "engine": {"workers": 1},
        "registry": {"uri": str(tmp_path / "reg")},
        "split": {"folds": 2},
    }
    reg = forgeml.run(
        {"name": "diabetes", "task": "regression", "target": "progression", **base},
        data=diabetes.to_pandas(),
    )
    assert reg.task == "regression" and {"rmse", "mae", "r2", "mape"} <= set(reg.test_metrics)
    assert reg.test_metrics["r2"] > 0.2 and reg.threshold is None
    multi = forgeml.run(
        {"name": "wine", "task": "classification", "target": "cultivar", **base}, data=wine
    )
    assert multi.task == "multiclass" and multi.test_metrics["accuracy"] > 0.85
    model = forgeml.load_model("wine", registry=str(tmp_path / "reg"))
    assert list(model.classes_) == ["class_0", "class_1", "class_2"]
    regressor = forgeml.load_model("diabetes@1", registry=str(tmp_path / "reg"))
    assert is_regressor(regressor) and regressor.predict(diabetes).shape == (diabetes.height,)


def test_explicit_test_set(tmp_path: Path, flights_small: pl.DataFrame) -> None:
    train, test = flights_small.head(2_400), flights_small.tail(600)
    result = forgeml.run(small_spec(None, tmp_path / "reg"), data=train, test_data=test)
    summary = json.loads(Path(result.summary_path).read_text())
    assert summary["n_test"] == test.drop_nulls("late").height
    assert summary["test_validation"]["n_input"] == 600


def test_second_run_is_a_challenger_until_promoted(tmp_path: Path, flights_csv: Path, cli) -> None:
    registry = tmp_path / "reg"
    forgeml.run(small_spec(str(flights_csv), registry))
    second = forgeml.run(small_spec(str(flights_csv), registry, seed=1))
    assert second.version == 2 and second.aliases == ["challenger"]
    assert cli("models", "promote", "flights", "2", "--registry", str(registry)).code == 0
    assert forgeml.load_model("flights@champion", registry=str(registry)).metadata["version"] == 2
    assert cli("models", "rollback", "flights", "--registry", str(registry)).code == 0
    assert forgeml.load_model("flights@champion", registry=str(registry)).metadata["version"] == 1
    shown = json.loads(
        cli("models", "show", "flights", "--registry", str(registry), "-O", "json").out
    )
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert [e["action"] for e in shown["alias_history"] if e["alias"] == "champion"][
        -1
    ] == "rollback"


@pytest.mark.postgres
def test_postgresql_registry(
    tmp_path: Path, flights_csv: Path, pg_url: str, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trust authentication ignores the password, so it can stand in for a real secret.
    monkeypatch.setenv("FORGEML_TEST_SECRET", "s3cr3t-value")
    url = pg_url.replace("postgres@", "postgres:${FORGEML_TEST_SECRET}@")
    spec = small_spec(str(flights_csv), url)
    spec["registry"]["artifacts"] = str(tmp_path / "artifacts")
    result = forgeml.run(spec)
    again = forgeml.run(spec)
    assert (result.version, again.version) == (1, 2)
    assert "s3cr3t" not in json.dumps(result.to_dict()) and "***" in result.registry
    for path in (result.report_path, result.summary_path):
        assert "s3cr3t" not in Path(path).read_text()
    # The database remembers where its artifacts live: the URL alone is enough.
    model = forgeml.load_model("flights@champion", registry=pg_url)
    assert model.metadata["version"] == 1
    assert model.predict(pl.read_csv(flights_csv).head(5)).shape == (5,)
    from forgeml.registry import Registry

    with Registry.open(pg_url, create=False) as reg:
        version = reg.resolve("flights@2")
        run = reg.get_run(version.run_id)
        assert "s3cr3t" not in json.dumps(version.lineage) and "s3cr3t" not in json.dumps(
            run.config
        )
    shown = cli("models", "show", "flights", "--registry", pg_url, "-O", "json")
    assert shown.code == 0 and [v["version"] for v in json.loads(shown.out)["versions"]] == [1, 2]


def test_large_training_sets_are_tuned_on_a_stratified_sample(
    tmp_path: Path, flights_csv: Path
) -> None:
    spec = load_spec(small_spec(str(flights_csv), tmp_path / "reg", tuning={"max_rows": 1_000}))
    prepared = prepare(spec, tmp_path / "run", NullReporter(), lambda *a: None)
    rows = prepared.tune_rows
    assert rows is not None and len(rows) == 1_000 and len(np.unique(rows)) == 1_000
    assert prepared.tune_folds is not None and len(prepared.tune_folds) == 2
    covered = np.concatenate([va for _, va in prepared.tune_folds])
    assert sorted(covered.tolist()) == list(range(1_000))
    # Stratified: the class balance of the sample matches the training set's.
    assert abs(prepared.y_tune.mean() - prepared.y_train.mean()) < 0.01
    result = forgeml.run(spec)
    assert result.version == 1 and len(prepared.y_train) > 1_000


def test_runs_are_mirrored_to_mlflow_when_its_tracking_uri_is_set(
    tmp_path: Path, flights_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts of a sqlite-tracked run in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = forgeml.run(
        small_spec(str(flights_csv), tmp_path / "reg", tuning={"budget": {"trials": 1}})
    )
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("flights")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["forgeml.run_id"] == result.run_id
    assert runs[0].data.metrics["test_roc_auc"] == pytest.approx(result.test_metrics["roc_auc"])
    assert runs[0].data.params["model"] == result.best["model"]


@pytest.mark.parametrize("strategy", ["group", "time"])
def test_group_and_time_splits_hold_end_to_end(
    tmp_path: Path, flights_csv: Path, strategy: str
) -> None:
    split = {"strategy": strategy, "folds": 2}
    split |= {"group_column": "carrier"} if strategy == "group" else {"time_column": "time_hour"}
    spec = load_spec(small_spec(str(flights_csv), tmp_path / "reg", split=split))
    frame = pl.read_csv(flights_csv).filter(pl.col("late").is_not_null())
    frame = frame.with_columns(pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ"))
    prepared = prepare(spec, tmp_path / "run", NullReporter(), lambda *a: None)
    assert len(prepared.y_train) + len(prepared.y_test) == frame.height
    result = forgeml.run(spec)
    assert result.version == 1
    # Re-derive the split the run used and check its rule on the real column.
    from forgeml.data import holdout_split

    column = frame["carrier" if strategy == "group" else "time_hour"].to_numpy()
    train, test = holdout_split(
        frame.height,
        strategy=strategy,
        test_size=0.2,
        seed=0,
        groups=column if strategy == "group" else None,
        times=column if strategy == "time" else None,
    )
    if strategy == "group":
        assert not set(column[train]) & set(column[test])
    else:
        assert column[train].max() <= column[test].min()


def test_declared_datetime_formats_apply_at_prediction_time(
    tmp_path: Path, flights_small: pl.DataFrame
) -> None:
    frame = flights_small.with_columns(
        day_first=pl.col("time_hour")
        .str.to_datetime("%Y-%m-%dT%H:%M:%SZ")
        .dt.strftime("%d/%m/%Y %H:%M")
    ).drop("time_hour")
    path = tmp_path / "dated.csv"
    frame.write_csv(path)
    spec = small_spec(
        str(path),
        tmp_path / "reg",
        columns={"day_first": {"type": "datetime", "datetime_format": "%d/%m/%Y %H:%M"}},
    )
    spec["features"] = {"datetime": {"parts": ["month", "hour", "dayofweek"]}}
    forgeml.run(spec)
    model = forgeml.load_model("flights@1", registry=str(tmp_path / "reg"))
    as_text = pl.read_csv(path, infer_schema=False).drop("late").head(200)
    parsed = as_text.with_columns(pl.col("day_first").str.to_datetime("%d/%m/%Y %H:%M"))
    np.testing.assert_allclose(model.predict_proba(as_text), model.predict_proba(parsed))
    hours = model.features.transform(parsed)[
        :, model.features.feature_names.index("day_first__hour")
    ]
    assert np.unique(hours).size > 1  # the dates were read, not imputed
