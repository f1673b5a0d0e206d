"""Resolving references, and errors that name what is missing and what exists."""

from __future__ import annotations

import pytest

from forgeml.errors import ModelNotFound, UsageError
from forgeml.registry import NewVersion, Registry


@pytest.fixture
def churn(registry: Registry, make_run, make_source) -> Registry:
    for aliases in (["champion"], ["challenger"], []):
        registry.commit_run(make_run(), NewVersion("churn", make_source(), aliases=aliases))
    return registry


def test_references(churn: Registry) -> None:
    assert churn.resolve("churn@champion").version == 1
    assert churn.resolve("churn@challenger").version == 2
    assert churn.resolve("churn@3").version == 3
    assert churn.resolve("churn").version == 1  # the champion


def test_bare_name_is_latest_without_champion(registry: Registry, make_run, make_source) -> None:
    for _ in range(2):
        registry.commit_run(make_run(), NewVersion("fraud", make_source()))
    assert registry.resolve("fraud").version == 2


def test_unknown_model_suggests_a_name(churn: Registry) -> None:
    with pytest.raises(ModelNotFound) as info:
        churn.resolve("chrun@champion")
    assert str(info.value) == "no model named 'chrun' (did you mean 'churn'?)"
    with pytest.raises(ModelNotFound, match=r"no model named 'zzz' \(models: churn\)"):
        churn.resolve("zzz")


def test_empty_registry_says_so(registry: Registry) -> None:
    with pytest.raises(ModelNotFound, match="the registry has no models yet"):
        registry.resolve("churn")


def test_unknown_alias_lists_aliases(churn: Registry) -> None:
    with pytest.raises(ModelNotFound) as info:
        churn.resolve("churn@champ")
    assert str(info.value) == "model 'churn' has no alias 'champ' (aliases: challenger, champion)"


def test_unknown_version_gives_the_range(churn: Registry) -> None:
    with pytest.raises(ModelNotFound) as info:
        churn.resolve("churn@7")
    assert str(info.value) == "model 'churn' has no version 7 (it has versions 1 to 3)"
    with pytest.raises(ModelNotFound, match="no version 0"):
        churn.resolve("churn@0")


@pytest.mark.parametrize("ref", ["", "churn@", "churn@Champ", "../churn", "a b", "churn@x@y"])
def test_malformed_references_are_usage_errors(churn: Registry, ref: str) -> None:
    with pytest.raises(UsageError, match="invalid model reference"):
        churn.resolve(ref)


def test_get_model_unknown(churn: Registry) -> None:
    with pytest.raises(ModelNotFound, match="did you mean 'churn'"):
        churn.get_model("churm")
