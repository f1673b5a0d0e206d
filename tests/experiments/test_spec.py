"""The experiment record: defaults, validation with clear messages, and a lossless round
trip through JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.errors import UsageError
from forgeml.experiments import TrafficSplit
from forgeml.experiments.spec import Experiment, default_name, variant_version

T0 = datetime(2026, 11, 26, 18, 22, 51, 123456, tzinfo=UTC)


def make(**fields: Any) -> Experiment:
    values: dict[str, Any] = {
        "model": "churn",
        "variants": {"champion": 0.9, "challenger": 0.1},
        "unit": "user_id",
        "metric": "converted",
    }
    values.update(fields)
    return Experiment(**values)


def test_defaults() -> None:
    exp = make()
    assert exp.control == "champion"
    assert exp.treatments == ["challenger"]
    assert exp.alias == "champion"
    assert exp.metric_kind == "binary"
    assert exp.status == "running" and exp.running
    assert exp.higher_is_better and not exp.shadow
    assert exp.alpha == 0.05
    assert exp.name.startswith("churn-") and len(exp.name) == len("churn-20261126-182251")
    assert exp.state == {} and exp.versions == {} and exp.conclusion is None


def test_default_name_stays_within_64_characters() -> None:
    model = "m" * 64
    name = default_name(model, T0)
    assert len(name) == 64 and name.endswith("-20261126-182251")
    assert make(model=model).name.startswith("m" * 48 + "-")


def test_split_uses_the_name_and_weights() -> None:
    exp = make(name="churn-nov", variants={"a": 0.5, "b": 0.5})
    split = exp.split()
    assert isinstance(split, TrafficSplit)
    expected = TrafficSplit("churn-nov", {"a": 0.5, "b": 0.5})
    assert [split.assign(f"u{i}") for i in range(50)] == [
        expected.assign(f"u{i}") for i in range(50)
    ]


def test_variant_versions() -> None:
    assert [variant_version(v) for v in ("3", "v3", "v12", "champion", "v", "3a")] == [
        3,
        3,
        12,
        None,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"variants": {"champion": 0.9, "challenger": 0.2}}, "must sum to 1, got 1.1"),
        ({"variants": {"champion": 1.0}}, "at least 2 variants"),
        ({"variants": {"champion": 1.5, "challenger": -0.5}}, "'challenger': weight must be"),
        ({"variants": {"": 0.5, "b": 0.5}}, "variant names must not be empty"),
        ({"control": "canary"}, "control 'canary' is not a variant"),
        ({"metric_kind": "ratio"}, "metric kind must be one of binary, continuous"),
        ({"unit": ""}, "experiment unit must be a non-empty name"),
        ({"metric": "  "}, "experiment metric must be"),
        ({"alias": ""}, "experiment alias must be"),
        ({"model": "../etc"}, "invalid model name"),
        ({"name": "bad name"}, "invalid experiment name 'bad name'"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
        ({"status": "paused"}, "status must be one of running, concluded"),
        ({"versions": {"canary": 3}}, "versions name unknown variants: canary"),
        ({"variants": ["champion"]}, "variants must be a mapping"),
    ],
)
def test_invalid_experiments_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        make(**fields)


def test_full_round_trip_through_json() -> None:
    exp = make(
        name="churn-nov",
        versions={"champion": 1, "challenger": 2},
        status="concluded",
        started_at=T0,
        weights_since=T0 + timedelta(hours=1),
        concluded_at=T0 + timedelta(days=3),
        conclusion={"action": "promote", "variant": "challenger", "version": 2},
        state={"challenger": {"tau": 0.01, "p_value": 0.3, "looks": 2, "history": [0.5, 0.3]}},
        metric_kind="continuous",
        higher_is_better=False,
        shadow=True,
        alpha=0.01,
        control="challenger",
    )
    data = json.loads(json.dumps(exp.to_dict()))
    assert data["started_at"] == "2026-11-26T18:22:51.123456+00:00"
    assert Experiment.from_dict(data) == exp


def test_from_dict_refuses_unknown_fields_and_bad_times() -> None:
    data = make(name="x").to_dict()
    with pytest.raises(UsageError, match="unknown experiment fields: colour"):
        Experiment.from_dict({**data, "colour": "red"})
    with pytest.raises(UsageError, match="started_at: not an ISO 8601 timestamp"):
        Experiment.from_dict({**data, "started_at": "yesterday"})
    with pytest.raises(UsageError, match="invalid experiment record"):
        Experiment.from_dict({"model": "churn"})


def test_naive_timestamps_are_read_as_utc() -> None:
    data = {**make(name="x").to_dict(), "started_at": "2026-11-26T18:22:51"}
    assert Experiment.from_dict(data).started_at == datetime(2026, 11, 26, 18, 22, 51, tzinfo=UTC)


names = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


@given(
    st.lists(names, min_size=2, max_size=4, unique=True),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["binary", "continuous"]),
    st.booleans(),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_round_trip_for_any_experiment(
    variants: list[str], control: int, kind: str, shadow: bool, started: datetime
) -> None:
    weights = {v: 1 / len(variants) for v in variants}
    exp = make(
        variants=weights,
        control=variants[control % len(variants)],
        metric_kind=kind,
        shadow=shadow,
        started_at=started,
        weights_since=started,
        versions={v: i + 1 for i, v in enumerate(variants)},
    )
    assert Experiment.from_dict(json.loads(json.dumps(exp.to_dict()))) == exp
