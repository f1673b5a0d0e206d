"""best_threshold: the threshold it returns scores as well as the best of all thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given
from hypothesis import strategies as st

from forgeml.errors import ConfigError, DataError
from forgeml.evaluation import best_threshold
from forgeml.evaluation.threshold import threshold_scores

SK = {"f1": skm.f1_score, "balanced_accuracy": skm.balanced_accuracy_score}


def _brute_force(y: np.ndarray, scores: np.ndarray, metric: str) -> float:
    """The best metric value over every candidate threshold, one sklearn call each."""
    return max(SK[metric](y, (scores >= t).astype(int)) for t in np.unique(scores))


@pytest.mark.parametrize("metric", ["f1", "balanced_accuracy"])
def test_maximises_the_metric_on_out_of_fold_predictions(binary_case, metric):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    c = binary_case
    oof = cross_val_predict(
        LogisticRegression(C=0.05, max_iter=500), c.X_train, c.y_train, cv=3, method="predict_proba"
    )[:, 1]
    t = best_threshold(c.y_train, oof, metric)
    achieved = SK[metric](c.y_train, (oof >= t).astype(int))
    assert achieved == pytest.approx(_brute_force(c.y_train, oof, metric))
    assert 0.0 <= t <= 1.0


@given(
    st.lists(
        st.tuples(
            st.integers(0, 1),
            st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]) | st.floats(0, 1),
        ),
        min_size=2,
        max_size=120,
    ).filter(lambda rows: len({label for label, _ in rows}) == 2),
    st.sampled_from(["f1", "balanced_accuracy"]),
)
def test_property_matches_brute_force(rows, metric):
    y = np.array([label for label, _ in rows])
    scores = np.array([s for _, s in rows])
    t = best_threshold(y, scores, metric)
    achieved = SK[metric](y, (scores >= t).astype(int))
    assert achieved == pytest.approx(_brute_force(y, scores, metric))


def test_scores_at_every_threshold_match_sklearn(binary_case):
    c = binary_case
    scores = np.round(c.pred[:, 1], 2)  # ties on purpose
    thresholds, values = threshold_scores(c.y, scores, "f1")
    assert np.all(np.diff(thresholds) < 0)
    expected = [skm.f1_score(c.y, (scores >= t).astype(int)) for t in thresholds]
    np.testing.assert_allclose(values, expected)


def test_returns_a_midpoint_between_scores():
    y = np.array([0, 0, 1, 1])
    assert best_threshold(y, np.array([0.1, 0.2, 0.6, 0.8])) == pytest.approx(0.4)


def test_errors():
    with pytest.raises(ConfigError, match="accuracy"):
        best_threshold(np.array([0, 1]), np.array([0.1, 0.9]), "accuracy")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="both classes"):
        best_threshold(np.array([1, 1]), np.array([0.1, 0.9]))
    with pytest.raises(DataError, match="NaN"):
        best_threshold(np.array([0, 1]), np.array([np.nan, 0.9]))
    with pytest.raises(DataError, match="same length"):
        best_threshold(np.array([0, 1, 1]), np.array([0.1, 0.9]))
