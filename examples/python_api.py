"""The forgeml flow from Python, on scikit-learn's bundled breast cancer data.

Run: ``.venv/bin/python examples/python_api.py`` (about half a minute on two cores).
It trains into a temporary registry, loads the champion as a scikit-learn estimator,
and scores rows the model has never seen.
"""

from __future__ import annotations

import tempfile

import numpy as np
import polars as pl
from sklearn.datasets import load_breast_cancer

import forgeml


def main() -> None:
    data = load_breast_cancer()
    columns = [name.replace(" ", "_") for name in data.feature_names]
    frame = pl.DataFrame(data.data, schema=columns, orient="row").with_columns(
        diagnosis=pl.Series(np.asarray(data.target_names)[data.target])
    )
    train, new = frame.head(500), frame.tail(69)
    with tempfile.TemporaryDirectory() as registry:
        spec = {
            "name": "cancer",
            "task": "classification",
            "target": "diagnosis",
            "positive_class": "malignant",
            "tuning": {"budget": {"trials": 8}},
            "registry": {"uri": registry},
        }
        result = forgeml.run(spec, data=train)
        print(f"registered {result.ref} — test ROC AUC {result.test_metrics['roc_auc']:.4f}")
        print(f"report: {result.report_path}")
        model = forgeml.load_model("cancer@champion", registry=registry)
        proba = model.predict_proba(new.drop("diagnosis"))[
            :, list(model.classes_).index("malignant")
        ]
        accuracy = float(
            np.mean(model.predict(new.drop("diagnosis")) == new["diagnosis"].to_numpy())
        )
        print(
            f"{len(new)} unseen rows: accuracy {accuracy:.3f}, mean P(malignant) {proba.mean():.3f}"
        )


if __name__ == "__main__":
    main()
