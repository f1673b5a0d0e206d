"""Hyperparameter search with Optuna under a time or trial budget, through an executor."""

from forgeml.tuning.ensemble import select_ensemble
from forgeml.tuning.refit import refit_params
from forgeml.tuning.search import SearchResult, TrialRecord, search
from forgeml.tuning.space import CandidateSpace, build_space

__all__ = [
    "CandidateSpace",
    "SearchResult",
    "TrialRecord",
    "build_space",
    "refit_params",
    "search",
    "select_ensemble",
]
