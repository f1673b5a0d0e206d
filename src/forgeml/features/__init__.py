"""Feature transforms and the fitted feature pipeline (saved as JSON, never pickled).

* :class:`FeaturePipeline` fits the transforms a :class:`~forgeml.config.spec.FeaturesSpec`
  describes; :meth:`FeaturePipeline.fit_transform` gives the training matrix with
  out-of-fold target encoding.
* :class:`FittedFeatures` transforms frames (Polars, pandas, Arrow) into a float32 matrix
  and round-trips through JSON with ``to_dict`` / ``from_dict``.

>>> import numpy as np, polars as pl
>>> from forgeml.config.spec import FeaturesSpec
>>> from forgeml.tasks.info import TaskInfo
>>> frame = pl.DataFrame({"x": [1.0, 2.0, 3.0]})
>>> fitted = FeaturePipeline(FeaturesSpec(), {"x": "float"}, TaskInfo("regression")).fit(frame, np.zeros(3))
>>> fitted.transform(frame).shape
(3, 1)
"""

from __future__ import annotations

from forgeml.features.fitted import FittedFeatures, Matrix
from forgeml.features.pipeline import FeaturePipeline

__all__ = ["FeaturePipeline", "FittedFeatures", "Matrix"]
