"""Feedback joins and live metrics: every feedback row is accounted for once, and the
NumPy metrics equal scikit-learn's (on real breast-cancer and diabetes predictions, and
for any labels hypothesis finds)."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from forgeml.errors import DataError, UsageError
from forgeml.monitoring.outcomes import (
    JoinedFeedback,
    join_feedback,
    json_values,
    live_metrics_over_time,
    outcome_metrics,
)
from forgeml.monitoring.windows import bucket_edges

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _sklearn_binary(y, pred, score, positive) -> dict[str, float]:
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, pos_label=positive, zero_division=0),
        "recall": skm.recall_score(y, pred, pos_label=positive, zero_division=0),
        "f1": skm.f1_score(y, pred, pos_label=positive, zero_division=0),
        "log_loss": skm.log_loss([v == positive for v in y], score, labels=[False, True]),
    }
    if len(set(y)) == 2:
        out["roc_auc"] = skm.roc_auc_score([v == positive for v in y], score)
    return out


def _assert_close(got: dict[str, float], expected: dict[str, float]) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["no", "yes"]),
            st.sampled_from(["no", "yes"]),
            st.floats(0, 1).map(lambda s: round(s, 1)),  # ties are common in real scores
        ),
        min_size=1,
        max_size=80,
    )
)
def test_binary_metrics_equal_sklearn(rows) -> None:
    y, pred, score = (list(c) for c in zip(*rows, strict=True))
    got = outcome_metrics("binary", y, pred, score, positive="yes")
    _assert_close(got, _sklearn_binary(y, pred, score, "yes"))


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.sampled_from([0, 1, 2, 3, "x"]), st.sampled_from([0, 1, 2, 5])),
        min_size=1,
        max_size=80,
    )
)
def test_multiclass_metrics_equal_sklearn(rows) -> None:
    y, pred = ([str(v) for v in c] for c in zip(*rows, strict=True))
    got = outcome_metrics("multiclass", y, pred, None)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "f1": skm.f1_score(y, pred, average="macro", zero_division=0),
    }
    _assert_close(got, expected)


@settings(max_examples=60)
@given(
    st.lists(
        # values at a micro-unit: a label spread of 1e-300 made sklearn's own R² overflow
        st.tuples(*[st.floats(-1e6, 1e6).map(lambda v: round(v, 6))] * 2),
        min_size=1,
        max_size=80,
    )
)
def test_regression_metrics_equal_sklearn(rows) -> None:
    y, pred = (list(c) for c in zip(*rows, strict=True))
    got = outcome_metrics("regression", y, pred, pred)
    expected = {
        "rmse": math.sqrt(skm.mean_squared_error(y, pred)),
        "mae": skm.mean_absolute_error(y, pred),
    }
    labels = np.asarray(y, dtype=np.float64)
    # R² needs labels that vary: equal labels whose mean rounds off are not spread.
    if len(set(y)) > 1 and np.sum((labels - labels.mean()) ** 2) > 0:
        expected["r2"] = skm.r2_score(y, pred)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-7, abs=1e-6), name


def test_metrics_of_a_real_classifier_equal_sklearn(breast_cancer: pl.DataFrame) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = breast_cancer.drop("diagnosis").to_numpy()
    y = breast_cancer["diagnosis"].to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500))
    model.fit(x[::2], y[::2])
    score = model.predict_proba(x[1::2])[:, 1]  # classes_ sorted: 'benign', 'malignant'
    pred = model.predict(x[1::2]).tolist()
    truth = y[1::2].tolist()
    got = outcome_metrics("binary", truth, pred, score.tolist(), positive="malignant")
    _assert_close(got, _sklearn_binary(truth, pred, score, "malignant"))
    assert 0.9 < got["roc_auc"] <= 1.0
    # The default positive class is the last label, sorted: the one scikit-learn picks.
    assert outcome_metrics("binary", truth, pred, score.tolist()) == got


def test_labels_are_compared_as_classes_and_missing_labels_are_left_out() -> None:
    got = outcome_metrics("binary", [1, 0, None, 1.0], ["1", 0.0, 1, 1], None, positive=1)
    assert got == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert outcome_metrics("binary", [None], [1], [0.3]) == {}
    assert outcome_metrics("multiclass", [], [], None) == {}
    # A score missing for some row: no score metrics rather than wrong ones.
    assert "roc_auc" not in outcome_metrics("binary", [0, 1], [0, 1], [0.1, None])


def test_bad_calls_are_clear_errors() -> None:
    with pytest.raises(UsageError, match="unknown outcome kind 'ranking'"):
        outcome_metrics("ranking", [1], [1], None)
    with pytest.raises(UsageError, match="differ in length"):
        outcome_metrics("binary", [1, 0], [1], None)
    with pytest.raises(DataError, match="must be numbers"):
        outcome_metrics("regression", ["tall"], [1.0], None)


def _predictions(n_requests: int, rows_per_request: int = 1) -> pl.DataFrame:
    records = []
    for r in range(n_requests):
        for row in range(rows_per_request):
            records.append(
                {
                    "request_id": f"req-{r}",
                    "row": row,
                    "ts": T0 + timedelta(minutes=r),
                    "prediction": json.dumps(r % 2),
                    "score": (r % 10) / 10,
                    "shadow": False,
                }
            )
    return pl.DataFrame(records).with_columns(
        pl.col("row").cast(pl.Int32), pl.col("ts").dt.cast_time_unit("us")
    )


def _feedback(items: list[tuple[str | None, int | None, int, object]]) -> pl.DataFrame:
    """(request_id, row, seconds after T0 + 1 day, label) per feedback row."""
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(days=1, seconds=s) for _, _, s, _ in items],
            "request_id": [r for r, _, _, _ in items],
            "row": [row for _, row, _, _ in items],
            "label": [json.dumps(label) for _, _, _, label in items],
        },
        schema={"ts": pl.Datetime("us", "UTC"), "request_id": pl.String, "row": pl.Int32,
                "label": pl.String},
    )  # fmt: skip


def test_feedback_is_joined_once_and_every_row_is_accounted_for() -> None:
    predictions = _predictions(5, rows_per_request=2)
    shadow = predictions.head(2).with_columns(pl.lit(True).alias("shadow"), score=pl.lit(0.99))
    feedback = _feedback(
        [
            ("req-0", 0, 20, 1),  # a later duplicate, listed first: the earlier one wins
            ("req-0", None, 10, 0),  # row missing: row 0
            ("req-0", 1, 11, 1),
            ("req-1", 1, 12, 0),
            ("req-1", 1, 13, 1),  # duplicate
            ("req-1", 1, 14, 1),  # duplicate
            ("req-9", 0, 15, 1),  # no such request
            ("req-2", 7, 16, 1),  # no such row
            (None, None, 17, 1),  # an experiment outcome
        ]
    )
    joined = join_feedback(pl.concat([shadow, predictions]), feedback)
    assert joined.counts() == {
        "received": 9,
        "joined": 3,
        "duplicates": 3,
        "unmatched": 2,
        "unkeyed": 1,
    }
    rows = joined.rows
    assert rows.select("request_id", "row", "label").rows() == [
        ("req-0", 0, "0"),
        ("req-0", 1, "1"),
        ("req-1", 1, "0"),
    ]
    assert set(rows.columns) == set(predictions.columns) | {"label", "label_ts"}
    assert rows["score"].to_list() == [0.0, 0.0, 0.1]  # the served rows, not the shadow's
    assert rows.schema["row"] == pl.Int32


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from([f"req-{i}" for i in range(8)])),
            st.one_of(st.none(), st.integers(0, 2)),
            st.integers(0, 10_000),
            st.sampled_from([0, 1]),
        ),
        max_size=40,
    ),
    st.randoms(use_true_random=False),
)
def test_joins_count_each_labelled_row_once_in_any_order(items, rnd) -> None:
    predictions = _predictions(5, rows_per_request=2)
    joined = join_feedback(predictions, _feedback(items))
    keys = {(r, row or 0) for r, row, _, _ in items if r is not None}
    known = {(f"req-{i}", row) for i in range(5) for row in (0, 1)}
    assert joined.received == len(items)
    assert joined.joined == len(keys & known)
    assert joined.unmatched == len(keys - known)
    assert joined.unkeyed == sum(r is None for r, _, _, _ in items)
    # Shuffling the feedback rows changes nothing when receipt times differ.
    if len({s for _, _, s, _ in items}) == len(items):
        shuffled = items[:]
        rnd.shuffle(shuffled)
        again = join_feedback(predictions, _feedback(shuffled))
        assert again.counts() == joined.counts()
        assert again.rows.equals(joined.rows)


def test_join_names_missing_columns() -> None:
    with pytest.raises(UsageError, match=r"feedback lack column.*label"):
        join_feedback(_predictions(1), _feedback([]).drop("label"))


def test_live_metrics_per_bucket_are_the_metrics_of_that_buckets_rows() -> None:
    predictions = _predictions(120)  # one a minute for two hours
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120).tolist()
    joined = join_feedback(
        predictions, _feedback([(f"req-{i}", 0, i, labels[i]) for i in range(0, 120, 2)])
    )
    edges = bucket_edges(T0, T0 + timedelta(hours=3), 3)
    live = live_metrics_over_time(joined, "binary", edges, positive=1)
    assert live.columns == ["bucket", "metric", "value", "rows"]
    assert live["bucket"].unique().sort().to_list() == edges[:2]  # the third has no labels
    for start, end in list(itertools.pairwise(edges))[:2]:
        part = joined.rows.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        expected = outcome_metrics(
            "binary",
            json_values(part["label"].to_list()),
            json_values(part["prediction"].to_list()),
            part["score"].to_list(),
            positive=1,
        )
        got = live.filter(pl.col("bucket") == start)
        assert dict(zip(got["metric"], got["value"], strict=True)) == expected
        assert set(got["rows"]) == {30}
    empty = JoinedFeedback(joined.rows.head(0), 0, 0, 0, 0)
    assert live_metrics_over_time(empty, "binary", edges).height == 0
