"""The ``task: recommendation`` spec: its section, its defaults, and errors that name the
field, without changing what tabular specs accept or how their errors read."""

from __future__ import annotations

from datetime import datetime

import pytest

from forgeml.config import dump_spec, load_spec
from forgeml.errors import ConfigError

REC = {
    "name": "movies",
    "task": "recommendation",
    "recommendation": {"user": "userId", "item": "movieId"},
}


def _error(raw: dict, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_spec(raw, overrides or [])
    assert info.value.exit_code == 2
    return str(info.value)


def _with(**section: object) -> dict:
    return {**REC, "recommendation": {**REC["recommendation"], **section}}


def test_minimal_spec_gets_defaults_and_target_is_the_item() -> None:
    spec = load_spec(REC)
    rec = spec.recommendation
    assert rec is not None
    assert spec.target == "movieId"  # what a recommendation predicts
    assert (rec.k, rec.metric, rec.split.strategy, rec.split.n) == (10, "ndcg", "leave_last_n", 1)
    assert rec.models is None and rec.refit_full and rec.segments == [5, 20]
    assert rec.time_unit == "s" and rec.future_tolerance_s == 86_400


def test_full_section_round_trips_through_yaml() -> None:
    raw = _with(
        time="ts",
        rating="stars",  # `rating` is another name for `weight`
        positive_threshold=4,
        split={"strategy": "time", "at": "2016-07-01"},
        k=20,
        metric="recall",
        models=["ease", {"name": "itemknn", "search": {"neighbours": {"low": 5, "high": 50}}}],
        item_features="items.parquet",
        segments=[3, 10, 50],
    )
    spec = load_spec({**raw, "tuning": {"budget": {"trials": 6}}})
    rec = spec.recommendation
    assert rec is not None and rec.weight == "stars" and rec.split.at == datetime(2016, 7, 1)
    assert rec.models is not None and [m.name for m in rec.models] == ["ease", "itemknn"]
    again = load_spec(__import__("yaml").safe_load(dump_spec(spec)))
    assert again.model_dump() == spec.model_dump()


def test_overrides_reach_the_section() -> None:
    spec = load_spec(REC, ["recommendation.k=5", "recommendation.models=[popularity,als]"])
    assert spec.recommendation is not None and spec.recommendation.k == 5
    assert "recommendation.k: input should be greater than or equal to 1" in _error(
        REC, ["recommendation.k=0"]
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"name": "m", "task": "recommendation"},
            "recommendation: task 'recommendation' needs this section",
        ),
        (
            {"name": "m", "task": "recommendation", "recommendation": {"user": "u"}},
            "recommendation.item: required field is missing",
        ),
        (
            {**REC, "task": "recomendation"},
            "task: expected 'classification', 'regression' or 'recommendation' "
            "(did you mean 'recommendation'?)",
        ),
        ({**REC, "target": "rating"}, "the target is the item column 'movieId', not 'rating'"),
        (
            {**REC, "task": "classification", "target": "y"},
            "recommendation: applies to task 'recommendation' only, not 'classification'",
        ),
        ({**REC, "models": {"candidates": ["linear"]}}, "models: not used by task"),
        (
            {**REC, "split": {"folds": 2}},
            "split: not used by task 'recommendation'; use recommendation.split",
        ),
        ({**REC, "columns": {"x": {"type": "int"}}}, "columns: not used by task"),
        ({**REC, "tuning": {"metric": "auc"}}, "leave tuning.metric out"),
        (_with(usr="u"), "recommendation.usr: unknown field (did you mean 'user'?)"),
        (_with(item="userId"), "item and user are the same column 'userId'"),
        (_with(positive_threshold=4), "positive_threshold needs a weight (rating) column"),
        (_with(split={"strategy": "time"}), "strategy 'time' needs 'at'"),
        (
            _with(split={"strategy": "time", "at": "2016-01-01"}),
            "split strategy 'time' needs a time column",
        ),
        (
            _with(split={"strategy": "leave_last_n", "at": 5}),
            "'at' applies to strategy 'time' only",
        ),
        (_with(split={"strategy": "random"}), "recommendation.split.strategy: expected"),
        (
            _with(metric="auc"),
            "recommendation.metric: expected 'ndcg', 'recall', 'map' or 'hit_rate'",
        ),
        (_with(models=["ease", "ease"]), "model listed twice: ease"),
        (_with(models=[]), "list at least one model"),
        (_with(segments=[20, 5]), "recommendation.segments: expected increasing"),
        (_with(time_unit="days"), "recommendation.time_unit: expected"),
        (_with(future_tolerance_s=-1), "recommendation.future_tolerance_s"),
    ],
)
def test_errors_name_the_field_path(raw: dict, expected: str) -> None:
    assert expected in _error(raw)


def test_tabular_specs_and_their_messages_are_unchanged() -> None:
    base = {"name": "churn", "task": "classification", "target": "churned"}
    assert load_spec(base).recommendation is None
    assert _error({**base, "task": "clasification"}) == (
        "spec: task: expected 'classification' or 'regression', got 'clasification'"
    )
    assert (
        _error({"name": "churn", "task": "regression"}) == "spec: target: required field is missing"
    )


def test_user_features_is_an_optional_table() -> None:
    assert load_spec(REC).recommendation.user_features is None  # type: ignore[union-attr]
    spec = load_spec(_with(user_features="users.csv"))
    assert spec.recommendation is not None and spec.recommendation.user_features == "users.csv"
    assert "user_features: users.csv" in dump_spec(spec)


@pytest.mark.parametrize("value", ["", ["users.csv"], 3])
def test_a_bad_user_features_value_names_the_field(value: object) -> None:
    assert "recommendation.user_features" in _error(_with(user_features=value))
