"""A real server process on loopback: alias moves under load, polling, SIGTERM draining."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from tests.serving.conftest import ADMIN_KEY

from forgeml.registry import Registry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, registry: Path, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "FORGEML_ADMIN_KEY": ADMIN_KEY}
        # The server's stderr, for failure messages; closed in _close().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "forgeml.cli.main",
                "serve",
                *args,
                "--registry",
                str(registry),
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                message = self.log_tail() or "server died"
                self._close()
                raise RuntimeError(message)
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()
        return int(self.proc.returncode)

    def log_tail(self, size: int = 4000) -> str:
        """The end of what the server wrote on stderr so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-size:]

    def _close(self) -> None:
        self._log.close()


@pytest.fixture
def registry_copy(served_registry: Path, tmp_path: Path) -> Path:
    target = tmp_path / "reg"
    shutil.copytree(served_registry, target)
    return target


@pytest.fixture
def rows(flights_rows: pl.DataFrame) -> list[dict]:
    return json.loads(flights_rows.head(50).write_json())


def _server(registry: Path, *args: str) -> Iterator[Server]:
    server = Server(registry, *args)
    try:
        yield server
    finally:
        server.stop()


async def _fire(url: str, rows: list[dict], n: int, during=None) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        tasks = [
            asyncio.ensure_future(client.post("/predict", json={"records": rows})) for _ in range(n)
        ]
        if during is not None:
            await asyncio.sleep(0.05)
            await during(client)
        return list(await asyncio.gather(*tasks))


def test_alias_moves_without_dropping_requests(registry_copy: Path, rows: list[dict]) -> None:
    for server in _server(registry_copy, "flights@champion"):

        async def promote(client: httpx.AsyncClient) -> None:
            with Registry.open(str(registry_copy), create=False) as reg:
                reg.set_alias("flights", "champion", 2)
            reload = await client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})
            assert reload.status_code == 200 and any(
                "1 -> 2" in c for c in reload.json()["changes"]
            )

        responses = asyncio.run(_fire(server.url, rows, 60, during=promote))
        assert all(r.status_code == 200 for r in responses)  # nothing dropped or failed
        versions = [r.json()["version"] for r in responses]
        assert set(versions) <= {1, 2}
        after = httpx.post(f"{server.url}/predict", json={"records": rows}).json()
        assert after["version"] == 2
        assert (
            'forgeml_model_info{alias="champion",model="flights",version="2"} 1.0'
            in httpx.get(f"{server.url}/metrics").text
        )


def test_polling_follows_the_registry(registry_copy: Path, rows: list[dict]) -> None:
    for server in _server(registry_copy, "flights@champion", "--poll-seconds", "1"):
        assert httpx.post(f"{server.url}/predict", json={"records": rows}).json()["version"] == 1
        with Registry.open(str(registry_copy), create=False) as reg:
            reg.set_alias("flights", "champion", 2)
        deadline = time.monotonic() + 30
        version = 1
        while version != 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            version = httpx.post(f"{server.url}/predict", json={"records": rows}).json()["version"]
        assert version == 2


def test_sigterm_drains_in_flight_requests(registry_copy: Path, flights_rows: pl.DataFrame) -> None:
    big = json.loads(flights_rows.write_json()) * 5  # 2,000 rows: requests that take a while
    # A deep queue: this test is about draining, not about shedding load.
    server = Server(registry_copy, "flights@champion", "--max-queue-rows", "100000")

    async def run() -> list[httpx.Response]:
        async def stop(client: httpx.AsyncClient) -> None:
            # Signal only once all 12 are accepted (on a busy machine connecting can lag):
            # draining covers requests the server has, not ones still connecting.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                page = (await client.get("/metrics")).text
                inflight = next(
                    float(line.split()[-1])
                    for line in page.splitlines()
                    if line.startswith("forgeml_inflight_requests ")
                )
                if inflight >= 13:  # the 12, and this /metrics request itself
                    break
                await asyncio.sleep(0.01)
            server.proc.send_signal(signal.SIGTERM)

        return await _fire(server.url, big, 12, during=stop)

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 12
    # uvicorn re-raises the signal after draining, so the exit status says "SIGTERM".
    assert server.stop() in (0, -signal.SIGTERM)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/v2/health/live", timeout=2)


def test_a_slow_client_gets_408_and_holds_up_no_one(registry_copy: Path, rows: list[dict]) -> None:
    for server in _server(registry_copy, "flights@champion", "--timeout", "1"):
        with socket.create_connection(("127.0.0.1", server.port)) as slow:
            slow.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"rec'
            )
            started = time.monotonic()
            fast = httpx.post(f"{server.url}/predict", json={"records": rows})
            assert fast.status_code == 200  # served while the slow body trickles
            slow.settimeout(10)
            answer = b""
            while b"did not arrive" not in answer:
                chunk = slow.recv(65536)
                if not chunk:
                    break
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"did not arrive within 1 s" in answer
            assert time.monotonic() - started < 6


def test_several_workers(registry_copy: Path, rows: list[dict]) -> None:
    for server in _server(registry_copy, "flights@champion", "diabetes", "--workers", "2"):
        responses = asyncio.run(_fire(server.url, [{**r} for r in rows], 20))
        assert {r.status_code for r in responses} == {400}  # two models served: must name one
        named = httpx.post(f"{server.url}/predict", json={"model": "flights", "records": rows})
        assert named.status_code == 200 and named.json()["version"] == 1


def test_inputs_logged_for_no_request_still_log_every_prediction(
    registry_copy: Path, rows: list[dict]
) -> None:
    from forgeml.monitoring.store import open_store

    for server in _server(registry_copy, "flights@champion", "--log-inputs", "0"):
        for _ in range(3):
            assert (
                httpx.post(f"{server.url}/predict", json={"records": rows[:4]}).status_code == 200
            )
        assert "the inputs of 0% of requests" in server.log_tail()
    logged = open_store(str(registry_copy / "logs"), create=False).read("predictions")
    assert logged.height == 12 and logged["inputs"].null_count() == 12
    assert logged["score"].null_count() == 0


def test_startup_errors_are_one_line(registry_copy: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "forgeml.cli.main",
            "serve",
            "nope@champion",
            "--registry",
            str(registry_copy),
            "--port",
            str(_free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        done.returncode == 2
        and "no model named 'nope'" in done.stderr
        and "Traceback" not in done.stderr
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "forgeml.cli.main",
            "serve",
            "flights",
            "--admin",
            "--registry",
            str(registry_copy),
            "--port",
            str(_free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("FORGEML_ADMIN")},
    )
    assert done.returncode == 2 and "no admin key" in done.stderr
