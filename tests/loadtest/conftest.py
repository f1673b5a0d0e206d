"""A real HTTP/1.1 server on loopback for the load tests, with scripted replies.

The server runs a raw asyncio stream server in its own thread and event loop, so the load
generator under test (on the test's thread) talks to it over real sockets exactly as it
talks to a prediction server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    number: int  # 1-based, in arrival order over the server's life


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"predictions":[0]}'
    delay: float = 0.0
    framing: str = "length"  # length | chunked | until_close | none
    close: bool = False  # send Connection: close and close after the reply
    drop: bool = False  # close the connection without answering
    raw: bytes | None = None  # send these bytes instead of a response
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Reply]


class LoopbackServer:
    """An HTTP server on 127.0.0.1 (free port) answering with ``handler``'s replies.

    ``serial=True`` serves one request at a time (a single-worker server that queues).
    """

    def __init__(self, handler: Handler, *, serial: bool = False) -> None:
        self.handler = handler
        self.serial = serial
        self.requests: list[Request] = []
        self.connections = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        assert self._ready.wait(5), "test server did not start"
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._lock = asyncio.Lock()

        async def start() -> None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, backlog=512)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                request = Request(method, path, headers, body, len(self.requests) + 1)
                self.requests.append(request)
                reply = self.handler(request)
                if self.serial:
                    async with self._lock:
                        await asyncio.sleep(reply.delay)
                elif reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.drop:
                    break
                writer.write(reply.raw if reply.raw is not None else _response(reply, method))
                await writer.drain()
                if reply.close or reply.framing == "until_close" or reply.raw is not None:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def _response(reply: Reply, method: str) -> bytes:
    reason = {200: "OK", 204: "No Content", 503: "Service Unavailable"}.get(reply.status, "X")
    lines = [f"HTTP/1.1 {reply.status} {reason}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in reply.headers]
    if reply.close:
        lines.append("Connection: close")
    body = reply.body
    if reply.framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        parts = [body[:half], body[half:]]
        body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts if p)
        body += b"0\r\nX-Trailer: yes\r\n\r\n"
    elif reply.framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif reply.framing == "none":
        body = b""
    if method == "HEAD":
        body = b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    """Start loopback servers: ``serve(handler, serial=False)``; all stop after the test."""
    started: list[LoopbackServer] = []

    def start(
        handler: Handler = lambda request: Reply(), *, serial: bool = False
    ) -> LoopbackServer:
        server = LoopbackServer(handler, serial=serial).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def free_port() -> int:
    """A loopback port with nothing listening on it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
