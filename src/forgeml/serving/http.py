"""Small HTTP helpers: JSON responses, error bodies, bounded body reading.

Every error answer is ``{"error": "..."}`` with the status of the
:class:`~forgeml.errors.ForgeError` that caused it; overload answers carry
``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from forgeml.errors import ForgeError, RequestError

__all__ = ["content_type", "error_response", "header", "json_response", "read_body"]

_JSON = "application/json"
_JSON_BYTES = _JSON.encode()


class JSONBytes(Response):
    """A JSON response whose header list is built directly (it is on every request's path;
    Starlette's generic header handling costs more than the encoding)."""

    def __init__(self, content: bytes, status: int, headers: dict[str, str] | None) -> None:
        self.status_code = status
        self.background = None
        self.body = content
        raw = [(b"content-type", _JSON_BYTES), (b"content-length", str(len(content)).encode())]
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = raw


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import orjson

    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return JSONBytes(content, status, headers)


def error_response(exc: ForgeError, headers: dict[str, str] | None = None) -> Response:
    status = int(getattr(exc, "http_status", 500))
    extra = dict(headers or {})
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        extra["Retry-After"] = str(max(1, round(retry)))
    return json_response({"error": str(exc)}, status=status, headers=extra)


def header(request: Request, name: bytes) -> str | None:
    """One request header (``name`` in lower case), read straight from the ASGI scope."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def content_type(request: Request) -> str:
    """The media type of the body, without parameters; JSON when the client sent none."""
    value = header(request, b"content-type")
    return "application/json" if value is None else value.split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = header(request, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError("invalid Content-Length header", status=400) from None
        if size > limit:
            raise RequestError(
                f"request body of {size} bytes is over the {limit}-byte limit", status=413
            )
    chunks: list[bytes] = []
    total = 0
    receive = request.receive
    while True:  # the ASGI messages themselves: Request.stream() adds a generator per call
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError("the client went away before sending the whole body", status=400)
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise RequestError(f"request body is over the {limit}-byte limit", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
