"""One keep-alive HTTP/1.1 client connection, as an asyncio protocol.

A load generator on the same two cores as the server must cost little per request, so
this is an :class:`asyncio.Protocol` rather than streams or an HTTP library: a request is
one ``transport.write`` of prepared bytes, and the response is framed in
``data_received`` (status line, ``Content-Length``, chunked or read-until-close body)
without building header objects. The answer is the status code, or a negative code:

==============  ================================================================
``TIMEOUT``     no complete response before the deadline (the connection is dropped)
``CONNECTION``  refused, reset or closed before the response was complete
``PROTOCOL``    the bytes that came back are not an HTTP/1.x response
``STALE``       a reused connection closed before answering: safe to retry once
==============  ================================================================

>>> import asyncio
>>> async def demo() -> int:
...     async def answer(reader, writer):
...         await reader.readuntil(b"\\r\\n\\r\\n")
...         writer.write(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
...                      b"2\\r\\nok\\r\\n0\\r\\n\\r\\n")
...         await writer.drain()
...         writer.close()
...         await writer.wait_closed()
...     server = await asyncio.start_server(answer, "127.0.0.1", 0)
...     port = server.sockets[0].getsockname()[1]
...     loop = asyncio.get_running_loop()
...     _, conn = await loop.create_connection(lambda: HttpConnection(loop), "127.0.0.1", port)
...     status = await conn.send(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", loop.time() + 5)
...     conn.close()
...     server.close()
...     await server.wait_closed()
...     return status
>>> asyncio.run(demo())
200
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

__all__ = ["CONNECTION", "PROTOCOL", "STALE", "TIMEOUT", "HttpConnection"]

TIMEOUT: Final = -1
CONNECTION: Final = -2
PROTOCOL: Final = -3
STALE: Final = -4

_MAX_HEAD = 64 * 1024
# Parser states.
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE = range(6)


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) in a lower-cased response head."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start:] if end < 0 else head[start:end]


class HttpConnection(asyncio.Protocol):
    """A client connection that carries one request at a time.

    ``send(request, deadline)`` writes prepared request bytes and returns a future of the
    status code (or a negative code, see the module docstring); ``deadline`` is in
    ``loop.time()``. ``alive`` is False once the connection cannot carry another request.
    ``head_only`` is for HEAD requests, whose responses have no body.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, head_only: bool = False) -> None:
        self.alive = False
        self.answered = 0
        self._loop = loop
        self._head_only = head_only
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._buf = bytearray()
        self._state = _HEAD
        self._scan = 0
        self._need = 0
        self._status = 0
        self._keep = True
        self._got_bytes = False

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._transport is None:
            self.attach(transport)

    def attach(self, transport: asyncio.BaseTransport) -> None:
        """Take the transport ``create_connection`` returned (uvloop may return it before
        it calls ``connection_made``)."""
        self._transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self.alive = not transport.is_closing()

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the stream cannot be trusted
            self._drop()
            return
        self._got_bytes = True
        if self._state == _BODY and not self._buf and len(data) < self._need:
            self._need -= len(data)  # the common case of a large body: nothing to copy
            return
        self._buf += data
        try:
            self._parse()
        except ValueError:
            self._finish(PROTOCOL)

    def eof_received(self) -> bool:
        if self._waiter is not None and self._state == _UNTIL_CLOSE:
            self._finish(self._status)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self._waiter is not None:
            if self._state == _UNTIL_CLOSE:
                self._finish(self._status)
            elif not self._got_bytes and self.answered:
                self._finish(STALE)
            else:
                self._finish(CONNECTION)

    # client side ------------------------------------------------------------------------

    def send(self, request: bytes, deadline: float) -> asyncio.Future[int]:
        """Write ``request``; the future resolves to the status code or a negative code."""
        assert self._waiter is None and self._transport is not None
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._waiter = waiter
        self._got_bytes = False
        self._timer = self._loop.call_at(deadline, self._finish, TIMEOUT)
        self._transport.write(request)
        return waiter

    def close(self) -> None:
        """Close the connection; a request in flight resolves to ``CONNECTION``."""
        self._drop()

    @property
    def peer_host(self) -> str | None:
        """The address this connection reached (a resolved IP), when known."""
        peer = None if self._transport is None else self._transport.get_extra_info("peername")
        return str(peer[0]) if isinstance(peer, tuple) and peer else None

    # internals --------------------------------------------------------------------------

    def _drop(self) -> None:
        self.alive = False
        if self._transport is not None:
            self._transport.abort()

    def _finish(self, code: int) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if code < 0 or not self._keep or self._buf:
            self._drop()  # mid-response, closing, or extra bytes: never reuse
        else:
            self.answered += 1
        self._state, self._scan, self._keep = _HEAD, 0, True
        self._buf.clear()
        if waiter is not None and not waiter.done():
            waiter.set_result(code)

    def _parse(self) -> None:
        buf = self._buf
        while self._waiter is not None:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n", self._scan)
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise ValueError("response head too large")
                    self._scan = max(0, len(buf) - 3)
                    return
                head = bytes(buf[:end]).lower()
                del buf[: end + 4]
                self._scan = 0
                self._start(head)
            elif state == _BODY:
                if len(buf) < self._need:
                    self._need -= len(buf)
                    buf.clear()
                    return
                del buf[: self._need]
                self._finish(self._status)
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise ValueError("chunk size line too long")
                    return
                size = int(bytes(buf[:end]).split(b";", 1)[0].strip(), 16)
                del buf[: end + 2]
                self._need, self._state = size + 2, (_CHUNK_DATA if size else _TRAILER)
            elif state == _CHUNK_DATA:
                if len(buf) < self._need:
                    self._need -= len(buf)
                    buf.clear()
                    return
                del buf[: self._need]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    del buf[: end + 4]
                self._finish(self._status)
            else:  # _UNTIL_CLOSE: the body ends when the server closes
                buf.clear()
                return

    def _start(self, head: bytes) -> None:
        """Read the status line and framing headers of a response head."""
        if not head.startswith(b"http/1."):
            raise ValueError("not an HTTP/1.x response")
        status = int(head[9:12])
        if 100 <= status < 200:
            return  # an interim response (100 Continue): the real one follows
        self._status = status
        connection = _header(head, b"connection") or b""
        if head[7:8] == b"0":
            self._keep = b"keep-alive" in connection
        else:
            self._keep = b"close" not in connection
        if self._head_only or status in (204, 304):
            self._finish(status)
            return
        encoding = _header(head, b"transfer-encoding")
        length = _header(head, b"content-length")
        if encoding is not None and b"chunked" in encoding:
            self._state = _CHUNK_SIZE
        elif length is not None:
            self._need = int(length)
            if self._need < 0:
                raise ValueError("negative Content-Length")
            self._state = _BODY
            if self._need == 0:
                self._finish(status)
        else:
            self._state, self._keep = _UNTIL_CLOSE, False
