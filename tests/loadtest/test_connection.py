"""Response framing of HttpConnection, fed byte streams split at every possible point."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from forgeml.loadtest.connection import CONNECTION, PROTOCOL, STALE, TIMEOUT, HttpConnection


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> None:
        return None


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _connection(loop: asyncio.AbstractEventLoop, **kwargs) -> tuple[HttpConnection, FakeTransport]:
    conn = HttpConnection(loop, **kwargs)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"y": [1]}\n'
CHUNKED = (
    b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
    b"4;name=value\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\n"
)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
EMPTY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n"


@pytest.mark.parametrize(
    ("response", "status"),
    [(OK, 200), (CHUNKED, 201), (CONTINUE, 200), (EMPTY, 503)],
    ids=["length", "chunked", "100-continue", "empty"],
)
def test_framing_survives_any_split(loop, response: bytes, status: int) -> None:
    for cut in range(1, len(response)):
        for pieces in (
            [response[:cut], response[cut:]],
            [response[i : i + 1] for i in range(len(response))],
        ):
            conn, transport = _connection(loop)
            done = conn.send(b"GET / HTTP/1.1\r\n\r\n", loop.time() + 60)
            for piece in pieces:
                assert not done.done()
                conn.data_received(piece)
            assert done.result() == status, (cut, pieces)
            assert conn.alive and not transport.closed and conn.answered == 1
        # the connection is ready for the next request on the same stream
        again = conn.send(b"GET / HTTP/1.1\r\n\r\n", loop.time() + 60)
        conn.data_received(response)
        assert again.result() == status


def test_close_delimited_body_ends_at_eof(loop) -> None:
    conn, _ = _connection(loop)
    done = conn.send(b"GET / HTTP/1.1\r\n\r\n", loop.time() + 60)
    conn.data_received(b"HTTP/1.0 200 OK\r\n\r\nsome body")
    conn.data_received(b" and more")
    assert not done.done()
    conn.eof_received()
    assert done.result() == 200 and not conn.alive


def test_connection_close_and_http10_are_not_reused(loop) -> None:
    for head in (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", b"HTTP/1.0 200 OK\r\n"):
        conn, transport = _connection(loop)
        done = conn.send(b"x", loop.time() + 60)
        conn.data_received(head + b"Content-Length: 2\r\n\r\nok")
        assert done.result() == 200 and not conn.alive and transport.closed
    conn, transport = _connection(loop)
    done = conn.send(b"x", loop.time() + 60)
    conn.data_received(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")
    assert done.result() == 200 and conn.alive


def test_head_responses_have_no_body(loop) -> None:
    conn, _ = _connection(loop, head_only=True)
    done = conn.send(b"HEAD / HTTP/1.1\r\n\r\n", loop.time() + 60)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    assert done.result() == 200 and conn.alive


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000,
    ],
    ids=["not-http", "bad-status", "negative-length", "bad-chunk", "endless-head"],
)
def test_malformed_responses_are_protocol_errors(loop, garbage: bytes) -> None:
    conn, transport = _connection(loop)
    done = conn.send(b"x", loop.time() + 60)
    conn.data_received(garbage)
    assert done.result() == PROTOCOL and not conn.alive and transport.closed


def test_extra_bytes_after_a_response_retire_the_connection(loop) -> None:
    conn, transport = _connection(loop)
    done = conn.send(b"x", loop.time() + 60)
    conn.data_received(OK + b"HTTP/1.1 200 OK\r\n")
    assert done.result() == 200 and not conn.alive and transport.closed


def test_unsolicited_bytes_retire_the_connection(loop) -> None:
    conn, transport = _connection(loop)
    conn.data_received(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    assert not conn.alive and transport.closed


def test_lost_connections(loop) -> None:
    conn, _ = _connection(loop)
    done = conn.send(b"x", loop.time() + 60)
    conn.connection_lost(ConnectionResetError())
    assert done.result() == CONNECTION  # never answered: a real failure
    conn, _ = _connection(loop)
    first = conn.send(b"x", loop.time() + 60)
    conn.data_received(OK)
    assert first.result() == 200
    second = conn.send(b"x", loop.time() + 60)
    conn.connection_lost(None)
    assert second.result() == STALE  # closed while idle: safe to retry
    conn, _ = _connection(loop)
    third = conn.send(b"x", loop.time() + 60)
    conn.data_received(OK[:20])
    conn.connection_lost(None)
    assert third.result() == CONNECTION  # closed mid-response


def test_deadline_gives_timeout(loop) -> None:
    conn, transport = _connection(loop)
    done = conn.send(b"x", loop.time() + 0.01)
    loop.run_until_complete(asyncio.wait_for(asyncio.shield(done), 5))
    assert done.result() == TIMEOUT and transport.closed and not conn.alive
