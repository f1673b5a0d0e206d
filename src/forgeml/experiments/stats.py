"""Statistics for A/B experiments that hold up when results are looked at every hour.

* :func:`srm_check` — sample-ratio mismatch: a chi-square test of the observed exposures
  against the configured weights. A mismatch means the split itself is broken (bots, a
  redirect that loses users, a crash in one arm) and no effect estimate can be trusted.
* :func:`two_proportions` — binary metrics (conversion): difference of rates with a Wald
  interval and the pooled two-proportion z-test.
* :func:`welch` — continuous metrics (revenue, latency): Welch's t-test and interval,
  no equal-variance assumption.
* :class:`SequentialTest` — an always-valid p-value (mSPRT with a normal mixture, Johari
  et al. 2017, "Peeking at A/B tests"): it may be computed after every batch of data, and
  the chance that it *ever* falls below ``alpha`` when there is no difference stays at or
  below ``alpha``. Fixed-horizon p-values checked repeatedly do not have this property
  (the simulation tests show both).
* :func:`decide` — the verdict ``forgeml ab status`` prints, with its reasons.

>>> effect = two_proportions(100, 1000, 130, 1000)
>>> round(effect.difference, 3), effect.p_value < 0.05
(0.03, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import UsageError

__all__ = [
    "Decision",
    "Effect",
    "SRMResult",
    "SequentialTest",
    "Summary",
    "always_valid_p",
    "decide",
    "srm_check",
    "two_proportions",
    "welch",
]


@dataclass(frozen=True)
class Summary:
    """Count, mean and (sample) variance of one arm's values."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float] | Any) -> Summary:
        import numpy as np

        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1 or array.size < 2:
            raise UsageError("a continuous metric needs at least 2 values per variant")
        if not np.isfinite(array).all():
            raise UsageError("a continuous metric must be finite (no NaN or infinity)")
        return cls(int(array.size), float(array.mean()), float(array.var(ddof=1)))


@dataclass(frozen=True)
class Effect:
    """Treatment minus control, with a ``1 - alpha`` confidence interval and a p-value."""

    kind: str  # "binary" | "continuous"
    control: float
    treatment: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_control: int
    n_treatment: int
    variance: float  # of the difference estimate (for the sequential test)
    alpha: float = 0.05

    @property
    def relative(self) -> float | None:
        """The difference relative to control (``None`` when control is 0)."""
        return self.difference / self.control if self.control else None


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be between 0 and 1, got {alpha}")


def two_proportions(
    successes_control: int,
    n_control: int,
    successes_treatment: int,
    n_treatment: int,
    *,
    alpha: float = 0.05,
) -> Effect:
    """Difference of two rates: Wald interval (unpooled) and pooled z-test p-value."""
    from scipy.stats import norm

    _check_alpha(alpha)
    for name, x, n in (
        ("control", successes_control, n_control),
        ("treatment", successes_treatment, n_treatment),
    ):
        if n < 1:
            raise UsageError(f"{name}: no exposures yet")
        if not 0 <= x <= n:
            raise UsageError(f"{name}: {x} successes out of {n} exposures is impossible")
    p_a, p_b = successes_control / n_control, successes_treatment / n_treatment
    variance = p_a * (1 - p_a) / n_control + p_b * (1 - p_b) / n_treatment
    difference = p_b - p_a
    pooled = (successes_control + successes_treatment) / (n_control + n_treatment)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n_control + 1 / n_treatment))
    p_value = 1.0 if pooled_se == 0 else float(2 * norm.sf(abs(difference) / pooled_se))
    z = _normal_quantile(1 - alpha / 2)
    half = z * math.sqrt(variance)
    return Effect(
        "binary", p_a, p_b, difference, difference - half, difference + half,
        p_value, n_control, n_treatment, variance, alpha,
    )  # fmt: skip


def welch(control: Summary, treatment: Summary, *, alpha: float = 0.05) -> Effect:
    """Difference of means: Welch's t-test and its interval (unequal variances)."""
    from scipy.stats import t as student

    _check_alpha(alpha)
    for name, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 2:
            raise UsageError(f"{name}: a continuous metric needs at least 2 values")
    va, vb = control.variance / control.n, treatment.variance / treatment.n
    variance = va + vb
    difference = treatment.mean - control.mean
    if variance == 0:
        p_value = 1.0 if difference == 0 else 0.0
        half = 0.0
    else:
        df = variance**2 / (va**2 / (control.n - 1) + vb**2 / (treatment.n - 1))
        statistic = difference / math.sqrt(variance)
        p_value = float(2 * student.sf(abs(statistic), df))
        half = float(student.ppf(1 - alpha / 2, df)) * math.sqrt(variance)
    return Effect(
        "continuous", control.mean, treatment.mean, difference, difference - half,
        difference + half, p_value, control.n, treatment.n, variance, alpha,
    )  # fmt: skip


@dataclass(frozen=True)
class SRMResult:
    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    threshold: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.threshold


def srm_check(
    observed: Mapping[str, int], weights: Mapping[str, float], *, threshold: float = 0.001
) -> SRMResult:
    """Chi-square goodness of fit of exposures to weights. The usual threshold is strict
    (0.001): a mismatch should mean a broken split, not bad luck."""
    from scipy.stats import chisquare

    if set(observed) != set(weights):
        raise UsageError(f"exposures name variants {sorted(observed)}, the split {sorted(weights)}")
    total = sum(observed.values())
    if total == 0:
        raise UsageError("no exposures yet: nothing to check")
    names = list(weights)
    expected = {n: total * weights[n] for n in names}
    chi2, p_value = chisquare([observed[n] for n in names], [expected[n] for n in names])
    return SRMResult(dict(observed), expected, float(chi2), float(p_value), threshold)


def always_valid_p(difference: Any, variance: Any, tau: float) -> Any:
    """One look's mSPRT p-value, ``min(1, 1 / Lambda)``, for a difference estimate with
    the given variance under a normal mixture of effects with standard deviation ``tau``.
    Scalars or NumPy arrays (many experiments at once, for simulations).

    >>> float(always_valid_p(0.0, 1e-4, 0.01))
    1.0
    """
    import numpy as np

    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    if tau <= 0:
        raise UsageError(f"tau must be positive, got {tau}")
    tau2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lambda = 0.5 * np.log(v / (v + tau2)) + tau2 * d**2 / (2 * v * (v + tau2))
        p = np.minimum(1.0, np.exp(-np.maximum(log_lambda, 0.0)))
    p = np.where(v > 0, p, 1.0)
    return float(p) if p.ndim == 0 else p


@dataclass
class SequentialTest:
    """An always-valid p-value over repeated looks (the running minimum of each look's).

    ``tau``: the spread of effects the test is tuned for, in the metric's units (an
    absolute difference). Unset, it is fixed at the first look to a tenth of the pooled
    standard deviation — a small effect — and then kept, as validity requires.
    """

    alpha: float = 0.05
    tau: float | None = None
    p_value: float = 1.0
    looks: int = 0
    history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)

    def update(self, effect: Effect) -> float:
        """Add a look at the cumulative data; returns the always-valid p-value so far."""
        if self.tau is None:
            spread = math.sqrt(effect.variance / (1 / effect.n_control + 1 / effect.n_treatment))
            self.tau = max(0.1 * spread, 1e-12)
        self.looks += 1
        look = float(always_valid_p(effect.difference, effect.variance, self.tau))
        self.p_value = min(self.p_value, look)
        self.history.append(self.p_value)
        return self.p_value

    @property
    def significant(self) -> bool:
        return self.p_value <= self.alpha


@dataclass(frozen=True)
class Decision:
    verdict: str  # "promote" | "rollback" | "keep running" | "stop: broken split"
    reasons: list[str]


def decide(
    effect: Effect,
    sequential: SequentialTest,
    srm: SRMResult,
    *,
    higher_is_better: bool = True,
    guardrails: Mapping[str, Effect] | None = None,
    guardrail_margin: float = 0.0,
) -> Decision:
    """What to do now, and why. Guardrails (latency, error rate: higher is worse) roll the
    treatment back when their interval lies wholly above ``guardrail_margin`` (a relative
    increase over control)."""
    reasons: list[str] = []
    if srm.mismatch:
        counts = ", ".join(f"{n} {c:,}" for n, c in srm.observed.items())
        return Decision(
            "stop: broken split",
            [f"sample ratio mismatch (p = {srm.p_value:.2g} < {srm.threshold:g}; {counts}): "
             "fix the assignment before reading any effect"],
        )  # fmt: skip
    for name, guard in (guardrails or {}).items():
        limit = guard.control * guardrail_margin
        if guard.ci_low > limit:
            reasons.append(
                f"guardrail {name} is worse: {guard.treatment:.4g} vs {guard.control:.4g} "
                f"(interval of the increase {guard.ci_low:.3g} to {guard.ci_high:.3g})"
            )
    if reasons:
        return Decision("rollback", reasons)
    better = effect.difference > 0 if higher_is_better else effect.difference < 0
    interval = f"{effect.difference:+.4g} [{effect.ci_low:+.4g}, {effect.ci_high:+.4g}]"
    if sequential.significant:
        verdict = "promote" if better else "rollback"
        word = "better" if better else "worse"
        return Decision(
            verdict,
            [f"treatment is {word}: difference {interval}, always-valid p = "
             f"{sequential.p_value:.3g} <= {sequential.alpha:g} after {sequential.looks} looks"],
        )  # fmt: skip
    return Decision(
        "keep running",
        [f"no significant difference yet: difference {interval}, always-valid p = "
         f"{sequential.p_value:.3g} > {sequential.alpha:g}"],
    )  # fmt: skip
