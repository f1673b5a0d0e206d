"""Recording runs and versions: round trips, version numbering, aliases on commit."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from forgeml.errors import ModelNotFound, RegistryError, UsageError
from forgeml.registry import NewVersion, Registry


def test_run_round_trip(registry: Registry, make_run, make_source) -> None:
    run = make_run(metrics={"auc": 0.91, "nan_metric": math.nan, "inf": math.inf})
    result = registry.commit_run(run)
    assert result.run_id == run.run_id and result.version is None
    got = registry.get_run(run.run_id)
    assert math.isnan(got.metrics.pop("nan_metric"))
    expected = {**run.metrics}
    expected.pop("nan_metric")
    assert got.metrics == expected
    assert got.params == run.params
    assert type(got.params["depth"]) is int and type(got.params["balanced"]) is bool
    assert (got.config, got.summary, got.tags) == (run.config, run.summary, run.tags)
    assert (got.data_fingerprint, got.library_versions, got.seed) == (
        run.data_fingerprint,
        run.library_versions,
        run.seed,
    )
    assert got.started_at == run.started_at and got.started_at.tzinfo is not None
    assert got.ended_at == run.ended_at


def test_timestamps_in_other_zones_come_back_as_utc(registry: Registry, make_run) -> None:
    start = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    run = make_run(started_at=start, ended_at=None, status="running")
    registry.commit_run(run)
    got = registry.get_run(run.run_id)
    assert got.started_at == start and got.started_at.utcoffset() == timedelta(0)
    assert got.ended_at is None


def test_list_runs_newest_first_and_by_name(registry: Registry, make_run) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        registry.commit_run(make_run("churn", started_at=base + timedelta(hours=i)))
    registry.commit_run(make_run("fraud", started_at=base + timedelta(hours=10)))
    assert [r.name for r in registry.list_runs()] == ["fraud", "churn", "churn", "churn"]
    churn = registry.list_runs("churn", limit=2)
    assert [r.started_at for r in churn] == [base + timedelta(hours=2), base + timedelta(hours=1)]
    with pytest.raises(UsageError, match="limit"):
        registry.list_runs(limit=0)


def test_unknown_and_duplicate_runs(registry: Registry, make_run) -> None:
    with pytest.raises(ModelNotFound, match="no run with id 'nope'"):
        registry.get_run("nope")
    run = make_run()
    registry.commit_run(run)
    with pytest.raises(RegistryError, match="already recorded"):
        registry.commit_run(run)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "done"}, "status 'done'"),
        ({"run_id": "../x"}, "invalid run id"),
        ({"name": "bad name"}, "invalid model name"),
        ({"params": {"p": [1, 2]}}, "param 'p'"),
        ({"metrics": {"auc": "high"}}, "metric 'auc' must be a number"),
        ({"config": {"when": datetime(2026, 1, 1)}}, "config is not JSON-serialisable"),
        ({"tags": {"k": 1}}, "tags must map strings"),
    ],
)
def test_invalid_runs_are_usage_errors(
    registry: Registry, make_run, fields: dict, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        registry.commit_run(make_run(**fields))
    assert registry.list_runs() == []


def test_versions_are_numbered_and_linked_to_runs(registry: Registry, make_run, make_source):
    runs = [make_run() for _ in range(3)]
    results = [
        registry.commit_run(run, NewVersion("churn", make_source(), metrics={"auc": 0.8 + i / 10}))
        for i, run in enumerate(runs)
    ]
    versions = [r.version for r in results]
    assert [v.version for v in versions if v] == [1, 2, 3]
    third = registry.resolve("churn@3")
    assert third.run_id == runs[2].run_id
    assert third.artifact_dir == "churn/3"
    assert set(third.files) == {"model.txt", "meta/info.json"}
    assert third.metrics == pytest.approx({"auc": 1.0})
    assert third == versions[2]


def test_aliases_if_absent_makes_the_first_version_champion(
    registry: Registry, make_run, make_source
) -> None:
    first = registry.commit_run(
        make_run(), NewVersion("churn", make_source(), aliases_if_absent=["champion"])
    ).version
    second = registry.commit_run(
        make_run(),
        NewVersion("churn", make_source(), aliases=["challenger"], aliases_if_absent=["champion"]),
    ).version
    assert first is not None and second is not None
    assert first.aliases == ["champion"]
    assert second.aliases == ["challenger"]
    assert registry.get_model("churn").aliases == {"challenger": 2, "champion": 1}
    third = registry.commit_run(
        make_run(), NewVersion("churn", make_source(), aliases=["champion", "challenger"])
    ).version
    assert third is not None and third.aliases == ["challenger", "champion"]
    history = [
        (c.alias, c.from_version, c.to_version) for c in registry.get_model("churn").alias_history
    ]
    assert history == [
        ("champion", None, 1),
        ("challenger", None, 2),
        ("champion", 1, 3),
        ("challenger", 2, 3),
    ]


def test_lineage_round_trips(registry: Registry, make_run, make_source) -> None:
    lineage = {"data": {"sha256": "cd" * 32}, "seed": 3, "versions": {"forgeml": "0.1.0"}}
    registry.commit_run(make_run(), NewVersion("churn", make_source(), lineage=lineage))
    assert registry.resolve("churn").lineage == lineage


def test_list_models_and_get_model(registry: Registry, make_run, make_source) -> None:
    assert registry.list_models() == []
    for name in ["fraud", "churn", "churn"]:
        registry.commit_run(
            make_run(name), NewVersion(name, make_source(), aliases_if_absent=["champion"])
        )
    summaries = registry.list_models()
    assert [(s.name, s.latest_version, s.n_versions, s.aliases) for s in summaries] == [
        ("churn", 2, 2, {"champion": 1}),
        ("fraud", 1, 1, {"champion": 1}),
    ]
    assert all(s.updated_at.tzinfo is not None for s in summaries)
    detail = registry.get_model("churn")
    assert [v.version for v in detail.versions] == [1, 2]
    assert detail.latest.version == 2 and detail.versions[0].aliases == ["champion"]
    assert detail.updated_at >= detail.created_at


def test_reopening_keeps_everything(where, make_run, make_source) -> None:
    with where.open() as reg:
        reg.commit_run(make_run(), NewVersion("churn", make_source(), aliases=["champion"]))
    with where.open(create=False) as reg:
        version = reg.resolve("churn@champion")
        assert reg.open_artifacts(version).is_dir()
