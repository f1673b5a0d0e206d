"""Implicit-feedback matrix factorisation (ALS, Hu, Koren & Volinsky 2008) through the
``implicit`` library — an optional dependency (``pip install 'forgeml[rec]'``).

It follows the contract of :mod:`forgeml.recommend.models`: user and item factors are
learned from the binary user x item matrix (confidence ``alpha`` on positives, as
``implicit`` weighs them), a user's scores are ``user_factors @ item_factors.T``, and
``similar_items`` ranks items by cosine similarity of their factors. Training runs on the
CPU with BLAS held to one thread (``implicit`` parallelises itself; a threaded BLAS inside
it is much slower and warns).

``weighting`` (``none``, ``bm25`` with ``bm25_k1``/``bm25_b``, or ``tfidf``) weighs each
event's confidence as ``implicit``'s own examples do (:mod:`forgeml.recommend.weighting`):
the confidence of an event is ``alpha x weight``.

Fold-in (:meth:`~forgeml.recommend.models.Recommender.recommend_history`) solves a user's
factors from their history with the item factors held fixed — the exact least-squares step
ALS itself takes for a user: ``x = (YᵀY + λI + Y_hᵀ (C_h - I) Y_h)⁻¹ Y_hᵀ C_h 1`` where
``Y_h`` are the history's item factors and ``C_h`` their confidences (``alpha`` times the
weights, computed for the history exactly as for a training row). Inference does not need
``implicit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from forgeml._optional import require
from forgeml.errors import DataError
from forgeml.recommend import weighting as weights
from forgeml.recommend.interactions import Interactions
from forgeml.recommend.models import (
    Recommender,
    Rule,
    _check_array,
    _codes,
    _similar_from_rows,
)

if TYPE_CHECKING:
    import scipy.sparse as sp

    from forgeml.recommend.ann import ItemIndex

__all__ = ["ALS"]


class _FactorModel(Recommender):
    """Models scoring ``user_vectors @ item_factors_.T``; subclasses set the factors in
    ``fit`` and say how a history is folded in (``_fold_in``)."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray
    index_: ItemIndex  # set by forgeml.recommend.ann.build_index (optional)
    _state_attrs = ("seen_", "user_factors_", "item_factors_")

    def _scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[users] @ self.item_factors_.T)

    def _scores_history(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self.fold_in(history) @ self.item_factors_.T)

    def user_vectors(self, user_codes: Any) -> np.ndarray:
        """The fitted users' vectors, ``[len(user_codes), dim]``: scores are
        ``user_vectors @ item_vectors().T`` (what an inner-product index searches)."""
        users = _codes(user_codes, self._fitted().shape[0], "user")
        return np.asarray(self.user_factors_[users], dtype=np.float32)

    def item_vectors(self) -> np.ndarray:
        """``[n_items, dim]`` item vectors matching :meth:`user_vectors`."""
        return self.item_factors_

    def fold_in(self, histories: Any) -> np.ndarray:
        """User vectors ``[users, dim]`` computed from item histories (a list of item-code
        arrays or a sparse ``[users, n_items]`` matrix), item factors held fixed; an empty
        history gives a zero vector (scores 0: ties broken by item code)."""
        return self._fold_in(self._history_matrix(histories))

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _gram(self) -> np.ndarray:
        """``item_factors_ᵀ item_factors_`` in float64, computed once per set of factors."""
        cached = getattr(self, "_gram_cache", None)
        if cached is None or cached[0] is not self.item_factors_:
            basis = self.item_factors_.astype(np.float64)
            cached = (self.item_factors_, basis.T @ basis)
            self._gram_cache = cached
        return cached[1]

    def _similarity_rows(self, items: np.ndarray) -> np.ndarray:
        """Cosine similarity of the items' factors to every item, ``[len(items), n_items]``."""
        factors = self._similarity_factors()
        norms = np.linalg.norm(factors, axis=1) + 1e-12
        unit = factors / norms[:, None]
        return np.asarray(unit[items] @ unit.T, dtype=np.float32)

    def _similarity_factors(self) -> np.ndarray:
        return self.item_factors_

    def similar_items(self, item_codes: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)``: items by cosine similarity of factors, never the item itself."""
        wanted = _codes(item_codes, self._fitted().shape[1], "item")
        return _similar_from_rows(self._similarity_rows(wanted), wanted, k)

    def _check_state(self) -> None:
        dim = self.item_factors_.shape[1] if self.item_factors_.ndim == 2 else -1
        _check_array(self.user_factors_, "user_factors_", (self.n_users, dim))
        _check_array(self.item_factors_, "item_factors_", (self.n_items, dim))
        if dim < 1:
            raise DataError("saved model: item_factors_ has no factor columns")


class ALS(_FactorModel):
    """Alternating least squares with ``factors`` dimensions, L2 ``regularization``,
    confidence scale ``alpha``, ``iterations`` sweeps, ``seed`` for the initial factors,
    and the events' confidence ``weighting`` (``none``, ``bm25`` with ``bm25_k1`` and
    ``bm25_b``, or ``tfidf``; see :mod:`forgeml.recommend.weighting`).
    """

    _rules: ClassVar[dict[str, Rule]] = {
        "factors": Rule.integer(1),
        "regularization": Rule.number(0.0),
        "alpha": Rule.number(0.0, above=True),
        "iterations": Rule.integer(1),
        "weighting": Rule.one_of(*weights.WEIGHTINGS),
        "bm25_k1": Rule.number(0.0),
        "bm25_b": Rule.number(0.0, 1.0),
    }

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        seed: int = 0,
        weighting: str = "none",
        bm25_k1: float = 100.0,
        bm25_b: float = 0.8,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b

    def fit(self, interactions: Interactions) -> ALS:
        """Learn ``user_factors_`` ``[n_users, factors]`` and ``item_factors_``."""
        als = require("implicit.cpu.als", extra="rec", feature="the ALS recommender")
        from threadpoolctl import threadpool_limits

        self._check_params()
        seen = self._remember(interactions)
        with threadpool_limits(1, "blas"):
            model = als.AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
            )
            model.fit(self.weighted(seen), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def weighted(self, history: sp.csr_matrix) -> sp.csr_matrix:
        """``history`` rows (binary, over the catalogue) with each event's weight as its
        value — what training weighs a user with that history by (the confidence is
        ``alpha`` times it)."""
        return weights.weigh(history, self._item_factors(), self.weighting)

    def _item_factors(self) -> np.ndarray:
        """Per-item weight factors from the training matrix, once per ``seen_``."""
        params = (self.weighting, self.bm25_k1, self.bm25_b)
        cached = getattr(self, "_weights_cache", None)
        if cached is None or cached[0] is not self.seen_ or cached[1] != params:
            factors = weights.item_factors(
                self.seen_, self.weighting, k1=self.bm25_k1, b=self.bm25_b
            )
            cached = (self.seen_, params, factors)
            self._weights_cache = cached
        return cached[2]

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """One ALS half-step per user: ``(YᵀY + λI + Y_hᵀ(C_h - I)Y_h)⁻¹ Y_hᵀC_h1``."""
        dim = self.item_factors_.shape[1]
        base = self._gram() + self.regularization * np.eye(dim)
        confidence = self.weighted(history)
        solved = np.zeros((history.shape[0], dim), dtype=np.float64)
        for row in range(history.shape[0]):
            lo, hi = confidence.indptr[row], confidence.indptr[row + 1]
            if lo == hi:
                continue
            chosen = self.item_factors_[confidence.indices[lo:hi]].astype(np.float64)
            c = self.alpha * confidence.data[lo:hi].astype(np.float64)
            lhs = base + (chosen.T * (c - 1.0)) @ chosen
            solved[row] = np.linalg.solve(lhs, chosen.T @ c)
        return solved.astype(np.float32)
