"""``forgeml serve``: serve registered models (or model folders) over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from forgeml.cli.options import RegistryOpt, registry_uri


def serve(
    models: Annotated[
        list[str],
        typer.Argument(help="Models: name@alias, name@version, name, or a model folder."),
    ],
    host: Annotated[
        str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option(help="Processes sharing the port (one per core at most).")
    ] = 1,
    registry: RegistryOpt = None,
    batch_rows: Annotated[
        int, typer.Option(help="Most rows per model call (micro-batching).")
    ] = 256,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            help="When busy, how long a batch may wait for more requests (0: take what "
            "is waiting; batches still grow with load)."
        ),
    ] = 0.0,
    model_threads: Annotated[
        int,
        typer.Option(help="Threads per model call (more cores: use --workers)."),
    ] = 1,
    max_queue_rows: Annotated[
        int, typer.Option(help="Rows waiting for the model before new requests get 503.")
    ] = 4096,
    max_body_mb: Annotated[
        float, typer.Option(help="Largest request body, in MiB (413 above).")
    ] = 10.0,
    max_batch_rows: Annotated[
        int, typer.Option(help="Most rows in one request (413 above).")
    ] = 10_000,
    timeout: Annotated[float, typer.Option(help="Seconds a request may take (503 after).")] = 10.0,
    poll_seconds: Annotated[
        float | None, typer.Option(help="Re-resolve aliases in the registry this often.")
    ] = None,
    admin: Annotated[
        bool | None,
        typer.Option(
            "--admin/--no-admin",
            help="Admin routes (reload). Default: on when FORGEML_ADMIN_KEY(_FILE) is set.",
            show_default=False,
        ),
    ] = None,
    allow_extra_columns: Annotated[
        bool, typer.Option(help="Accept (and ignore) columns the model does not read.")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="JSON access log lines on stdout.")] = True,
    prediction_log: Annotated[
        str | None,
        typer.Option(
            help="Where every prediction (inputs, outputs, latency) is logged, off the "
            "request path: a folder (Parquet files) or a postgresql:// URL. Default: the "
            "file FORGEML_PREDICTION_LOG_FILE names, if it exists, else the registry's log "
            "(<registry>/logs, or its PostgreSQL database) when serving from a registry.",
            show_default=False,
        ),
    ] = None,
    log_predictions: Annotated[
        bool,
        typer.Option(
            "--log-predictions/--no-log-predictions",
            help="Log predictions (needed by /v2/feedback, drift checks, reports and A/B).",
        ),
    ] = True,
    log_inputs: Annotated[
        float,
        typer.Option(
            help="The fraction of requests, drawn at random, whose input rows are logged "
            "too (0 to 1); every prediction is logged either way. Drift checks and reports "
            "read the requests logged with their inputs.",
            min=0.0,
            max=1.0,
        ),
    ] = 1.0,
    drift_seconds: Annotated[
        float,
        typer.Option(help="Check logged traffic for drift this often (0: never)."),
    ] = 60.0,
    live_window: Annotated[
        float,
        typer.Option(help="Seconds of labelled predictions behind the live metrics."),
    ] = 3600.0,
    interactions: Annotated[
        str | None,
        typer.Option(
            help="Where recommenders keep new interactions (POST /v1/interactions): each "
            "worker's memory (default), or a redis:// URL shared by every worker and "
            "replica (?prefix=...&ttl=SECONDS; default ttl 7 days). Default: the file "
            "FORGEML_INTERACTIONS_FILE names, if it exists, else memory.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve MODELS over HTTP: OIP v2 (/v2/...), MLflow (/invocations) and /predict."""
    import os

    from forgeml.cli.output import err_console
    from forgeml.config.redact import hide_password
    from forgeml.serving.config import (
        INTERACTIONS_FILE_ENV,
        PREDICTION_LOG_FILE_ENV,
        ServeConfig,
        location_from_file,
    )
    from forgeml.serving.server import serve as run

    uri = registry_uri(registry)
    if prediction_log is None:
        prediction_log = location_from_file(os.environ, PREDICTION_LOG_FILE_ENV)
    if interactions is None:
        interactions = location_from_file(os.environ, INTERACTIONS_FILE_ENV)
    if not log_predictions:
        prediction_log = None
    elif prediction_log is None:
        prediction_log = _default_log(models, uri)
    config = ServeConfig(
        models=models,
        registry=uri,
        host=host,
        port=port,
        workers=workers,
        batch_rows=batch_rows,
        batch_wait_ms=batch_wait_ms,
        model_threads=model_threads,
        max_queue_rows=max_queue_rows,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_batch_rows=max_batch_rows,
        timeout_seconds=timeout,
        poll_seconds=poll_seconds,
        admin=admin,
        allow_extra_columns=allow_extra_columns,
        access_log=access_log,
        prediction_log=prediction_log,
        log_inputs=log_inputs,
        drift_seconds=drift_seconds,
        live_window_seconds=live_window,
        interactions=interactions,
    )
    err_console.print(
        f"serving {', '.join(models)} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''}); docs at /docs, metrics at /metrics"
    )
    if prediction_log:
        sampled = f", the inputs of {log_inputs:.0%} of requests" if log_inputs < 1 else ""
        err_console.print(
            f"logging predictions to {hide_password(prediction_log)}{sampled} "
            "(--no-log-predictions: off)"
        )
    if interactions:
        err_console.print(f"recommenders keep new interactions in {hide_password(interactions)}")
    run(config)


def _default_log(models: list[str], uri: str) -> str | None:
    """The registry's log when a model comes from the registry (not a model folder)."""
    from pathlib import Path

    from forgeml.registry.location import default_log_location

    from_registry = any("@" in m or not Path(m, "forgeml-model.json").is_file() for m in models)
    return default_log_location(uri) if from_registry else None
