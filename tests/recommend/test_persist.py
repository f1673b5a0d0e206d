"""Saving and loading recommenders: identical recommendations after a round trip, for every
model, and a clear DataError for every kind of missing, foreign or corrupt folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeml.errors import DataError, UsageError
from forgeml.recommend import (
    ALS,
    BPR,
    EASE,
    Hybrid,
    Interactions,
    ItemKNN,
    Popularity,
    Recommender,
    persist,
)

pytest.importorskip("implicit", reason="ALS/BPR need the 'rec' extra (implicit)")


def _models() -> dict[str, Recommender]:
    return {
        "popularity": Popularity(),
        "itemknn": ItemKNN(neighbours=5),
        "ease": EASE(lam=2.0),
        "ease_pruned": EASE(lam=2.0, min_item_users=2),
        "als": ALS(factors=4, iterations=3),
        "als_bm25": ALS(factors=4, iterations=3, weighting="bm25", bm25_k1=1.2, bm25_b=0.75),
        "als_tfidf": ALS(factors=4, iterations=3, weighting="tfidf"),
        "bpr": BPR(factors=4, iterations=5, threads=1),
        "hybrid": Hybrid(ALS(factors=3, iterations=2), alpha=0.6, multi_label=["tags"]),
    }


def _fit(model: Recommender, log: Interactions) -> Recommender:
    if isinstance(model, Hybrid):
        tags = [f"t{i % 3}|t{i % 5}" for i in range(log.n_items)]
        return model.fit(log, pl.DataFrame({"item_id": log.item_ids, "tags": tags}))
    return model.fit(log)


def _assert_same_behaviour(a: Recommender, b: Recommender, k: int) -> None:
    users = np.arange(a.n_users)
    for exclude_seen in (True, False):
        items_a, scores_a = a.recommend(users, k, exclude_seen=exclude_seen)
        items_b, scores_b = b.recommend(users, k, exclude_seen=exclude_seen)
        np.testing.assert_array_equal(items_a, items_b)
        np.testing.assert_array_equal(scores_a, scores_b)
    histories = [np.array([0]), np.arange(min(3, a.n_items))]
    for x, y in zip(
        a.recommend_history(histories, k), b.recommend_history(histories, k), strict=True
    ):
        np.testing.assert_array_equal(x, y)
    if hasattr(a, "similar_items"):
        items = np.arange(a.n_items)
        for x, y in zip(a.similar_items(items, k), b.similar_items(items, k), strict=True):
            np.testing.assert_array_equal(x, y)
    assert type(a) is type(b)
    for key, value in a.get_params().items():
        if not isinstance(value, Recommender):
            assert b.get_params()[key] == value, key


ids = st.one_of(
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=12, unique=True),
    st.lists(st.text(max_size=6), min_size=1, max_size=12, unique=True),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    user_ids=ids,
    item_ids=ids,
    data=st.data(),
    which=st.sampled_from(sorted(_models())),
)
def test_round_trip_gives_identical_recommendations(
    tmp_path_factory, user_ids, item_ids, data, which
):
    n = data.draw(st.integers(1, 40), label="events")
    users = data.draw(st.lists(st.sampled_from(user_ids), min_size=n, max_size=n), label="users")
    items = data.draw(st.lists(st.sampled_from(item_ids), min_size=n, max_size=n), label="items")
    log = Interactions.from_frame(pl.DataFrame({"user_id": users, "item_id": items}))
    model = _fit(_models()[which], log)
    folder = tmp_path_factory.mktemp("saved") / "model"
    files = persist.save(folder, model, user_ids=log.user_ids, item_ids=log.item_ids, meta={"n": n})
    assert files[-1] == "recommender.json"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    saved = persist.load(folder)
    assert saved.meta == {"n": n}
    assert saved.user_ids.dtype == log.user_ids.dtype
    assert saved.user_ids.tolist() == log.user_ids.tolist()
    assert saved.item_ids.tolist() == log.item_ids.tolist()
    _assert_same_behaviour(model, saved.model, k=data.draw(st.integers(1, 6), label="k"))


@pytest.mark.parametrize("which", sorted(_models()))
def test_round_trip_on_movielens(movielens, tmp_path, which):
    if which == "hybrid":
        model: Recommender = Hybrid(ItemKNN(neighbours=50), text=["title"])
        titles = pl.DataFrame(
            {"item_id": movielens.item_ids, "title": [f"movie {i}" for i in movielens.item_ids]}
        )
        model.fit(movielens, titles)
    else:
        model = {
            "als": ALS(factors=16, iterations=3),
            "als_bm25": ALS(factors=16, iterations=3, weighting="bm25"),
            "als_tfidf": ALS(factors=16, iterations=3, weighting="tfidf"),
            "bpr": BPR(factors=16, iterations=10),
            "ease_pruned": EASE(min_item_users=30),
        }.get(which, _models()[which])
        model.fit(movielens)
    persist.save(tmp_path / "m", model, user_ids=movielens.user_ids, item_ids=movielens.item_ids)
    loaded = persist.load(tmp_path / "m").model
    users = np.arange(movielens.n_users)
    for x, y in zip(model.recommend(users, 10), loaded.recommend(users, 10), strict=True):
        np.testing.assert_array_equal(x, y)
    # Fold-in (what the server does with new interactions) is the same after loading:
    # e.g. ALS weighs a history with the saved weighting and the saved items' statistics.
    histories = [model.seen_[u].indices[:-1] for u in users[:100]]
    for x, y in zip(
        model.recommend_history(histories, 10), loaded.recommend_history(histories, 10), strict=True
    ):
        np.testing.assert_array_equal(x, y)
    if hasattr(model, "similar_items"):
        some = np.arange(0, movielens.n_items, 7)
        for x, y in zip(model.similar_items(some, 10), loaded.similar_items(some, 10), strict=True):
            np.testing.assert_array_equal(x, y)


def test_an_ease_folder_saved_before_min_item_users_still_loads(movielens, tmp_path):
    # Earlier forgeml saved EASE's n_items x n_items similarity_ and no items_.
    model = EASE(lam=100.0).fit(movielens)
    assert len(model.items_) == movielens.n_items  # every item has a user here
    folder = tmp_path / "old"
    persist.save(folder, model, user_ids=movielens.user_ids, item_ids=movielens.item_ids)
    manifest = json.loads((folder / "recommender.json").read_text())
    del manifest["model"]["params"]["min_item_users"]
    del manifest["model"]["state"]["items_"]
    del manifest["files"]["items_.npy"]
    (folder / "items_.npy").unlink()
    (folder / "recommender.json").write_text(json.dumps(manifest))
    loaded = persist.load(folder).model
    np.testing.assert_array_equal(loaded.items_, np.arange(movielens.n_items))
    _assert_same_behaviour(model, loaded, k=10)


def test_ease_items_are_checked_on_load(tmp_path):
    log = Interactions.from_frame(
        pl.DataFrame({"user_id": [0, 0, 1, 1, 2], "item_id": [0, 1, 0, 1, 2]})
    )
    folder = tmp_path / "ease"
    persist.save(
        folder, EASE(min_item_users=2).fit(log), user_ids=log.user_ids, item_ids=log.item_ids
    )
    for bad in (np.array([1, 0]), np.array([0, 7]), np.array([0.0, 1.0])):
        _rewrite(folder, "items_.npy", lambda path, bad=bad: np.save(path, bad))
        with pytest.raises(DataError, match="items_ must be increasing item codes"):
            persist.load(folder)
    _rewrite(folder, "items_.npy", lambda path: np.save(path, np.array([0, 1, 2])))
    with pytest.raises(DataError, match=r"similarity_ has shape \(2, 2\), expected \(3, 3\)"):
        persist.load(folder)


def test_hybrid_shares_its_interaction_matrix_with_its_cf_model(tmp_path):
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1]}))
    model = _fit(_models()["hybrid"], log)
    files = persist.save(tmp_path / "h", model, user_ids=log.user_ids, item_ids=log.item_ids)
    assert [name for name in files if name.endswith("seen_.npz")] == ["cf.seen_.npz"]
    assert "cf.user_factors_.npy" in files
    loaded = persist.load(tmp_path / "h").model
    assert loaded.seen_ is loaded.cf.seen_


# ------------------------------------------------------------------------------ bad input


@pytest.fixture
def saved(tmp_path) -> Path:
    log = Interactions.from_frame(
        pl.DataFrame({"user_id": ["a", "a", "b", "c"], "item_id": [1, 2, 2, 3]})
    )
    folder = tmp_path / "model"
    persist.save(folder, ItemKNN().fit(log), user_ids=log.user_ids, item_ids=log.item_ids)
    return folder


def _rewrite(folder: Path, name: str, write) -> None:
    """Replace a file and record its new sha256, as a forger (not a disk error) would."""
    write(folder / name)
    manifest = json.loads((folder / "recommender.json").read_text())
    manifest["files"][name] = persist._sha256(folder / name)
    (folder / "recommender.json").write_text(json.dumps(manifest))


def _edit_manifest(folder: Path, edit) -> None:
    manifest = json.loads((folder / "recommender.json").read_text())
    edit(manifest)
    (folder / "recommender.json").write_text(json.dumps(manifest))


def test_missing_folder_or_manifest(tmp_path, saved):
    with pytest.raises(DataError, match="no such folder"):
        persist.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"recommender\.json is missing"):
        persist.load(tmp_path / "empty")
    (saved / "recommender.json").write_text("{not json")
    with pytest.raises(DataError, match=r"recommender\.json cannot be read as JSON"):
        persist.load(saved)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format="mlflow"), "not a forgeml recommender"),
        (lambda m: m.update(format_version=99), "format_version 99 is not supported"),
        (
            lambda m: m["model"].update({"class": "os.system"}),
            "unknown recommender class 'os.system'",
        ),
        (lambda m: m["model"].update({"class": "Recommender"}), "unknown recommender class"),
        (lambda m: m["model"]["params"].update(evil=1), "bad parameters for ItemKNN"),
        (lambda m: m["model"]["state"].pop("similarity_"), "state lists"),
        (lambda m: m["model"]["state"].update(similarity_="../../etc/passwd"), "does not list"),
        (lambda m: m["files"].update({"../x": "0"}), "not a plain file name"),
        (lambda m: m["files"].update({"ghost.npy": "0"}), "ghost.npy is missing"),
        (lambda m: m["user_ids"].update(length=7), "expected 7 ids"),
        (lambda m: m.update(meta=[1]), "'meta' must be an object"),
    ],
)
def test_foreign_or_edited_manifest_is_refused(saved, edit, message):
    _edit_manifest(saved, edit)
    with pytest.raises(DataError, match=message):
        persist.load(saved)


def test_a_changed_file_fails_its_sha256(saved):
    path = saved / "similarity_.npz"
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(DataError, match=r"similarity_\.npz: sha256 differs"):
        persist.load(saved)
    (saved / "seen_.npz").unlink()
    with pytest.raises(DataError, match=r"seen_\.npz is missing"):
        persist.load(saved)


def test_forged_arrays_are_checked_before_use(saved):
    # Out-of-range column indices, rewritten with a matching sha256.
    def bad_indices(path: Path) -> None:
        np.savez(
            path,
            shape=np.array([3, 3]),
            indptr=np.array([0, 1, 1, 1]),
            indices=np.array([9], np.int32),
        )

    _rewrite(saved, "seen_.npz", bad_indices)
    with pytest.raises(DataError, match=r"seen_\.npz: not a valid sparse matrix"):
        persist.load(saved)


def test_pickled_arrays_are_never_loaded(tmp_path):
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 1], "item_id": [0, 1]}))
    folder = tmp_path / "m"
    persist.save(folder, Popularity().fit(log), user_ids=log.user_ids, item_ids=log.item_ids)

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    _rewrite(folder, "counts_.npy", lambda p: np.save(p, np.array([Boom(), 1], dtype=object)))
    with pytest.raises(DataError, match=r"counts_\.npy: not a readable \.npy array"):
        persist.load(folder)


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("similarity_.npz", lambda p: p.write_bytes(b"PK not a zip"), "not a readable .npz"),
        (
            "similarity_.npz",
            lambda p: np.savez(p, shape=np.array([3, 3])),
            "expected",
        ),
        (
            "item_ids.npy",
            lambda p: np.save(p, np.arange(2)),
            "expected 3 ids",
        ),
        (
            "user_ids.npz",
            lambda p: np.savez(
                p,
                offsets=np.array([0, 5], np.int64),
                data=np.frombuffer(b"\xff\xfe\xfd\xfc\xfb", np.uint8),
            ),
            "not valid UTF-8",
        ),
        (
            "user_ids.npz",
            lambda p: np.savez(p, offsets=np.array([0, 9], np.int64), data=np.zeros(2, np.uint8)),
            "offsets/data disagree",
        ),
    ],
)
def test_corrupt_array_files_name_the_file(saved, name, write, message):
    _rewrite(saved, name, write)
    with pytest.raises(DataError, match=message) as info:
        persist.load(saved)
    assert name in str(info.value) or "ids" in str(info.value)


def test_inconsistent_shapes_are_refused(tmp_path):
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 1], "item_id": [0, 1]}))
    folder = tmp_path / "m"
    persist.save(
        folder, ALS(factors=2, iterations=1).fit(log), user_ids=log.user_ids, item_ids=log.item_ids
    )
    _rewrite(folder, "item_factors_.npy", lambda p: np.save(p, np.ones((5, 2), np.float32)))
    with pytest.raises(DataError, match=r"item_factors_ has shape \(5, 2\), expected \(2, 2\)"):
        persist.load(folder)
    _rewrite(folder, "item_factors_.npy", lambda p: np.save(p, np.full((2, 2), np.nan, np.float32)))
    with pytest.raises(DataError, match="finite"):
        persist.load(folder)


def test_save_refuses_what_it_cannot_write(tmp_path):
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 1], "item_id": [0, 1]}))
    with pytest.raises(UsageError, match="not fitted"):
        persist.save(tmp_path / "a", ItemKNN(), user_ids=log.user_ids, item_ids=log.item_ids)
    model = ItemKNN().fit(log)
    with pytest.raises(UsageError, match="user_ids has shape"):
        persist.save(tmp_path / "a", model, user_ids=np.arange(3), item_ids=log.item_ids)
    with pytest.raises(UsageError, match="meta must be JSON"):
        persist.save(
            tmp_path / "a",
            model,
            user_ids=log.user_ids,
            item_ids=log.item_ids,
            meta={"x": object()},
        )
    with pytest.raises(UsageError, match="meta must be a dict"):
        persist.save(tmp_path / "a", model, user_ids=log.user_ids, item_ids=log.item_ids, meta=[1])
    with pytest.raises(UsageError, match="only strings"):
        persist.save(
            tmp_path / "a", model, user_ids=np.array(["a", 1], dtype=object), item_ids=log.item_ids
        )

    class Custom(ItemKNN):
        pass

    with pytest.raises(UsageError, match="not a recommender forgeml can save"):
        persist.save(
            tmp_path / "a", Custom().fit(log), user_ids=log.user_ids, item_ids=log.item_ids
        )
    assert not (tmp_path / "a").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary folder left behind


def test_a_failed_save_leaves_no_folder_and_an_existing_save_is_replaced(tmp_path, monkeypatch):
    log = Interactions.from_frame(pl.DataFrame({"user_id": [0, 1, 1], "item_id": [0, 1, 2]}))
    calls = []
    real = persist._write_atomic

    def failing(folder, name, writer):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(folder, name, writer)

    monkeypatch.setattr(persist, "_write_atomic", failing)
    with pytest.raises(OSError, match="disk full"):
        persist.save(
            tmp_path / "m", ItemKNN().fit(log), user_ids=log.user_ids, item_ids=log.item_ids
        )
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(persist, "_write_atomic", real)

    folder = tmp_path / "m"
    persist.save(folder, ItemKNN().fit(log), user_ids=log.user_ids, item_ids=log.item_ids)
    (folder / "other.txt").write_text("kept")
    persist.save(folder, Popularity().fit(log), user_ids=log.user_ids, item_ids=log.item_ids)
    assert type(persist.load(folder).model) is Popularity
    assert (folder / "other.txt").read_text() == "kept"
    assert not (folder / "similarity_.npz").exists()  # the ItemKNN's file, no longer listed
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
