"""Run rows: checking a :class:`RunRecord` before it is written, writing it, reading it back.

>>> from datetime import UTC, datetime
>>> check_run(RunRecord("r1", "churn", "done", datetime.now(UTC)))
Traceback (most recent call last):
...
forgeml.errors.UsageError: run 'r1': status 'done' is not one of running, finished, failed
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from forgeml.errors import UsageError
from forgeml.registry.records import RUN_STATUSES, RunRecord
from forgeml.registry.refs import check_model_name, check_run_id
from forgeml.registry.schema import KEY_LEN, run_metrics, run_params, runs

__all__ = ["check_metrics", "check_run", "insert_run", "load_runs", "run_exists"]

_DOCUMENTS = ("config", "data_fingerprint", "library_versions", "summary", "tags")


def _check_key(owner: str, kind: str, key: object) -> None:
    if not isinstance(key, str) or not key or len(key) > KEY_LEN:
        raise UsageError(
            f"{owner}: {kind} name {key!r} must be a non-empty string of at most {KEY_LEN} characters"
        )


def check_metrics(owner: str, metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` with every value as a float; raises :class:`UsageError` otherwise."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        _check_key(owner, "metric", key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{owner}: metric {key!r} must be a number, not {value!r}")
        out[key] = float(value)
    return out


def check_run(run: RunRecord) -> None:
    """Raise :class:`UsageError` naming the first field of ``run`` that cannot be stored."""
    check_run_id(run.run_id)
    owner = f"run {run.run_id!r}"
    check_model_name(run.name)
    if run.status not in RUN_STATUSES:
        raise UsageError(f"{owner}: status {run.status!r} is not one of {', '.join(RUN_STATUSES)}")
    for field in ("started_at", "ended_at"):
        value = getattr(run, field)
        if not isinstance(value, datetime) and not (field == "ended_at" and value is None):
            raise UsageError(f"{owner}: {field} must be a datetime, not {value!r}")
    if isinstance(run.seed, bool) or not isinstance(run.seed, int):
        raise UsageError(f"{owner}: seed must be an integer, not {run.seed!r}")
    for key, value in run.params.items():
        _check_key(owner, "param", key)
        if not isinstance(value, str | int | float | bool):
            raise UsageError(f"{owner}: param {key!r} must be a str, int, float or bool")
    check_metrics(owner, run.metrics)
    for key, value in run.tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError(f"{owner}: tags must map strings to strings ({key!r}: {value!r})")
    for field in _DOCUMENTS:
        value = getattr(run, field)
        if not isinstance(value, dict):
            raise UsageError(f"{owner}: {field} must be a dict, not {type(value).__name__}")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{owner}: {field} is not JSON-serialisable: {exc}") from exc


def insert_run(conn: Connection, run: RunRecord, *, at: datetime) -> None:
    """Insert the run row, its params and its metrics."""
    conn.execute(
        runs.insert().values(
            run_id=run.run_id,
            name=run.name,
            status=run.status,
            started_at=run.started_at,
            ended_at=run.ended_at,
            seed=run.seed,
            recorded_at=at,
            **{field: getattr(run, field) for field in _DOCUMENTS},
        )
    )
    if run.params:
        conn.execute(
            run_params.insert(),
            [{"run_id": run.run_id, "key": k, "value": v} for k, v in run.params.items()],
        )
    if run.metrics:
        conn.execute(
            run_metrics.insert(),
            [{"run_id": run.run_id, "key": k, "value": float(v)} for k, v in run.metrics.items()],
        )


def run_exists(conn: Connection, run_id: str) -> bool:
    """Whether a run with this id is recorded."""
    query = sa.select(runs.c.run_id).where(runs.c.run_id == run_id)
    return conn.execute(query).first() is not None


def load_runs(
    conn: Connection, *, run_id: str | None = None, name: str | None = None, limit: int = 50
) -> list[RunRecord]:
    """Runs, newest first, optionally only one id or one pipeline name."""
    query = sa.select(runs)
    if run_id is not None:
        query = query.where(runs.c.run_id == run_id)
    if name is not None:
        query = query.where(runs.c.name == name)
    query = query.order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit)
    rows = conn.execute(query).mappings().all()
    ids = [row["run_id"] for row in rows]
    params: dict[str, dict[str, Any]] = defaultdict(dict)
    metrics: dict[str, dict[str, float]] = defaultdict(dict)
    if ids:
        for rid, key, value in conn.execute(
            sa.select(run_params.c.run_id, run_params.c.key, run_params.c.value).where(
                run_params.c.run_id.in_(ids)
            )
        ):
            params[rid][key] = value
        for rid, key, value in conn.execute(
            sa.select(run_metrics.c.run_id, run_metrics.c.key, run_metrics.c.value).where(
                run_metrics.c.run_id.in_(ids)
            )
        ):
            # SQLite stores NaN as NULL; NULL is only ever written for NaN.
            metrics[rid][key] = math.nan if value is None else float(value)
    return [
        RunRecord(
            run_id=row["run_id"],
            name=row["name"],
            status=row["status"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            params=dict(sorted(params[row["run_id"]].items())),
            metrics=dict(sorted(metrics[row["run_id"]].items())),
            config=row["config"],
            seed=row["seed"],
            data_fingerprint=row["data_fingerprint"],
            library_versions=row["library_versions"],
            summary=row["summary"],
            tags=row["tags"],
        )
        for row in rows
    ]
