"""Mirror forgeml runs to MLflow when the user already tracks there.

Only when ``MLFLOW_TRACKING_URI`` is set (the variable MLflow users already export): the run
is logged with its params, metrics and tags, the run record's documents (``forgeml/*.json``)
and the files of the run's report folder. Without the variable nothing is imported.
An MLflow experiment named ``MLFLOW_EXPERIMENT_NAME`` (default: the run's pipeline name) is
created when missing. Mirroring twice is harmless: the MLflow run is found again by its
``forgeml.run_id`` tag.

>>> from datetime import UTC, datetime
>>> from unittest import mock
>>> with mock.patch.dict(os.environ) as env:
...     _ = env.pop(TRACKING_URI_ENV, None)
...     mirror_run(RunRecord("r1", "churn", "finished", datetime.now(UTC))) is None
True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from forgeml._optional import require
from forgeml.errors import RegistryError, UsageError
from forgeml.registry.location import hide_password
from forgeml.registry.records import RunRecord
from forgeml.registry.refs import check_run_id

__all__ = ["TRACKING_URI_ENV", "mirror_run"]

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
RUN_ID_TAG = "forgeml.run_id"
_STATUS = {"finished": "FINISHED", "failed": "FAILED", "running": "RUNNING"}
_BATCH = 100  # MLflow accepts at most 100 params or tags per log_batch call
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def mirror_run(
    run: RunRecord, artifacts_dir: Path | None = None, *, tracking_uri: str | None = None
) -> str | None:
    """Log ``run`` to MLflow and return the MLflow run id; None when MLflow is not in use.

    ``tracking_uri`` defaults to ``$MLFLOW_TRACKING_URI``. ``artifacts_dir`` (the run's
    report and summary files) is uploaded as the MLflow run's artifacts. MLflow errors are
    re-raised as :class:`RegistryError`; a missing ``mlflow`` package as
    :class:`MissingExtraError` naming the ``mlflow`` extra.
    """
    uri = tracking_uri or os.environ.get(TRACKING_URI_ENV)
    if not uri:
        return None
    check_run_id(run.run_id)
    if artifacts_dir is not None and not Path(artifacts_dir).is_dir():
        raise UsageError(f"run {run.run_id!r}: artifacts folder {artifacts_dir} does not exist")
    require(
        "mlflow", extra="mlflow", feature=f"mirroring runs to MLflow ({TRACKING_URI_ENV} is set)"
    )
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, os.environ.get(EXPERIMENT_ENV) or run.name)
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run.run_id}'", max_results=1
        )
        if found:
            return str(found[0].info.run_id)
        return _log(client, experiment_id, run, artifacts_dir)
    except MlflowException as exc:
        raise RegistryError(
            f"could not mirror run {run.run_id!r} to MLflow at {hide_password(uri)}: "
            f"{str(exc.message).splitlines()[0]}"
        ) from exc


def _experiment_id(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:
        # Another process created it first.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def _log(client: Any, experiment_id: str, run: RunRecord, artifacts_dir: Path | None) -> str:
    tags = {
        **run.tags,
        RUN_ID_TAG: run.run_id,
        "forgeml.pipeline": run.name,
        "forgeml.seed": str(run.seed),
        "forgeml.status": run.status,
    }
    created = client.create_run(
        experiment_id,
        start_time=_millis(run.started_at),
        tags=tags,
        run_name=f"{run.name}-{run.run_id[:8]}",
    )
    run_id = str(created.info.run_id)
    try:
        _log_contents(client, run_id, run, artifacts_dir)
    except BaseException:
        # A half-logged run would be found (and trusted) by the next mirror: remove it.
        with contextlib.suppress(Exception):
            client.delete_run(run_id)
        raise
    return run_id


def _log_contents(client: Any, run_id: str, run: RunRecord, artifacts_dir: Path | None) -> None:
    from mlflow.entities import Metric, Param

    at = int((run.ended_at or run.started_at).timestamp() * 1000)
    params = [Param(k, str(v)) for k, v in run.params.items()]
    metrics = [Metric(k, float(v), at, 0) for k, v in run.metrics.items()]
    for chunk in _chunks(params, _BATCH):
        client.log_batch(run_id, params=list(chunk))
    for metric_chunk in _chunks(metrics, _BATCH):
        client.log_batch(run_id, metrics=list(metric_chunk))
    client.log_dict(run_id, run.summary, "forgeml/summary.json")
    client.log_dict(run_id, run.config, "forgeml/config.json")
    client.log_dict(
        run_id,
        {
            "data_fingerprint": run.data_fingerprint,
            "library_versions": run.library_versions,
            "seed": run.seed,
        },
        "forgeml/lineage.json",
    )
    if artifacts_dir is not None:
        client.log_artifacts(run_id, str(artifacts_dir))
    if run.status != "running":
        client.set_terminated(run_id, status=_STATUS[run.status], end_time=_millis(run.ended_at))
