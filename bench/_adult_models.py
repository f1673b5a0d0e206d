"""The one LightGBM model on UCI Adult that the serving and batch-scoring benchmarks share.

forgeml trains and registers it (``adult`` version 1, alias ``champion``) with the
LightGBM candidate only; the peers get the same LightGBM — same training rows, the same
number of trees, learning rate and leaves as forgeml's fitted booster — as a user of those
tools would build it: a scikit-learn ``Pipeline`` (``OrdinalEncoder`` for the text columns,
``LGBMClassifier``). Both are built once per work folder and reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _common import dataset_path

ADULT = "adult_income.csv"
TARGET = "income >50K"
NAME = "adult"


def adult_frames(seed: int = 0) -> tuple[Any, Any]:
    """Adult as Polars frames: a stratified 80/20 train/test split (seed 0)."""
    import numpy as np
    import polars as pl
    from sklearn.model_selection import train_test_split

    path = dataset_path(ADULT)
    assert path is not None
    frame = pl.read_csv(path)
    index = np.arange(frame.height)
    train, test = train_test_split(
        index, test_size=0.2, random_state=seed, stratify=frame.get_column(TARGET).to_numpy()
    )
    return frame[np.sort(train)], frame[np.sort(test)]


def forgeml_registry(work: Path) -> Path:
    """A registry under ``work`` holding ``adult@champion`` (trained on first use)."""
    registry = work / "registry"
    if (work / "forgeml-trained.json").is_file():
        return registry
    import forgeml

    train, _ = adult_frames()
    spec = {
        "name": NAME,
        "task": "classification",
        "target": TARGET,
        "models": {"candidates": ["lightgbm"]},
        "tuning": {"budget": {"trials": 1}},
        "engine": {"workers": 1},
        "registry": {"uri": str(registry)},
        "seed": 0,
    }
    forgeml.run(spec, data=train)
    (work / "forgeml-trained.json").write_text(json.dumps({"model": f"{NAME}@champion"}))
    return registry


# forgeml's LightGBM parameter names -> LGBMClassifier's.
_SKLEARN_NAMES = {
    "learning_rate": "learning_rate",
    "num_leaves": "num_leaves",
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample_bytree",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "lambda_l1": "reg_alpha",
    "lambda_l2": "reg_lambda",
}


def booster_shape(registry: Path) -> dict[str, Any]:
    """forgeml's fitted LightGBM as ``LGBMClassifier`` arguments: its number of trees and
    its hyper-parameters."""
    from forgeml.workflow.api import load_model

    model = load_model(f"{NAME}@champion", registry=str(registry))
    booster = getattr(model.estimator, "booster", None)
    if booster is None:
        raise SystemExit("forgeml's champion is not a single LightGBM model")
    params = model.estimator.params
    shape = {theirs: params[ours] for ours, theirs in _SKLEARN_NAMES.items() if ours in params}
    return {"n_estimators": booster.num_trees(), **shape}


def peer_pipeline(shape: dict[str, Any]) -> Any:
    """The peers' model, fitted on the same training rows as forgeml's."""
    import pandas as pd
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    train, _ = adult_frames()
    X: pd.DataFrame = train.drop(TARGET).to_pandas()
    y = train.get_column(TARGET).to_numpy()
    text = [c for c in X.columns if X[c].dtype == object or str(X[c].dtype).startswith("str")]
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
    )
    pipeline = Pipeline(
        [
            ("encode", ColumnTransformer([("text", encoder, text)], remainder="passthrough")),
            ("lightgbm", LGBMClassifier(**shape, random_state=0, n_jobs=1, verbose=-1)),
        ]
    )
    return pipeline.fit(X, y)


def test_records(n: int) -> list[dict[str, Any]]:
    """``n`` raw rows of the test split, without the target, as JSON-ready dicts."""
    _, test = adult_frames()
    return test.drop(TARGET).head(n).to_dicts()
