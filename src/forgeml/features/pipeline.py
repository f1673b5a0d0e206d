"""Fit the feature pipeline a spec describes on training rows.

Which transform a column gets follows its declared type: ``int``/``float``/``bool`` are
numeric (:mod:`~forgeml.features.numeric`), ``string``/``categorical`` are categorical
(:mod:`~forgeml.features.categorical`), ``datetime`` gives calendar parts
(:mod:`~forgeml.features.datetime_parts`), ``text`` gives TF-IDF
(:mod:`~forgeml.features.text`). ``id`` columns, the target and ``features.drop`` are not
features.

:meth:`FeaturePipeline.fit_transform` returns the training matrix with out-of-fold target
encoding (each row encoded from statistics of the other folds: ``folds`` when given, else
a shuffled 5-fold split seeded by ``seed``), so a model never sees its own row's target
through a feature; every other column equals ``transform`` on the same rows, and the
pipeline it returns encodes with statistics of all training rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.config.spec import ColumnType, FeaturesSpec
from forgeml.errors import ConfigError, DataError
from forgeml.features import target_encoding as te
from forgeml.features.categorical import CategoricalBlock, choose_encoders
from forgeml.features.datetime_parts import DatetimeBlock
from forgeml.features.fitted import ROLES, FittedFeatures, Matrix
from forgeml.features.inputs import canonical_columns, to_polars
from forgeml.features.numeric import NumericBlock
from forgeml.features.text import TextBlock
from forgeml.tasks.info import TaskInfo

__all__ = ["FeaturePipeline"]

OOF_FOLDS = 5


class FeaturePipeline:
    """The unfitted feature pipeline of a spec, a set of typed columns and a task.

    >>> import polars as pl
    >>> from forgeml.config.spec import FeaturesSpec
    >>> frame = pl.DataFrame({"id": [1, 2, 3, 4], "city": ["a", "b", "a", None], "x": [1.0, 2.0, 3.0, 4.0]})
    >>> pipe = FeaturePipeline(
    ...     FeaturesSpec(), {"id": "id", "city": "string", "x": "float"}, TaskInfo("classification", classes=(0, 1))
    ... )
    >>> fitted, X = pipe.fit_transform(frame, np.array([0, 1, 1, 0]))
    >>> fitted.feature_names, X.shape, X.dtype
    (['city=a', 'city=b', 'city__missing', 'x'], (4, 4), dtype('float32'))
    """

    def __init__(
        self,
        spec: FeaturesSpec,
        column_types: dict[str, ColumnType],
        task: TaskInfo,
        seed: int = 0,
    ) -> None:
        self.spec = spec
        self.column_types = column_types
        self.task = task
        self.seed = seed

    def feature_columns(self) -> dict[str, ColumnType]:
        """The columns that become features, with their types, in input order.

        Raises :class:`ConfigError` when ``features.columns`` overrides the encoders of a
        column that is not a categorical feature.
        """
        ignored = {*self.spec.drop, self.task.target}
        columns = {c: t for c, t in self.column_types.items() if t in ROLES and c not in ignored}
        for name in self.spec.columns:
            if name in columns and ROLES[columns[name]] == "categorical":
                continue
            if name in columns:
                why = f"encoders apply to string/categorical columns, not {columns[name]!r}"
            elif name in self.spec.drop:
                why = "the column is listed in features.drop"
            elif name in self.column_types:
                why = "not a feature column (the target or an id)"
            else:
                why = "no such column"
            raise ConfigError(f"features.columns.{name}: {why}")
        return columns

    def fit(self, frame: Any, y: np.ndarray) -> FittedFeatures:
        """Fit every column's transform on the training rows ``frame`` with targets ``y``."""
        frame = to_polars(frame)
        columns = self.feature_columns()
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != frame.height:
            raise DataError(f"expected {frame.height} targets, got an array of shape {y.shape}")
        if frame.height == 0:
            raise DataError("cannot fit features on an empty frame")
        exprs, unusable = canonical_columns(frame.schema, columns)
        if unusable:
            raise DataError(
                f"training frame lacks (or cannot cast) feature column(s): {', '.join(unusable)}"
            )
        data = frame.select(exprs)
        targets: tuple[np.ndarray, np.ndarray, list[str]] | None = None
        blocks: list[Any] = []
        for name, ctype in columns.items():
            values = data.get_column(name)
            role = ROLES[ctype]
            if role == "numeric":
                blocks.append(
                    NumericBlock.fit(name, values, self.spec.numeric, boolean=ctype == "bool")
                )
            elif role == "datetime":
                blocks.append(
                    DatetimeBlock.fit(name, values, self.spec.datetime.parts, self.spec.numeric)
                )
            elif role == "text":
                blocks.append(TextBlock.fit(name, values, self.spec.text))
            else:
                override = self.spec.columns.get(name)
                cardinality = values.drop_nulls().n_unique()
                encoders = choose_encoders(
                    cardinality,
                    self.spec.categorical,
                    None if override is None else override.encoders,
                )
                if "target" in encoders and targets is None:
                    targets = te.target_matrix(y, self.task)
                blocks.append(
                    CategoricalBlock.fit(
                        name,
                        values,
                        encoders,
                        self.spec.categorical,
                        indicator=self.spec.numeric.missing_indicator,
                        targets=targets,
                    )
                )
        return FittedFeatures(blocks, columns)

    def fit_transform(
        self,
        frame: Any,
        y: np.ndarray,
        folds: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> tuple[FittedFeatures, Matrix]:
        """Fit, and return the training matrix with out-of-fold target encoding.

        ``folds`` are ``(train_rows, valid_rows)`` index pairs (the cross-validation folds
        used for tuning, so no fold's model sees encodings learned from its own rows);
        rows in no validation fold keep the in-sample encoding.
        """
        frame = to_polars(frame)
        fitted = self.fit(frame, y)
        if folds is None:
            folds = te.kfold(frame.height, OOF_FOLDS, self.seed) if frame.height >= 2 else []
        return fitted, fitted.training_matrix(
            frame, te.target_matrix(np.asarray(y), self.task), folds
        )
