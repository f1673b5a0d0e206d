"""Drive load at a server: closed loop (N connections) or open loop (R arrivals per second).

Closed loop: each of ``concurrency`` connections sends its next request as soon as the
previous answer arrives; latency runs from send to answer. Open loop: requests are due at
fixed times ``start + i / rate`` whatever the server does; latency runs from the *due*
time, so requests that wait because the server (or the client) fell behind count with
their wait, and coordinated omission cannot hide queueing. At most ``max_outstanding``
requests are in flight; an arrival beyond that is not sent and counts as the error
``not_sent``.

Only requests that start (closed loop) or are due (open loop) after the warmup and before
the end of ``duration`` are measured; those still in flight at the end are waited for (up
to ``timeout``), so slow requests are never dropped from the statistics. A first Ctrl-C
ends the run early and still reports; a second one abandons the requests in flight.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from forgeml.errors import ForgeError, UsageError
from forgeml.loadtest.connection import CONNECTION, STALE, TIMEOUT, HttpConnection
from forgeml.loadtest.durations import parse_duration
from forgeml.loadtest.stats import LoadResult, Recorder
from forgeml.loadtest.target import Target, build_request, parse_target

__all__ = ["DEFAULT_CONCURRENCY", "run_load", "run_load_async"]

DEFAULT_CONCURRENCY = 32
# Event-loop timers have 1 ms granularity (uvloop rounds shorter sleeps to zero and would
# spin), so the open loop sleeps at least _MIN_SLEEP and sends arrivals due within _EARLY
# now: a little early rather than late. Latency runs from the earlier of due and send
# time, so an early send flatters nothing.
_MIN_SLEEP = 0.001
_EARLY = 0.002
# Pause of a closed-loop connection after a failed connect, so a dead server is not spun on.
_BACKOFF = 0.05
# Open loop: yield to the event loop after this many arrivals handled without sleeping.
_BURST = 64

Headers = Iterable[tuple[str, str]] | Mapping[str, str]


def run_load(
    url: str,
    *,
    path: str | None = None,
    method: str | None = None,
    body: bytes | None = None,
    bodies: Sequence[bytes] | None = None,
    rows_per_request: int | None = None,
    headers: Headers = (),
    concurrency: int | None = None,
    rate: float | None = None,
    duration: float | str = 10.0,
    warmup: float | str = 0.0,
    timeout: float | str = 5.0,
    max_requests: int | None = None,
    max_outstanding: int = 256,
    on_start: Callable[[str], None] | None = None,
    use_uvloop: bool = True,
) -> LoadResult:
    """Load ``url`` and return what was measured (the event loop is uvloop when installed).

    Send ``body`` with every request, or rotate through ``bodies`` (for example from
    :func:`forgeml.loadtest.encode_bodies`; then ``rows_per_request`` gives rows/s). The
    method is POST with a body, GET without. Give ``concurrency`` (closed loop, the default
    with 32 connections) or ``rate`` in requests per second (open loop), not both.
    Durations are seconds or text such as ``"20s"``; ``max_requests`` ends the run after
    that many measured requests. ``on_start`` is called with a one-line description of
    the run once the server was reached (the CLI prints it on stderr). Invalid arguments raise
    :class:`~forgeml.errors.UsageError`; a server that cannot be reached at the start
    raises :class:`~forgeml.errors.ForgeError`. HTTP errors, timeouts and lost
    connections during the run are counted in the result, never raised.

    >>> run_load("http://127.0.0.1:1", concurrency=2, duration="1s")
    Traceback (most recent call last):
    ...
    forgeml.errors.ForgeError: cannot reach http://127.0.0.1:1/: ...
    >>> run_load("http://127.0.0.1:1", concurrency=2, rate=10)
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: --concurrency and --rate exclude each other: pick a closed loop (N connections) or an open loop (R requests/s)
    """
    coroutine = run_load_async(
        url,
        path=path,
        method=method,
        body=body,
        bodies=bodies,
        rows_per_request=rows_per_request,
        headers=headers,
        concurrency=concurrency,
        rate=rate,
        duration=duration,
        warmup=warmup,
        timeout=timeout,
        max_requests=max_requests,
        max_outstanding=max_outstanding,
        on_start=on_start,
    )
    with asyncio.Runner(loop_factory=_uvloop_factory() if use_uvloop else None) as runner:
        return runner.run(coroutine)


async def run_load_async(
    url: str,
    *,
    path: str | None = None,
    method: str | None = None,
    body: bytes | None = None,
    bodies: Sequence[bytes] | None = None,
    rows_per_request: int | None = None,
    headers: Headers = (),
    concurrency: int | None = None,
    rate: float | None = None,
    duration: float | str = 10.0,
    warmup: float | str = 0.0,
    timeout: float | str = 5.0,
    max_requests: int | None = None,
    max_outstanding: int = 256,
    on_start: Callable[[str], None] | None = None,
) -> LoadResult:
    """:func:`run_load` on the running event loop (for callers that already have one)."""
    if concurrency is not None and rate is not None:
        raise UsageError(
            "--concurrency and --rate exclude each other: pick a closed loop "
            "(N connections) or an open loop (R requests/s)"
        )
    if concurrency is None and rate is None:
        concurrency = DEFAULT_CONCURRENCY
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {concurrency}")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise UsageError(f"--rate must be a positive number of requests per second, got {rate}")
    seconds = parse_duration(duration, name="--duration")
    if seconds <= 0:
        raise UsageError(f"--duration must be longer than 0, got {duration!r}")
    warmup_s = parse_duration(warmup, name="--warmup")
    timeout_s = parse_duration(timeout, name="--timeout")
    if timeout_s <= 0:
        raise UsageError(f"--timeout must be longer than 0, got {timeout!r}")
    if max_requests is not None and max_requests < 1:
        raise UsageError(f"--requests must be at least 1, got {max_requests}")
    if max_outstanding < 1:
        raise UsageError(f"--max-outstanding must be at least 1, got {max_outstanding}")
    if body is not None and bodies is not None:
        raise UsageError("give one body or a list of bodies, not both")
    payloads: list[bytes | None] = [body] if bodies is None else list(bodies)
    if not payloads:
        raise UsageError("no request bodies to send")
    target = parse_target(url, path=path)
    verb = (method or ("GET" if payloads == [None] else "POST")).upper()
    requests = [build_request(verb, target, headers, payload) for payload in payloads]

    run = _Run(
        asyncio.get_running_loop(),
        target,
        requests,
        head_only=verb == "HEAD",
        timeout=timeout_s,
        max_requests=max_requests,
    )
    await run.preflight()
    if on_start is not None:
        shape = (
            f"closed loop, {concurrency} connections"
            if rate is None
            else f"open loop, {rate:g} requests/s"
        )
        warm = f" after {warmup_s:g}s warmup" if warmup_s else ""
        on_start(f"{verb} {target.url}: {shape}, {seconds:g}s{warm}")
    await run.drive(
        concurrency=concurrency,
        rate=rate,
        warmup=warmup_s,
        duration=seconds,
        max_outstanding=max_outstanding,
    )
    return LoadResult.from_recorder(
        run.recorder,
        url=target.url,
        method=verb,
        mode="closed" if rate is None else "open",
        concurrency=concurrency,
        rate=rate,
        duration_s=run.measured_seconds(),
        warmup_s=warmup_s,
        rows_per_request=rows_per_request,
        interrupted=run.interrupted,
        client_cpu_percent=run.cpu_percent,
    )


class _Run:
    """The state of one load test on one event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        target: Target,
        requests: list[bytes],
        *,
        head_only: bool,
        timeout: float,
        max_requests: int | None,
    ) -> None:
        self.loop = loop
        self.target = target
        self.requests = requests
        self.head_only = head_only
        self.timeout = timeout
        self.max_requests = max_requests
        self.recorder = Recorder()
        self.idle: list[HttpConnection] = []
        self.connections: weakref.WeakSet[HttpConnection] = weakref.WeakSet()
        self.host = target.host  # replaced by the resolved address after the preflight
        self.next_request = 0
        self.admitted = 0
        self.in_flight = 0
        self.stopped = False
        self.capped = False
        self.interrupted = False
        self.abandoned = False
        self.t_measure = self.t_end = self.t_stop = math.inf
        self.t_last_done = -math.inf
        self.cpu_percent: float | None = None

    # connections ------------------------------------------------------------------------

    async def connect(self, deadline: float) -> HttpConnection:
        def factory() -> HttpConnection:
            return HttpConnection(self.loop, head_only=self.head_only)

        async with asyncio.timeout_at(deadline):
            transport, conn = await self.loop.create_connection(
                factory, self.host, self.target.port
            )
        conn.attach(transport)
        self.connections.add(conn)
        return conn

    async def preflight(self) -> None:
        """Open the first connection, or say in one line why the server cannot be reached."""
        try:
            conn = await self.connect(self.loop.time() + self.timeout)
        except TimeoutError:
            raise ForgeError(
                f"cannot reach {self.target.url}: no connection within {self.timeout:g}s"
            ) from None
        except OSError as exc:
            raise ForgeError(f"cannot reach {self.target.url}: {_reason(exc)}") from exc
        self.host = conn.peer_host or self.host  # later connections skip name resolution
        self.idle.append(conn)

    async def exchange(self, request: bytes, deadline: float) -> int:
        """Send one request on an idle connection (or a new one); the status or failure code."""
        for _ in range(2):
            conn = None
            while self.idle:
                conn = self.idle.pop()
                if conn.alive:
                    break
                conn = None
            if conn is None:
                try:
                    conn = await self.connect(deadline)
                except TimeoutError:
                    return TIMEOUT
                except OSError:
                    return CONNECTION
            code = await conn.send(request, deadline)
            if code != STALE:  # else the server closed an idle connection: retry once
                if conn.alive:
                    self.idle.append(conn)
                return code
        return CONNECTION

    def take_request(self) -> bytes:
        request = self.requests[self.next_request]
        self.next_request = (self.next_request + 1) % len(self.requests)
        return request

    # the run ----------------------------------------------------------------------------

    async def drive(
        self,
        *,
        concurrency: int | None,
        rate: float | None,
        warmup: float,
        duration: float,
        max_outstanding: int,
    ) -> None:
        t_start = time.perf_counter()
        self.t_measure = t_start + warmup
        self.t_end = self.t_measure + duration
        cpu_start = time.process_time()
        handled = self._catch_interrupts()
        try:
            if rate is None:
                assert concurrency is not None
                await asyncio.gather(*(self._closed_worker() for _ in range(concurrency)))
            else:
                await self._open_loop(t_start, rate, max_outstanding)
        finally:
            if handled:
                self.loop.remove_signal_handler(signal.SIGINT)
            for conn in list(self.connections):
                conn.close()
            wall = time.perf_counter() - t_start
            if wall > 0:
                self.cpu_percent = round(100 * (time.process_time() - cpu_start) / wall, 1)

    def admit(self, now: float) -> bool:
        """Count one more measured request, unless the request cap is reached."""
        if self.max_requests is not None and self.admitted >= self.max_requests:
            self.capped = True
            self.stop(now)
            return False
        self.admitted += 1
        return True

    def stop(self, now: float) -> None:
        if not self.stopped:
            self.stopped = True
            self.t_stop = now

    def measured_seconds(self) -> float:
        if self.capped and not self.interrupted:
            end = self.t_last_done  # a request cap: until the last answer, like `ab -n`
        else:
            end = min(self.t_end, self.t_stop)
        return max(0.0, end - self.t_measure) if math.isfinite(end) else 0.0

    async def _closed_worker(self) -> None:
        perf, record = time.perf_counter, self.recorder.record
        while not self.stopped:
            t_send = perf()
            if t_send >= self.t_end:
                return
            measured = t_send >= self.t_measure
            if measured and not self.admit(t_send):
                return
            code = await self.exchange(self.take_request(), self.loop.time() + self.timeout)
            if measured and not self.abandoned:
                self.t_last_done = done = perf()
                record(code, done - t_send)
            if code == CONNECTION:
                await asyncio.sleep(_BACKOFF)

    async def _open_loop(self, t_start: float, rate: float, max_outstanding: int) -> None:
        perf = time.perf_counter
        interval = 1.0 / rate
        tasks: set[asyncio.Task[None]] = set()
        i = burst = 0
        while not self.stopped:
            due = t_start + i * interval
            if due >= self.t_end:
                break
            now = perf()
            if due > now + _EARLY:
                burst = 0
                await asyncio.sleep(max(due - now - _EARLY, _MIN_SLEEP))
                continue
            i += 1
            burst += 1
            if burst >= _BURST:  # far behind schedule: let answers in before going on
                burst = 0
                await asyncio.sleep(0)
            measured = due >= self.t_measure
            if measured and not self.admit(due):
                break
            if self.in_flight >= max_outstanding:
                if measured:
                    self.recorder.not_sent += 1
                continue
            self.in_flight += 1
            task = self.loop.create_task(self._open_request(self.take_request(), due, measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    async def _open_request(self, request: bytes, due: float, measured: bool) -> None:
        t_send = time.perf_counter()
        try:
            code = await self.exchange(request, self.loop.time() + self.timeout)
        finally:
            self.in_flight -= 1
        if measured and not self.abandoned:
            self.t_last_done = done = time.perf_counter()
            self.recorder.record(code, done - min(due, t_send))
            self.recorder.lags.append(max(0.0, t_send - due))

    # Ctrl-C ------------------------------------------------------------------------------

    def _catch_interrupts(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        try:
            self.loop.add_signal_handler(signal.SIGINT, self._interrupt)
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True

    def _interrupt(self) -> None:
        if not self.stopped:
            self.interrupted = True
            self.stop(time.perf_counter())
        else:  # a second Ctrl-C: give up on the requests still in flight
            self.abandoned = True
            for conn in list(self.connections):
                conn.close()


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror or exc})"
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def _uvloop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
