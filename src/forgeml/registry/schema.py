"""The registry's tables, in one place (SQLAlchemy Core), and the schema version.

::

    forgeml_schema  (id=1, version)                       the schema version, for migrations
    models          (name PK, created_at, updated_at)     one row per model; the row lock
                                                          that serialises its writers
    model_versions  (id PK, model, version, run_id, created_at, artifact_dir, metrics, lineage)
                    UNIQUE (model, version)
    version_files   (version_id, path) PK, sha256, size   every artifact file of a version
    aliases         (model, alias) PK, version            where each alias points now
    alias_events    (id PK, model, alias, from_version, to_version, action, undoes, at)
                                                          every move, for rollback and audit
    runs            (run_id PK, name, status, started_at, ended_at, seed, config, ...)
    run_params      (run_id, key) PK, value (JSON)
    run_metrics     (run_id, key) PK, value (float; NaN stored as NULL on SQLite)
    experiments     (id PK, model, name, status, spec, started_at, concluded_at)
                    UNIQUE (model, name); at most one running per model     (since v2)

JSON documents are stored as text with Python's ``json`` (which round-trips NaN and
infinities exactly) so both backends hold the same bytes. Timestamps are stored in UTC and
come back timezone-aware. Constraint names follow a fixed convention so migrations can refer
to them.

Migrations are additive: opening a database of an older schema version creates the tables
it lacks (under the schema lock, in one write transaction) and records the new version;
from then on an older forgeml refuses it rather than ignore what it does not know.

>>> sorted(metadata.tables)[:3]
['alias_events', 'aliases', 'experiments']
>>> SCHEMA_VERSION
2
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from forgeml.errors import RegistryError
from forgeml.registry.database import Database
from forgeml.registry.location import no_registry

__all__ = [
    "SCHEMA_VERSION",
    "alias_events",
    "aliases",
    "check_schema_version",
    "create_schema",
    "ensure_schema",
    "experiments",
    "forgeml_schema",
    "metadata",
    "migrate_schema",
    "model_versions",
    "models",
    "read_schema_version",
    "run_metrics",
    "run_params",
    "runs",
    "version_files",
]

SCHEMA_VERSION = 2

NAME_LEN = 64
KEY_LEN = 250


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)  # a naive value is taken as local time, as Python does
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONText(sa.TypeDecorator[Any]):
    """A JSON document stored as text (portable, NaN-safe, exact round trip)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

forgeml_schema = sa.Table(
    "forgeml_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Where a database-URL registry keeps its artifacts, recorded on first use so that
    # everyone who opens the URL finds them without being told again.
    sa.Column("artifacts_root", sa.String(1024)),
    sa.CheckConstraint("id = 1", name="single_row"),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(NAME_LEN), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(NAME_LEN), primary_key=True),
    sa.Column("name", sa.String(NAME_LEN), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False, index=True),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("config", JSONText, nullable=False),
    sa.Column("data_fingerprint", JSONText, nullable=False),
    sa.Column("library_versions", JSONText, nullable=False),
    sa.Column("summary", JSONText, nullable=False),
    sa.Column("tags", JSONText, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(KEY_LEN), primary_key=True),
    sa.Column("value", JSONText, nullable=False),
)

run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(KEY_LEN), primary_key=True),
    sa.Column("value", sa.Float),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.ForeignKey("models.name"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("artifact_dir", sa.String(256), nullable=False),
    sa.Column("metrics", JSONText, nullable=False),
    sa.Column("lineage", JSONText, nullable=False),
    sa.UniqueConstraint("model", "version"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
)

version_files = sa.Table(
    "version_files",
    metadata,
    sa.Column(
        "version_id", sa.ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model", sa.String(NAME_LEN), primary_key=True),
    sa.Column("alias", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(
        ["model", "version"], ["model_versions.model", "model_versions.version"]
    ),
)

alias_events = sa.Table(
    "alias_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.ForeignKey("models.name"), nullable=False),
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("action", sa.String(16), nullable=False),
    # A rollback names the move it undoes, so repeated rollbacks walk further back.
    sa.Column("undoes", sa.ForeignKey("alias_events.id")),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index(None, "model", "alias", "id"),
)

# Since schema version 2. The spec column holds the whole Experiment record; model, name,
# status and the timestamps are copied out of it for queries and constraints.
experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.ForeignKey("models.name"), nullable=False),
    sa.Column("name", sa.String(NAME_LEN), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("spec", JSONText, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("concluded_at", UTCDateTime),
    sa.UniqueConstraint("model", "name"),
    # The database itself refuses a second running experiment of one model, whatever the
    # writers do (they also check first, under the model lock, to say which one runs).
    sa.Index(
        "uq_experiments_running_model",
        "model",
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    ),
)


def read_schema_version(conn: Connection) -> int | None:
    """The schema version recorded in the database, or None for an empty database."""
    if not sa.inspect(conn).has_table(forgeml_schema.name):
        return None
    return conn.execute(sa.select(forgeml_schema.c.version)).scalar_one_or_none()


def read_artifacts_root(conn: Connection) -> str | None:
    """The artifacts folder recorded for this registry, if any."""
    if not sa.inspect(conn).has_table(forgeml_schema.name):
        return None
    return conn.execute(sa.select(forgeml_schema.c.artifacts_root)).scalar_one_or_none()


def record_artifacts_root(conn: Connection, root: str) -> None:
    """Record ``root`` as the artifacts folder, unless one is recorded already."""
    conn.execute(
        forgeml_schema.update()
        .where(forgeml_schema.c.id == 1, forgeml_schema.c.artifacts_root.is_(None))
        .values(artifacts_root=root)
    )


def create_schema(conn: Connection) -> None:
    """Create every missing table and record :data:`SCHEMA_VERSION`.

    Idempotent. The caller holds the schema lock inside a write transaction, so concurrent
    first use creates the tables exactly once (DDL is transactional on both backends).
    """
    metadata.create_all(conn, checkfirst=True)
    if read_schema_version(conn) is None:
        conn.execute(
            forgeml_schema.insert().values(
                id=1, version=SCHEMA_VERSION, created_at=datetime.now(UTC)
            )
        )


def migrate_schema(conn: Connection) -> None:
    """Bring an older schema up to :data:`SCHEMA_VERSION`: create the tables it lacks (every
    migration so far is additive) and record the version. The caller holds the schema lock
    inside a write transaction; a database already migrated is left as it is."""
    version = read_schema_version(conn)
    if version is None or version >= SCHEMA_VERSION:
        return
    metadata.create_all(conn, checkfirst=True)
    conn.execute(
        forgeml_schema.update().where(forgeml_schema.c.id == 1).values(version=SCHEMA_VERSION)
    )


def ensure_schema(db: Database, display: str, *, create: bool) -> None:
    """Check the schema version, creating the schema first on an empty database when
    ``create`` (else :class:`ModelNotFound`: no registry there) and migrating an older one.
    A database written by a newer forgeml is refused rather than misread."""
    with db.read() as conn:
        version = read_schema_version(conn)
    if version is None:
        if not create:
            raise no_registry(display)
        with db.write() as conn:
            db.lock_schema(conn)
            create_schema(conn)
            version = read_schema_version(conn)
    elif version < SCHEMA_VERSION:
        try:
            with db.write() as conn:
                db.lock_schema(conn)
                migrate_schema(conn)
                version = read_schema_version(conn)
        except RegistryError as exc:
            raise type(exc)(
                f"the registry at {display} has schema version {version} and cannot be "
                f"upgraded to {SCHEMA_VERSION} ({exc})",
                hint="open it once with write access to upgrade it",
            ) from exc
    check_schema_version(version, display)


def check_schema_version(version: int | None, display: str) -> None:
    """Refuse a database written by a newer forgeml rather than misread it.

    >>> check_schema_version(SCHEMA_VERSION + 1, "reg")
    Traceback (most recent call last):
    ...
    forgeml.errors.RegistryError: the registry at reg has schema version 3, newer than this forgeml supports (2): upgrade forgeml
    """
    if version is not None and version > SCHEMA_VERSION:
        raise RegistryError(
            f"the registry at {display} has schema version {version}, newer than this "
            f"forgeml supports ({SCHEMA_VERSION}): upgrade forgeml"
        )
