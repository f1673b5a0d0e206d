"""``forgeml loadtest``: drive load at a prediction server and report throughput and latency."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt

if TYPE_CHECKING:
    from forgeml.loadtest import LoadResult

__all__ = ["loadtest"]


def loadtest(
    url: Annotated[
        str,
        typer.Argument(
            help="The server, http://HOST:PORT or http://HOST:PORT/PATH. Only this host is contacted.",
            show_default=False,
        ),
    ],
    path: Annotated[
        str | None,
        typer.Option(
            help="Request path. Default: the URL's path, else the protocol's "
            "(/predict, /v2/models/MODEL/infer, /invocations) when there is a body.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(help="HTTP method. Default: POST with a body, else GET.", show_default=False),
    ] = None,
    body: Annotated[
        Path | None,
        typer.Option(help="A file whose bytes are the body of every request.", show_default=False),
    ] = None,
    rows: Annotated[
        Path | None,
        typer.Option(
            help="CSV or Parquet rows to build request bodies from; requests rotate through them.",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        str, typer.Option(help="Body format and default path: predict, v2 or mlflow.")
    ] = "predict",
    batch: Annotated[int, typer.Option(help="Rows per request (with --rows).")] = 1,
    model: Annotated[
        str | None,
        typer.Option(help="Model name for the v2 path /v2/models/MODEL/infer.", show_default=False),
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(help="A column of --rows not to send (a target, an id); repeatable."),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", help="An extra request header NAME:VALUE; repeatable."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            help="Closed loop: this many connections, each sending as soon as it is answered "
            "(default 32).",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            "-r",
            help="Open loop: requests per second at fixed times, whatever the answers; "
            "latency counts from each request's due time.",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        str, typer.Option("--duration", "-d", help="Measured time, e.g. 20s, 1m, 500ms.")
    ] = "10s",
    warmup: Annotated[str, typer.Option(help="Load before measuring (not counted).")] = "1s",
    timeout: Annotated[str, typer.Option(help="Time allowed per request.")] = "5s",
    requests: Annotated[
        int | None,
        typer.Option(
            "--requests", "-n", help="Stop after this many measured requests.", show_default=False
        ),
    ] = None,
    max_outstanding: Annotated[
        int,
        typer.Option(help="Open loop: most requests in flight; arrivals beyond are errors."),
    ] = 256,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Load a prediction server (closed loop by default) and report throughput, latency and errors.

    Exit code 0 when the run completed (HTTP errors are reported), 1 when the server cannot be reached, 2 for invalid arguments.
    """
    from forgeml.cli.output import emit_json
    from forgeml.errors import UsageError
    from forgeml.loadtest import ServingProtocol, encode_bodies, read_rows, run_load
    from forgeml.loadtest.bodies import MAX_BODIES
    from forgeml.loadtest.target import parse_header, parse_target

    wire = ServingProtocol.parse(protocol)
    if body is not None and rows is not None:
        raise UsageError("--body and --rows exclude each other: send one file or build from rows")
    if rows is None and (batch != 1 or drop):
        raise UsageError("--batch and --drop apply to --rows only")
    headers = [parse_header(text) for text in header or ()]
    if path is None and (body is not None or rows is not None) and parse_target(url).path == "/":
        path = wire.default_path(model)

    payload: bytes | None = None
    bodies: list[bytes] | None = None
    rows_per_request: int | None = None
    if body is not None:
        if not body.is_file():
            raise UsageError(f"--body: file not found: {body}")
        payload = body.read_bytes()
    if rows is not None:
        if batch < 1:
            raise UsageError(f"--batch must be at least 1, got {batch}")
        table = read_rows(rows, limit=MAX_BODIES * batch)
        bodies = encode_bodies(table, wire, batch=batch, drop=drop or ())
        rows_per_request = batch

    result = run_load(
        url,
        path=path,
        method=method,
        body=payload,
        bodies=bodies,
        rows_per_request=rows_per_request,
        headers=headers,
        concurrency=concurrency,
        rate=rate,
        duration=duration,
        warmup=warmup,
        timeout=timeout,
        max_requests=requests,
        max_outstanding=max_outstanding,
        on_start=None if output == OutputFormat.json else _announce,
    )
    if output == OutputFormat.json:
        emit_json(result.to_dict())
    else:
        _print_result(result)


def _announce(line: str) -> None:
    from forgeml.cli.output import err_console

    err_console.print(f"loadtest {line}")


def _print_result(result: LoadResult) -> None:
    from rich.table import Table

    from forgeml.cli.output import out_console

    loop = (
        f"open loop, {result.rate:g} requests/s"
        if result.mode == "open"
        else f"closed loop, {result.concurrency} connections"
    )
    table = Table(title=f"{result.method} {result.url} — {loop}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    interrupted = " (interrupted)" if result.interrupted else ""
    table.add_row("measured", f"{result.duration_s:.2f} s{interrupted}")
    table.add_row("sent", f"{result.sent:,}")
    table.add_row("completed", f"{result.completed:,} ({result.ok:,} ok)")
    table.add_row("throughput", f"{result.throughput_rps:,.1f} req/s")
    if result.rows_per_s is not None:
        table.add_row("rows", f"{result.rows_per_s:,.1f} rows/s")
    if result.latency_ms is not None:
        lat = result.latency_ms
        for name, value in (
            ("p50", lat.p50),
            ("p90", lat.p90),
            ("p95", lat.p95),
            ("p99", lat.p99),
            ("max", lat.max),
        ):
            table.add_row(f"latency {name}", f"{value:,.2f} ms")
    if result.client_cpu_percent is not None:
        table.add_row("client CPU", f"{result.client_cpu_percent:.0f}% of a core")
    if result.dispatch_lag_ms is not None:
        table.add_row("send lag p99", f"{result.dispatch_lag_ms['p99']:,.2f} ms")
    if result.errors:
        for kind, count in sorted(result.errors.items()):
            table.add_row(f"error {kind}", f"{count:,}")
    else:
        table.add_row("errors", "0")
    out_console.print(table)
