"""Experiments in the registry, on SQLite and PostgreSQL: start (and every refusal, also
under concurrency), weights, saved state, conclusion (atomic with the alias move), and the
migration that gives an older registry the experiments table."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from forgeml.errors import ModelNotFound, RegistryError, UsageError
from forgeml.experiments.spec import Experiment
from forgeml.registry import NewVersion, Registry
from forgeml.registry import aliases as alias_ops
from forgeml.registry.schema import SCHEMA_VERSION, experiments, forgeml_schema


def make_experiment(**fields: Any) -> Experiment:
    values: dict[str, Any] = {
        "model": "churn",
        "name": "churn-nov",
        "variants": {"champion": 0.9, "challenger": 0.1},
        "unit": "user_id",
        "metric": "converted",
    }
    values.update(fields)
    return Experiment(**values)


@pytest.fixture
def churn(registry: Registry, make_run, make_source) -> Registry:
    """``churn`` v1 (champion), v2 (challenger) and v3 (no alias)."""
    for _ in range(3):
        registry.commit_run(
            make_run(),
            NewVersion("churn", make_source({"m.txt": "x"}), aliases_if_absent=["champion"]),
        )
    registry.set_alias("churn", "challenger", 2)
    return registry


def test_start_records_versions_and_times(churn: Registry) -> None:
    started = churn.start_experiment(make_experiment())
    assert started.versions == {"champion": 1, "challenger": 2}
    assert started.status == "running" and started.running
    assert started.started_at is not None and started.started_at.tzinfo is not None
    assert started.weights_since == started.started_at
    assert churn.running_experiment("churn") == started
    assert churn.get_experiment("churn") == started
    assert churn.get_experiment("churn", "churn-nov") == started
    assert churn.running_experiments() == [started]
    assert churn.list_experiments() == churn.list_experiments("churn") == [started]


def test_variants_may_name_versions(churn: Registry) -> None:
    started = churn.start_experiment(make_experiment(variants={"v1": 0.5, "3": 0.5}))
    assert started.versions == {"v1": 1, "3": 3}
    assert started.control == "v1"


def test_versions_stay_fixed_while_aliases_move(churn: Registry) -> None:
    churn.start_experiment(make_experiment())
    churn.set_alias("churn", "challenger", 3)
    assert churn.running_experiment("churn").versions == {"champion": 1, "challenger": 2}


def test_missing_alias_version_and_model_are_named(churn: Registry) -> None:
    with pytest.raises(ModelNotFound, match="has no alias 'canary'") as info:
        churn.start_experiment(make_experiment(variants={"champion": 0.5, "canary": 0.5}))
    assert "aliases: challenger, champion" in str(info.value)
    with pytest.raises(ModelNotFound, match="has no version 7") as info:
        churn.start_experiment(make_experiment(variants={"champion": 0.5, "v7": 0.5}))
    assert "versions 1 to 3" in str(info.value)
    with pytest.raises(ModelNotFound, match="no model named 'chrun'") as info:
        churn.start_experiment(make_experiment(model="chrun"))
    assert "did you mean 'churn'" in str(info.value)
    with pytest.raises(ModelNotFound, match="has no alias 'prod'"):
        churn.start_experiment(make_experiment(alias="prod"))
    with pytest.raises(UsageError, match="invalid alias 'Champion'"):
        churn.start_experiment(make_experiment(variants={"Champion": 0.5, "challenger": 0.5}))
    assert churn.list_experiments() == []


def test_one_running_experiment_per_model(churn: Registry) -> None:
    churn.start_experiment(make_experiment())
    with pytest.raises(UsageError, match="already has a running experiment, 'churn-nov'") as info:
        churn.start_experiment(make_experiment(name="another"))
    assert "forgeml ab conclude" in str(info.value)
    assert (info.value.exit_code, info.value.http_status) == (2, 409)  # a conflict
    churn.conclude_experiment("churn", rollback=True)
    with pytest.raises(UsageError, match="already has an experiment named 'churn-nov'"):
        churn.start_experiment(make_experiment())
    second = churn.start_experiment(make_experiment(name="another"))
    assert [e.name for e in churn.list_experiments("churn")] == ["churn-nov", "another"]
    assert churn.get_experiment("churn") == second  # the latest
    assert churn.get_experiment("churn", "churn-nov").status == "concluded"


def test_the_database_refuses_a_second_running_row(churn: Registry) -> None:
    started = churn.start_experiment(make_experiment())
    with pytest.raises(RegistryError), churn._db.write() as conn:
        conn.execute(
            experiments.insert().values(
                model="churn",
                name="sneaky",
                status="running",
                spec=started.to_dict(),
                started_at=started.started_at,
            )
        )
    assert [e.name for e in churn.running_experiments()] == ["churn-nov"]


def race(where: Any, names: list[str]) -> list[object]:
    """Start one experiment per name at once, each from its own registry (its own
    connection pool); returns each start's experiment or UsageError."""
    barrier = threading.Barrier(len(names))
    outcomes: list[object] = [None] * len(names)

    def starter(i: int) -> None:
        with where.open(create=False) as reg:
            exp = make_experiment(name=names[i])
            barrier.wait(timeout=30)
            try:
                outcomes[i] = reg.start_experiment(exp)
            except UsageError as exc:
                outcomes[i] = exc

    threads = [threading.Thread(target=starter, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_concurrent_starts_exactly_one_wins(where, churn: Registry) -> None:
    for round_ in range(3):
        outcomes = race(where, [f"r{round_}-a", f"r{round_}-b"])
        winners = [o for o in outcomes if isinstance(o, Experiment)]
        losers = [o for o in outcomes if isinstance(o, UsageError)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert f"running experiment, {winners[0].name!r}" in str(losers[0])
        assert churn.running_experiments() == winners
        churn.conclude_experiment("churn", rollback=True)


def test_concurrent_starts_of_one_name_exactly_one_wins(where, churn: Registry) -> None:
    outcomes = race(where, ["same", "same"])
    assert sum(isinstance(o, Experiment) for o in outcomes) == 1, outcomes
    assert [e.name for e in churn.list_experiments()] == ["same"]


def test_weights_change_keeps_variant_order(churn: Registry) -> None:
    started = churn.start_experiment(make_experiment())
    updated = churn.set_experiment_weights("churn", {"challenger": 0.5, "champion": 0.5})
    assert list(updated.variants) == ["champion", "challenger"]
    assert updated.variants == {"champion": 0.5, "challenger": 0.5}
    assert started.weights_since is not None and updated.weights_since is not None
    assert updated.weights_since > started.weights_since
    assert updated.started_at == started.started_at
    assert churn.running_experiment("churn") == updated


def test_bad_weights_are_refused(churn: Registry) -> None:
    with pytest.raises(UsageError, match="no running experiment"):
        churn.set_experiment_weights("churn", {"champion": 0.5, "challenger": 0.5})
    churn.start_experiment(make_experiment())
    with pytest.raises(UsageError, match="must sum to 1"):
        churn.set_experiment_weights("churn", {"champion": 0.5, "challenger": 0.6})
    with pytest.raises(UsageError, match="missing: challenger; unknown: canary"):
        churn.set_experiment_weights("churn", {"champion": 0.5, "canary": 0.5})
    assert churn.running_experiment("churn").variants == {"champion": 0.9, "challenger": 0.1}


def test_state_round_trips(churn: Registry) -> None:
    churn.start_experiment(make_experiment())
    state = {"challenger": {"tau": 0.01, "p_value": 0.2, "looks": 2, "history": [0.5, 0.2]}}
    churn.save_experiment_state("churn", "churn-nov", state)
    assert churn.get_experiment("churn").state == state
    with pytest.raises(ModelNotFound, match="has no experiment 'nope'"):
        churn.save_experiment_state("churn", "nope", state)


def test_conclude_with_promotion_moves_the_alias_once(churn: Registry) -> None:
    churn.start_experiment(make_experiment())
    done, change = churn.conclude_experiment("churn", promote="challenger")
    assert change is not None
    assert (change.alias, change.from_version, change.to_version) == ("champion", 1, 2)
    assert done.status == "concluded" and done.concluded_at is not None
    assert done.conclusion == {
        "action": "promote",
        "variant": "challenger",
        "version": 2,
        "alias": "champion",
    }
    assert churn.resolve("churn@champion").version == 2
    assert churn.running_experiment("churn") is None
    assert churn.get_model("churn").alias_history[-1].to_version == 2
    back = churn.rollback("churn")  # forgeml models rollback undoes the promotion
    assert (back.from_version, back.to_version) == (2, 1)


def test_conclude_with_rollback_moves_nothing(churn: Registry) -> None:
    churn.start_experiment(make_experiment())
    history = churn.get_model("churn").alias_history
    done, change = churn.conclude_experiment("churn", rollback=True)
    assert change is None
    assert done.conclusion == {"action": "rollback", "alias": "champion"}
    assert churn.resolve("churn@champion").version == 1
    assert churn.get_model("churn").alias_history == history


def test_promoting_the_control_concludes_without_a_move(churn: Registry) -> None:
    churn.start_experiment(make_experiment())
    done, change = churn.conclude_experiment("churn", promote="champion")
    assert change is None and done.status == "concluded"


def test_conclude_refusals(churn: Registry) -> None:
    with pytest.raises(UsageError, match="cannot conclude: model 'churn' has no running"):
        churn.conclude_experiment("churn", rollback=True)
    churn.start_experiment(make_experiment())
    with pytest.raises(UsageError, match="exactly one of --promote VARIANT or --rollback"):
        churn.conclude_experiment("churn", promote="challenger", rollback=True)
    with pytest.raises(UsageError, match="exactly one"):
        churn.conclude_experiment("churn")
    with pytest.raises(UsageError, match="has no variant 'canary'"):
        churn.conclude_experiment("churn", promote="canary")
    assert churn.running_experiment("churn") is not None


def test_conclusion_and_alias_move_are_atomic(
    churn: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    churn.start_experiment(make_experiment())

    def fail(*args: object, **kwargs: object) -> None:
        raise sa.exc.OperationalError("UPDATE aliases", {}, Exception("disk I/O error"))

    monkeypatch.setattr(alias_ops, "move_alias", fail)
    with pytest.raises(RegistryError, match="disk I/O error"):
        churn.conclude_experiment("churn", promote="challenger")
    monkeypatch.undo()
    still = churn.running_experiment("churn")
    assert still is not None and still.status == "running" and still.conclusion is None
    assert churn.resolve("churn@champion").version == 1


def test_get_experiment_errors(churn: Registry) -> None:
    with pytest.raises(ModelNotFound, match="model 'churn' has no experiments"):
        churn.get_experiment("churn")
    with pytest.raises(ModelNotFound, match="no model named 'fraud'"):
        churn.get_experiment("fraud")
    assert churn.running_experiment("churn") is None


def test_a_v1_registry_gains_the_experiments_table(where, make_run, make_source) -> None:
    """A registry written by the previous schema (v1 = v2 without experiments) is migrated
    on open, its data intact."""
    with where.open() as reg:
        reg.commit_run(make_run(), NewVersion("churn", make_source(), aliases=["champion"]))
        reg.commit_run(make_run(), NewVersion("churn", make_source(), aliases=["challenger"]))
        with reg._db.write() as conn:
            conn.execute(sa.text("DROP TABLE experiments"))
            conn.execute(forgeml_schema.update().values(version=1))
    with where.open(create=False) as reg:
        with reg._db.read() as conn:
            assert sa.inspect(conn).has_table("experiments")
            assert conn.execute(sa.select(forgeml_schema.c.version)).scalar_one() == 2
        assert reg.resolve("churn@challenger").version == 2
        started = reg.start_experiment(make_experiment())
        assert started.versions == {"champion": 1, "challenger": 2}
    assert SCHEMA_VERSION == 2
    with where.open() as reg, pytest.raises(UsageError, match="already has a running"):
        reg.start_experiment(make_experiment(name="again"))


def _schema_snapshot(conn: sa.Connection) -> dict[str, Any]:
    """Every table's columns, keys, constraints and indexes, as the database reports them."""
    inspector = sa.inspect(conn)
    snapshot: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        snapshot[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
        }
    return snapshot


def test_a_migrated_registry_has_exactly_the_schema_of_a_new_one(
    where, make_run, make_source
) -> None:
    """Migrations are checked against creation: a populated v1 registry, once migrated,
    has the same tables, columns, keys, constraints and indexes as an empty registry
    created by this version (a migration that forgets an index fails here)."""
    with where.open() as reg, reg._db.read() as conn:
        fresh = _schema_snapshot(conn)
    with where.open() as reg:
        reg.commit_run(make_run(), NewVersion("churn", make_source(), aliases=["champion"]))
        with reg._db.write() as conn:
            conn.execute(sa.text("DROP TABLE experiments"))
            conn.execute(forgeml_schema.update().values(version=1))
    with where.open(create=False) as reg, reg._db.read() as conn:
        migrated = _schema_snapshot(conn)
        assert conn.execute(sa.select(forgeml_schema.c.version)).scalar_one() == SCHEMA_VERSION
    assert migrated == fresh
    assert "experiments" in fresh and fresh["experiments"]["indexes"]  # not vacuous
