"""Alias moves and their history, inside a caller's write transaction.

Every move of an alias (set, delete, rollback) is one row in ``alias_events``, so the
current ``aliases`` table can always be rebuilt from the history. Rollback is an undo stack
per alias: it reverts the most recent move that has not been rolled back yet, and records
which move it undid; a second rollback therefore walks one step further back, and a move
made after a rollback is the next one a rollback reverts. A rollback never deletes an alias:
undoing the move that created it is refused.

The caller must hold the model's row lock (see :func:`forgeml.registry.versions.lock_model`)
so that moves of one model are serialised.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from forgeml.errors import ModelNotFound, RegistryError
from forgeml.registry.records import AliasAction, AliasChange
from forgeml.registry.schema import alias_events, aliases

__all__ = [
    "all_aliases",
    "current_aliases",
    "history",
    "move_alias",
    "no_such_alias",
    "rollback_alias",
]


def current_aliases(conn: Connection, name: str) -> dict[str, int]:
    """Where each alias of model ``name`` points now, sorted by alias."""
    rows = conn.execute(
        sa.select(aliases.c.alias, aliases.c.version)
        .where(aliases.c.model == name)
        .order_by(aliases.c.alias)
    )
    return {str(alias): int(version) for alias, version in rows}


def all_aliases(conn: Connection) -> dict[str, dict[str, int]]:
    """Where each alias of every model points now: ``{model: {alias: version}}``."""
    out: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        sa.select(aliases.c.model, aliases.c.alias, aliases.c.version).order_by(
            aliases.c.model, aliases.c.alias
        )
    )
    for model, alias, version in rows:
        out.setdefault(str(model), {})[str(alias)] = int(version)
    return out


def no_such_alias(conn: Connection, name: str, alias: str) -> ModelNotFound:
    """The error for an alias that model ``name`` does not have, listing those it has."""
    present = current_aliases(conn, name)
    hint = f"aliases: {', '.join(present)}" if present else "it has no aliases"
    return ModelNotFound(f"model {name!r} has no alias {alias!r}", hint=hint)


def move_alias(
    conn: Connection,
    name: str,
    alias: str,
    to_version: int | None,
    *,
    at: datetime,
    action: AliasAction = "set",
    undoes: int | None = None,
) -> AliasChange | None:
    """Point ``alias`` at ``to_version`` (None deletes it) and record the move.

    Returns None, recording nothing, when the alias already points there.
    """
    key = (aliases.c.model == name) & (aliases.c.alias == alias)
    from_version = conn.execute(sa.select(aliases.c.version).where(key)).scalar_one_or_none()
    if from_version == to_version:
        return None
    if to_version is None:
        conn.execute(aliases.delete().where(key))
    elif from_version is None:
        conn.execute(
            aliases.insert().values(model=name, alias=alias, version=to_version, updated_at=at)
        )
    else:
        conn.execute(aliases.update().where(key).values(version=to_version, updated_at=at))
    conn.execute(
        alias_events.insert().values(
            model=name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            action=action,
            undoes=undoes,
            at=at,
        )
    )
    return AliasChange(name, alias, from_version, to_version, at, action)


def rollback_alias(conn: Connection, name: str, alias: str, *, at: datetime) -> AliasChange:
    """Revert the most recent not-yet-reverted move of ``alias``.

    Raises :class:`RegistryError` when the alias has no move left to revert, or when that
    move created the alias (there is no earlier version to go back to).
    """
    rows = conn.execute(
        sa.select(
            alias_events.c.id,
            alias_events.c.from_version,
            alias_events.c.to_version,
            alias_events.c.action,
            alias_events.c.undoes,
        )
        .where((alias_events.c.model == name) & (alias_events.c.alias == alias))
        .order_by(alias_events.c.id)
    ).all()
    if not rows:
        raise no_such_alias(conn, name, alias)
    stack: list[tuple[int, int | None, int | None]] = []
    for event_id, from_version, to_version, action, undoes in rows:
        if action == "rollback":
            stack = [entry for entry in stack if entry[0] != undoes]
        else:
            stack.append((event_id, from_version, to_version))
    if not stack:
        raise RegistryError(
            f"model {name!r} alias {alias!r} has nothing left to roll back "
            "(every move was already rolled back)"
        )
    event_id, from_version, to_version = stack[-1]
    if from_version is None:
        raise RegistryError(
            f"model {name!r} alias {alias!r} has no earlier version to roll back to "
            f"(it was created pointing at version {to_version})"
        )
    change = move_alias(conn, name, alias, from_version, at=at, action="rollback", undoes=event_id)
    assert change is not None  # the stack top moved the alias away from from_version
    return change


def history(conn: Connection, name: str) -> list[AliasChange]:
    """Every move of every alias of model ``name``, oldest first."""
    rows = conn.execute(
        sa.select(
            alias_events.c.alias,
            alias_events.c.from_version,
            alias_events.c.to_version,
            alias_events.c.at,
            alias_events.c.action,
        )
        .where(alias_events.c.model == name)
        .order_by(alias_events.c.id)
    )
    return [AliasChange(name, alias, f, t, at, action) for alias, f, t, at, action in rows]
