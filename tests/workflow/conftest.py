"""Fixtures for end-to-end tests: small real data files, specs, a CLI runner, and a
snapshot of a registry to prove that failures leave it untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import polars as pl
import pytest


@pytest.fixture(scope="session")
def flights_small(flights_sample: pl.DataFrame) -> pl.DataFrame:
    """3,000 real flights with the ``late`` target; columns known only after landing
    (which would leak the answer) removed."""
    return flights_sample.head(3_000).drop("arr_delay", "arr_time", "air_time")


@pytest.fixture
def flights_csv(tmp_path: Path, flights_small: pl.DataFrame) -> Path:
    path = tmp_path / "flights.csv"
    flights_small.write_csv(path)
    return path


def small_spec(source: str | None, registry: Path | str, **sections: Any) -> dict[str, Any]:
    """A spec that runs in seconds: two candidates, a trial budget, two folds, inline."""
    spec: dict[str, Any] = {
        "name": "flights",
        "task": "classification",
        "target": "late",
        "data": {"source": source} if source else {},
        "split": {"folds": 2},
        "models": {"candidates": ["lightgbm", "linear"]},
        "tuning": {"budget": {"trials": 3}},
        "engine": {"workers": 1},
        "registry": {"uri": str(registry)},
        "seed": 0,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def registry_state(folder: Path) -> dict[str, str]:
    """sha256 of every file of a registry (database and artifacts), runs/ excluded."""
    if not folder.exists():
        return {}
    state = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] == "runs" or not path.is_file():
            continue
        state[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state
