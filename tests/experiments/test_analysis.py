"""Analysis of an experiment from its logs: what counts as an exposure and an outcome (and
that every ignored outcome is counted once, under one reason), the effect against the
statistics computed by hand, SRM, the latency guardrail, the sequential state, and the
decision. Frames are built as the log store returns them."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forgeml.errors import DataError, UsageError
from forgeml.experiments import SequentialTest, Summary, two_proportions, welch
from forgeml.experiments.analysis import IGNORED, ExperimentStatus, analyze
from forgeml.experiments.spec import Experiment

T0 = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 30, tzinfo=UTC)

PRED_SCHEMA = {
    "request_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "model": pl.String,
    "version": pl.String,
    "variant": pl.String,
    "unit": pl.String,
    "shadow": pl.Boolean,
    "row": pl.Int64,
    "inputs": pl.String,
    "prediction": pl.String,
    "score": pl.Float64,
    "latency_ms": pl.Float64,
}
FEEDBACK_SCHEMA = {
    "ts": pl.Datetime("us", "UTC"),
    "model": pl.String,
    "request_id": pl.String,
    "row": pl.Int64,
    "unit": pl.String,
    "experiment": pl.String,
    "label": pl.String,
    "event_id": pl.String,
}


def experiment(**fields: Any) -> Experiment:
    values: dict[str, Any] = {
        "model": "churn",
        "name": "churn-nov",
        "variants": {"champion": 0.5, "challenger": 0.5},
        "versions": {"champion": 1, "challenger": 2},
        "unit": "user_id",
        "metric": "converted",
        "started_at": T0,
        "weights_since": T0,
    }
    values.update(fields)
    return Experiment(**values)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def preds(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Prediction log rows; each dict needs unit, variant, minute (others defaulted)."""
    full = []
    for i, r in enumerate(rows):
        full.append(
            {
                "request_id": r.get("request_id", f"req-{i}"),
                "ts": at(r["minute"]),
                "model": r.get("model", "churn"),
                "version": "1",
                "variant": r["variant"],
                "unit": r["unit"],
                "shadow": r.get("shadow", False),
                "row": r.get("row", 0),
                "inputs": "{}",
                "prediction": r.get("prediction", "1"),
                "score": 0.5,
                "latency_ms": r.get("latency_ms", 10.0),
            }
        )
    return pl.DataFrame(full, schema=PRED_SCHEMA)


def feedback(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Feedback rows; each dict needs unit, minute, label (JSON text)."""
    full = [
        {
            "ts": at(r["minute"]),
            "model": r.get("model", "churn"),
            "request_id": None,
            "row": None,
            "unit": r["unit"],
            "experiment": r.get("experiment"),
            "label": r["label"],
            "event_id": r.get("event_id"),
        }
        for r in rows
    ]
    return pl.DataFrame(full, schema=FEEDBACK_SCHEMA)


def by_variant(status: ExperimentStatus) -> dict[str, Any]:
    return {v.name: v for v in status.variants}


def rounded(value: Any) -> Any:
    """``to_dict`` with floats to 9 significant digits (sums of floats depend on order in
    the last bits)."""
    if isinstance(value, float):
        return value if value == 0 or not math.isfinite(value) else float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items() if k != "at"}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


# -- empty and malformed --------------------------------------------------------------


@pytest.mark.parametrize(
    "frames",
    [
        (pl.DataFrame(), pl.DataFrame()),
        (preds([]), feedback([])),
        (preds([{"unit": "u1", "variant": "champion", "minute": 1, "model": "fraud"}]), None),
        (preds([{"unit": "u1", "variant": "champion", "minute": -5}]), None),  # before start
    ],
)
def test_no_exposures_yet_is_a_status(frames: tuple[pl.DataFrame, Any]) -> None:
    predictions, fb = frames
    status = analyze(experiment(), predictions, fb if fb is not None else feedback([]), now=NOW)
    assert status.decision.verdict == "keep running"
    assert status.decision.reasons == ["no exposures yet"]
    assert status.exposures == 0 and status.srm is None
    assert [c.effect for c in status.comparisons] == [None]
    assert status.to_dict()["decision"]["verdict"] == "keep running"


def test_an_experiment_that_has_not_started_is_refused() -> None:
    with pytest.raises(UsageError, match="has not started"):
        analyze(experiment(started_at=None), preds([]), feedback([]))


def test_a_log_without_a_required_column_is_named() -> None:
    frame = preds([{"unit": "u1", "variant": "champion", "minute": 1}]).drop("unit")
    with pytest.raises(DataError, match="no column 'unit'"):
        analyze(experiment(), frame, feedback([]))


def test_naive_timestamps_are_utc() -> None:
    p = preds([{"unit": "u1", "variant": "champion", "minute": 1}])
    naive = p.with_columns(pl.col("ts").dt.replace_time_zone(None))
    assert analyze(experiment(), naive, feedback([])).exposures == 1


# -- exposures ------------------------------------------------------------------------


def test_exposures_count_units_once_and_leave_out_switched_and_shadow_rows() -> None:
    rows = [
        {"unit": "u1", "variant": "champion", "minute": 1},
        {"unit": "u1", "variant": "champion", "minute": 2},  # the same unit again
        {"unit": "u2", "variant": "challenger", "minute": 1},
        {"unit": "u3", "variant": "champion", "minute": 1},
        {"unit": "u3", "variant": "challenger", "minute": 9},  # switched (weights changed)
        {"unit": "u4", "variant": "challenger", "minute": 1, "shadow": True},  # not answered
        {"unit": None, "variant": "champion", "minute": 1},  # no unit: not an exposure
        {"unit": "u5", "variant": None, "minute": 1},  # outside the experiment
        {"unit": "u6", "variant": "canary", "minute": 1},  # not one of its variants
    ]
    status = analyze(experiment(), preds(rows), feedback([]), now=NOW)
    variants = by_variant(status)
    assert (variants["champion"].exposures, variants["challenger"].exposures) == (1, 1)
    assert status.switched == 1
    assert status.unknown_variant_rows == 1
    assert variants["challenger"].shadow_rows == 1


def test_a_concluded_experiment_ends_at_its_conclusion() -> None:
    exp = experiment(status="concluded", concluded_at=at(60))
    p = preds(
        [
            {"unit": "u1", "variant": "champion", "minute": 10},
            {"unit": "u2", "variant": "challenger", "minute": 59},
            {"unit": "u3", "variant": "challenger", "minute": 60},  # after the end
        ]
    )
    f = feedback(
        [
            {"unit": "u1", "minute": 30, "label": "1"},
            {"unit": "u2", "minute": 61, "label": "1"},  # received after the end
        ]
    )
    status = analyze(exp, p, f, now=NOW)
    assert status.exposures == 2
    assert status.outcomes_counted == 1
    assert status.ignored["after_end"] == 1


# -- outcomes -------------------------------------------------------------------------


def test_every_outcome_is_counted_once_under_one_reason() -> None:
    p = preds(
        [
            {"unit": "a", "variant": "champion", "minute": 10},
            {"unit": "b", "variant": "challenger", "minute": 10},
            {"unit": "s", "variant": "champion", "minute": 10},
            {"unit": "s", "variant": "challenger", "minute": 20},
        ]
    )
    f = feedback(
        [
            {"unit": "a", "minute": 11, "label": "true", "event_id": "e1"},
            {"unit": "a", "minute": 12, "label": "true", "event_id": "e1"},  # duplicate
            {"unit": "a", "minute": 5, "label": "1"},  # before exposure
            {"unit": "b", "minute": 15, "label": "false"},
            {"unit": "b", "minute": 16, "label": '"yes"'},  # invalid
            {"unit": "b", "minute": 17, "label": "null"},  # invalid
            {"unit": "b", "minute": 18, "label": "NaN"},  # invalid
            {"unit": "z", "minute": 15, "label": "1"},  # unexposed
            {"unit": "s", "minute": 30, "label": "1"},  # switched unit
            {"unit": None, "minute": 30, "label": "1", "experiment": "churn-nov"},  # no unit
            {"unit": "a", "minute": 30, "label": "1", "experiment": "other"},  # not ours
            {"unit": "a", "minute": 30, "label": "1", "model": "fraud"},  # not ours
            {"unit": "b", "minute": 40, "label": " 1 ", "experiment": "churn-nov"},
        ]
    )
    status = analyze(experiment(), p, f, now=NOW)
    assert status.ignored == {
        "duplicate": 1,
        "after_end": 0,
        "invalid": 3,
        "missing_unit": 1,
        "unexposed": 1,
        "switched_unit": 1,
        "before_exposure": 1,
    }
    assert status.outcomes_counted == 3  # a: true; b: false and 1
    assert status.outcomes_counted + sum(status.ignored.values()) == 11  # the relevant rows
    variants = by_variant(status)
    assert (variants["champion"].value, variants["challenger"].value) == (1.0, 1.0)
    assert (variants["champion"].outcomes, variants["challenger"].outcomes) == (1, 2)


def test_continuous_values_are_summed_per_unit() -> None:
    p = preds([{"unit": u, "variant": "champion", "minute": 1} for u in "abc"])
    p = pl.concat([p, preds([{"unit": u, "variant": "challenger", "minute": 1} for u in "xyz"])])
    f = feedback(
        [
            {"unit": "a", "minute": 2, "label": "10.5"},
            {"unit": "a", "minute": 3, "label": "2"},
            {"unit": "b", "minute": 3, "label": "4"},
            {"unit": "x", "minute": 3, "label": "1e1"},
            {"unit": "y", "minute": 3, "label": "true"},
        ]
    )
    exp = experiment(metric="revenue", metric_kind="continuous")
    status = analyze(exp, p, f, now=NOW)
    control, treatment = [12.5, 4.0, 0.0], [10.0, 1.0, 0.0]
    expected = welch(Summary.of(control), Summary.of(treatment))
    effect = status.comparisons[0].effect
    assert effect is not None
    assert math.isclose(effect.difference, expected.difference)
    assert math.isclose(effect.p_value, expected.p_value)
    assert math.isclose(by_variant(status)["champion"].value or 0, sum(control) / 3)


# -- the effect, SRM, guardrails, decisions -------------------------------------------


def simulate(
    exp: Experiment, n: int, rates: dict[str, float], seed: int, latency: dict[str, float] | None
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, list[int]]]:
    """``n`` units split by the experiment's own hash; each converts with its variant's
    rate, some of them twice, some before exposure. Returns the frames and, counted by hand,
    each variant's [units, converted units]."""
    rng = random.Random(seed)
    split = exp.split()
    p_rows, f_rows = [], []
    truth = {v: [0, 0] for v in exp.variants}
    for i in range(n):
        unit = f"user-{i}"
        variant = split.assign(unit)
        first = rng.uniform(0, 1000)
        for k in range(rng.randint(1, 3)):
            lat = (latency or {}).get(variant, 10.0) + rng.gauss(0, 1)
            p_rows.append(
                {"unit": unit, "variant": variant, "minute": first + 10 * k, "latency_ms": lat}
            )
        converted = rng.random() < rates[variant]
        truth[variant][0] += 1
        if converted:
            truth[variant][1] += 1
            for _ in range(rng.randint(1, 2)):
                f_rows.append({"unit": unit, "minute": first + rng.uniform(0, 500), "label": "1"})
        if rng.random() < 0.2:  # an outcome before exposure: never counted
            f_rows.append({"unit": unit, "minute": first - 1, "label": "1"})
    return preds(p_rows), feedback(f_rows), truth


def test_effect_matches_two_proportions_computed_by_hand() -> None:
    exp = experiment(variants={"champion": 0.7, "challenger": 0.3})
    p, f, truth = simulate(exp, 3000, {"champion": 0.10, "challenger": 0.14}, 1, None)
    status = analyze(exp, p, f, now=NOW)
    expected = two_proportions(*truth["champion"][::-1], *truth["challenger"][::-1])
    effect = status.comparisons[0].effect
    assert effect == expected
    variants = by_variant(status)
    assert variants["champion"].exposures == truth["champion"][0]
    assert variants["challenger"].units_with_outcome == truth["challenger"][1]
    assert status.srm is not None and not status.srm.mismatch
    assert status.srm.observed == {v: t[0] for v, t in truth.items()}


def test_a_clear_winner_is_promoted() -> None:
    exp = experiment()
    p, f, _ = simulate(exp, 4000, {"champion": 0.10, "challenger": 0.30}, 2, None)
    status = analyze(exp, p, f, now=NOW)
    assert status.decision.verdict == "promote"
    assert status.recommended == "challenger"
    assert "treatment is better" in status.decision.reasons[0]
    # Lower is better: the same data says roll back.
    worse = analyze(experiment(higher_is_better=False), p, f, now=NOW)
    assert worse.decision.verdict == "rollback" and worse.recommended is None


def test_a_slower_variant_is_rolled_back_by_the_latency_guardrail() -> None:
    exp = experiment()
    latency = {"champion": 10.0, "challenger": 25.0}
    p, f, _ = simulate(exp, 1000, {"champion": 0.1, "challenger": 0.1}, 3, latency)
    status = analyze(exp, p, f, now=NOW)
    guard = status.comparisons[0].latency
    assert guard is not None and guard.ci_low > 10
    assert status.decision.verdict == "rollback"
    assert "guardrail latency_ms is worse" in status.decision.reasons[0]
    assert by_variant(status)["challenger"].requests > 1000


def test_a_failing_variant_is_rolled_back_by_the_error_rate_guardrail() -> None:
    exp = experiment()
    p, f, _ = simulate(exp, 1000, {"champion": 0.1, "challenger": 0.1}, 4, None)
    requests = {v: p.filter(pl.col("variant") == v)["request_id"].n_unique() for v in exp.variants}

    def events(errors: dict[str, int], minute: float = 5) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "ts": [at(minute)] * len(errors),
                "model": ["churn"] * len(errors),
                "kind": ["request_error"] * len(errors),
                "count": list(errors.values()),
                "variant": list(errors),
            },
            schema_overrides={"ts": pl.Datetime("us", "UTC")},
        )

    status = analyze(exp, p, f, now=NOW, events=events({"champion": 2, "challenger": 150}))
    guard = status.comparisons[0].errors
    expected = two_proportions(2, requests["champion"] + 2, 150, requests["challenger"] + 150)
    assert guard == expected and guard.ci_low > 0
    assert status.decision.verdict == "rollback"
    assert "guardrail error_rate is worse" in status.decision.reasons[0]
    assert by_variant(status)["challenger"].errors == 150
    # As many errors on both sides: no guardrail fires; errors before the start don't count.
    even = analyze(exp, p, f, now=NOW, events=events({"champion": 20, "challenger": 20}))
    assert even.decision.verdict != "rollback"
    early = analyze(exp, p, f, now=NOW, events=events({"challenger": 150}, minute=-5))
    assert early.comparisons[0].errors is None
    assert by_variant(early)["challenger"].errors == 0


def test_srm_counts_units_since_the_weights_changed() -> None:
    exp = experiment()
    p, f, _ = simulate(exp, 2000, {"champion": 0.1, "challenger": 0.1}, 4, None)
    # Drop most challenger exposures: a broken split.
    broken = p.filter((pl.col("variant") == "champion") | (pl.col("unit").str.ends_with("7")))
    status = analyze(exp, broken, f, now=NOW)
    assert status.srm is not None and status.srm.mismatch
    assert status.decision.verdict == "stop: broken split"
    # The same exposures, all before the weights changed: nothing to check yet.
    later = analyze(experiment(weights_since=at(10_000)), broken, f, now=NOW)
    assert later.srm is None and later.decision.verdict != "stop: broken split"


def test_sequential_state_is_restored_and_extended() -> None:
    exp = experiment()
    p, f, _ = simulate(exp, 800, {"champion": 0.1, "challenger": 0.12}, 5, None)
    first = analyze(exp, p, f, now=NOW)
    state = first.state["challenger"]
    assert state["looks"] == 1 and len(state["history"]) == 1 and state["tau"] > 0
    second = analyze(experiment(state=first.state), p, f, now=NOW)
    again = second.state["challenger"]
    assert again["looks"] == 2 and again["tau"] == state["tau"]  # tau fixed at the first look
    assert again["p_value"] <= state["p_value"]
    # The same as a SequentialTest fed the same effect twice.
    effect = first.comparisons[0].effect
    assert effect is not None
    test = SequentialTest()
    test.update(effect)
    test.update(effect)
    assert math.isclose(again["p_value"], test.p_value)
    # A saved, smaller p-value is kept (the running minimum).
    low = {"challenger": {**state, "p_value": 1e-9, "looks": 7}}
    kept = analyze(experiment(state=low), p, f, now=NOW)
    assert kept.state["challenger"]["p_value"] == 1e-9
    assert kept.decision.verdict == ("promote" if effect.difference > 0 else "rollback")


def test_several_treatments_share_alpha() -> None:
    exp = experiment(variants={"champion": 0.4, "challenger": 0.3, "v3": 0.3}, versions={})
    p, f, _ = simulate(exp, 3000, {"champion": 0.1, "challenger": 0.1, "v3": 0.3}, 6, None)
    status = analyze(exp, p, f, now=NOW)
    assert status.alpha == 0.025
    assert [c.variant for c in status.comparisons] == ["challenger", "v3"]
    assert status.decision.verdict == "promote" and status.recommended == "v3"
    assert status.decision.reasons[0].startswith("v3: ")


def test_shadow_mode_reports_agreement_and_keeps_running() -> None:
    exp = experiment(shadow=True)
    rows = []
    for i in range(10):
        rows.append({"unit": f"u{i}", "variant": "champion", "minute": i, "request_id": f"r{i}"})
        rows.append(
            {
                "unit": f"u{i}",
                "variant": "challenger",
                "minute": i,
                "request_id": f"r{i}",
                "shadow": True,
                "prediction": "1" if i < 7 else "0",
            }
        )
    status = analyze(exp, preds(rows), feedback([]), now=NOW)
    variants = by_variant(status)
    assert variants["champion"].exposures == 10 and variants["challenger"].exposures == 0
    assert variants["challenger"].shadow_rows == 10
    assert variants["challenger"].agreement == pytest.approx(0.7)
    assert status.srm is None
    assert status.decision.verdict == "keep running"
    assert "shadow mode" in status.decision.reasons[0]
    assert status.state["challenger"]["looks"] == 0


# -- properties -----------------------------------------------------------------------


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n_units = draw(st.integers(min_value=0, max_value=12))
    p_rows, f_rows = [], []
    for i in range(n_units):
        unit = f"u{i}"
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            p_rows.append(
                {
                    "unit": unit,
                    "variant": draw(st.sampled_from(["champion", "challenger"])),
                    "minute": draw(st.integers(min_value=-10, max_value=100)),
                    "shadow": draw(st.booleans()),
                    "latency_ms": draw(st.sampled_from([5.0, 10.0, 20.0])),
                }
            )
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            f_rows.append(
                {
                    "unit": unit,
                    "minute": draw(st.integers(min_value=-10, max_value=120)),
                    "label": draw(st.sampled_from(["1", "0", "true", "2.5", "oops"])),
                    "event_id": draw(st.sampled_from([None, "e1", "e2", f"{unit}-x"])),
                    "experiment": draw(st.sampled_from([None, "churn-nov", "other"])),
                }
            )
    return p_rows, f_rows


kinds = st.sampled_from(["binary", "continuous"])


@settings(max_examples=40)
@given(logs(), kinds, st.randoms(use_true_random=False))
def test_permuting_rows_changes_nothing(data: Any, kind: str, rnd: random.Random) -> None:
    p_rows, f_rows = data
    exp = experiment(metric_kind=kind)
    base = analyze(exp, preds(p_rows), feedback(f_rows), now=NOW)
    rnd.shuffle(p_rows)
    rnd.shuffle(f_rows)
    shuffled = analyze(exp, preds(p_rows), feedback(f_rows), now=NOW)
    assert rounded(shuffled.to_dict()) == rounded(base.to_dict())
    assert rounded(shuffled.state) == rounded(base.state)


@settings(max_examples=40)
@given(logs(), kinds, st.data())
def test_outcomes_before_exposure_never_count(data: Any, kind: str, draw: st.DataObject) -> None:
    p_rows, f_rows = data
    exp = experiment(metric_kind=kind)
    base = analyze(exp, preds(p_rows), feedback(f_rows), now=NOW)
    firsts: dict[str, int] = {}
    seen: dict[str, set[str]] = {}
    for r in p_rows:
        if not r["shadow"] and r["minute"] >= 0:  # an exposure
            firsts[r["unit"]] = min(firsts.get(r["unit"], 10**6), r["minute"])
            seen.setdefault(r["unit"], set()).add(r["variant"])
    switched = {unit for unit, variants in seen.items() if len(variants) > 1}
    extra = [
        {"unit": unit, "minute": first - draw.draw(st.integers(1, 5)), "label": "1"}
        for unit, first in sorted(firsts.items())
        if draw.draw(st.booleans())
    ]
    more = analyze(exp, preds(p_rows), feedback(f_rows + extra), now=NOW)
    assert more.variants == base.variants
    assert rounded(more.state) == rounded(base.state)
    moved = {k: more.ignored[k] - base.ignored[k] for k in IGNORED}
    expected_switched = sum(1 for e in extra if e["unit"] in switched)
    assert moved["switched_unit"] == expected_switched
    assert moved["before_exposure"] == len(extra) - expected_switched
    assert sum(moved.values()) == len(extra)


@settings(max_examples=40)
@given(logs(), kinds, st.data())
def test_duplicates_by_event_id_never_double_count(
    data: Any, kind: str, draw: st.DataObject
) -> None:
    p_rows, f_rows = data
    f_rows = [{**r, "event_id": f"ev-{i}"} for i, r in enumerate(f_rows)]
    exp = experiment(metric_kind=kind)
    base = analyze(exp, preds(p_rows), feedback(f_rows), now=NOW)
    copies = [dict(r) for r in f_rows if draw.draw(st.booleans())]
    more = analyze(exp, preds(p_rows), feedback(f_rows + copies), now=NOW)
    assert more.variants == base.variants
    assert more.outcomes_counted == base.outcomes_counted
    relevant = [c for c in copies if c["experiment"] != "other"]
    assert more.ignored["duplicate"] == base.ignored["duplicate"] + len(relevant)


@settings(max_examples=40)
@given(logs(), kinds)
def test_every_relevant_feedback_row_is_accounted_for(data: Any, kind: str) -> None:
    p_rows, f_rows = data
    status = analyze(experiment(metric_kind=kind), preds(p_rows), feedback(f_rows), now=NOW)
    relevant = sum(1 for r in f_rows if r["experiment"] != "other")
    assert status.outcomes_counted + sum(status.ignored.values()) == relevant
    assert sum(v.outcomes for v in status.variants) == status.outcomes_counted
