"""Bayesian personalised ranking (Rendle et al. 2009) through the ``implicit`` library — an
optional dependency (``pip install 'forgeml[rec]'``).

Same contract as :class:`~forgeml.recommend.als.ALS`: ``user_factors_`` and
``item_factors_`` learned by stochastic gradient descent on (user, seen item, unseen item)
triples of the binary matrix, scores ``user_factors_ @ item_factors_.T``. As in
``implicit``, the last column of ``item_factors_`` is an item bias and the last column of
``user_factors_`` is 1, so the inner product includes the bias (and an inner-product index
over ``item_factors_`` ranks exactly like the model).

Fold-in is an approximation (BPR has no closed form for one user): a user's factors are
the mean factors of their history's items, times one scale fitted by least squares so that
this estimate best matches the trained users' factors (computed once, from the saved
factors). On MovieLens it ranks about as well as the trained factors; a least-squares
(ALS-style) solve against BPR's factors was measured and ranked much worse, because BPR's
factors are not fitted to reconstruct the matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from forgeml._optional import require
from forgeml.recommend.als import _FactorModel
from forgeml.recommend.interactions import Interactions
from forgeml.recommend.models import Rule

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["BPR"]


class BPR(_FactorModel):
    """BPR with ``factors`` dimensions (plus an item bias), SGD ``learning_rate``, L2
    ``regularization``, ``iterations`` epochs and ``seed``. ``threads`` is the number of
    SGD threads (0: all cores; parallel updates make a fit vary slightly between runs,
    ``threads=1`` makes it reproducible)."""

    _rules: ClassVar[dict[str, Rule]] = {
        "factors": Rule.integer(1),
        "learning_rate": Rule.number(0.0, above=True),
        "regularization": Rule.number(0.0),
        "iterations": Rule.integer(1),
        "threads": Rule.integer(0),
    }

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
        threads: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed
        self.threads = threads

    def fit(self, interactions: Interactions) -> BPR:
        """Learn ``user_factors_`` ``[n_users, factors + 1]`` and ``item_factors_``
        ``[n_items, factors + 1]`` (last columns: 1 and the item bias)."""
        bpr = require("implicit.cpu.bpr", extra="rec", feature="the BPR recommender")
        self._check_params()
        seen = self._remember(interactions)
        model = bpr.BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=self.threads,
        )
        model.fit(seen, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def _history_means(self, history: sp.csr_matrix) -> np.ndarray:
        """Mean factors (bias column left out) of each row's items; zero for no items."""
        counts = np.diff(history.indptr).astype(np.float64)
        sums = np.asarray(history @ self.item_factors_[:, :-1].astype(np.float64))
        return sums / np.maximum(counts, 1.0)[:, None]

    def _fold_in_scale(self) -> float:
        """``s`` minimising ``Σ_u |x_u - s m_u|²`` over the trained users (``m_u``: their
        history means), computed once per set of factors."""
        cached = getattr(self, "_scale_cache", None)
        if cached is None or cached[0] is not self.user_factors_:
            means = self._history_means(self.seen_)
            users = self.user_factors_[:, :-1].astype(np.float64)
            denominator = float(np.sum(means * means))
            scale = float(np.sum(users * means)) / denominator if denominator > 0 else 1.0
            cached = (self.user_factors_, scale)
            self._scale_cache = cached
        return cached[1]

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        vectors = self._fold_in_scale() * self._history_means(history)
        ones = np.ones((history.shape[0], 1))
        return np.hstack([vectors, ones]).astype(np.float32)

    def _similarity_factors(self) -> np.ndarray:
        return self.item_factors_[:, :-1]
