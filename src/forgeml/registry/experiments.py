"""A/B experiments in the registry, inside a caller's transaction.

One row per experiment; the whole :class:`~forgeml.experiments.spec.Experiment` is its
``spec`` document. Every write (start, new weights, saved state, conclusion) runs under the
model's row lock (:func:`forgeml.registry.versions.lock_model`), so a check such as "no other
experiment of this model is running" and the write it guards happen as one step, on SQLite
and PostgreSQL alike; a partial unique index enforces the same rule in the database.

Concluding with a promotion moves the experiment's alias in the same transaction that marks
the experiment concluded, through :func:`forgeml.registry.aliases.move_alias`, so the move
is in the alias history and ``forgeml models rollback`` undoes it like any other.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from forgeml.errors import ModelNotFound, UsageError
from forgeml.experiments.spec import Experiment, variant_version
from forgeml.registry import aliases as alias_ops
from forgeml.registry.records import AliasChange
from forgeml.registry.refs import check_alias
from forgeml.registry.schema import experiments
from forgeml.registry.versions import latest_version, no_such_model, no_such_version

__all__ = [
    "conclude",
    "find",
    "insert",
    "load",
    "running",
    "save_state",
    "set_weights",
]

_CONCLUDE_HINT = "forgeml ab conclude MODEL --promote VARIANT, or --rollback"


def load(
    conn: Connection,
    *,
    model: str | None = None,
    name: str | None = None,
    status: str | None = None,
) -> list[Experiment]:
    """Experiments (of ``model``, named ``name``, with ``status``), oldest first."""
    query = sa.select(experiments.c.spec)
    if model is not None:
        query = query.where(experiments.c.model == model)
    if name is not None:
        query = query.where(experiments.c.name == name)
    if status is not None:
        query = query.where(experiments.c.status == status)
    rows = conn.execute(query.order_by(experiments.c.id)).scalars()
    return [Experiment.from_dict(spec) for spec in rows]


def running(conn: Connection, model: str) -> Experiment | None:
    """The running experiment of ``model``, if any."""
    found = load(conn, model=model, status="running")
    return found[-1] if found else None


def find(conn: Connection, model: str, name: str | None = None) -> Experiment:
    """Experiment ``name`` of ``model`` (the latest one when ``name`` is None); raises
    :class:`ModelNotFound` naming what exists."""
    found = load(conn, model=model)
    if not found:
        if latest_version(conn, model) == 0:
            raise no_such_model(conn, model)
        raise ModelNotFound(
            f"model {model!r} has no experiments",
            hint="start one with forgeml ab start",
        )
    if name is None:
        return found[-1]
    for experiment in found:
        if experiment.name == name:
            return experiment
    names = ", ".join(e.name for e in found[-10:])
    raise ModelNotFound(f"model {model!r} has no experiment {name!r}", hint=f"experiments: {names}")


def _running_or_fail(conn: Connection, model: str, doing: str) -> Experiment:
    current = running(conn, model)
    if current is None:
        latest = load(conn, model=model)
        hint = (
            f"its latest, {latest[-1].name!r}, is {latest[-1].status}"
            if latest
            else "start one with forgeml ab start"
        )
        raise _conflict(f"cannot {doing}: model {model!r} has no running experiment", hint=hint)
    return current


def _resolve(conn: Connection, model: str, variants: list[str]) -> dict[str, int]:
    """The version each variant names now: an alias's target, or the version itself."""
    latest = latest_version(conn, model)
    present = alias_ops.current_aliases(conn, model)
    versions: dict[str, int] = {}
    for variant in variants:
        number = variant_version(variant)
        if number is not None:
            if not 1 <= number <= latest:
                raise no_such_version(model, number, latest)
            versions[variant] = number
            continue
        check_alias(variant)
        if variant not in present:
            raise alias_ops.no_such_alias(conn, model, variant)
        versions[variant] = present[variant]
    return versions


def insert(conn: Connection, experiment: Experiment, *, at: datetime) -> Experiment:
    """Start ``experiment``: resolve its variants, refuse a second running experiment of the
    model or a name already used, and record it with its versions and start time. The
    caller holds the model's lock, and has checked that the model exists."""
    model = experiment.model
    check_alias(experiment.alias)
    if experiment.alias not in alias_ops.current_aliases(conn, model):
        raise alias_ops.no_such_alias(conn, model, experiment.alias)
    current = running(conn, model)
    if current is not None:
        raise _conflict(
            f"model {model!r} already has a running experiment, {current.name!r} "
            f"(started {_when(current.started_at)}): one at a time per model",
            hint=f"conclude it first: {_CONCLUDE_HINT}",
        )
    if load(conn, model=model, name=experiment.name):
        raise _conflict(
            f"model {model!r} already has an experiment named {experiment.name!r}",
            hint="choose another --name",
        )
    started = dataclasses.replace(
        experiment,
        versions=_resolve(conn, model, list(experiment.variants)),
        status="running",
        started_at=at,
        weights_since=at,
        concluded_at=None,
        conclusion=None,
        state={},
    )
    conn.execute(experiments.insert().values(**_row(started)))
    return started


def set_weights(
    conn: Connection, model: str, weights: dict[str, float], *, at: datetime
) -> Experiment:
    """New weights for the same variants of the running experiment (kept in the
    experiment's order, so the hash intervals move as little as the new weights allow)."""
    current = _running_or_fail(conn, model, "change weights")
    given, expected = set(weights), set(current.variants)
    if given != expected:
        missing = ", ".join(sorted(expected - given)) or "-"
        extra = ", ".join(sorted(given - expected)) or "-"
        raise UsageError(
            f"experiment {current.name!r}: new weights must name exactly its variants "
            f"({', '.join(current.variants)}); missing: {missing}; unknown: {extra}"
        )
    ordered = {name: weights[name] for name in current.variants}
    updated = dataclasses.replace(current, variants=ordered, weights_since=at)
    _update(conn, updated)
    return updated


def save_state(conn: Connection, model: str, name: str, state: dict[str, Any]) -> None:
    """Replace the sequential-test state of experiment ``name``."""
    current = find(conn, model, name)
    _update(conn, dataclasses.replace(current, state=state))


def conclude(
    conn: Connection, model: str, *, promote: str | None, rollback: bool, at: datetime
) -> tuple[Experiment, AliasChange | None]:
    """Mark the running experiment concluded and, with ``promote``, point its alias at
    that variant's recorded version — both in the caller's transaction, so a failure of
    either leaves both undone. Returns the alias move (None when nothing moved)."""
    if (promote is None) == (not rollback):
        raise UsageError("conclude with exactly one of --promote VARIANT or --rollback")
    current = _running_or_fail(conn, model, "conclude")
    conclusion: dict[str, Any] = {"action": "rollback", "alias": current.alias}
    version: int | None = None
    if promote is not None:
        if promote not in current.versions:
            raise UsageError(
                f"experiment {current.name!r} has no variant {promote!r}",
                hint=f"variants: {', '.join(current.variants)}",
            )
        version = current.versions[promote]
        conclusion = {**conclusion, "action": "promote", "variant": promote, "version": version}
    done = dataclasses.replace(current, status="concluded", concluded_at=at, conclusion=conclusion)
    _update(conn, done)  # first, so a failed alias move below proves the rollback of both
    change = None
    if version is not None:
        change = alias_ops.move_alias(conn, model, current.alias, version, at=at)
    return done, change


def _conflict(message: str, *, hint: str) -> UsageError:
    """A request that conflicts with the experiments' current state: exit code 2 like any
    usage error, HTTP 409 when the server relays it."""
    error = UsageError(message, hint=hint)
    error.http_status = 409
    return error


def _row(experiment: Experiment) -> dict[str, Any]:
    return {
        "model": experiment.model,
        "name": experiment.name,
        "status": experiment.status,
        "spec": experiment.to_dict(),
        "started_at": experiment.started_at,
        "concluded_at": experiment.concluded_at,
    }


def _update(conn: Connection, experiment: Experiment) -> None:
    key = (experiments.c.model == experiment.model) & (experiments.c.name == experiment.name)
    conn.execute(experiments.update().where(key).values(**_row(experiment)))


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.isoformat(timespec="seconds")
