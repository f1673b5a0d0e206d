"""Serving: forgeml serve vs ``mlflow models serve`` vs a BentoML service vs a bare echo.

Goals (issue 3), same LightGBM model on UCI Adult, one run, servers and load generator on
loopback: forgeml's throughput ≥ 2× MLflow's and ≥ BentoML's, ≥ 60% of a bare
FastAPI/uvicorn echo endpoint (the ceiling: no parsing, no model); p99 ≤ 10 ms at half of
forgeml's own maximum throughput; micro-batching beats no batching at 64 connections.

Contenders, one at a time, each in its own process with one worker:

* ``echo``: FastAPI + uvicorn (uvloop, httptools, no access log) returning the request body;
* ``forgeml``: ``forgeml serve adult@champion`` with its defaults (micro-batching, JSON
  access log on, written to a file), ``POST /predict`` ``{"records": [row]}``;
* ``forgeml-logging``: the same with ``--prediction-log`` (every prediction to Parquet);
* ``forgeml-logging-pg``: the same logging to PostgreSQL (a fresh database on the local
  server, ``FORGEML_BENCH_POSTGRES_URL``; dropped afterwards), which runs on the same 2
  cores as the server and the load generator — a pessimistic case, reported beside the
  goal rather than judged by it;
* ``forgeml-nobatch``: the same with ``--batch-rows 1`` (every request its own model call);
* ``mlflow``: ``mlflow models serve --env-manager local`` of the peer pipeline saved with
  ``mlflow.sklearn``, ``POST /invocations`` ``{"dataframe_records": [row]}``;
* ``bentoml``: a BentoML 1.4 service (own virtualenv under ``bench/.cache``) loading the same
  peer pipeline, ``POST /predict`` ``{"records": [row]}``, its defaults (access log on).

The peers' model is the same LightGBM (same rows, trees, learning rate and leaves) inside
the scikit-learn pipeline a user of those tools would write (see ``_adult_models.py``).
Every request carries one real test row. Load: ``wrk`` (Debian package) with one thread at
16 and 64 connections when it is installed, else ``forgeml loadtest`` (a Python client
that takes CPU from the server: the file records which). The 2 cores are shared by server
and load generator. The p99 check drives forgeml open-loop at half its best throughput
with ``forgeml loadtest --rate``.

All servers run side by side (an idle one takes no CPU) and are measured in ``--rounds``
rounds of ``--duration`` seconds, in alternating order, so that changes in the machine's
load fall on all of them alike; each figure is the round with the median throughput.

Run: ``.venv/bin/python bench/serving.py [--duration 5 --rounds 3 --connections 16,64]``.
Results: a table on stdout and ``bench/results/serving.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _adult_models import booster_shape, forgeml_registry, peer_pipeline, test_records
from _common import (
    CACHE,
    format_table,
    machine_info,
    now_iso,
    peer_python,
    peer_versions,
    versions,
    write_result,
)

NAME = "serving"
WORK = CACHE / "serving"
VENV_BIN = Path(sys.executable).parent
BENTO_PINS = ["bentoml>=1.4,<1.5", "pandas"]
PG_ADMIN_URL = os.environ.get(
    "FORGEML_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ECHO_APP = """
import sys, uvicorn
from fastapi import FastAPI, Request, Response
app = FastAPI()
@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")
@app.get("/health")
async def health() -> dict:
    return {"ok": True}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            access_log=False, log_level="warning")
"""
BENTO_SERVICE = """
from typing import Any
import bentoml, joblib, pandas as pd

@bentoml.service(workers=1)
class AdultService:
    def __init__(self) -> None:
        self.model = joblib.load("peer_model.joblib")

    @bentoml.api
    def predict(self, records: list[dict[str, Any]]) -> list[float]:
        return self.model.predict_proba(pd.DataFrame(records))[:, 1].tolist()
"""
WRK_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""


# --- set-up ----------------------------------------------------------------------------------


def prepare(work: Path) -> dict[str, Any]:
    """The forgeml registry, the peer pipeline (joblib and MLflow folder) and the bodies."""
    work.mkdir(parents=True, exist_ok=True)
    registry = forgeml_registry(work)
    shape = booster_shape(registry)
    mlflow_dir = work / "mlflow_model"
    if not (work / "peer_model.joblib").is_file() or not mlflow_dir.is_dir():
        import joblib
        import mlflow.sklearn

        pipeline = peer_pipeline(shape)
        joblib.dump(pipeline, work / "peer_model.joblib")
        shutil.rmtree(mlflow_dir, ignore_errors=True)
        mlflow.sklearn.save_model(
            pipeline,
            str(mlflow_dir),
            serialization_format="skops",
            skops_trusted_types=[
                "lightgbm.sklearn.LGBMClassifier",
                "lightgbm.basic.Booster",
                "collections.OrderedDict",
            ],
        )
    (work / "bento_service.py").write_text(BENTO_SERVICE)
    row = test_records(1)[0]
    bodies = {
        "records": json.dumps({"records": [row]}),
        "mlflow": json.dumps({"dataframe_records": [row]}),
    }
    for name, body in bodies.items():
        (work / f"{name}.json").write_text(body)
        (work / f"{name}.lua").write_text(WRK_LUA.format(body=body))
    return {"registry": registry, "shape": shape, "row": row}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """An empty ``forgeml_bench`` database on the local PostgreSQL server, dropped on exit."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    drop = "DROP DATABASE IF EXISTS forgeml_bench WITH (FORCE)"

    def execute(*statements: str) -> None:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))

    try:
        execute(drop, "CREATE DATABASE forgeml_bench")
    except sa.exc.OperationalError as exc:
        raise SystemExit(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc.orig}") from None
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/forgeml_bench"
    finally:
        execute(drop)
        admin.dispose()


def contenders(
    work: Path, registry: Path, bento_python: Path | None, pg_url: str | None = None
) -> dict[str, dict]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    forgeml = [str(VENV_BIN / "forgeml"), "serve", "adult@champion", "--registry", str(registry)]
    found: dict[str, dict[str, Any]] = {
        "echo": {
            "cmd": lambda p: [sys.executable, "-c", ECHO_APP, str(p)],
            "health": "/health",
            "path": "/echo",
            "body": "records",
        },
        "forgeml": {
            "cmd": lambda p: [*forgeml, "--port", str(p), "--no-log-predictions"],
            "health": "/v2/health/ready",
            "path": "/predict",
            "body": "records",
        },
        "forgeml-logging": {
            "cmd": lambda p: [
                *forgeml,
                "--port",
                str(p),
                "--prediction-log",
                str(work / "predlog"),
            ],
            "health": "/v2/health/ready",
            "path": "/predict",
            "body": "records",
        },
        "forgeml-logging-pg": {
            "cmd": lambda p: [*forgeml, "--port", str(p), "--prediction-log", str(pg_url)],
            "health": "/v2/health/ready",
            "path": "/predict",
            "body": "records",
        },
        "forgeml-nobatch": {
            "cmd": lambda p: [
                *forgeml,
                "--port",
                str(p),
                "--batch-rows",
                "1",
                "--no-log-predictions",
            ],
            "health": "/v2/health/ready",
            "path": "/predict",
            "body": "records",
        },
        "mlflow": {
            "cmd": lambda p: [
                str(VENV_BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                str(work / "mlflow_model"),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(p),
                "--workers",
                "1",
            ],
            "health": "/ping",
            "path": "/invocations",
            "body": "mlflow",
        },
    }
    if bento_python is not None:
        found["bentoml"] = {
            "cmd": lambda p: [
                str(bento_python.parent / "bentoml"),
                "serve",
                "bento_service:AdultService",
                "--host",
                "127.0.0.1",
                "--port",
                str(p),
            ],
            "health": "/readyz",
            "path": "/predict",
            "body": "records",
        }
    for spec in found.values():
        spec["env"] = env
    return found


@contextlib.contextmanager
def serving(name: str, spec: dict[str, Any], work: Path) -> Iterator[str]:
    """Start one server, wait until its health route answers 200, yield its base URL."""
    port = free_port()
    log = (work / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        spec["cmd"](port),
        cwd=work,
        env=spec["env"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited {proc.returncode}; see {work / f'{name}.log'}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(base + spec["health"], timeout=2) as answer,
            ):
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not become ready; see {work / f'{name}.log'}")
            time.sleep(0.3)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def post(url: str, body: str) -> Any:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


# --- load ------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk_load(url: str, lua: Path, connections: int, seconds: float) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, flags=re.M))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(lat["50"]),
        "p90_ms": _ms(lat["90"]),
        "p99_ms": _ms(lat["99"]),
        "requests": total,
        "errors": int(bad.group(1)) if bad else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
    }


def python_load(url: str, body: Path, connections: int | None, seconds: float, rate: float | None):
    cmd = [str(VENV_BIN / "forgeml"), "loadtest", url, "--body", str(body), "-d", f"{seconds:g}s"]
    cmd += ["--rate", f"{rate:g}"] if rate else ["-c", str(connections)]
    done = subprocess.run([*cmd, "-O", "json"], capture_output=True, text=True, check=True)
    data = json.loads(done.stdout)
    lat = data.get("latency_ms") or {}
    return {
        "rps": data["throughput_rps"],
        "p50_ms": lat.get("p50"),
        "p90_ms": lat.get("p90"),
        "p99_ms": lat.get("p99"),
        "requests": data["completed"],
        "errors": data["completed"] - data["ok"] + sum((data.get("errors") or {}).values()),
        "client_cpu_percent": data.get("client_cpu_percent"),
        "dispatch_lag_p99_ms": (data.get("dispatch_lag_ms") or {}).get("p99"),
    }


def load(url: str, work: Path, body: str, connections: int, seconds: float, use_wrk: bool):
    if use_wrk:
        return wrk_load(url, work / f"{body}.lua", connections, seconds)
    return python_load(url, work / f"{body}.json", connections, seconds, None)


# --- main ------------------------------------------------------------------------------------


def check_answer(name: str, answer: Any) -> float:
    """The positive-class probability from each server's answer (a sanity check)."""
    if name == "echo":
        return float("nan")
    if name.startswith("forgeml"):
        return float(answer["probabilities"][0][-1])
    if name == "mlflow":
        value = answer["predictions"][0]
        return float(value[1] if isinstance(value, list) else value)
    return float(answer[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load first")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per figure")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--only", action="append", default=[], help="run only these")
    parser.add_argument("--no-wrk", action="store_true", help="use forgeml loadtest")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--title", default=None, help="a title for the result file")
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",")]
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    setup = prepare(WORK)
    bento = None
    if not args.only or "bentoml" in args.only:
        bento = peer_python("bentoml", [*BENTO_PINS, *_same_model_pins()])
    answers: dict[str, float] = {}
    rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        # PostgreSQL logging only when asked for by name: it needs the local server
        pg_url = (
            stack.enter_context(fresh_database()) if "forgeml-logging-pg" in args.only else None
        )
        servers = contenders(WORK, setup["registry"], bento, pg_url)
        if args.only:
            servers = {k: v for k, v in servers.items() if k in args.only}
        else:
            del servers["forgeml-logging-pg"]
        for name, spec in servers.items():  # all up at once; idle ones take no CPU
            print(f"starting {name}", flush=True)
            urls[name] = stack.enter_context(serving(name, spec, WORK)) + spec["path"]
            body = (WORK / f"{spec['body']}.json").read_text()
            answers[name] = check_answer(name, post(urls[name], body))
            load(urls[name], WORK, spec["body"], levels[-1], args.warmup, use_wrk)
        # Rounds, the servers in alternating order: drift in the machine's load falls on
        # every server alike; each figure is the median round.
        for i in range(args.rounds):
            order = list(servers) if i % 2 == 0 else list(reversed(servers))
            for name in order:
                for connections in levels:
                    body = servers[name]["body"]
                    figures = load(urls[name], WORK, body, connections, args.duration, use_wrk)
                    rounds.setdefault((name, connections), []).append(figures)
                    print(
                        f"round {i + 1} {name} c={connections}: {figures['rps']:.0f} req/s, "
                        f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms",
                        flush=True,
                    )
        results = [
            {"server": name, "connections": c, **median_round(done)}
            for (name, c), done in rounds.items()
        ]
        if "forgeml" in urls:
            best = max(r["rps"] for r in results if r["server"] == "forgeml")
            half = python_load(urls["forgeml"], WORK / "records.json", None, 20.0, best / 2)
            half.update(server="forgeml", connections="open loop", target_rps=round(best / 2, 1))
            results.append(half)
            print(f"open loop at {best / 2:.0f} req/s: p99 {half['p99_ms']:.2f} ms")
        logs = {
            name: log_counters(urls[name].removesuffix(servers[name]["path"]))
            for name in servers
            if name.startswith("forgeml-logging")
        }
    report(results, answers, setup, use_wrk, bento, args, logs)


def log_counters(base: str) -> dict[str, int]:
    """The prediction log's written/dropped rows and failed writes so far (from
    ``/metrics``): the logging servers must have logged, and lost nothing."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        page = response.read().decode()
    found = re.findall(r"^forgeml_prediction_log_(written|dropped|errors)_total (\S+)$", page, re.M)
    return {kind: int(float(value)) for kind, value in found}


def median_round(done: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput, plus every round's throughput."""
    ranked = sorted(done, key=lambda r: r["rps"])
    middle = dict(ranked[(len(ranked) - 1) // 2])
    middle["rps_rounds"] = [round(r["rps"], 1) for r in done]
    return middle


def _same_model_pins() -> list[str]:
    """The peer venv gets forgeml's scikit-learn and LightGBM, so the pickle loads as is."""
    from importlib import metadata

    return [f"{p}=={metadata.version(p)}" for p in ("scikit-learn", "lightgbm", "joblib")]


def _get(results: list[dict], server: str, connections: Any) -> dict[str, Any] | None:
    return next(
        (r for r in results if r["server"] == server and r["connections"] == connections), None
    )


def goals(results: list[dict[str, Any]], levels: list[int]) -> tuple[bool | None, list[str]]:
    """Each goal's verdict, worst case over the connection levels."""
    checks: list[tuple[str, bool]] = []
    for c in levels:
        ours = _get(results, "forgeml", c)
        if ours is None:
            continue
        for peer, factor in (("mlflow", 2.0), ("bentoml", 1.0), ("echo", 0.6)):
            theirs = _get(results, peer, c)
            if theirs:
                ratio = ours["rps"] / theirs["rps"]
                checks.append(
                    (f"c={c}: forgeml/{peer} = {ratio:.2f}x (goal ≥ {factor:g}x)", ratio >= factor)
                )
    half = _get(results, "forgeml", "open loop")
    if half:
        checks.append(
            (
                f"p99 at {half['target_rps']:.0f} req/s (half of max) = {half['p99_ms']:.2f} ms (goal ≤ 10 ms)",
                half["p99_ms"] <= 10,
            )
        )
    reported: list[str] = []  # measured beside the goals, not judged
    for c in levels:
        ours = _get(results, "forgeml", c)
        logged, logged_pg = (
            _get(results, "forgeml-logging", c),
            _get(results, "forgeml-logging-pg", c),
        )
        if ours and logged:
            ratio = paired_ratio(logged, ours)
            checks.append(
                (f"c={c}: with the prediction log {ratio:.2f}x the throughput without "
                 "(median of paired rounds; goal ≥ 0.9x)", ratio >= 0.9)
            )  # fmt: skip
        if ours and logged_pg:
            reported.append(
                f"c={c}: logging to PostgreSQL on the same 2 cores {paired_ratio(logged_pg, ours):.2f}x "
                "the throughput without (median of paired rounds; not judged)"
            )
    ours, solo = _get(results, "forgeml", levels[-1]), _get(results, "forgeml-nobatch", levels[-1])
    if ours and solo:
        checks.append(
            (
                f"c={levels[-1]}: batching {ours['rps']:.0f} vs no batching {solo['rps']:.0f} req/s",
                ours["rps"] > solo["rps"],
            )
        )
    lines = [f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks] + reported
    return (all(ok for _, ok in checks) if checks else None), lines


def paired_ratio(on: dict[str, Any], off: dict[str, Any]) -> float:
    """Throughput of ``on`` over ``off``, paired by round (they ran back to back, in
    alternating order): the median of the per-round ratios, which the machine's drift
    between rounds moves far less than a ratio of each server's own median round."""
    pairs = zip(on["rps_rounds"], off["rps_rounds"], strict=True)
    return statistics.median(a / b for a, b in pairs)


def report(results, answers, setup, use_wrk, bento, args, logs) -> None:
    levels = [int(c) for c in args.connections.split(",")]
    headers = ["server", "connections", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors"]
    rows = [
        [
            r["server"],
            r["connections"],
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            r["errors"],
        ]
        for r in results
    ]
    print("\n" + format_table(headers, rows))
    notes = [
        f"{name}: {c.get('written', 0):,} rows written by the end of the run "
        f"(the rest still queued), {c.get('dropped', 0):,} dropped, {c.get('errors', 0)} "
        "failed writes"
        for name, c in logs.items()
    ]
    if "forgeml-logging-pg" in logs:
        notes.append(
            "forgeml-logging-pg logs to the PostgreSQL server on the same machine, whose "
            "work takes CPU from the 2 cores the server and wrk share: a pessimistic case."
        )
    for note in notes:
        print(f"  {note}")
    met, lines = goals(results, levels)
    for line in lines:
        print("  " + line)
    peers = {
        "forgeml": versions(["forgeml", "uvicorn", "starlette", "lightgbm", "mlflow", "fastapi"])
    }
    if bento is not None:
        peers["bentoml venv"] = peer_versions(
            bento, ["bentoml", "lightgbm", "scikit-learn", "pandas"]
        )
    generator = "wrk 4 (-t1)" if use_wrk else "forgeml loadtest (Python, shares the CPUs)"
    data = {
        "title": args.title
        or "Serving: forgeml serve vs mlflow models serve vs BentoML vs a bare echo",
        "command": " ".join(["bench/serving.py", *(f"--only {o}" for o in args.only)]),
        "date": now_iso(),
        "machine": machine_info(),
        "versions": peers,
        "parameters": {
            "model": f"LightGBM on UCI Adult, {setup['shape']['n_estimators']} trees",
            "request": "one real test row per request",
            "duration_s": args.duration,
            "rounds": args.rounds,
            "load_generator": generator,
            "workers": 1,
        },
        "results": results,
        "answers_for_the_same_row": answers,
        "prediction_log_so_far": logs,
        "table": {"headers": headers, "rows": rows},
        "goal": {
            "text": (
                "with the prediction log on, throughput ≥ 90% of forgeml's without it "
                "(and p99 ≤ 10 ms at half the max)"
                if {r["server"] for r in results} - {"forgeml-logging-pg"}
                == {"forgeml", "forgeml-logging"}
                else "forgeml ≥ 2× MLflow and ≥ BentoML throughput, ≥ 60% of the bare echo, "
                "p99 ≤ 10 ms at half its max throughput, batching > no batching at 64 connections"
            ),
            "measured": "; ".join(lines),
            "met": met,
        },
        "notes": [
            f"Server and load generator ({generator}) share the machine's 2 cores; each "
            "server runs one worker process.",
            "The p99 check is open loop for 20 s (requests at fixed times, latency counted "
            "from each request's due time) with forgeml loadtest, which also takes CPU from "
            "the server.",
            "Peers serve the same LightGBM (same rows, trees and hyper-parameters) in the "
            "scikit-learn pipeline their users would write, predicting with one thread "
            "(n_jobs=1) as forgeml does; each server keeps its default access log "
            "(forgeml's JSON lines and BentoML's), the echo has none.",
            *notes,
        ],
    }
    write_result(NAME, data, args.out)


if __name__ == "__main__":
    main()
