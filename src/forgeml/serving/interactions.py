"""Where a served recommender keeps the interactions it received since it was trained.

``POST /v1/interactions`` adds them and the users' next recommendations fold them in
(:mod:`forgeml.serving.recommending`). By default each server worker keeps its own, in
memory (:class:`MemoryInteractions`, bounded). With ``forgeml serve --interactions
redis://host:6379/0`` they live in Redis (:class:`RedisInteractions`), shared by every
worker and every replica, so a user's new interactions count whichever worker answers
next, and they survive a restart.

Interactions are item *codes* of one catalogue: keys are named after a fingerprint of the
model's item ids, so a model with another catalogue never reads them, and a retrained
model with the same catalogue keeps them. In Redis each user is one set
``<prefix>:<catalogue>:<user>`` that expires ``ttl`` seconds after its latest
interaction (``?prefix=...&ttl=...`` in the URL; defaults ``forgeml:new`` and 7 days).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from forgeml.config.redact import hide_password
from forgeml.errors import ConfigError, RequestError

__all__ = [
    "MemoryInteractions",
    "NewInteractions",
    "RedisInteractions",
    "catalogue_fingerprint",
    "open_interactions",
]

DEFAULT_PREFIX = "forgeml:new"
DEFAULT_TTL = 7 * 24 * 3600


def catalogue_fingerprint(item_ids: np.ndarray) -> str:
    """A short digest of the item ids in code order: the same catalogue, the same codes."""
    digest = hashlib.sha256()
    for item in item_ids.tolist():
        digest.update(str(item).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class NewInteractions(ABC):
    """New item codes per user, since the model was trained."""

    location: str  # for messages and /v2/models/{name}: "memory" or the URL, no password

    @abstractmethod
    def add(self, items: dict[str, set[int]]) -> None:
        """Remember ``items`` (user -> new item codes)."""

    @abstractmethod
    def get(self, users: list[str]) -> dict[str, np.ndarray]:
        """The new item codes of each of ``users`` that has any (sorted, int64)."""

    @abstractmethod
    def users(self) -> int | None:
        """How many users have new interactions (None: not counted)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


class MemoryInteractions(NewInteractions):
    """This worker's own, at most ``max_users`` users (the least recently updated go)."""

    location = "memory"

    def __init__(self, max_users: int = 1_000_000) -> None:
        self.max_users = max_users
        self._new: OrderedDict[str, set[int]] = OrderedDict()

    def add(self, items: dict[str, set[int]]) -> None:
        for user, codes in items.items():
            known = self._new.get(user)
            if known is None:
                self._new[user] = set(codes)
                if len(self._new) > self.max_users:
                    self._new.popitem(last=False)
            else:
                self._new.move_to_end(user)
                known |= codes

    def get(self, users: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for user in users:
            codes = self._new.get(user)
            if codes:
                found[user] = np.sort(np.fromiter(codes, np.int64, len(codes)))
        return found

    def users(self) -> int | None:
        return len(self._new)

    def close(self) -> None:
        """Nothing to release."""


class RedisInteractions(NewInteractions):
    """Shared by every worker: one Redis set per user, expiring ``ttl`` seconds after the
    user's latest interaction."""

    def __init__(self, url: str, catalogue: str) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "--interactions redis://...: the redis package is not installed",
                hint="pip install 'forgeml[stream]'",
            ) from None
        client_url, self.prefix, self.ttl = _parse(url)
        self.location = hide_password(client_url)
        self.catalogue = catalogue
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            self._client = redis.Redis.from_url(
                client_url, socket_connect_timeout=5, socket_timeout=5
            )
            self._client.ping()
        except (ValueError, *self._errors) as exc:
            raise ConfigError(f"--interactions: cannot use {self.location}: {exc}") from None

    def _key(self, user: str) -> str:
        return f"{self.prefix}:{self.catalogue}:{user}"

    def add(self, items: dict[str, set[int]]) -> None:
        try:
            with self._client.pipeline(transaction=True) as pipe:  # all or nothing
                for user, codes in items.items():
                    key = self._key(user)
                    pipe.sadd(key, *sorted(codes))
                    pipe.expire(key, self.ttl)
                pipe.execute()
        except self._errors as exc:
            raise self._unavailable(exc) from None

    def get(self, users: list[str]) -> dict[str, np.ndarray]:
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for user in users:
                    pipe.smembers(self._key(user))
                answers: list[Any] = pipe.execute()
        except self._errors as exc:
            raise self._unavailable(exc) from None
        return {
            user: np.sort(np.fromiter((int(c) for c in codes), np.int64, len(codes)))
            for user, codes in zip(users, answers, strict=True)
            if codes
        }

    def users(self) -> int | None:
        return None  # counting keys would scan the whole Redis database

    def close(self) -> None:
        self._client.close()

    def _unavailable(self, exc: BaseException) -> RequestError:
        return RequestError(
            f"the interaction store {self.location} is unavailable: {exc}", status=503
        )


def open_interactions(
    location: str | None, item_ids: np.ndarray, *, max_users: int = 1_000_000
) -> NewInteractions:
    """The store ``--interactions`` names (``redis://`` or ``rediss://`` URL), or memory."""
    if location is None or location == "memory":
        return MemoryInteractions(max_users)
    if urlsplit(location).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"--interactions: expected memory or a redis:// URL, not {hide_password(location)}"
        )
    return RedisInteractions(location, catalogue_fingerprint(item_ids))


def _parse(url: str) -> tuple[str, str, int]:
    """The client URL without forgeml's own query parameters, the key prefix and the ttl."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in ("prefix", "ttl")}
    prefix = own.get("prefix", DEFAULT_PREFIX)
    try:
        ttl = int(own.get("ttl", DEFAULT_TTL))
    except ValueError:
        ttl = 0
    if ttl < 1 or not prefix:
        raise ConfigError(
            f"--interactions: ttl must be a whole number of seconds ≥ 1 and prefix non-empty "
            f"(got ttl={own.get('ttl')!r}, prefix={prefix!r})"
        )
    rest = urlencode([(k, v) for k, v in query if k not in own])
    return urlunsplit(parts._replace(query=rest)), prefix, ttl
