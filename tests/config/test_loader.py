"""The spec loader: every bad field is named by its path, overrides are validated too."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.config import dump_spec, load_spec
from forgeml.config.loader import parse_overrides
from forgeml.errors import ConfigError

BASE = {"name": "churn", "task": "classification", "target": "churned"}


def _error(raw: dict | str | Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_spec(raw, overrides or [])
    assert info.value.exit_code == 2
    return str(info.value)


def test_minimal_spec_gets_defaults() -> None:
    spec = load_spec(BASE)
    assert spec.tuning.budget.seconds == 120
    assert spec.models.candidates is None  # auto
    assert spec.split.test_size == 0.2
    assert spec.validation.max_bad_fraction == 0.05


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({**BASE, "tunning": {}}, "tunning: unknown field (did you mean 'tuning'?)"),
        ({**BASE, "task": "clasification"}, "task: expected 'classification' or 'regression'"),
        (
            {**BASE, "tuning": {"budget": {"trials": 0}}},
            "tuning.budget.trials: input should be greater than 0",
        ),
        ({**BASE, "tuning": {"budget": {"seconds": 0}}}, "tuning.budget.seconds"),
        ({**BASE, "tuning": {"budget": {}}}, "tuning.budget: set seconds, trials, or both"),
        (
            {**BASE, "models": {"candidates": ["lightgbm", {"name": "x", "serch": {}}]}},
            "models.candidates[1].serch: unknown field (did you mean 'search'?)",
        ),
        (
            {
                **BASE,
                "models": {
                    "candidates": [{"name": "lightgbm", "search": {"num_leaves": {"low": 8}}}]
                },
            },
            "models.candidates[0].search.num_leaves: expected low and high, or choices",
        ),
        (
            {**BASE, "models": {"candidates": ["linear", "linear"]}},
            "candidate listed twice: linear",
        ),
        ({**BASE, "columns": {"age": {"type": "integer"}}}, "columns.age.type: expected 'int'"),
        (
            {**BASE, "columns": {"age": {"min": 5, "max": 1}}},
            "columns.age: min (5.0) is greater than max (1.0)",
        ),
        (
            {**BASE, "columns": {"email": {"regex": "("}}},
            "columns.email.regex: invalid regular expression",
        ),
        ({**BASE, "split": {"strategy": "group"}}, "split: strategy 'group' needs group_column"),
        (
            {**BASE, "features": {"drop": ["churned"]}},
            "target 'churned' is listed in features.drop",
        ),
        ({**BASE, "data": {"format": "sql"}}, "data: format 'sql' needs 'query' or 'table'"),
        ({"task": "classification", "target": "y"}, "name: required field is missing"),
        ({**BASE, "name": "../etc"}, "name: string should match pattern"),
    ],
)
def test_errors_name_the_field_path(raw: dict, expected: str) -> None:
    assert expected in _error(raw)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    assert "spec file not found" in _error(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert "spec file is empty" in _error(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    message = _error(broken)
    assert "broken.yaml" in message and "invalid YAML" in message and "line" in message
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    assert "expected a mapping" in _error(listing)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    assert "invalid YAML" in _error(evil)


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    spec_file = folder / "forgeml.yaml"
    spec_file.write_text("name: churn\ntask: regression\ntarget: y\ndata: {source: data/x.csv}\n")
    spec = load_spec(spec_file)
    assert spec.resolve_path(spec.data.source or "") == str(folder.resolve() / "data" / "x.csv")
    assert spec.resolve_path("s3://bucket/x.parquet") == "s3://bucket/x.parquet"


def test_overrides_are_validated_like_the_file() -> None:
    spec = load_spec(BASE, ["tuning.budget.trials=5", "models.candidates=[linear]", "seed=3"])
    assert spec.tuning.budget.trials == 5
    assert spec.models.candidates is not None and spec.models.candidates[0].name == "linear"
    assert "tuning.budget.trials" in _error(BASE, ["tuning.budget.trials=-1"])
    assert "expected key.path=value" in _error(BASE, ["tuning.budget.trials"])
    assert "is not a section" in _error(BASE, ["name.x=1"])
    assert "seed: input should be a valid integer" in _error(BASE, ["seed=abc"])


def test_environment_variables_expand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGEML_TEST_DB", "postgresql://u:secret@db/x")
    spec = load_spec({**BASE, "registry": {"uri": "${FORGEML_TEST_DB}"}})
    assert spec.registry.uri == "postgresql://u:secret@db/x"
    assert "FORGEML_TEST_MISSING" in _error(
        {**BASE, "registry": {"uri": "${FORGEML_TEST_MISSING}"}}
    )


def test_dump_round_trips() -> None:
    spec = load_spec({**BASE, "tuning": {"budget": {"trials": 7}}, "seed": 4})
    again = load_spec(__import__("yaml").safe_load(dump_spec(spec)))
    assert again.model_dump() == spec.model_dump()


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,2}", fullmatch=True),
        st.integers() | st.text(max_size=10),
        max_size=4,
    )
)
def test_overrides_parse_any_dotted_key(pairs: dict[str, object]) -> None:
    parsed = parse_overrides([f"{k}={v}" for k, v in pairs.items()])
    assert [k for k, _ in parsed] == list(pairs)
