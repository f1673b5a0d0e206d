"""Model adapters: one per model library, behind :class:`ModelAdapter` / :class:`FittedEstimator`.

Importing this package is cheap: model libraries load when a model is trained or loaded.

>>> from forgeml.models import get_adapter
>>> sorted(get_adapter("lightgbm").search_space("binary", n_rows=10_000))[:3]
['bagging_fraction', 'bagging_freq', 'feature_fraction']
"""

from forgeml.models.base import FORMAT_VERSION, FittedEstimator, ModelAdapter, balanced_weights
from forgeml.models.catalog import available_names, builtin_names, get_adapter, load_estimator
from forgeml.models.ensemble import FittedEnsemble

__all__ = [
    "FORMAT_VERSION",
    "FittedEnsemble",
    "FittedEstimator",
    "ModelAdapter",
    "available_names",
    "balanced_weights",
    "builtin_names",
    "get_adapter",
    "load_estimator",
]
