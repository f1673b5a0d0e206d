"""Parameters for the final model, refitted on every training row after the search.

Boosted models (and the mlp) were early-stopped on each validation fold; the final model
is trained on all training rows without a validation set, for the mean best iteration
(rounds, or epochs: the adapter's ``rounds_param``) grown by a small factor because it
sees more data than any fold did.

>>> from forgeml.tuning.search import TrialRecord
>>> t = TrialRecord(0, "lightgbm", {"n_estimators": 2000, "num_leaves": 31}, "none",
...                 "complete", 0.9, [0.9, 0.9], [100, 120], 1.0, 1.0)
>>> refit_params(t)
{'n_estimators': 121, 'num_leaves': 31}
>>> refit_params(TrialRecord(1, "mlp", {"epochs": 100}, "none", "complete", 0.9, [0.9, 0.9],
...                          [30, 40], 1.0, 1.0))
{'epochs': 38}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.models.catalog import ADAPTERS
from forgeml.tuning.search import TrialRecord

__all__ = ["refit_params"]


def refit_params(best: TrialRecord, growth: float = 1.1) -> dict[str, Any]:
    """``best``'s parameters with its rounds (``n_estimators``; the mlp's ``epochs``) set
    from its early-stopped folds."""
    params = dict(best.params)
    iterations = [i for i in best.best_iterations if i]
    if iterations:
        adapter = ADAPTERS.get(best.model)
        key = adapter.rounds_param if adapter is not None else "n_estimators"
        params[key] = max(1, round(float(np.mean(iterations)) * growth))
    return params
