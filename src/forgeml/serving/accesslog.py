"""The JSON access log: one line per response, buffered off the request path.

Formatting a line costs a couple of microseconds (orjson); writing is batched — the lines
of many requests go out in one ``write`` every ``interval`` seconds, when ``max_lines``
are waiting, and when the server stops — so a busy server does not make one system call
per request. A line therefore appears up to ``interval`` seconds after its response. Each
write holds whole lines and at most 4 KiB, so processes sharing one stdout (``--workers``)
never interleave parts of lines.

>>> import io
>>> stream = io.BytesIO()
>>> log = AccessLog(stream)
>>> log.write({"status": 200, "route": "/predict"})
>>> log.flush()
>>> stream.getvalue()
b'{"status":200,"route":"/predict"}\\n'
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, BinaryIO

__all__ = ["AccessLog"]


# Writes of at most PIPE_BUF bytes to a pipe are atomic: with ``--workers``, several
# processes share one stdout, and bigger writes could interleave halves of lines.
_PIPE_BUF = 4096


def _blocks(lines: list[bytes]) -> list[bytes]:
    """Whole lines joined into blocks of at most ``_PIPE_BUF`` bytes (a longer line alone).

    >>> [len(b) for b in _blocks([b"x" * 3000, b"y" * 3000, b"z" * 10])]
    [3001, 3012]
    """
    blocks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > _PIPE_BUF:
            blocks.append(b"\n".join(current) + b"\n")
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        blocks.append(b"\n".join(current) + b"\n")
    return blocks


class AccessLog:
    """Buffered JSON lines to a binary stream (``sys.stdout.buffer`` for the server)."""

    def __init__(self, stream: BinaryIO, *, interval: float = 0.2, max_lines: int = 512) -> None:
        import orjson

        self._dumps = orjson.dumps
        self.stream = stream
        self.interval = interval
        self.max_lines = max_lines
        self._lines: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    def write(self, record: dict[str, Any]) -> None:
        self._lines.append(self._dumps(record))
        if len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        with contextlib.suppress(OSError, ValueError):  # a closed stdout must not stop serving
            for block in _blocks(lines):
                self.stream.write(block)
                self.stream.flush()

    def start(self) -> None:
        """Flush every ``interval`` seconds from the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.flush()
