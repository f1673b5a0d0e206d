"""What the load generator talks to: one ``http://`` URL the user named, and the request bytes.

Only the host in the URL is ever contacted: there is no default remote target, redirects
are not followed, and a ``Host`` header changes what the server sees, not where the
connection goes.

>>> t = parse_target("localhost:8000", path="/predict?explain=1")
>>> (t.host, t.port, t.authority, t.path, t.url)
('localhost', 8000, 'localhost:8000', '/predict?explain=1', 'http://localhost:8000/predict?explain=1')
>>> build_request("POST", t, [("X-Api-Key", "k")], b'{"records":[]}').decode()
'POST /predict?explain=1 HTTP/1.1\\r\\nHost: localhost:8000\\r\\nUser-Agent: forgeml-loadtest\\r\\nX-Api-Key: k\\r\\nContent-Type: application/json\\r\\nContent-Length: 14\\r\\n\\r\\n{"records":[]}'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from forgeml.errors import UsageError

__all__ = ["Target", "build_request", "parse_header", "parse_target"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Framing is the client's job: a user value here would desynchronise the connection.
_RESERVED = {"content-length", "transfer-encoding", "connection", "upgrade", "expect"}


@dataclass(frozen=True)
class Target:
    """Where requests go: ``host``/``port`` to connect to, ``authority`` for the Host
    header, ``path`` (with its query) for the request line, ``url`` for messages."""

    host: str
    port: int
    authority: str
    path: str

    @property
    def url(self) -> str:
        return f"http://{self.authority}{self.path}"


def parse_target(url: str, *, path: str | None = None) -> Target:
    """The target of ``url`` (``http://`` assumed when no scheme is given).

    ``path`` replaces the URL's path and query; without either, the path is ``/``.

    >>> parse_target("http://[::1]:9000/v2/health/ready").authority
    '[::1]:9000'
    >>> parse_target("https://example.com")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: https://example.com: only http:// is supported (load-test the server's own port, not a TLS proxy)
    """
    text = url.strip()
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port or 80
    except ValueError as exc:
        raise UsageError(f"{url}: not a valid URL ({exc})") from None
    if parts.scheme.lower() != "http":
        raise UsageError(
            f"{url}: only http:// is supported (load-test the server's own port, not a TLS proxy)"
        )
    if not parts.hostname:
        raise UsageError(f"{url}: the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"{url}: credentials in the URL are not supported; use --header")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == 80 else f"{shown}:{port}"
    if path is None:
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
    if not path.startswith("/") or any(c in path for c in " \r\n\t\0"):
        raise UsageError(f"--path: {path!r} must start with / and contain no spaces")
    return Target(host=host, port=port, authority=authority, path=path)


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` (as given to ``--header``) split into name and value.

    >>> parse_header("Authorization: Bearer abc")
    ('Authorization', 'Bearer abc')
    >>> parse_header("Content-Length: 3")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: --header: 'Content-Length' is set by the load generator itself
    """
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.fullmatch(name):
        raise UsageError(f"--header: {text!r} is not NAME:VALUE")
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"--header: the value of {name!r} contains a line break")
    if name.lower() in _RESERVED:
        raise UsageError(f"--header: {name!r} is set by the load generator itself")
    return name, value


def build_request(
    method: str,
    target: Target,
    headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    body: bytes | None = None,
) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request.

    ``Host`` and ``User-Agent`` are added unless ``headers`` has them; a body gets
    ``Content-Type: application/json`` unless ``headers`` has one, and ``Content-Length``.
    """
    if not _TOKEN.fullmatch(method):
        raise UsageError(f"--method: {method!r} is not an HTTP method")
    pairs = [parse_header(f"{k}:{v}") for k, v in _items(headers)]
    given = {name.lower() for name, _ in pairs}
    lines = [f"{method.upper()} {target.path} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {target.authority}")
    if "user-agent" not in given:
        lines.append("User-Agent: forgeml-loadtest")
    lines += [f"{name}: {value}" for name, value in pairs]
    if body is not None:
        if "content-type" not in given:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    elif method.upper() in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    except UnicodeEncodeError:
        raise UsageError(
            "the path and header values must be ASCII (percent-encode the path)"
        ) from None
    return head + (body or b"")


def _items(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> Iterable[tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers
