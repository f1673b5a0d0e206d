"""Batch scoring on Ray Data: Parquet files in, Parquet part files out.

:func:`score_parquet_on_ray` reads the files with ``ray.data.read_parquet``, applies a
scorer to every batch with ``map_batches`` (Ray tasks, at most ``workers`` at once) and
writes the scored batches with ``write_parquet`` into a folder, one ``part-NNNNN.parquet``
per write task, in input order. Ray is started or connected to exactly as the tuning
executor does (:class:`~forgeml.engine.ray_backend.RayExecutor`): the cluster in
``RAY_ADDRESS``, else a local Ray instance with ``workers`` CPUs that is shut down at the
end; a Ray the caller already initialised is used as it is.

The engine knows nothing about models: the caller passes a *scorer*, a picklable callable
``pyarrow.Table -> pyarrow.Table`` with a ``key`` attribute naming what it scores with
(for example a hash of the model's files). It is put into Ray's object store once; each
worker process fetches it on its first batch and keeps it, keyed by ``key``, so a model
the scorer loads lazily is loaded once per worker, not once per batch.

Map tasks, not actors: a pool of actors holding every CPU would leave none for the read and
write tasks (Ray Data then waits forever on a small local instance).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from forgeml._optional import require
from forgeml.engine.base import cpu_count
from forgeml.engine.ray_backend import RayExecutor
from forgeml.errors import DataError, ForgeError

__all__ = ["BatchScorer", "RayScoring", "score_parquet_on_ray"]

PART_PREFIX = "part-"
_WRITTEN = "ray-"  # how Ray's write tasks name their files, before they are numbered
_WRITTEN_ORDER = re.compile(r"^ray-(\d+)-.*?-(\d+)\.parquet$")
_FORGE_MARK = "forgeml-worker-error: "
_FORGE_NOTE = re.compile(re.escape(_FORGE_MARK) + r"(\{.*?\})\s*$", re.MULTILINE)
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.+)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BatchScorer(Protocol):
    """What :func:`score_parquet_on_ray` applies to each batch (picklable)."""

    key: str

    def __call__(self, table: Any) -> Any: ...


@dataclass(frozen=True)
class RayScoring:
    """The part files written (absolute paths, in input order) and the wall time."""

    parts: list[str]
    seconds: float
    workers: int | None
    address: str | None


# In each Ray worker process: the scorer last used, by key (one model kept per worker).
_WORKER_SCORERS: dict[str, Callable[[Any], Any]] = {}


def _score_batch(table: Any, *, key: str, payload: list[Any]) -> Any:
    """Runs in a Ray worker: the batch through the scorer (fetched once per process).

    ``payload`` holds the scorer's object reference inside a list so that Ray passes the
    reference itself instead of resolving it for every task."""
    scorer = _WORKER_SCORERS.get(key)
    if scorer is None:
        scorer = _ray().get(payload[0])
        _WORKER_SCORERS.clear()
        _WORKER_SCORERS[key] = scorer
    try:
        return scorer(table)
    except ForgeError as exc:
        # Ray Data hands the driver only the text of a task's exception chain: the error's
        # class and message travel as one marked JSON line, and _forge_cause rebuilds it.
        note = json.dumps({"type": type(exc).__name__, "message": str(exc)})
        raise RuntimeError(f"{_FORGE_MARK}{note}") from None


def _ray() -> Any:
    return require("ray", extra="ray", feature="batch scoring on Ray (--engine ray)")


def _filename_provider() -> Any:
    """A Ray Data filename provider naming each write task's files ``ray-<task>-<write
    id>-<i>.parquet`` (Ray wants the write's id in the name and adds ``-<i>``); they are
    renamed to gap-free ``part-00000.parquet``... once everything is written."""
    from ray.data.datasource import FilenameProvider

    class _Parts(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"{_WRITTEN}{task_index:06d}-{write_uuid}.parquet"

        def get_filename_for_block(
            self, block: Any, write_uuid: str, task_index: int, block_index: int
        ) -> str:  # Ray < 2.50 asks for this one
            return f"{_WRITTEN}{task_index:06d}-{block_index:06d}-{write_uuid}.parquet"

    return _Parts()


@contextlib.contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[Any]:
    """Ray Data's context for one run: input order kept, the classic Parquet reader, no
    progress bars or execution banners, Ray Data's console log and driver-side warnings kept off stderr (its full
    log stays in the Ray session folder); restored afterwards."""
    import logging

    # Ray Data logs progress, advice and the stack trace of a failed task on the console
    # as well as in its session log file; forgeml reports a failure itself, so the
    # console handlers are muted for the run (the file keeps everything).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ray Data's own advice (deprecations, tuning)
        context = ray.data.DataContext.get_current()  # imports ray.data: its logging is set
        consoles = [
            h
            for h in logging.getLogger("ray.data").handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        levels = [h.level for h in consoles]
        # use_datasource_v2 (Ray >= 2.5x): its Parquet reader lists and reads a set of
        # small files in one task, one block, so a single task scored everything; the
        # classic reader reads files in parallel tasks and splits them into blocks.
        saved = {
            name: getattr(context, name)
            for name in ("enable_progress_bars", "print_on_execution_start", "use_datasource_v2")
            if hasattr(context, name)
        }
        saved_order = context.execution_options.preserve_order
        try:
            for name in saved:
                setattr(context, name, False)
            context.execution_options.preserve_order = True
            for handler in consoles:
                handler.setLevel(logging.CRITICAL + 1)
            yield context
        finally:
            for name, value in saved.items():
                setattr(context, name, value)
            context.execution_options.preserve_order = saved_order
            for handler, level in zip(consoles, levels, strict=True):
                handler.setLevel(level)


def _forge_cause(exc: BaseException) -> ForgeError | None:
    """The :class:`ForgeError` behind ``exc``: raised in this process (found through
    Ray's wrappers), or raised by the scorer in a worker (rebuilt from the marked line
    :func:`_score_batch` put into the exception's text)."""
    from forgeml import errors

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    texts = []
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ForgeError):
            return current
        texts.append(str(current))
        todo.extend([getattr(current, "cause", None), current.__cause__, current.__context__])
    for text in texts:
        match = _FORGE_NOTE.search(_ANSI.sub("", text))
        if match is None:
            continue
        try:
            note = json.loads(match.group(1))
            cls = getattr(errors, str(note["type"]), None)
            message = str(note["message"])
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(cls, type) and issubclass(cls, ForgeError):
            try:
                return cls(message)
            except TypeError:  # an error class that needs more than a message
                pass
        return DataError(message)
    return None


def _reason(exc: BaseException) -> str:
    """What went wrong, in one line: the first exception named in the (remote) traceback
    text behind Ray's wrappers — the root cause, as Python prints chained exceptions —
    without terminal colour codes; else the innermost cause's class."""
    chain = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        inner = getattr(current, "cause", None) or current.__cause__
        current = inner if isinstance(inner, BaseException) else None
    for item in chain:
        for line in _ANSI.sub("", str(item)).splitlines():
            match = _EXCEPTION_LINE.match(line.strip())
            if match and not match.group(1).startswith("ray."):
                return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"[:500]
    return type(chain[-1]).__name__


def score_parquet_on_ray(
    paths: Sequence[str],
    out_dir: str | Path,
    scorer: BatchScorer,
    *,
    workers: int | None = None,
    address: str | None = None,
    batch_rows: int = 262_144,
    filesystem: Any = None,
    partition_base_dir: str | None = None,
    schema: Any = None,
    total_rows: int | None = None,
) -> RayScoring:
    """Score the Parquet files ``paths`` with ``scorer`` on Ray and write the results into
    the existing, empty folder ``out_dir``; returns the part files, in input order.

    ``workers`` caps the scoring tasks running at once (default: every CPU of the cluster;
    also the CPUs of the local Ray started when ``RAY_ADDRESS`` is unset); ``filesystem``
    is a ``pyarrow.fs.FileSystem`` for non-local paths; ``partition_base_dir`` turns
    ``key=value`` folders below it into columns (Hive partitioning), as forgeml's own
    Parquet reader does for a directory source; ``schema`` (Arrow), when the files'
    schemas differ, is the one schema every file is read in (columns cast to it, absent
    ones null) instead of Ray Data's inference, which refuses such files; ``total_rows``
    (when known, from the files' footers) caps the batch size so that every worker gets
    batches: Ray Data gives each map task at least ``batch_rows`` rows.

    ``out_dir`` must be a folder every Ray worker can write (any local folder with a local
    Ray; shared storage on a multi-node cluster). Nothing is cleaned up here on failure:
    the caller owns ``out_dir``. A :class:`ForgeError` raised by the scorer in a worker is
    raised again as it is; other failures become a :class:`DataError`.
    """
    started = time.monotonic()
    out = Path(out_dir)
    executor = RayExecutor(max(1, workers or cpu_count()), 1, address=address)
    try:
        ray = executor.ensure_ray()  # the executor's connect/start conventions, shared
        with _quiet_ray_data(ray):
            n_workers = executor.n_workers
            read_args: dict[str, Any] = {"file_extensions": None}
            if schema is not None:
                read_args["schema"] = schema
            if filesystem is not None:
                read_args["filesystem"] = filesystem
            if partition_base_dir:
                from ray.data.datasource.partitioning import Partitioning, PartitionStyle

                read_args["partitioning"] = Partitioning(
                    PartitionStyle.HIVE, base_dir=partition_base_dir
                )
            else:
                read_args["partitioning"] = None
            payload = [ray.put(scorer)]
            map_args: dict[str, Any] = {
                "fn_kwargs": {"key": scorer.key, "payload": payload},
                "batch_format": "pyarrow",
                "batch_size": _batch_size(batch_rows, total_rows, n_workers),
                "num_cpus": 1,
            }
            strategy = getattr(ray.data, "TaskPoolStrategy", None)
            if workers and strategy is not None:
                map_args["compute"] = strategy(size=workers)
            elif workers:
                map_args["concurrency"] = workers
            try:
                dataset = ray.data.read_parquet(list(paths), **read_args)
                dataset = dataset.map_batches(_score_batch, **map_args)
                dataset.write_parquet(str(out), filename_provider=_filename_provider())
            except ForgeError:
                raise
            except Exception as exc:
                cause = _forge_cause(exc)
                if cause is not None:
                    raise cause from exc
                raise DataError(f"batch scoring on Ray failed: {_reason(exc)}") from exc
        return RayScoring(
            parts=_number_parts(out),
            seconds=time.monotonic() - started,
            workers=workers,
            address=executor.address,
        )
    finally:
        executor.close()


def _batch_size(batch_rows: int, total_rows: int | None, n_workers: int) -> int:
    """Rows per scoring batch: ``batch_rows``, or less when there are too few rows for two
    batches per worker (a few batches would leave workers idle).

    >>> _batch_size(262_144, 200_000, 2), _batch_size(262_144, 10**7, 2), _batch_size(100, 0, 2)
    (50000, 262144, 1)
    """
    if total_rows is not None:
        batch_rows = min(batch_rows, -(-total_rows // (2 * n_workers)))
    return max(1, batch_rows)


def _number_parts(out: Path) -> list[str]:
    """Rename the written files to ``part-00000.parquet``... in write-task order."""
    written = []
    for path in out.iterdir():
        match = _WRITTEN_ORDER.match(path.name)
        if match:
            written.append(((int(match.group(1)), int(match.group(2))), path))
    parts = []
    for i, (_, path) in enumerate(sorted(written)):
        target = out / f"{PART_PREFIX}{i:05d}.parquet"
        path.replace(target)
        parts.append(str(target))
    return parts
