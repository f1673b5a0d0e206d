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

__all__ = ["error_response", "json_response", "read_body"]

_JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import orjson

    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return Response(content, status_code=status, media_type=_JSON, headers=headers)


def error_response(exc: ForgeError, headers: dict[str, str] | None = None) -> Response:
    status = int(getattr(exc, "http_status", 500))
    extra = dict(headers or {})
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        extra["Retry-After"] = str(max(1, round(retry)))
    return json_response({"error": str(exc)}, status=status, headers=extra)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
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
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestError(f"request body is over the {limit}-byte limit", status=413)
        chunks.append(chunk)
    return b"".join(chunks)
