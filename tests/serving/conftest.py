"""A trained model in a registry, and clients for the prediction server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from starlette.testclient import TestClient
from tests.workflow.conftest import small_spec

import forgeml
from forgeml.serving.app import build_app
from forgeml.serving.config import ServeConfig
from forgeml.serving.service import PredictionService

ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture(scope="session")
def flights_rows(flights_sample: pl.DataFrame) -> pl.DataFrame:
    """Real rows as a client sends them: raw columns, no target, leakage removed."""
    return flights_sample.drop("arr_delay", "arr_time", "air_time").tail(400).drop("late")


@pytest.fixture(scope="session")
def served_registry(tmp_path_factory: pytest.TempPathFactory, flights_sample: pl.DataFrame) -> Path:
    """A registry with ``flights`` v1 (champion) and v2 (challenger), and ``diabetes`` v1."""
    folder = tmp_path_factory.mktemp("served")
    data = flights_sample.head(3_000).drop("arr_delay", "arr_time", "air_time")
    registry = folder / "reg"
    forgeml.run(small_spec(None, registry, tuning={"budget": {"trials": 2}}), data=data)
    forgeml.run(small_spec(None, registry, tuning={"budget": {"trials": 1}}, seed=1), data=data)
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True)
    frame = pl.from_pandas(bunch.frame).rename({"target": "progression"})
    forgeml.run(
        {
            "name": "diabetes",
            "task": "regression",
            "target": "progression",
            "models": {"candidates": ["linear"]},
            "tuning": {"budget": {"trials": 1}},
            "engine": {"workers": 1},
            "registry": {"uri": str(registry)},
        },
        data=frame,
    )
    return registry


def make_client(
    registry: Path,
    models: list[str],
    *,
    env: dict[str, str] | None = None,
    access_stream: Any = None,
    **options: object,
) -> TestClient:
    options = {"access_log": access_stream is not None, **options}
    config = ServeConfig(models=models, registry=str(registry), **options)  # type: ignore[arg-type]
    service = PredictionService(config, env=env if env is not None else {})
    app = build_app(service, access_stream=access_stream)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(served_registry: Path) -> Iterator[TestClient]:
    with make_client(
        served_registry, ["flights@champion", "diabetes"], env={"FORGEML_ADMIN_KEY": ADMIN_KEY}
    ) as test_client:
        yield test_client
