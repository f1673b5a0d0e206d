"""Where an experiment stands: exposures, outcomes, effects, SRM, guardrails and a decision.

:func:`analyze` is pure: it takes the experiment and the prediction and feedback logs as
read from the log store (Polars frames) and returns an :class:`ExperimentStatus`, including
the sequential tests' new state for the caller to save.

How data is counted, so that nothing is counted twice or silently dropped:

* **Exposure**: a prediction row of the model, answered (not shadow) by one of the
  experiment's variants, with a unit id, logged from its start (until its conclusion).
  Each unit counts once, from its *first* exposure. A unit seen under two variants (the
  weights changed and its hash interval moved) is left out of the comparison and counted as
  ``switched``.
* **Outcome**: a feedback row of the model with a unit id, tagged with this experiment or
  untagged. Its ``label`` is JSON: a number, or ``true``/``false`` (1/0). Each row lands in
  exactly one bucket: ``counted``, or ignored as ``duplicate`` (an ``event_id`` seen
  before), ``after_end`` (received after the conclusion), ``invalid`` (not a finite
  number), ``unexposed`` (its unit was never exposed), ``switched_unit``,
  ``before_exposure`` (it happened before its unit's first exposure, so the model could not
  have caused it), or ``missing_unit`` (tagged with the experiment but without a unit).
* **A unit's value**: binary metrics — 1 if any counted outcome is > 0, else 0; continuous
  metrics — the sum of its counted outcomes (0 without any).

Each treatment is compared with the control (two-proportion z-test or Welch's t-test), at
``alpha`` divided by the number of treatments (Bonferroni) when there are several; its
sequential test (always-valid p) resumes from ``experiment.state``; the latency guardrail
compares the per-request ``latency_ms`` of each variant with the control's (Welch), the
error-rate guardrail each variant's server errors (``request_error`` events the server
logs per variant) over its requests (two proportions); a significant increase above
``latency_margin`` (relative to the control) of either rolls back. The sample-ratio check counts
the units first exposed since the weights last changed against the current weights.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from forgeml.errors import DataError, UsageError
from forgeml.experiments.spec import Experiment
from forgeml.experiments.stats import (
    Decision,
    Effect,
    SequentialTest,
    SRMResult,
    Summary,
    decide,
    srm_check,
    two_proportions,
    welch,
)

__all__ = [
    "IGNORED",
    "Comparison",
    "ExperimentStatus",
    "VariantResult",
    "analyze",
]

IGNORED = (
    "duplicate",
    "after_end",
    "invalid",
    "missing_unit",
    "unexposed",
    "switched_unit",
    "before_exposure",
)
HISTORY_KEPT = 500  # latest always-valid p-values kept per variant (looks counts them all)
_TS = pl.Datetime("us", "UTC")
_PREDICTIONS = {
    "request_id": pl.String,
    "ts": _TS,
    "model": pl.String,
    "variant": pl.String,
    "unit": pl.String,
    "shadow": pl.Boolean,
    "row": pl.Int64,
    "prediction": pl.String,
    "latency_ms": pl.Float64,
}
_PREDICTIONS_REQUIRED = ("ts", "model", "variant", "unit")
_FEEDBACK = {
    "ts": _TS,
    "model": pl.String,
    "unit": pl.String,
    "experiment": pl.String,
    "label": pl.String,
    "event_id": pl.String,
}
_FEEDBACK_REQUIRED = ("ts", "model", "unit", "label")


@dataclass(frozen=True)
class VariantResult:
    """One variant's numbers. ``exposures`` are analysed units (switched ones excluded),
    ``value`` their conversion rate (binary) or mean value per unit (continuous)."""

    name: str
    version: int | None
    weight: float
    exposures: int
    outcomes: int
    units_with_outcome: int
    value: float | None
    requests: int
    latency_ms: float | None
    errors: int = 0  # requests answered 5xx (server errors), not in ``requests``
    shadow_rows: int = 0
    agreement: float | None = None  # shadow: share of rows predicted like the control


@dataclass(frozen=True)
class Comparison:
    """One treatment against the control."""

    variant: str
    effect: Effect | None
    always_valid_p: float
    looks: int
    latency: Effect | None
    decision: Decision
    errors: Effect | None = None  # error-rate guardrail (two proportions), higher is worse


@dataclass(frozen=True)
class ExperimentStatus:
    """What :func:`analyze` found; :meth:`to_dict` is what ``forgeml ab status -O json``
    prints."""

    experiment: Experiment
    at: datetime
    variants: list[VariantResult]
    comparisons: list[Comparison]
    srm: SRMResult | None
    outcomes_counted: int
    ignored: dict[str, int]
    switched: int
    unknown_variant_rows: int
    decision: Decision
    recommended: str | None
    alpha: float  # per comparison
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def exposures(self) -> int:
        return sum(v.exposures for v in self.variants)

    def to_dict(self) -> dict[str, Any]:
        exp = self.experiment
        return {
            "model": exp.model,
            "experiment": exp.name,
            "status": exp.status,
            "at": self.at.isoformat(),
            "started_at": None if exp.started_at is None else exp.started_at.isoformat(),
            "metric": exp.metric,
            "metric_kind": exp.metric_kind,
            "unit": exp.unit,
            "shadow": exp.shadow,
            "control": exp.control,
            "alpha": self.alpha,
            "exposures": self.exposures,
            "variants": [dataclasses.asdict(v) for v in self.variants],
            "comparisons": [_comparison_dict(c) for c in self.comparisons],
            "srm": None if self.srm is None else _srm_dict(self.srm),
            "outcomes": {"counted": self.outcomes_counted, "ignored": dict(self.ignored)},
            "switched_units": self.switched,
            "unknown_variant_rows": self.unknown_variant_rows,
            "decision": {
                "verdict": self.decision.verdict,
                "reasons": list(self.decision.reasons),
                "recommended": self.recommended,
            },
        }


def analyze(
    experiment: Experiment,
    predictions: pl.DataFrame,
    feedback: pl.DataFrame,
    *,
    now: datetime | None = None,
    latency_margin: float = 0.1,
    events: pl.DataFrame | None = None,
) -> ExperimentStatus:
    """The status of ``experiment`` from the logged ``predictions`` and ``feedback`` (see
    the module docstring for what counts). ``now`` stamps the status (default: the current
    time)."""
    at = now or datetime.now(UTC)
    exp = experiment
    alpha = exp.alpha / max(1, len(exp.treatments))
    live, shadow = _exposure_rows(exp, _conform(predictions, _PREDICTIONS, _PREDICTIONS_REQUIRED))
    unknown = live.filter(~pl.col("variant").is_in(list(exp.variants))).height
    live = live.filter(pl.col("variant").is_in(list(exp.variants)))
    firsts = _first_exposures(live)
    outcomes, ignored = _outcomes(exp, _conform(feedback, _FEEDBACK, _FEEDBACK_REQUIRED), firsts)
    units = _unit_values(exp, firsts, outcomes)
    latency = _request_latency(live)
    errors = _errors(exp, events)
    variants = _variant_results(exp, units, outcomes, latency, live, shadow, errors)
    srm = None if exp.shadow else _srm(exp, firsts)
    comparisons, state = [], dict(exp.state)
    for treatment in exp.treatments:
        comparison, state[treatment] = _compare(
            exp, treatment, units, latency, srm, alpha, latency_margin, errors
        )
        comparisons.append(comparison)
    decision, recommended = _overall(exp, variants, comparisons)
    return ExperimentStatus(
        experiment=exp,
        at=at,
        variants=variants,
        comparisons=comparisons,
        srm=srm,
        outcomes_counted=outcomes.height,
        ignored=ignored,
        switched=firsts.filter(pl.col("n_variants") > 1).height,
        unknown_variant_rows=unknown,
        decision=decision,
        recommended=recommended,
        alpha=alpha,
        state=state,
    )


# -- frames -----------------------------------------------------------------------------


def _conform(
    frame: pl.DataFrame, columns: dict[str, Any], required: tuple[str, ...]
) -> pl.DataFrame:
    """The columns analysis uses, with their types; missing optional columns are nulls."""
    missing = [c for c in required if c not in frame.columns]
    if missing and frame.height > 0:
        raise DataError(f"the log has no column {missing[0]!r} (columns: {frame.columns})")
    out = []
    for name, dtype in columns.items():
        if name not in frame.columns:
            out.append(pl.lit(None, dtype=dtype).alias(name))
        elif name == "ts":
            out.append(_utc(frame, name))
        elif name == "label":
            out.append(pl.col(name))  # parsed later: its type varies with the writer
        else:
            out.append(pl.col(name).cast(dtype, strict=False))
    return frame.select(out)


def _utc(frame: pl.DataFrame, name: str) -> pl.Expr:
    dtype = frame.schema[name]
    column = pl.col(name)
    if not isinstance(dtype, pl.Datetime):
        raise DataError(f"the log's {name!r} column is {dtype}, not a timestamp")
    column = column.dt.cast_time_unit("us")
    if dtype.time_zone is None:  # naive timestamps in the log are UTC
        return column.dt.replace_time_zone("UTC")
    return column.dt.convert_time_zone("UTC")


def _exposure_rows(exp: Experiment, preds: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """This experiment's answered rows and its shadow rows."""
    if exp.started_at is None:
        raise UsageError(f"experiment {exp.name!r} has not started: nothing to analyse")
    keep = (
        (pl.col("model") == exp.model)
        & pl.col("variant").is_not_null()
        & (pl.col("ts") >= exp.started_at)
    )
    if exp.concluded_at is not None:
        keep &= pl.col("ts") < exp.concluded_at
    rows = preds.filter(keep)
    is_shadow = pl.col("shadow").fill_null(False)
    return rows.filter(~is_shadow & pl.col("unit").is_not_null()), rows.filter(is_shadow)


def _first_exposures(live: pl.DataFrame) -> pl.DataFrame:
    """Per unit: first exposure time, its variant, and how many variants it saw."""
    return live.group_by("unit").agg(
        pl.col("ts").min().alias("first_ts"),
        pl.col("variant").sort_by(["ts", "variant"]).first().alias("variant"),
        pl.col("variant").n_unique().alias("n_variants"),
    )


def _parse_label(frame: pl.DataFrame) -> pl.Expr:
    dtype = frame.schema["label"]
    if dtype == pl.String:
        text = pl.col("label").str.strip_chars()
        value = (
            pl.when(text == "true")
            .then(pl.lit(1.0))
            .when(text == "false")
            .then(pl.lit(0.0))
            .otherwise(text.cast(pl.Float64, strict=False))
        )
    elif dtype.is_numeric() or dtype == pl.Boolean:
        value = pl.col("label").cast(pl.Float64)
    else:
        value = pl.lit(None, dtype=pl.Float64)
    return value


def _outcomes(
    exp: Experiment, fb: pl.DataFrame, firsts: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The counted outcome rows (unit, ts, value, variant) and the ignored ones, by
    reason; every relevant feedback row lands in exactly one."""
    ignored = dict.fromkeys(IGNORED, 0)
    tagged = pl.col("experiment") == exp.name
    rows = fb.filter((pl.col("model") == exp.model) & (pl.col("experiment").is_null() | tagged))
    ignored["missing_unit"] = rows.filter(pl.col("unit").is_null()).height
    rows = rows.filter(pl.col("unit").is_not_null())
    rows = rows.with_columns(_parse_label(rows).alias("value"))
    # One row per event id: the earliest (ties: the smallest value), whatever the order.
    with_id = rows.filter(pl.col("event_id").is_not_null())
    unique = with_id.sort(["event_id", "ts", "value"], nulls_last=True).unique(
        subset=["event_id"], keep="first", maintain_order=True
    )
    ignored["duplicate"] = with_id.height - unique.height
    rows = pl.concat([rows.filter(pl.col("event_id").is_null()), unique])
    if exp.concluded_at is not None:
        late = pl.col("ts") >= exp.concluded_at
        ignored["after_end"] = rows.filter(late).height
        rows = rows.filter(~late)
    valid = pl.col("value").is_not_null() & pl.col("value").is_finite()
    ignored["invalid"] = rows.filter(~valid).height
    rows = rows.filter(valid).join(firsts, on="unit", how="left")
    ignored["unexposed"] = rows.filter(pl.col("first_ts").is_null()).height
    rows = rows.filter(pl.col("first_ts").is_not_null())
    ignored["switched_unit"] = rows.filter(pl.col("n_variants") > 1).height
    rows = rows.filter(pl.col("n_variants") == 1)
    early = pl.col("ts") < pl.col("first_ts")
    ignored["before_exposure"] = rows.filter(early).height
    return rows.filter(~early).select("unit", "ts", "value", "variant"), ignored


def _unit_values(exp: Experiment, firsts: pl.DataFrame, outcomes: pl.DataFrame) -> pl.DataFrame:
    """One row per analysed unit: its variant and value (0 without outcomes)."""
    if exp.metric_kind == "binary":
        per_unit = (pl.col("value") > 0).any().cast(pl.Float64)
    else:
        per_unit = pl.col("value").sum()
    values = outcomes.group_by("unit").agg(per_unit.alias("value"), pl.len().alias("outcomes"))
    return (
        firsts.filter(pl.col("n_variants") == 1)
        .select("unit", "variant")
        .join(values, on="unit", how="left")
        .with_columns(pl.col("value").fill_null(0.0), pl.col("outcomes").fill_null(0))
    )


def _request_latency(live: pl.DataFrame) -> pl.DataFrame:
    """One latency per request and variant (every row of a request carries the request's)."""
    rows = live.filter(pl.col("latency_ms").is_not_null() & pl.col("latency_ms").is_finite())
    with_id = rows.filter(pl.col("request_id").is_not_null())
    per_request = with_id.group_by("variant", "request_id").agg(pl.col("latency_ms").max())
    without = rows.filter(pl.col("request_id").is_null()).select(per_request.columns)
    return pl.concat([per_request, without])


# -- per variant ------------------------------------------------------------------------


def _variant_results(
    exp: Experiment,
    units: pl.DataFrame,
    outcomes: pl.DataFrame,
    latency: pl.DataFrame,
    live: pl.DataFrame,
    shadow: pl.DataFrame,
    errors: dict[str, int],
) -> list[VariantResult]:
    agreement = _agreement(exp, live, shadow) if exp.shadow else {}
    results = []
    for name, weight in exp.variants.items():
        mine = units.filter(pl.col("variant") == name)
        lat = latency.filter(pl.col("variant") == name)["latency_ms"]
        results.append(
            VariantResult(
                name=name,
                version=exp.versions.get(name),
                weight=weight,
                exposures=mine.height,
                outcomes=outcomes.filter(pl.col("variant") == name).height,
                units_with_outcome=mine.filter(pl.col("outcomes") > 0).height,
                value=_mean(mine["value"]),
                requests=lat.len(),
                latency_ms=_mean(lat),
                errors=errors.get(name, 0),
                shadow_rows=shadow.filter(pl.col("variant") == name).height,
                agreement=agreement.get(name),
            )
        )
    return results


def _agreement(exp: Experiment, live: pl.DataFrame, shadow: pl.DataFrame) -> dict[str, float]:
    """Shadow variants: the share of rows they predicted as the control answered."""
    keys = ["request_id", "row"]
    answered = live.filter(pl.col("variant") == exp.control).select(
        *keys, pl.col("prediction").alias("answered")
    )
    joined = shadow.drop_nulls(keys).join(answered.drop_nulls(keys), on=keys, how="inner")
    out = {}
    for name in exp.treatments:
        rows = joined.filter(pl.col("variant") == name)
        if rows.height:
            same = rows["prediction"].eq_missing(rows["answered"])
            out[name] = int(same.sum()) / rows.height
    return out


def _mean(values: pl.Series) -> float | None:
    return None if values.len() == 0 else float(values.cast(pl.Float64).mean())  # type: ignore[arg-type]


def _srm(exp: Experiment, firsts: pl.DataFrame) -> SRMResult | None:
    since = exp.weights_since or exp.started_at
    recent = firsts.filter(pl.col("first_ts") >= since) if since is not None else firsts
    counts = dict(recent.group_by("variant").len().iter_rows())
    observed = {name: int(counts.get(name, 0)) for name in exp.variants}
    if sum(observed.values()) == 0:
        return None
    return srm_check(observed, exp.variants)


# -- comparisons ------------------------------------------------------------------------


def _compare(
    exp: Experiment,
    treatment: str,
    units: pl.DataFrame,
    latency: pl.DataFrame,
    srm: SRMResult | None,
    alpha: float,
    latency_margin: float,
    errors: dict[str, int],
) -> tuple[Comparison, dict[str, Any]]:
    saved = exp.state.get(treatment) or {}
    test = SequentialTest(
        alpha=alpha,
        tau=saved.get("tau"),
        p_value=float(saved.get("p_value", 1.0)),
        looks=int(saved.get("looks", 0)),
        history=list(saved.get("history", [])),
    )
    effect, why_not = _effect(exp, treatment, units, alpha)
    guard = _latency_effect(exp.control, treatment, latency, alpha)
    error_guard = _error_effect(exp.control, treatment, latency, errors, alpha)
    if effect is not None and effect.variance > 0 and not exp.shadow:
        test.update(effect)  # a look without variation would fix tau at nothing
    if exp.shadow:
        decision = Decision("keep running", ["shadow mode: outcomes measure only the control"])
    elif effect is None:
        decision = Decision("keep running", [why_not])
    else:
        neutral = srm or SRMResult({}, {}, 0.0, 1.0, 0.001)
        guards = {"latency_ms": guard} if guard is not None else {}
        if error_guard is not None:
            guards["error_rate"] = error_guard
        decision = decide(
            effect,
            test,
            neutral,
            higher_is_better=exp.higher_is_better,
            guardrails=guards,
            guardrail_margin=latency_margin,
        )
    state = {
        "tau": test.tau,
        "p_value": test.p_value,
        "looks": test.looks,
        "history": test.history[-HISTORY_KEPT:],
    }
    comparison = Comparison(
        treatment, effect, test.p_value, test.looks, guard, decision, error_guard
    )
    return comparison, state


def _effect(
    exp: Experiment, treatment: str, units: pl.DataFrame, alpha: float
) -> tuple[Effect | None, str]:
    arms = {v: units.filter(pl.col("variant") == v)["value"] for v in (exp.control, treatment)}
    need = 1 if exp.metric_kind == "binary" else 2
    short = [f"{v} has {s.len()}" for v, s in arms.items() if s.len() < need]
    if short:
        return None, f"not enough exposures yet ({'; '.join(short)}; need {need} per variant)"
    control, other = arms[exp.control], arms[treatment]
    if exp.metric_kind == "binary":
        return two_proportions(
            int(control.sum()), control.len(), int(other.sum()), other.len(), alpha=alpha
        ), ""
    return welch(Summary.of(control.to_numpy()), Summary.of(other.to_numpy()), alpha=alpha), ""


def _latency_effect(
    control: str, treatment: str, latency: pl.DataFrame, alpha: float
) -> Effect | None:
    arms = [latency.filter(pl.col("variant") == v)["latency_ms"] for v in (control, treatment)]
    if any(a.len() < 2 for a in arms):
        return None
    return welch(Summary.of(arms[0].to_numpy()), Summary.of(arms[1].to_numpy()), alpha=alpha)


def _errors(exp: Experiment, events: pl.DataFrame | None) -> dict[str, int]:
    """Server errors per variant in the experiment's window (``request_error`` events)."""
    if events is None or events.height == 0 or "variant" not in events.columns:
        return {}
    rows = events.filter(
        (pl.col("kind") == "request_error")
        & (pl.col("model") == exp.model)
        & pl.col("variant").is_in(list(exp.variants))
    )
    if exp.started_at is not None:
        rows = rows.filter(pl.col("ts") >= exp.started_at)
    if exp.concluded_at is not None:
        rows = rows.filter(pl.col("ts") < exp.concluded_at)
    return {str(v): int(n) for v, n in rows.group_by("variant").agg(pl.col("count").sum()).rows()}


def _error_effect(
    control: str, treatment: str, latency: pl.DataFrame, errors: dict[str, int], alpha: float
) -> Effect | None:
    """The error rate of each arm: 5xx answers over all its requests (answered or not)."""
    if not errors.get(control) and not errors.get(treatment):
        return None
    counts = []
    for name in (control, treatment):
        failed = errors.get(name, 0)
        served = latency.filter(pl.col("variant") == name).height
        counts.append((failed, served + failed))
    if any(total == 0 for _, total in counts):
        return None
    (x_c, n_c), (x_t, n_t) = counts
    return two_proportions(x_c, n_c, x_t, n_t, alpha=alpha)


def _overall(
    exp: Experiment, variants: list[VariantResult], comparisons: list[Comparison]
) -> tuple[Decision, str | None]:
    """One verdict for the experiment, from each treatment's."""
    if sum(v.exposures for v in variants) == 0:
        return Decision("keep running", ["no exposures yet"]), None
    if exp.shadow:
        return Decision("keep running", _shadow_reasons(exp, variants)), None
    several = len(comparisons) > 1

    def reasons(chosen: list[Comparison]) -> list[str]:
        return [f"{c.variant}: {r}" if several else r for c in chosen for r in c.decision.reasons]

    verdicts = {c.decision.verdict for c in comparisons}
    broken = [c for c in comparisons if c.decision.verdict == "stop: broken split"]
    if broken:
        return Decision("stop: broken split", broken[0].decision.reasons), None
    winners = [c for c in comparisons if c.decision.verdict == "promote" and c.effect]
    if winners:
        sign = 1 if exp.higher_is_better else -1
        best = max(winners, key=lambda c: sign * c.effect.difference if c.effect else 0.0)
        return Decision("promote", reasons([best])), best.variant
    if verdicts == {"rollback"}:
        return Decision("rollback", reasons(comparisons)), None
    return Decision("keep running", reasons(comparisons)), None


def _shadow_reasons(exp: Experiment, variants: list[VariantResult]) -> list[str]:
    out = [
        "shadow mode: only the control answers, so outcomes cannot compare the variants; "
        "compare agreement and latency, then start a live experiment"
    ]
    for v in variants:
        if v.name != exp.control:
            share = "-" if v.agreement is None else f"{v.agreement:.1%}"
            out.append(f"{v.name}: {v.shadow_rows:,} rows scored, agreement {share}")
    return out


# -- JSON -------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _effect_dict(effect: Effect | None) -> dict[str, Any] | None:
    if effect is None:
        return None
    out = {k: _finite(v) if isinstance(v, float) else v for k, v in vars(effect).items()}
    out["relative"] = _finite(effect.relative)
    return out


def _comparison_dict(c: Comparison) -> dict[str, Any]:
    return {
        "variant": c.variant,
        "effect": _effect_dict(c.effect),
        "always_valid_p": c.always_valid_p,
        "looks": c.looks,
        "latency_ms": _effect_dict(c.latency),
        "error_rate": _effect_dict(c.errors),
        "verdict": c.decision.verdict,
        "reasons": list(c.decision.reasons),
    }


def _srm_dict(srm: SRMResult) -> dict[str, Any]:
    return {
        "observed": srm.observed,
        "expected": srm.expected,
        "chi2": srm.chi2,
        "p_value": srm.p_value,
        "threshold": srm.threshold,
        "mismatch": srm.mismatch,
    }
