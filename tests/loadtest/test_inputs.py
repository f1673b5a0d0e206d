"""Parsing what users type: durations, URLs, headers; and the request bytes built from them."""

from __future__ import annotations

import pytest

from forgeml.errors import UsageError
from forgeml.loadtest import parse_duration
from forgeml.loadtest.target import build_request, parse_header, parse_target


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20s", 20.0),
        ("1m", 60.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("2.5s", 2.5),
        (".5s", 0.5),
        ("0", 0.0),
        ("15", 15.0),
        (" 3S ", 3.0),
        (1.25, 1.25),
        (0, 0.0),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "s", "20x", "-1s", "1s-", "ten seconds", "1e3s", "nan", "inf"]
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="is not a duration"):
        parse_duration(text, name="--duration")


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, True])
def test_bad_numeric_durations(value: float) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("url", "path", "expected"),
    [
        ("http://127.0.0.1:8000", None, ("127.0.0.1", 8000, "127.0.0.1:8000", "/")),
        ("127.0.0.1:8000/predict", None, ("127.0.0.1", 8000, "127.0.0.1:8000", "/predict")),
        ("http://localhost/ping?x=1", None, ("localhost", 80, "localhost", "/ping?x=1")),
        ("http://[::1]:9/a", "/b", ("::1", 9, "[::1]:9", "/b")),
        ("HTTP://Example.COM:81", None, ("example.com", 81, "example.com:81", "/")),
    ],
)
def test_targets(url: str, path: str | None, expected: tuple) -> None:
    t = parse_target(url, path=path)
    assert (t.host, t.port, t.authority, t.path) == expected


@pytest.mark.parametrize(
    ("url", "path", "message"),
    [
        ("https://127.0.0.1:8443", None, "only http:// is supported"),
        ("ftp://127.0.0.1", None, "only http:// is supported"),
        ("http://:8000", None, "names no host"),
        ("http://127.0.0.1:99999", None, "not a valid URL"),
        ("http://user:pw@127.0.0.1", None, "credentials in the URL"),
        ("http://127.0.0.1", "predict", "must start with /"),
        ("http://127.0.0.1", "/a b", "must start with /"),
    ],
)
def test_bad_targets(url: str, path: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_target(url, path=path)


def test_headers() -> None:
    assert parse_header("X-Key:abc") == ("X-Key", "abc")
    assert parse_header("Accept:  application/json ") == ("Accept", "application/json")
    for bad, message in [
        ("no colon", "is not NAME:VALUE"),
        ("Bad Name: x", "is not NAME:VALUE"),
        ("X: a\r\nInjected: 1", "line break"),
        ("Transfer-Encoding: chunked", "set by the load generator"),
        ("connection: close", "set by the load generator"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_header(bad)


def test_request_bytes() -> None:
    target = parse_target("http://127.0.0.1:8000/predict")
    get = build_request("get", target)
    assert (
        get
        == b"GET /predict HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: forgeml-loadtest\r\n\r\n"
    )
    post = build_request(
        "POST", target, [("Host", "model.internal"), ("Content-Type", "text/csv")], b"a,b\n1,2\n"
    )
    head, body = post.split(b"\r\n\r\n")
    assert body == b"a,b\n1,2\n"
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /predict HTTP/1.1"
    assert "Host: model.internal" in lines and "Content-Type: text/csv" in lines
    assert "Content-Length: 8" in lines and not any(line.startswith("Host: 127") for line in lines)
    assert b"Content-Length: 0" in build_request("POST", target)
    with pytest.raises(UsageError, match="must be ASCII"):
        build_request("GET", target, {"X-Name": "café"})
