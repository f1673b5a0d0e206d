"""Parameters for the final model, refitted on every training row after the search.

Boosted models were early-stopped on each validation fold; the final model is trained on
all training rows without a validation set, for the mean best iteration grown by a small
factor because it sees more data than any fold did.

>>> from forgeml.tuning.search import TrialRecord
>>> t = TrialRecord(0, "lightgbm", {"n_estimators": 2000, "num_leaves": 31}, "none",
...                 "complete", 0.9, [0.9, 0.9], [100, 120], 1.0, 1.0)
>>> refit_params(t)
{'n_estimators': 121, 'num_leaves': 31}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.tuning.search import TrialRecord

__all__ = ["refit_params"]


def refit_params(best: TrialRecord, growth: float = 1.1) -> dict[str, Any]:
    """``best``'s parameters with ``n_estimators`` set from its early-stopped folds."""
    params = dict(best.params)
    iterations = [i for i in best.best_iterations if i]
    if iterations:
        params["n_estimators"] = max(1, round(float(np.mean(iterations)) * growth))
    return params
