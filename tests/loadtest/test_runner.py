"""run_load against real servers on loopback: counting, framing, errors, both loop kinds.

These are behaviour checks, not benchmarks: bounds on counts are deliberately wide, since
the server, the generator and other tests share a small machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from forgeml.errors import ForgeError, UsageError
from forgeml.loadtest import LoadResult, run_load

from .conftest import Reply, Request


def _accounted(result: LoadResult) -> None:
    """Every sent request ended as a response or as a transport error."""
    transport = sum(result.errors.get(k, 0) for k in ("timeout", "connection", "protocol"))
    assert result.sent == result.completed + transport
    assert result.completed == sum(result.status_codes.values())


def test_closed_loop_counts_throughput_and_ordered_percentiles(serve) -> None:
    server = serve()
    result = run_load(server.url, concurrency=4, duration="1s", warmup="200ms")
    assert result.mode == "closed" and result.concurrency == 4
    assert result.completed > 0 and result.errors == {}
    assert result.status_codes == {200: result.completed} and result.ok == result.completed
    _accounted(result)
    assert result.duration_s == pytest.approx(1.0)
    assert result.throughput_rps == pytest.approx(result.completed / result.duration_s)
    lat = result.latency_ms
    assert lat is not None
    assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
    # Warmup requests were sent but not counted; keep-alive: one connection per worker.
    assert len(server.requests) > result.sent
    assert server.connections == 4
    assert server.requests[0].method == "GET" and server.requests[0].path == "/"


def test_status_codes_are_counted_not_raised(serve) -> None:
    server = serve(
        lambda r: Reply(status=503, body=b'{"error":"busy"}') if r.number % 3 == 0 else Reply()
    )
    result = run_load(server.url, concurrency=2, duration="500ms")
    assert result.errors["http_503"] > 0
    assert result.status_codes[503] == result.errors["http_503"]
    assert result.ok == result.status_codes[200] == result.completed - result.errors["http_503"]
    assert set(result.errors) == {"http_503"}
    _accounted(result)


def test_timeouts_are_counted_and_bounded(serve) -> None:
    server = serve(lambda r: Reply(delay=3.0))
    started = time.perf_counter()
    result = run_load(server.url, concurrency=2, duration="300ms", timeout="200ms")
    elapsed = time.perf_counter() - started
    assert result.errors["timeout"] >= 2 and result.completed == 0
    assert result.latency_ms is None
    _accounted(result)
    assert elapsed < 2.5  # the run waits for nothing longer than its timeout


def test_open_loop_roughly_honours_the_rate(serve) -> None:
    server = serve()
    result = run_load(server.url, rate=200, duration="1s")
    assert result.mode == "open" and result.rate == 200
    assert 100 <= result.sent <= 260
    assert result.completed == result.sent and result.errors == {}
    assert result.dispatch_lag_ms is not None and result.dispatch_lag_ms["max"] >= 0


def test_open_loop_latency_includes_queueing(serve) -> None:
    # One request at a time, 20 ms each (50/s): arrivals at 100/s queue up. Measured from
    # each due time, the late requests show their wait (about a second for the last).
    server = serve(lambda r: Reply(delay=0.02), serial=True)
    result = run_load(server.url, rate=100, duration="1s", timeout="5s")
    assert result.completed >= 50
    assert result.latency_ms is not None and result.latency_ms.p99 > 200


def test_open_loop_caps_outstanding_requests(serve) -> None:
    server = serve(lambda r: Reply(delay=1.0))
    result = run_load(server.url, rate=100, duration="500ms", max_outstanding=5, timeout="3s")
    assert result.sent == 5 and result.completed == 5
    assert 35 <= result.errors["not_sent"] <= 55


def test_request_cap_ends_the_run(serve) -> None:
    server = serve()
    result = run_load(server.url, concurrency=3, duration="30s", max_requests=20)
    assert result.sent == result.completed == 20
    assert 0 < result.duration_s < 5
    assert result.throughput_rps == pytest.approx(20 / result.duration_s)


@pytest.mark.parametrize(
    ("reply", "method"),
    [
        (Reply(framing="chunked"), "POST"),
        (Reply(close=True), "POST"),
        (Reply(framing="until_close"), "POST"),
        (Reply(status=204, framing="none"), "POST"),
        (Reply(body=b"x" * 300_000), "POST"),
        (Reply(), "HEAD"),
    ],
    ids=["chunked", "connection-close", "until-close", "204", "large-body", "head"],
)
def test_response_framings(serve, reply: Reply, method: str) -> None:
    server = serve(lambda r: reply)
    result = run_load(
        server.url, method=method, body=b"{}", concurrency=2, duration="10s", max_requests=20
    )
    assert result.completed == 20 and result.errors == {}, result.errors
    if reply.close or reply.framing == "until_close":
        assert server.connections >= 20  # reconnected after every answer
    else:
        assert server.connections <= 2


def test_bodies_rotate_and_headers_are_sent(serve) -> None:
    server = serve()
    bodies = [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    result = run_load(
        f"{server.url}/predict",
        bodies=bodies,
        rows_per_request=1,
        headers={"X-Api-Key": "secret"},
        concurrency=1,
        max_requests=9,
    )
    assert result.completed == 9 and result.rows_per_s == pytest.approx(9 / result.duration_s)
    got = [r.body for r in server.requests]
    assert got == bodies * 3
    first = server.requests[0]
    assert first.method == "POST" and first.path == "/predict"
    assert first.headers["x-api-key"] == "secret"
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert first.headers["content-type"] == "application/json"


def test_connection_failures_are_counted(serve) -> None:
    server = serve(lambda r: Reply(drop=True) if r.path == "/drop" else Reply())
    result = run_load(f"{server.url}/drop", concurrency=2, duration="10s", max_requests=10)
    assert result.errors == {"connection": 10} and result.completed == 0
    _accounted(result)


def test_a_server_closing_idle_connections_is_not_an_error(serve) -> None:
    # Every third answer is the last on its connection without saying so: the next
    # request on it finds it closed and is retried once on a fresh connection.
    def handler(request: Request) -> Reply:
        return Reply(framing="length") if request.number % 3 else Reply(raw=_ok_then_close())

    server = serve(handler)
    result = run_load(server.url, concurrency=1, max_requests=30, duration="10s")
    assert result.completed == 30 and result.errors == {}


def _ok_then_close() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_garbage_responses_are_protocol_errors(serve) -> None:
    server = serve(lambda r: Reply(raw=b"SSH-2.0-OpenSSH\r\n\r\n"))
    result = run_load(server.url, concurrency=1, max_requests=5, duration="10s")
    assert result.errors == {"protocol": 5}


def test_plain_asyncio_loop(serve) -> None:
    server = serve()
    result = run_load(server.url, concurrency=2, duration="10s", max_requests=50, use_uvloop=False)
    assert result.completed == 50


def test_unreachable_server_fails_at_the_start(free_port: int) -> None:
    started = time.perf_counter()
    with pytest.raises(ForgeError, match=rf"cannot reach http://127.0.0.1:{free_port}/predict: "):
        run_load(f"http://127.0.0.1:{free_port}/predict", duration="5s")
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 2, "rate": 5.0}, "exclude each other"),
        ({"concurrency": 0}, "--concurrency must be at least 1"),
        ({"rate": -1.0}, "--rate must be a positive"),
        ({"duration": "0s"}, "--duration must be longer than 0"),
        ({"duration": "20 parsecs"}, "is not a duration"),
        ({"timeout": 0}, "--timeout must be longer than 0"),
        ({"max_requests": 0}, "--requests must be at least 1"),
        ({"bodies": []}, "no request bodies"),
        ({"body": b"x", "bodies": [b"y"]}, "not both"),
        ({"method": "GET /x"}, "not an HTTP method"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run_load("http://127.0.0.1:9", **kwargs)


def test_uvicorn_interoperates(serve) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    import threading

    async def app(scope, receive, send) -> None:
        assert scope["type"] == "http"
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"predictions":[1]}'})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", ws="none", log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        result = run_load(
            f"http://127.0.0.1:{port}/predict",
            body=b'{"records":[{"x":1}]}',
            concurrency=4,
            duration="500ms",
        )
    finally:
        server.should_exit = True
        thread.join(10)
    assert result.completed > 0 and result.errors == {}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_ends_the_run_early_and_still_reports(serve) -> None:
    server = serve()
    code = textwrap.dedent(
        f"""
        import json, sys
        from forgeml.loadtest import run_load
        print("ready", file=sys.stderr, flush=True)
        result = run_load("{server.url}", concurrency=2, duration="60s")
        print(json.dumps(result.to_dict()))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while len(server.requests) < 20:  # the run is under way
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["interrupted"] is True and data["completed"] > 0
    assert data["duration_s"] < 30
