"""Drift of live traffic, watched by the server itself over a sliding window.

Each served model with a training profile (``profile.json``) keeps its last ``rows``
logged input rows and scores. Every ``seconds`` the server compares that window with the
profile (:func:`forgeml.monitoring.detect_drift`, in a thread) and exports the result as
``forgeml_feature_drift_score{model,feature,method}`` — plus ``forgeml_feature_drifted``
(1 when a feature drifted: an effect size over its threshold *and* significant) — which
the shipped alert rules watch. The prediction itself is the feature ``__prediction__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DriftWatch"]

logger = logging.getLogger("forgeml.server")


class _Window:
    """A model's latest rows (JSON bytes) and the raw outputs of its latest requests.

    Two bounded deques rather than one tuple per request: appending allocates nothing
    the garbage collector tracks. Every request has at least one row, so ``rows`` raw
    outputs always cover the ``rows`` rows kept."""

    __slots__ = ("raws", "rows")

    def __init__(self, rows: int) -> None:
        self.rows: deque[bytes] = deque(maxlen=rows)
        self.raws: deque[Any] = deque(maxlen=rows)

    def extend(self, rows: list[bytes], raws: list[Any]) -> None:
        self.rows.extend(rows)
        self.raws.extend(raws)


class DriftWatch:
    """Recent rows per model, and the periodic check that scores them."""

    def __init__(
        self, metrics: Any, models: Any, *, seconds: float = 60.0, rows: int = 5_000
    ) -> None:
        self.metrics = metrics
        self._models = models  # () -> {name: the default ServedModel}
        self.seconds = seconds
        self.rows = rows
        self.checks = 0
        # per model: its latest rows as JSON (at most ``rows``) and the raw outputs of its
        # latest requests (one array per request, its rows in order)
        self._windows: dict[str, _Window] = {}
        self._profiles: dict[tuple[str, int], Any] = {}
        self._task: asyncio.Task[None] | None = None
        # called before each check: the prediction log hands over what it has queued
        self.refresh: Callable[[], None] | None = None

    def add_logged(self, queue: Any) -> None:
        """Take in a batch of logged requests (the prediction log's queued columns, as it
        takes them: ``models``, ``shadows``, ``counts``, ``rows`` as JSON bytes, ``raws``).
        Appends references only, in bulk; rows are decoded and scores unpacked when a
        check runs, in a thread. Shadow answers are not traffic the model served, and
        requests logged without their inputs (``--log-inputs`` below 1) are left out."""
        models, shadows, rows = queue.models, queue.shadows, queue.rows
        if models.count(models[0]) == len(models) and not any(shadows) and None not in rows:
            self._window(models[0]).extend(rows, queue.raws)  # the usual case
            return
        start = 0
        for model, shadow, n, raw in zip(models, shadows, queue.counts, queue.raws, strict=True):
            if not shadow and rows[start] is not None:  # a request's rows: all or none
                self._window(model).extend(rows[start : start + n], [raw])
            start += n

    def _window(self, model: str) -> _Window:
        window = self._windows.get(model)
        if window is None:
            window = self._windows[model] = _Window(self.rows)
        return window

    def _rows(
        self, model: Any, window: tuple[list[bytes], list[Any]]
    ) -> list[tuple[dict[str, Any], float | None]]:
        """The window's rows (at most ``rows``, latest last) with their scores (positive
        class probability or value; None for multiclass)."""
        import orjson

        rows, raws = window
        chunks: list[Any] = []  # the latest requests' outputs, until every row has one
        covered = 0
        for raw in reversed(raws):
            chunks.append(raw)
            covered += len(raw)
            if covered >= len(rows):
                break
        chunks.reverse()
        scores: list[Any]
        if model.task.is_binary:
            scores = np.concatenate([raw[:, 1] for raw in chunks]).tolist()
        elif model.task.kind == "regression":
            scores = np.concatenate(chunks).tolist()
        else:
            scores = [None] * covered
        scores = scores[max(0, covered - len(rows)) :]
        rows = rows[len(rows) - len(scores) :]
        return [(orjson.loads(row), score) for row, score in zip(rows, scores, strict=True)]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            await self.check()

    async def check(self) -> None:
        """Score every model's window now (a check that fails is skipped, not fatal)."""
        if self.refresh is not None:
            self.refresh()
        for model in list(self._models().values()):
            window = self._windows.get(model.name)
            if window is None or not window.rows:
                continue
            taken = (list(window.rows), list(window.raws))  # a copy, taken on the loop
            try:
                results = await asyncio.to_thread(self._score, model, taken)
            except Exception:  # odd traffic must never stop the server: log it, go on
                logger.warning("drift check of %s failed", model.name, exc_info=True)
                continue
            for drift in results:
                self.metrics.set_drift(model.name, drift.feature, drift.method, drift.score)
            self._flag(model.name, results)
        self.checks += 1

    def _flag(self, model: str, results: list[Any]) -> None:
        flags: dict[str, float] = {}
        for drift in results:
            flags[drift.feature] = max(flags.get(drift.feature, 0.0), float(drift.drifted))
        for feature, flag in flags.items():
            self.metrics.drifted[(model, feature)] = flag

    def _score(self, model: Any, window: tuple[list[bytes], list[Any]]) -> list[Any]:
        import polars as pl

        from forgeml.monitoring import PREDICTION_COLUMN, detect_drift

        profile = self._profile(model)
        if profile is None:
            return []
        rows = self._rows(model, window)
        columns: dict[str, Any] = {}
        for name in profile.columns:
            if name == PREDICTION_COLUMN:
                values = [s for _, s in rows]
            else:
                values = [r.get(name) for r, _ in rows]
            try:
                columns[name] = pl.Series(name, values, strict=False)
            except (TypeError, ValueError, pl.exceptions.PolarsError):
                columns[name] = pl.Series(name, [None if v is None else str(v) for v in values])
        return detect_drift(profile, pl.DataFrame(columns))

    def _profile(self, model: Any) -> Any:
        from forgeml.monitoring import PROFILE_FILE, Profile

        key = (model.name, model.version)
        if key not in self._profiles:
            path = Path(model.directory) / PROFILE_FILE if model.directory else None
            profile = None
            if path is not None and path.is_file():
                profile = Profile.from_dict(json.loads(path.read_text()))
            self._profiles[key] = profile
        return self._profiles[key]
