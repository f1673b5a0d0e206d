"""Aliases: promote (set), delete, rollback as an undo stack, and the history behind them."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeml.errors import ModelNotFound, RegistryError, UsageError
from forgeml.registry import NewVersion, Registry


@pytest.fixture
def churn(registry: Registry, make_run, make_source) -> Registry:
    """A registry whose model ``churn`` has versions 1..4 and no aliases."""
    for _ in range(4):
        registry.commit_run(make_run(), NewVersion("churn", make_source({"m.txt": "x"})))
    return registry


def test_set_alias_records_moves(churn: Registry) -> None:
    first = churn.set_alias("churn", "champion", 1)
    assert (first.from_version, first.to_version, first.action) == (None, 1, "set")
    second = churn.set_alias("churn", "champion", 3)
    assert (second.from_version, second.to_version) == (1, 3)
    same = churn.set_alias("churn", "champion", 3)
    assert (same.from_version, same.to_version) == (3, 3)
    assert len(churn.get_model("churn").alias_history) == 2  # the no-op is not recorded
    assert churn.resolve("churn@champion").version == 3
    assert churn.resolve("churn").version == 3


def test_rollback_walks_history_back(churn: Registry) -> None:
    for version in (1, 2, 3):
        churn.set_alias("churn", "champion", version)
    assert churn.rollback("churn").to_version == 2
    change = churn.rollback("churn", "champion")
    assert (change.from_version, change.to_version, change.action) == (2, 1, "rollback")
    with pytest.raises(RegistryError, match="no earlier version to roll back to") as info:
        churn.rollback("churn")
    assert not isinstance(info.value, ModelNotFound)
    assert churn.resolve("churn@champion").version == 1


def test_a_move_after_a_rollback_is_undone_first(churn: Registry) -> None:
    churn.set_alias("churn", "champion", 1)
    churn.set_alias("churn", "champion", 2)
    churn.rollback("churn")  # 2 -> 1
    churn.set_alias("churn", "champion", 4)  # 1 -> 4
    assert churn.rollback("churn").to_version == 1
    with pytest.raises(RegistryError, match="created pointing at version 1"):
        churn.rollback("churn")


def test_delete_alias_and_rollback_restores_it(churn: Registry) -> None:
    churn.set_alias("churn", "challenger", 2)
    churn.delete_alias("churn", "challenger")
    with pytest.raises(ModelNotFound, match="model 'churn' has no alias 'challenger'"):
        churn.resolve("churn@challenger")
    with pytest.raises(ModelNotFound, match="has no alias 'challenger'"):
        churn.delete_alias("churn", "challenger")
    assert churn.rollback("churn", "challenger").to_version == 2
    assert churn.resolve("churn@challenger").version == 2
    actions = [c.action for c in churn.get_model("churn").alias_history]
    assert actions == ["set", "delete", "rollback"]


def test_alias_errors(churn: Registry) -> None:
    with pytest.raises(ModelNotFound, match=r"has no version 9 \(it has versions 1 to 4\)"):
        churn.set_alias("churn", "champion", 9)
    with pytest.raises(ModelNotFound, match="no model named 'chrun'"):
        churn.set_alias("chrun", "champion", 1)
    with pytest.raises(UsageError, match="invalid alias '3'"):
        churn.set_alias("churn", "3", 1)
    with pytest.raises(UsageError, match="invalid alias"):
        churn.set_alias("churn", "Champion", 1)
    with pytest.raises(ModelNotFound, match=r"has no alias 'champion' \(it has no aliases\)"):
        churn.rollback("churn")
    assert churn.get_model("churn").alias_history == []


# -- property: any sequence of operations keeps the history consistent --------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(1, 4)),
        st.tuples(st.just("delete"), st.none()),
        st.tuples(st.just("rollback"), st.none()),
    ),
    max_size=10,
)
_alias_numbers = itertools.count()


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_any_operation_sequence_keeps_history_consistent(churn: Registry, ops) -> None:
    alias = f"a{next(_alias_numbers)}"  # a fresh alias per example: a clean history
    current: int | None = None
    moves: list[tuple[int | None, int | None]] = []  # the undo stack of the model
    ever = False
    for op, arg in ops:
        if op == "set":
            change = churn.set_alias("churn", alias, arg)
            assert change.to_version == arg
            if current != arg:
                moves.append((current, arg))
                current, ever = arg, True
        elif op == "delete":
            if current is None:
                with pytest.raises(ModelNotFound):
                    churn.delete_alias("churn", alias)
            else:
                churn.delete_alias("churn", alias)
                moves.append((current, None))
                current = None
        elif not ever:
            with pytest.raises(ModelNotFound):
                churn.rollback("churn", alias)
        elif moves[-1][0] is None:
            with pytest.raises(RegistryError, match="no earlier version"):
                churn.rollback("churn", alias)
        else:
            change = churn.rollback("churn", alias)
            previous, _ = moves.pop()
            assert (change.from_version, change.to_version) == (current, previous)
            current = previous

    detail = churn.get_model("churn")
    assert detail.aliases.get(alias) == current
    history = [c for c in detail.alias_history if c.alias == alias]
    # Each move starts where the previous one ended, and the last one ends where it is now.
    position = None
    for change in history:
        assert change.from_version == position
        assert change.from_version != change.to_version
        position = change.to_version
    assert position == current
