"""``forgeml loadtest`` as a user runs it: results on stdout, one-line errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from .conftest import Reply


def test_json_output(cli, serve, tmp_path: Path) -> None:
    server = serve()
    result = cli(
        "loadtest", server.url, "-c", "2", "--duration", "1s", "--warmup", "0s", "-O", "json"
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["mode"] == "closed" and data["concurrency"] == 2
    assert data["completed"] > 0 and data["errors"] == {}
    assert data["method"] == "GET" and data["url"] == f"{server.url}/"
    lat = data["latency_ms"]
    assert lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert data["throughput_rps"] == pytest.approx(data["completed"] / data["duration_s"], rel=1e-3)


def test_text_output_with_http_errors_still_exits_0(cli, serve) -> None:
    server = serve(lambda r: Reply(status=503) if r.number % 2 else Reply())
    result = cli("loadtest", server.url, "--rate", "100", "-d", "300ms", "--warmup", "0s")
    assert result.code == 0, result.err
    for word in ("throughput", "latency p99", "error http_503", "open loop, 100 requests/s"):
        assert word in result.out
    assert "loadtest" in result.err  # the start line goes to stderr


@pytest.mark.parametrize("protocol", ["predict", "v2", "mlflow"])
def test_rows_in_each_protocol(
    cli, serve, tmp_path: Path, breast_cancer: pl.DataFrame, protocol: str
) -> None:
    rows = tmp_path / "rows.parquet"
    breast_cancer.head(20).write_parquet(rows)
    server = serve()
    args = ["loadtest", server.url, "--rows", str(rows), "--protocol", protocol, "--batch", "5"]
    args += [
        "--drop",
        "diagnosis",
        "--model",
        "cancer",
        "-n",
        "8",
        "-c",
        "1",
        "--warmup",
        "0",
        "-O",
        "json",
    ]
    result = cli(*args, "-H", "Authorization: Bearer t0k")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["completed"] == 8 and data["rows_per_request"] == 5
    assert data["rows_per_s"] == pytest.approx(40 / data["duration_s"], rel=1e-3)
    paths = {r.path for r in server.requests}
    assert paths == {
        {"predict": "/predict", "v2": "/v2/models/cancer/infer", "mlflow": "/invocations"}[protocol]
    }
    bodies = [json.loads(r.body) for r in server.requests]
    assert len({json.dumps(b) for b in bodies}) == 4  # 20 rows / 5: four distinct bodies
    assert all(r.headers["authorization"] == "Bearer t0k" for r in server.requests)


def test_body_file_and_url_path(cli, serve, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"records":[{"x":1}]}')
    server = serve()
    result = cli(
        "loadtest",
        f"{server.url}/custom",
        "--body",
        str(body),
        "-n",
        "3",
        "-c",
        "1",
        "--warmup",
        "0",
        "-O",
        "json",
    )
    assert result.code == 0, result.err
    assert [(r.method, r.path, r.body) for r in server.requests] == [
        ("POST", "/custom", body.read_bytes())
    ] * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "20 parsecs"], "--duration: '20 parsecs' is not a duration"),
        (["--warmup", "-1s"], "--warmup: '-1s' is not a duration"),
        (["--timeout", "0s"], "--timeout must be longer than 0"),
        (["--rate", "10", "--concurrency", "4"], "exclude each other"),
        (["--body", "missing.json"], "--body: file not found: missing.json"),
        (["--rows", "missing.csv"], "rows file not found: missing.csv"),
        (["--body", "a", "--rows", "b"], "--body and --rows exclude each other"),
        (["--batch", "4"], "--batch and --drop apply to --rows only"),
        (["--protocol", "grpc"], "unknown protocol 'grpc'"),
        (["-H", "no-colon"], "is not NAME:VALUE"),
        (["--rate", "0"], "--rate must be a positive"),
    ],
)
def test_argument_errors_exit_2_with_one_line(
    cli, free_port: int, tmp_path: Path, monkeypatch, args, message
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("loadtest", f"http://127.0.0.1:{free_port}", *args)
    assert result.code == 2
    assert message in result.err
    assert result.err.strip().count("\n") == 0 and result.err.startswith("error: ")
    assert result.out == ""


def test_v2_rows_need_a_model_name(cli, free_port: int, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")
    result = cli(
        "loadtest", f"http://127.0.0.1:{free_port}", "--rows", str(rows), "--protocol", "v2"
    )
    assert result.code == 2 and "needs a model name" in result.err


def test_https_is_refused(cli) -> None:
    result = cli("loadtest", "https://127.0.0.1:8443", "-d", "1s")
    assert result.code == 2 and "only http:// is supported" in result.err


def test_unreachable_server_exits_1_naming_the_url(cli, free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}/predict"
    result = cli("loadtest", url, "-d", "1s", "-O", "json")
    assert result.code == 1
    assert result.err.strip() == f"error: cannot reach {url}: Connection refused"
    assert result.out == ""
