"""The model registry: runs, model versions, aliases and verified artifacts.

>>> import shutil, tempfile
>>> from datetime import UTC, datetime
>>> tmp = Path(tempfile.mkdtemp())
>>> src = tmp / "model"; src.mkdir(); _ = (src / "model.txt").write_text("weights")
>>> with Registry.open(tmp / ".forgeml") as reg:
...     run = RunRecord("run1", "churn", "finished", datetime.now(UTC), metrics={"auc": 0.9})
...     result = reg.commit_run(run, NewVersion("churn", src, aliases_if_absent=["champion"]))
...     champion = reg.resolve("churn@champion")
...     (champion.version, champion.aliases, reg.open_artifacts(champion).name)
(1, ['champion'], '1')
>>> shutil.rmtree(tmp)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from forgeml.errors import ModelNotFound, RegistryError, UsageError
from forgeml.experiments.spec import Experiment
from forgeml.registry import aliases as alias_ops
from forgeml.registry import experiments as experiment_ops
from forgeml.registry.artifacts import ArtifactStore, Installed, Staged
from forgeml.registry.database import Database
from forgeml.registry.location import Location, ensure_writable_dir, locate, no_registry
from forgeml.registry.records import (
    AliasChange,
    CommitResult,
    ModelDetail,
    ModelSummary,
    ModelVersion,
    NewVersion,
    RunRecord,
)
from forgeml.registry.refs import (
    check_alias,
    check_model_name,
    check_run_id,
    parse_ref,
)
from forgeml.registry.runs import check_metrics, check_run, insert_run, load_runs, run_exists
from forgeml.registry.schema import (
    ensure_schema,
    model_versions,
    models,
    read_artifacts_root,
    record_artifacts_root,
    version_files,
)
from forgeml.registry.versions import (
    insert_version,
    latest_version,
    load_versions,
    lock_model,
    no_such_model,
    no_such_version,
    touch_model,
)

__all__ = ["Registry"]

CHAMPION = "champion"


def _now() -> datetime:
    return datetime.now(UTC)


class Registry:
    """A metadata store (SQLite or PostgreSQL) plus a local artifacts root.

    Open one with :meth:`open`; close it (or use it as a context manager) to release its
    database connections. One instance may be shared by threads; processes open their own.
    """

    def __init__(self, location: Location, db: Database, artifacts: ArtifactStore) -> None:
        self._location = location
        self._db = db
        self._artifacts = artifacts

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        uri: str | PathLike[str] = ".forgeml",
        artifacts: str | PathLike[str] | None = None,
        *,
        create: bool = True,
    ) -> Registry:
        """Open the registry at ``uri``: a folder (``.forgeml``: SQLite ``registry.db`` plus
        ``artifacts/``) or a SQLAlchemy URL (``sqlite:///file.db``, ``postgresql://...``),
        with ``artifacts`` naming the artifacts folder (default ``./.forgeml/artifacts``).

        With ``create`` (the default) missing folders and tables are created; without it a
        location with no registry raises :class:`ModelNotFound`. A location that cannot be
        written raises :class:`RegistryNotWritable`; an unreachable database raises
        :class:`RegistryError` naming its host.

        >>> Registry.open("/dev/null/registry")
        Traceback (most recent call last):
        ...
        forgeml.errors.RegistryNotWritable: cannot create registry folder /dev/null/registry: Not a directory
        """
        location = locate(str(uri), None if artifacts is None else str(artifacts))
        if create and location.sqlite_file is not None:
            what = "registry folder" if location.folder else "registry database folder"
            ensure_writable_dir(location.sqlite_file.parent, what)
        elif location.sqlite_file is not None and not location.sqlite_file.is_file():
            raise no_registry(location.display)
        db = Database(location)
        try:
            with db.errors("opening the registry"):
                ensure_schema(db, location.display, create=create)
                location = _with_artifacts_root(
                    db, location, explicit=artifacts is not None, create=create
                )
            if create:
                ensure_writable_dir(location.artifacts, "registry artifacts folder")
        except BaseException:
            db.dispose()
            raise
        return cls(location, db, ArtifactStore(location.artifacts))

    def close(self) -> None:
        """Release the database connections (a later call opens new ones)."""
        self._db.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self._location.display!r}, artifacts={str(self.artifacts_root)!r})"

    @property
    def location(self) -> str:
        """Where the metadata lives: the folder, or the URL with its password hidden."""
        return self._location.display

    @property
    def artifacts_root(self) -> Path:
        """The artifacts folder."""
        return self._artifacts.root

    # -- runs and versions --------------------------------------------------------------

    def commit_run(self, run: RunRecord, model: NewVersion | None = None) -> CommitResult:
        """Record ``run`` and, when given, register ``model`` as its model's next version.

        Atomic: the artifacts are copied and hashed into a staging folder, moved into
        ``<name>/<version>`` and every row (run, params, metrics, version, files, aliases)
        is written in one transaction; on any failure the version folder is removed and the
        database is unchanged. Concurrent commits of one model get consecutive versions.
        """
        check_run(run)
        if model is not None:
            _check_new_version(model)
        staged = None if model is None else self._artifacts.stage(model.name, model.source_dir)
        ok = False
        try:
            version = self._commit(run, model, staged)
            ok = True
        finally:
            if staged is not None and model is not None:
                self._artifacts.discard(staged)
                if not ok:
                    self._artifacts.prune(model.name)
        return CommitResult(run.run_id, version)

    def _commit(
        self, run: RunRecord, model: NewVersion | None, staged: Staged | None
    ) -> ModelVersion | None:
        at = _now()
        installed: Installed | None = None
        version: ModelVersion | None = None
        with self._db.errors(f"recording run {run.run_id!r}"), self._db.connect_write() as conn:
            trans = conn.begin()
            try:
                if run_exists(conn, run.run_id):
                    raise RegistryError(f"run {run.run_id!r} is already recorded")
                insert_run(conn, run, at=at)
                if model is not None and staged is not None:
                    lock_model(conn, self._db, model.name, create=True, at=at)
                    number = latest_version(conn, model.name) + 1
                    installed = self._artifacts.install(staged, model.name, number)
                    # Stamped after the lock so created_at grows with the version number.
                    version = self._insert_version(conn, run, model, staged, number, _now())
            except BaseException:
                if installed is not None:
                    self._artifacts.uninstall(installed)  # still under the model lock
                with contextlib.suppress(Exception):
                    trans.rollback()
                raise
            try:
                trans.commit()
            except BaseException:
                if (
                    installed is not None
                    and version is not None
                    and not self._committed(version, run.run_id)
                ):
                    self._artifacts.uninstall(installed)
                raise
        return version

    def _insert_version(
        self,
        conn: Connection,
        run: RunRecord,
        model: NewVersion,
        staged: Staged,
        number: int,
        at: datetime,
    ) -> ModelVersion:
        name = model.name
        artifact_dir = self._artifacts.relative_dir(name, number)
        metrics = check_metrics(f"model {name!r}", model.metrics)
        insert_version(
            conn,
            name=name,
            version=number,
            run_id=run.run_id,
            at=at,
            artifact_dir=artifact_dir,
            metrics=metrics,
            lineage=model.lineage,
            files=staged.files,
        )
        for alias in model.aliases:
            alias_ops.move_alias(conn, name, alias, number, at=at)
        present = alias_ops.current_aliases(conn, name)
        for alias in model.aliases_if_absent:
            if alias not in present:
                alias_ops.move_alias(conn, name, alias, number, at=at)
                present[alias] = number
        touch_model(conn, name, at)
        return ModelVersion(
            name=name,
            version=number,
            run_id=run.run_id,
            created_at=at,
            artifact_dir=artifact_dir,
            files={f.path: f.sha256 for f in staged.files},
            metrics=metrics,
            lineage=model.lineage,
            aliases=sorted(a for a, v in present.items() if v == number),
        )

    def _committed(self, version: ModelVersion, run_id: str) -> bool:
        """After a failed COMMIT: did it land anyway? Unknown counts as yes, so the files
        of a version that may exist are never removed."""
        try:
            with self._db.read() as conn:
                row = conn.execute(
                    sa.select(model_versions.c.id).where(
                        (model_versions.c.model == version.name)
                        & (model_versions.c.version == version.version)
                        & (model_versions.c.run_id == run_id)
                    )
                ).first()
        except RegistryError:
            return True
        return row is not None

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; :class:`ModelNotFound` when there is none."""
        check_run_id(run_id)
        with self._db.read() as conn:
            found = load_runs(conn, run_id=run_id, limit=1)
        if not found:
            raise ModelNotFound(f"no run with id {run_id!r}")
        return found[0]

    def list_runs(self, name: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The ``limit`` most recent runs (of pipeline ``name`` when given), newest first."""
        if name is not None:
            check_model_name(name)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError(f"limit must be a positive integer, not {limit!r}")
        with self._db.read() as conn:
            return load_runs(conn, name=name, limit=limit)

    # -- models -------------------------------------------------------------------------

    def list_models(self) -> list[ModelSummary]:
        """One summary per model, sorted by name."""
        with self._db.read() as conn:
            stats = conn.execute(
                sa.select(
                    model_versions.c.model,
                    sa.func.max(model_versions.c.version),
                    sa.func.count(),
                ).group_by(model_versions.c.model)
            ).all()
            updated = dict(conn.execute(sa.select(models.c.name, models.c.updated_at)).all())
            by_model = alias_ops.all_aliases(conn)
        return sorted(
            (
                ModelSummary(
                    name=name,
                    latest_version=int(latest),
                    aliases=by_model.get(name, {}),
                    n_versions=int(count),
                    updated_at=updated[name],
                )
                for name, latest, count in stats
            ),
            key=lambda s: s.name,
        )

    def get_model(self, name: str) -> ModelDetail:
        """Every version (oldest first), the current aliases and the alias history."""
        check_model_name(name)
        with self._db.read() as conn:
            row = conn.execute(sa.select(models).where(models.c.name == name)).mappings().first()
            if row is None:
                raise no_such_model(conn, name)
            return ModelDetail(
                name=name,
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                versions=load_versions(conn, name),
                aliases=alias_ops.current_aliases(conn, name),
                alias_history=alias_ops.history(conn, name),
            )

    def resolve(self, ref: str) -> ModelVersion:
        """The version ``ref`` names: ``name@alias``, ``name@3``, or ``name`` (the
        ``champion``, else the latest version). Raises :class:`ModelNotFound` naming what is
        missing and what exists, :class:`UsageError` for a malformed reference."""
        parsed = parse_ref(ref)
        name = parsed.name
        with self._db.read() as conn:
            latest = latest_version(conn, name)
            if latest == 0:
                raise no_such_model(conn, name)
            present = alias_ops.current_aliases(conn, name)
            if parsed.version is not None:
                number = parsed.version
                if not 1 <= number <= latest:
                    raise no_such_version(name, number, latest)
            elif parsed.alias is not None:
                if parsed.alias not in present:
                    raise alias_ops.no_such_alias(conn, name, parsed.alias)
                number = present[parsed.alias]
            else:
                number = present.get(CHAMPION, latest)
            return load_versions(conn, name, [number])[0]

    # -- aliases ------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        """Point ``alias`` at ``version`` (promote) and record the move.

        Setting an alias to where it already points records nothing and returns a change
        with ``from_version == to_version``.
        """
        check_model_name(name)
        check_alias(alias)
        if isinstance(version, bool) or not isinstance(version, int):
            raise UsageError(f"version must be an integer, not {version!r}")
        at = _now()
        with self._db.write() as conn:
            if not lock_model(conn, self._db, name, create=False, at=at):
                raise no_such_model(conn, name)
            latest = latest_version(conn, name)
            if not 1 <= version <= latest:
                raise no_such_version(name, version, latest)
            change = alias_ops.move_alias(conn, name, alias, version, at=at)
            if change is None:
                return AliasChange(name, alias, version, version, at)
            touch_model(conn, name, at)
            return change

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from model ``name`` (recorded; :meth:`rollback` restores it)."""
        check_model_name(name)
        check_alias(alias)
        at = _now()
        with self._db.write() as conn:
            if not lock_model(conn, self._db, name, create=False, at=at):
                raise no_such_model(conn, name)
            if alias_ops.move_alias(conn, name, alias, None, at=at, action="delete") is None:
                raise alias_ops.no_such_alias(conn, name, alias)
            touch_model(conn, name, at)

    def rollback(self, name: str, alias: str = CHAMPION) -> AliasChange:
        """Move ``alias`` back to where it pointed before its most recent move.

        Each rollback undoes one more move (an undo stack per alias): with moves
        1 -> 2 -> 3, a first rollback goes to 2, a second to 1; a later ``set_alias`` is the
        next move a rollback undoes. Raises :class:`RegistryError` when nothing is left to
        undo (the move that created the alias cannot be undone).
        """
        check_model_name(name)
        check_alias(alias)
        at = _now()
        with self._db.write() as conn:
            if not lock_model(conn, self._db, name, create=False, at=at):
                raise no_such_model(conn, name)
            change = alias_ops.rollback_alias(conn, name, alias, at=at)
            touch_model(conn, name, at)
            return change

    # -- experiments --------------------------------------------------------------------

    def start_experiment(self, experiment: Experiment) -> Experiment:
        """Start ``experiment``: every variant resolved to the version it names now (kept
        for the experiment's life), its start recorded. Refuses a model that already runs
        an experiment (even when two start at once) and a name the model already used."""
        at = _now()
        with self._model_write(experiment.model, at) as conn:
            return experiment_ops.insert(conn, experiment, at=at)

    def running_experiments(self) -> list[Experiment]:
        """Every running experiment, oldest first (what servers route by)."""
        with self._db.read() as conn:
            return experiment_ops.load(conn, status="running")

    def running_experiment(self, model: str) -> Experiment | None:
        """The running experiment of ``model``, if any."""
        check_model_name(model)
        with self._db.read() as conn:
            return experiment_ops.running(conn, model)

    def get_experiment(self, model: str, name: str | None = None) -> Experiment:
        """Experiment ``name`` of ``model``, or its latest; :class:`ModelNotFound` if none."""
        check_model_name(model)
        with self._db.read() as conn:
            return experiment_ops.find(conn, model, name)

    def list_experiments(self, model: str | None = None) -> list[Experiment]:
        """Every experiment (of ``model`` when given), oldest first."""
        if model is not None:
            check_model_name(model)
        with self._db.read() as conn:
            return experiment_ops.load(conn, model=model)

    def set_experiment_weights(self, model: str, weights: dict[str, float]) -> Experiment:
        """New traffic weights for the running experiment's variants (summing to 1); units
        whose variant changes are left out of its analysis from then on."""
        at = _now()
        with self._model_write(model, at) as conn:
            return experiment_ops.set_weights(conn, model, weights, at=at)

    def save_experiment_state(self, model: str, name: str, state: dict[str, Any]) -> None:
        """Store the sequential test's state after a look at experiment ``name``."""
        with self._model_write(model, _now()) as conn:
            experiment_ops.save_state(conn, model, name, state)

    def conclude_experiment(
        self, model: str, *, promote: str | None = None, rollback: bool = False
    ) -> tuple[Experiment, AliasChange | None]:
        """End the running experiment: ``promote`` a variant (its alias moves to that
        variant's version in the same transaction, recorded like :meth:`set_alias`) or
        ``rollback`` (nothing moves; the control keeps serving)."""
        at = _now()
        with self._model_write(model, at) as conn:
            done, change = experiment_ops.conclude(
                conn, model, promote=promote, rollback=rollback, at=at
            )
            touch_model(conn, model, at)
            return done, change

    @contextlib.contextmanager
    def _model_write(self, name: str, at: datetime) -> Iterator[Connection]:
        """A write transaction holding the lock of existing model ``name``."""
        check_model_name(name)
        with self._db.write() as conn:
            if not lock_model(conn, self._db, name, create=False, at=at):
                raise no_such_model(conn, name)
            yield conn

    # -- artifacts ----------------------------------------------------------------------

    def open_artifacts(self, version: ModelVersion | str) -> Path:
        """The version's artifact folder, after checking every file against the sha256
        recorded at registration (the database's record, not ``version.files``).

        Raises :class:`ArtifactIntegrityError` naming the first missing, unexpected or
        changed file. Treat the folder as read-only.
        """
        target = self.resolve(version) if isinstance(version, str) else version
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(model_versions.c.id, model_versions.c.artifact_dir).where(
                    (model_versions.c.model == target.name)
                    & (model_versions.c.version == target.version)
                )
            ).first()
            if row is None:
                raise ModelNotFound(f"no model version {target.ref}")
            files = dict(
                conn.execute(
                    sa.select(version_files.c.path, version_files.c.sha256).where(
                        version_files.c.version_id == row.id
                    )
                ).all()
            )
        return self._artifacts.verify(target.ref, row.artifact_dir, files)


def _with_artifacts_root(
    db: Database, location: Location, *, explicit: bool, create: bool
) -> Location:
    """For a database-URL registry: use the artifacts folder the database records when
    none was given, and record the one in use (given, or the absolute default) when none
    is recorded yet. (The embedded folder layout keeps its artifacts next to its
    database.)"""
    if location.folder is not None:
        return location
    with db.read() as conn:
        stored = read_artifacts_root(conn)
    if stored is None and (explicit or create):
        with db.write() as conn:
            record_artifacts_root(conn, str(location.artifacts))
    elif stored is not None and not explicit:
        return dataclasses.replace(location, artifacts=Path(stored))
    return location


def _check_new_version(model: NewVersion) -> None:
    check_model_name(model.name)
    for alias in [*model.aliases, *model.aliases_if_absent]:
        check_alias(alias)
    check_metrics(f"model {model.name!r}", model.metrics)
    try:
        json.dumps(model.lineage)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"model {model.name!r}: lineage is not JSON-serialisable: {exc}") from exc
