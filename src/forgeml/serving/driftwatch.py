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
from pathlib import Path
from typing import Any

__all__ = ["DriftWatch"]

logger = logging.getLogger("forgeml.server")


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
        # per model: (rows as JSON, raw output) of its latest requests (at most ``rows``)
        self._windows: dict[str, deque[tuple[tuple[bytes, ...], Any]]] = {}
        self._profiles: dict[tuple[str, int], Any] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, model: Any, inputs: tuple[bytes, ...], raw: Any) -> None:
        """Remember a request's rows (as the prediction log encoded them: JSON bytes) and
        raw output: one append of references (rows are decoded and scores unpacked only
        when a check runs, in a thread). Bytes rather than the request's dicts: thousands
        of live dicts made every garbage collection walk them."""
        window = self._windows.get(model.name)
        if window is None:
            window = self._windows[model.name] = deque(maxlen=self.rows)
        window.append((inputs, raw))

    def _rows(
        self, model: Any, requests: list[tuple[tuple[bytes, ...], Any]]
    ) -> list[tuple[dict[str, Any], float | None]]:
        """The latest ``rows`` rows of the requests with their scores (positive-class
        probability or value; None for multiclass)."""
        import orjson

        out: list[tuple[dict[str, Any], float | None]] = []
        for inputs, raw in reversed(requests):
            records = [orjson.loads(row) for row in inputs]
            if model.task.is_binary:
                scores: list[Any] = raw[:, 1].tolist()
            elif model.task.kind == "regression":
                scores = raw.tolist()
            else:
                scores = [None] * len(records)
            out.extend(zip(reversed(records), reversed(scores), strict=False))
            if len(out) >= self.rows:
                break
        return out[: self.rows]

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
        for model in list(self._models().values()):
            requests = list(self._windows.get(model.name, ()))  # a copy, taken on the loop
            if not requests:
                continue
            try:
                results = await asyncio.to_thread(self._score, model, requests)
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

    def _score(self, model: Any, requests: list[tuple[tuple[bytes, ...], Any]]) -> list[Any]:
        import polars as pl

        from forgeml.monitoring import PREDICTION_COLUMN, detect_drift

        profile = self._profile(model)
        if profile is None:
            return []
        rows = self._rows(model, requests)
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
