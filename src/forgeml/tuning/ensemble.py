"""Greedy ensemble selection on out-of-fold predictions (Caruana et al., 2004).

Starting from the best trial, repeatedly add — with replacement — the trial whose
out-of-fold predictions most improve the metric of the running average; stop when no
addition helps. Weights are how often each trial was picked. Every candidate was scored
on the same folds, so the choice uses no row twice and the held-out test set stays
untouched. Deterministic: ties go to the better (then earlier) trial.

>>> import numpy as np
>>> y = np.array([0, 1, 0, 1, 0, 1])
>>> proba = lambda p1: np.column_stack([1 - np.array(p1), np.array(p1)])
>>> a = proba([.4, .6, .3, .55, .65, .8])    # AUC 0.78 alone
>>> b = proba([.1, .7, .6, .8, .2, .4])      # AUC 0.89 alone; their average ranks perfectly
>>> select_ensemble([(0, 0.89, b), (1, 0.78, a)], y, "roc_auc", "binary", max_members=2)
[(0, 0.5), (1, 0.5)]
>>> select_ensemble([(0, 0.89, b), (1, 0.78, a)], y, "roc_auc", "binary", max_members=1)
[(0, 1.0)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forgeml.tasks.metrics import METRICS, score

__all__ = ["select_ensemble"]

_MIN_GAIN = 1e-6


def select_ensemble(
    candidates: Sequence[tuple[int, float, np.ndarray]],
    y: np.ndarray,
    metric: str,
    subtype: str,
    *,
    max_members: int,
    rounds: int = 25,
) -> list[tuple[int, float]]:
    """``[(trial number, weight), ...]`` chosen from ``(number, cv value, oof)`` candidates.

    ``candidates`` should be complete trials; rows some candidate never validated (NaN)
    are left out of the selection. Returns the single best trial when averaging does not
    help or ``max_members`` is 1.
    """
    if not candidates:
        raise ValueError("no candidate to select from")
    direction = METRICS[metric].direction
    sign = 1.0 if direction == "maximize" else -1.0
    ranked = sorted(candidates, key=lambda c: (-sign * c[1], c[0]))
    best_number = ranked[0][0]
    if max_members <= 1 or len(ranked) == 1:
        return [(best_number, 1.0)]
    rows = np.ones(len(y), dtype=bool)
    for _, _, oof in ranked:
        finite = np.isfinite(oof)
        rows &= finite if finite.ndim == 1 else finite.all(axis=1)
    if rows.sum() < 2:
        return [(best_number, 1.0)]
    preds = [np.asarray(oof[rows], dtype=np.float64) for _, _, oof in ranked]
    target = y[rows]

    def value(pred: np.ndarray) -> float:
        return sign * score(metric, target, pred, subtype)

    counts = [0] * len(ranked)
    counts[0] = 1
    total = preds[0].copy()
    current = value(total)
    for _ in range(rounds):
        size = sum(counts)
        chosen, chosen_value = -1, current
        for i, pred in enumerate(preds):
            if counts[i] == 0 and sum(c > 0 for c in counts) >= max_members:
                continue  # already as many distinct members as allowed
            trial_value = value((total + pred) / (size + 1))
            if trial_value > chosen_value + _MIN_GAIN:
                chosen, chosen_value = i, trial_value
        if chosen < 0:
            break
        counts[chosen] += 1
        total += preds[chosen]
        current = chosen_value
    picked = [(ranked[i][0], c / sum(counts)) for i, c in enumerate(counts) if c]
    return picked
