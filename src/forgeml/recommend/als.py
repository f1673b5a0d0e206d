"""Implicit-feedback matrix factorisation (ALS, Hu, Koren & Volinsky 2008) through the
``implicit`` library — an optional dependency (``pip install 'forgeml[rec]'``).

It follows the contract of :mod:`forgeml.recommend.models`: user and item factors are
learned from the binary user x item matrix (confidence ``1 + alpha``), a user's scores are
``user_factors @ item_factors.T``, and ``similar_items`` ranks items by cosine similarity of
their factors. Training runs on the CPU with BLAS held to one thread (``implicit``
parallelises itself; a threaded BLAS inside it is much slower and warns).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml._optional import require
from forgeml.errors import UsageError
from forgeml.recommend.interactions import Interactions
from forgeml.recommend.models import Recommender, _check_k, _codes, _top_k

__all__ = ["ALS"]


class ALS(Recommender):
    """Alternating least squares with ``factors`` dimensions, L2 ``regularization``,
    confidence scale ``alpha``, ``iterations`` sweeps, and ``seed`` for the initial factors."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed

    def fit(self, interactions: Interactions) -> ALS:
        """Learn ``user_factors_`` ``[n_users, factors]`` and ``item_factors_``."""
        als = require("implicit.cpu.als", extra="rec", feature="the ALS recommender")
        from threadpoolctl import threadpool_limits

        if self.factors < 1 or self.iterations < 1 or self.regularization < 0 or self.alpha <= 0:
            raise UsageError(
                "ALS: factors and iterations must be >= 1, regularization >= 0, alpha > 0"
            )
        seen = self._remember(interactions)
        with threadpool_limits(1, "blas"):
            model = als.AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
            )
            model.fit(seen, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def _scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[users] @ self.item_factors_.T)

    def similar_items(self, item_codes: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)``: items by cosine similarity of factors, never the item itself."""
        wanted = _codes(item_codes, self._fitted().shape[1], "item")
        norms = np.linalg.norm(self.item_factors_, axis=1) + 1e-12
        unit = self.item_factors_ / norms[:, None]
        dense = unit[wanted] @ unit.T
        dense[np.arange(len(wanted)), wanted] = -np.inf
        items, scores = _top_k(dense, _check_k(k))
        items[~np.isfinite(scores)] = -1
        return items, scores
