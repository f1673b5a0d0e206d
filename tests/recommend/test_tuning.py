"""Recommender tuning: the catalogue, parameter values checked by field, and the
validation split the search scores on."""

from __future__ import annotations

import polars as pl
import pytest

from forgeml.config.spec import CandidateSpec, SearchParam
from forgeml.errors import ConfigError, DataError
from forgeml.recommend import Interactions, leave_last_n_out
from forgeml.recommend.tuning import model_catalogue, resolve_candidates, tune

pytest.importorskip("implicit", reason="ALS needs the 'rec' extra (implicit)")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            CandidateSpec(name="als", params={"weighting": "bm52"}),
            r"recommendation.models\[0\].params.weighting: must be one of 'none', 'bm25', "
            r"'tfidf', got 'bm52'",
        ),
        (
            CandidateSpec(name="als", params={"weighting": "bm25", "bm25_b": 2}),
            r"recommendation.models\[0\].params.bm25_b: must be a number >= 0 and <= 1, got 2",
        ),
        (
            CandidateSpec(name="ease", params={"min_item_users": 0}),
            r"recommendation.models\[0\].params.min_item_users: must be an integer >= 1, got 0",
        ),
        (
            CandidateSpec(name="ease", params={"lam": -5.0}),
            r"recommendation.models\[0\].params.lam: must be a number > 0, got -5.0",
        ),
        (
            CandidateSpec(
                name="als", search={"weighting": SearchParam(choices=["none", "bm25", "okapi"])}
            ),
            r"recommendation.models\[0\].search.weighting: must be one of .* got 'okapi'",
        ),
        (
            CandidateSpec(name="als", search={"bm25_b": SearchParam(low=0.5, high=1.5)}),
            r"recommendation.models\[0\].search.bm25_b: must be a number >= 0 and <= 1, got 1.5",
        ),
        (
            CandidateSpec(name="itemknn", params={"neighbours": 0}),
            r"recommendation.models\[0\].params.neighbours: must be an integer >= 1, got 0",
        ),
    ],
)
def test_bad_parameter_values_are_config_errors_naming_the_field(spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_candidates([spec])


def test_good_values_and_searchable_weighting_resolve():
    (als,) = resolve_candidates(
        [
            CandidateSpec(
                name="als",
                params={"weighting": "bm25"},
                search={
                    "bm25_k1": SearchParam(low=1.0, high=200.0, log=True),
                    "bm25_b": SearchParam(low=0.3, high=1.0),
                },
            )
        ]
    )
    assert als.fixed == {"weighting": "bm25"}
    assert {"bm25_k1", "bm25_b", "factors"} <= set(als.space)


def test_every_first_trial_is_inside_its_space_and_accepted_by_its_model():
    for info in model_catalogue().values():
        cls = info.load()
        assert cls.param_problems({**info.defaults, **info.fixed}) == [], info.name
        for name, value in info.defaults.items():
            param = info.space[name]
            assert param.low is not None and param.high is not None
            assert param.low <= value <= param.high, (info.name, name)


def _log(events_per_user: list[int]) -> Interactions:
    rows = [
        (user, (user * 7 + i) % 30, i)
        for user, count in enumerate(events_per_user)
        for i in range(count)
    ]
    users, items, times = (list(c) for c in zip(*rows, strict=True))
    return Interactions.from_frame(
        pl.DataFrame({"user_id": users, "item_id": items, "t": times}), time="t"
    )


@pytest.mark.parametrize("validation_events", [1, 3])
def test_tune_holds_out_up_to_validation_events_per_user(validation_events):
    counts = [1, 2, 3, 4, 8, 12] * 5
    log = _log(counts)
    (popularity,) = resolve_candidates([CandidateSpec(name="popularity")])
    result = tune(log, [popularity], max_trials=1, validation_events=validation_events)
    # Users with one event are not validated; others hold out their latest events, at
    # most validation_events, keeping at least one to train on.
    expected = [min(validation_events, c - 1) for c in counts if c >= 2]
    assert result.validation_users == len(expected)
    assert result.validation_events == sum(expected)
    split = leave_last_n_out(log, n=validation_events, min_train=1)
    assert split.test.n_events == sum(expected)


def test_tune_refuses_a_log_without_a_second_event():
    (popularity,) = resolve_candidates([CandidateSpec(name="popularity")])
    with pytest.raises(DataError, match="no user has two training events"):
        tune(_log([1, 1, 1]), [popularity], max_trials=1)
    with pytest.raises(ValueError, match="validation_events must be >= 1"):
        tune(_log([2, 2]), [popularity], max_trials=1, validation_events=0)
