"""Recommendation: interaction logs, synthetic data, splits, models and full-ranking metrics.

* :class:`Interactions` encodes a Polars frame of (user, item[, weight][, time]) events into
  integer codes and a sparse user x item matrix.
* :func:`generate` makes a realistic synthetic log (Zipf items, heavy-tailed users, sessions).
* :func:`leave_last_n_out` / :func:`time_split` hold out events for evaluation.
* :class:`Popularity`, :class:`ItemKNN`, :class:`EASE`, :class:`ALS` and :class:`BPR` (the
  last two need the ``rec`` extra: ``implicit``) and the content + CF :class:`Hybrid`
  (cold items) share one contract (``fit``, ``recommend`` with business filters,
  ``recommend_history`` for fold-in, ``similar_items``); :func:`evaluate` scores them over
  the whole catalogue. ALS can weigh events by BM25 or TF-IDF
  (:mod:`forgeml.recommend.weighting`).
* :mod:`forgeml.recommend.persist` saves and loads fitted models without pickle;
  :mod:`forgeml.recommend.ann` builds an hnswlib index for ALS/BPR (``rec`` extra).
* :class:`SegmentPopularity` (:mod:`forgeml.recommend.user_features`) recommends to new
  users from their attributes (a user feature table): popularity per attribute value.

Importing it loads NumPy only; Polars and SciPy load on use.
"""

from forgeml.recommend.als import ALS
from forgeml.recommend.bpr import BPR
from forgeml.recommend.evaluate import evaluate
from forgeml.recommend.hybrid import Hybrid
from forgeml.recommend.interactions import Interactions
from forgeml.recommend.models import EASE, ItemKNN, Popularity, Recommender
from forgeml.recommend.split import Split, leave_last_n_out, time_split
from forgeml.recommend.synthetic import generate
from forgeml.recommend.user_features import SegmentPopularity

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "Hybrid",
    "Interactions",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "SegmentPopularity",
    "Split",
    "evaluate",
    "generate",
    "leave_last_n_out",
    "time_split",
]
