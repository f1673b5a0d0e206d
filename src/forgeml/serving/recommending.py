"""Serving a recommender: top-K for a user, similar items, and fast updates by fold-in.

A registered recommendation model is a folder written by :func:`forgeml.recommend.persist.save`
(``recommender.json`` and its arrays). :class:`ServedRecommender` loads it and answers the
three routes of ``forgeml serve``:

* ``recommend``: the top ``k`` items for a user, never their already-seen items (unless
  ``exclude_seen`` is false), with business filters (``exclude``: items never returned;
  ``allow``: only these items, e.g. one category). A user the model never saw and who has
  no interactions since the server started gets the popular items (``fallback:
  "popularity"``); an ANN index saved with a factor model is used when present. When the
  model was saved with a user-attribute fallback (``recommendation.user_features``), such
  a user described by ``"features": {"attribute": value, ...}`` gets the items popular
  among users with those attribute values instead (``fallback: "user_features"``);
  without a saved fallback, or when none of the values is known to it, ``features`` is
  ignored and the answer stays the popular items. Users with a history (trained or new
  interactions) are never answered from their features.
* ``similar``: the items most similar to one item (its factors, item-item similarity or,
  for the hybrid model's cold items, its content).
* ``add``: new interactions. Each user's new items are kept (in the worker's memory,
  bounded, or in Redis shared by all workers: :mod:`forgeml.serving.interactions`) and the
  user's next recommendations fold them in — ``recommend_history`` over the training
  history plus the new items — so they change at once, without retraining; a new user
  becomes known the same way. Interactions with items outside the model's catalogue are
  counted and reported, not applied (they take effect at the next training run).

Ids are matched as text: ``42`` and ``"42"`` name the same user or item. All model calls
run in one thread per model, off the event loop (an hnswlib index is not safe to query
from two threads at once). With several server workers and the default in-memory store
each worker keeps its own new interactions; ``--interactions redis://...`` shares them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from forgeml.errors import DataError, RequestError

__all__ = [
    "MANIFEST",
    "MAX_K",
    "Interaction",
    "ServedRecommender",
    "is_recommender_folder",
    "parse_id",
    "parse_interactions",
    "parse_k",
    "parse_recommend",
]

MANIFEST = "recommender.json"
MAX_K = 1_000  # items per answer; a larger k is a mistake, not a request
MAX_USERS = 1_000  # users per batch request
MAX_FILTER = 100_000  # ids in an exclude/allow list
MAX_FEATURES = 100  # attributes in a "features" object
T = TypeVar("T")


def is_recommender_folder(folder: str | Path) -> bool:
    return Path(folder, MANIFEST).is_file()


def parse_id(value: Any, field: str) -> str:
    """An id from JSON as text; refuses what cannot be an id."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RequestError(f"{field} must be a string or an integer id, got {value!r}", status=422)
    text = str(value)
    if not text or len(text) > 256:
        raise RequestError(f"{field} must be a non-empty id of at most 256 characters", status=422)
    return text


def parse_k(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"k must be an integer, got {value!r}", status=422)
    if not 1 <= value <= MAX_K:
        raise RequestError(f"k must be between 1 and {MAX_K}, got {value}", status=422)
    return value


def _flag(data: dict[str, Any], field: str, default: bool) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise RequestError(f"{field} must be true or false, got {value!r}", status=422)
    return value


def _ids(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise RequestError(f"{field} must be a list of item ids", status=422)
    if len(value) > MAX_FILTER:
        raise RequestError(f"{field} lists more than {MAX_FILTER:,} items", status=413)
    return [parse_id(v, f"{field}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class RecommendQuery:
    users: list[str]
    batch: bool  # "users": [...] was given (the answer is a list)
    k: int
    exclude_seen: bool
    exclude: list[str] | None
    allow: list[str] | None
    features: dict[str, Any] | None = None


def _features(value: Any) -> dict[str, Any] | None:
    """``{"attribute": scalar, ...}`` (at most :data:`MAX_FEATURES` keys): a new user's
    attributes for the user-attribute fallback."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError(
            f'"features" must be an object of attribute values, got {type(value).__name__}',
            status=422,
        )
    if len(value) > MAX_FEATURES:
        raise RequestError(
            f'"features" has {len(value)} attributes, more than {MAX_FEATURES}', status=413
        )
    for key, item in value.items():
        if len(key) > 256:
            raise RequestError("features: attribute names are at most 256 characters", status=422)
        if item is not None and not isinstance(item, str | int | float | bool):
            raise RequestError(
                f"features.{key} must be a string, number, boolean or null, got "
                f"{type(item).__name__}",
                status=422,
            )
        if isinstance(item, str) and len(item) > 1_000:
            raise RequestError(f"features.{key} is longer than 1,000 characters", status=422)
    return value


def parse_recommend(data: Any) -> RecommendQuery:
    """``{"user": id | "users": [ids], "k": 10, "exclude_seen": true, "exclude": [...],
    "allow": [...], "features": {...}}`` (``features`` only with ``user``)."""
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object", status=422)
    if ("user" in data) == ("users" in data):
        raise RequestError('give exactly one of "user" (an id) or "users" (a list)', status=422)
    if "users" in data:
        users = data["users"]
        if not isinstance(users, list) or not users:
            raise RequestError('"users" must be a non-empty list of ids', status=422)
        if len(users) > MAX_USERS:
            raise RequestError(f'"users" lists more than {MAX_USERS:,} users', status=413)
        ids = [parse_id(u, f"users[{i}]") for i, u in enumerate(users)]
    else:
        ids = [parse_id(data["user"], "user")]
    features = _features(data.get("features"))
    if features is not None and "users" in data:
        raise RequestError(
            '"features" describes one new user: send it with "user", not "users"', status=422
        )
    return RecommendQuery(
        users=ids,
        batch="users" in data,
        k=parse_k(data.get("k", 10)),
        exclude_seen=_flag(data, "exclude_seen", True),
        exclude=_ids(data.get("exclude"), "exclude"),
        allow=_ids(data.get("allow"), "allow"),
        features=features,
    )


@dataclass(frozen=True)
class Interaction:
    user: str
    item: str


def parse_interactions(data: Any) -> list[Interaction]:
    """``{"user": id, "item": id, "weight": 1}`` or ``{"interactions": [...]}`` (at most
    10,000). A weight, when given, must be a positive number: models learn from which
    items a user interacted with, so a zero or negative weight is refused rather than
    silently treated as an interaction."""
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object", status=422)
    items = data.get("interactions", [data])
    if not isinstance(items, list) or not items:
        raise RequestError('"interactions" must be a non-empty list', status=422)
    if len(items) > 10_000:
        raise RequestError('"interactions" lists more than 10,000 events', status=413)
    out: list[Interaction] = []
    for i, item in enumerate(items):
        where = f"interactions[{i}]." if "interactions" in data else ""
        if not isinstance(item, dict) or "user" not in item or "item" not in item:
            raise RequestError(f'{where or "the body "}needs "user" and "item"', status=422)
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise RequestError(
                f"{where}weight must be a positive number, got {weight!r}", status=422
            )
        out.append(
            Interaction(
                parse_id(item["user"], f"{where}user"), parse_id(item["item"], f"{where}item")
            )
        )
    return out


def _limit_blas(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads, user_api="blas")


class ServedRecommender:
    """A loaded recommender with its id maps and the interactions seen since loading."""

    def __init__(
        self,
        folder: str | Path,
        *,
        max_new_users: int = 1_000_000,
        threads: int = 1,
        interactions: str | None = None,
    ) -> None:
        from forgeml.recommend.persist import load
        from forgeml.serving.interactions import open_interactions

        saved = load(folder)
        self.model = saved.model
        self.meta = dict(saved.meta)
        self.index = getattr(saved.model, "index_", None)  # an ANN index, if one was saved
        self.user_features = saved.user_features  # the user-attribute fallback, if saved
        self.item_ids = np.asarray(saved.item_ids).astype(str)
        self.user_ids = np.asarray(saved.user_ids).astype(str)
        self._items = {item: code for code, item in enumerate(self.item_ids.tolist())}
        self._users = {user: code for code, user in enumerate(self.user_ids.tolist())}
        if len(self._items) != len(self.item_ids) or len(self._users) != len(self.user_ids):
            raise DataError(f"{folder}: ids that differ only in type (1 and '1') are ambiguous")
        self.interactions = open_interactions(
            interactions, self.item_ids, max_users=max_new_users
        )  # user -> new item codes
        self.unknown_items = 0  # interactions with items outside the catalogue
        # BLAS threads of the model thread (factors @ items): OpenBLAS's pool spinning
        # beside the event loop doubled exact top-k latency on a busy machine. Set in the
        # thread itself (OpenBLAS may keep the setting per thread).
        self._pool = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="forgeml-recommend",
            initializer=_limit_blas,
            initargs=(threads,),
        )
        self.similar_supported = hasattr(self.model, "similar_items")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "recommender",
            "model": type(self.model).__name__,
            "users": len(self.user_ids),
            "items": self.n_items,
            "ann_index": self.index is not None,
            "user_features": (
                list(self.user_features.attributes_) if self.user_features is not None else None
            ),
            "new_users": self.interactions.users(),
            "interactions": self.interactions.location,
        }

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in this model's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """Stop the model thread once the calls already queued have run (the interaction
        store's connections close after them, in that thread)."""
        self._pool.submit(self.interactions.close)
        self._pool.shutdown(wait=False)

    # --- answers (run in the model thread) ---------------------------------------------
    def _codes(self, ids: list[str] | None) -> np.ndarray | None:
        """Item codes of ``ids``; ids outside the catalogue are ignored (a filter of an
        unknown item excludes or allows nothing)."""
        if ids is None:
            return None
        return np.fromiter((self._items[i] for i in ids if i in self._items), np.int64)

    def recommend(self, query: RecommendQuery) -> list[dict[str, Any]]:
        exclude, allow = self._codes(query.exclude), self._codes(query.allow)
        filters: dict[str, Any] = {
            "exclude_seen": query.exclude_seen,
            "exclude": exclude,
            "allow": allow,
        }
        if allow is not None and allow.size == 0:  # allow only unknown items: nothing
            return [self._answer(u, np.empty(0, np.int64), np.empty(0), None) for u in query.users]
        ranker: Any = self.index if self.index is not None else self.model
        new = self.interactions.get(query.users)
        known = [u for u in query.users if u in self._users and u not in new]
        folded = [u for u in query.users if u not in known]
        results: dict[str, tuple[np.ndarray, np.ndarray, str | None]] = {}
        if known:
            codes = np.fromiter((self._users[u] for u in known), np.int64)
            items, scores = ranker.recommend(codes, query.k, **filters)
            for i, user in enumerate(known):
                results[user] = (items[i], scores[i], None)
        if folded:
            histories = [self._history(u, new.get(u)) for u in folded]
            items, scores = ranker.recommend_history(histories, query.k, **filters)
            for i, user in enumerate(folded):
                fallback = "popularity" if histories[i].size == 0 else None
                results[user] = (items[i], scores[i], fallback)
            cold = [u for u, h in zip(folded, histories, strict=True) if h.size == 0]
            if cold and query.features is not None and self.user_features is not None:
                top, values, used = self.user_features.recommend_features(
                    [query.features], query.k, exclude=exclude, allow=allow
                )
                if used[0]:  # some value is known: the segments' answer
                    for user in cold:
                        results[user] = (top[0], values[0], "user_features")
        return [self._answer(u, *results[u]) for u in query.users]

    def _history(self, user: str, new: np.ndarray | None) -> np.ndarray:
        code = self._users.get(user)
        trained = self.model.seen_[code].indices if code is not None else np.empty(0, np.int64)
        if new is None:
            return np.asarray(trained, np.int64)
        return np.union1d(trained, new)

    def _answer(
        self, user: str, items: np.ndarray, scores: np.ndarray, fallback: str | None
    ) -> dict[str, Any]:
        keep = items >= 0  # -1 pads when filters leave fewer than k items
        return {
            "user": user,
            "items": [
                {"item": item, "score": float(score)}
                for item, score in zip(
                    self.item_ids[items[keep]].tolist(), scores[keep].tolist(), strict=True
                )
            ],
            "fallback": fallback,
        }

    def similar(self, item: str, k: int) -> dict[str, Any]:
        if not self.similar_supported:
            raise RequestError(
                f"this model ({type(self.model).__name__}) has no item similarity", status=400
            )
        code = self._items.get(item)
        if code is None:
            raise RequestError(
                f"item '{item}' is not in the model's catalogue ({self.n_items:,} items)",
                status=404,
            )
        items, scores = self.model.similar_items([code], k)  # type: ignore[attr-defined]
        keep = items[0] >= 0
        return {
            "item": item,
            "items": [
                {"item": i, "score": float(s)}
                for i, s in zip(
                    self.item_ids[items[0][keep]].tolist(), scores[0][keep].tolist(), strict=True
                )
            ],
        }

    def add(self, events: list[Interaction]) -> dict[str, Any]:
        """Remember new interactions; the users' next recommendations include them."""
        applied, unknown = 0, []
        by_user: dict[str, set[int]] = {}
        for event in events:
            code = self._items.get(event.item)
            if code is None:
                unknown.append(event.item)
                continue
            by_user.setdefault(event.user, set()).add(code)
            applied += 1
        if by_user:
            self.interactions.add(by_user)
        self.unknown_items += len(unknown)
        return {
            "applied": applied,
            "users": len(by_user),
            "unknown_items": sorted(set(unknown))[:100],
            "n_unknown_items": len(unknown),
        }
