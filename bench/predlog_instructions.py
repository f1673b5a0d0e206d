"""The prediction log's cost per request, counted in instructions (deterministic).

Throughput on a shared 2-core machine swings by ±20% between rounds of the same server,
more than the effect of the prediction log (issue 4's goal: ≤ 10% throughput loss). This
benchmark counts instead: the same forgeml ASGI app (``adult@champion`` from
``bench/serving.py``'s registry, built if missing; access log off) answers ``--requests`` one-row
``POST /predict`` requests from ``--concurrency`` in-process clients, once with the
prediction log off and once on, each under ``valgrind --tool=callgrind`` with
instrumentation switched on only around the measured requests. Callgrind counts the
instructions of every thread separately; the event loop's thread is the one a saturated
server runs out of, so its instructions per request, log on vs off, say what the log
costs there. Garbage collection is part of them.

Batches are always handed to the model thread (``INLINE_ROWS = 0``) so that the loop's
count does not depend on how requests happened to be batched, and the log flushes every
``--flush-rows`` rows (not every 0.25 s: under valgrind that would be a few requests per
flush, whose fixed cost would swamp the per-row cost a real flush of thousands has).

Run: ``.venv/bin/python bench/predlog_instructions.py`` (about 3 minutes; valgrind is on
every machine of the project). Results: ``bench/results/predlog_instructions.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import CACHE, machine_info, now_iso, versions, write_result

REGISTRY = CACHE / "serving" / "registry"
BODY = CACHE / "serving" / "records.json"


# --- the measured process (run under valgrind) ------------------------------------------------


async def _one(app: Any, body: bytes) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    sent = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise SystemExit(f"predict answered {status}")


async def _serve(log: bool, concurrency: int, per_client: int, signal: Path) -> None:
    from forgeml.serving import predlog, service
    from forgeml.serving.app import create_app
    from forgeml.serving.config import ServeConfig

    service.INLINE_ROWS = 0  # every batch to the model thread (see the module docstring)
    flush_rows = int(os.environ["FLUSH_ROWS"])
    init = predlog.PredictionLog.__init__

    def counted(self: Any, location: Any, **kwargs: Any) -> None:
        init(self, location, flush_rows=flush_rows, flush_seconds=1e6, write_seconds=1e6)

    predlog.PredictionLog.__init__ = counted  # type: ignore[method-assign]
    folder = tempfile.mkdtemp(prefix="forgeml-predlog-")
    config = ServeConfig(
        models=["adult@champion"], registry=str(REGISTRY), access_log=False,
        prediction_log=folder if log else None, drift_seconds=0,
    )  # fmt: skip
    app = create_app(config)
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"].endswith(("complete", "failed")):
            done.set()

    await messages.put({"type": "lifespan.startup"})
    life = asyncio.create_task(app({"type": "lifespan"}, messages.get, lifespan_send))
    await done.wait()
    body = BODY.read_bytes()

    async def client(n: int) -> None:
        for _ in range(n):
            await _one(app, body)

    await asyncio.gather(*(client(50) for _ in range(concurrency)))  # warm-up
    signal.with_suffix(".ready").write_text("ready")
    while not signal.with_suffix(".go").exists():
        await asyncio.sleep(0.05)
    await asyncio.gather(*(client(per_client) for _ in range(concurrency)))
    signal.with_suffix(".done").write_text("done")
    while not signal.with_suffix(".stop").exists():
        await asyncio.sleep(0.05)
    done.clear()
    await messages.put({"type": "lifespan.shutdown"})
    await done.wait()
    await life
    shutil.rmtree(folder, ignore_errors=True)


# --- the driver ---------------------------------------------------------------------------------


def _wait_for(path: Path, proc: subprocess.Popen[Any], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise SystemExit(f"the measured process exited {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"no {path.name} after {timeout:.0f} s")
        time.sleep(0.5)


def measure(mode: str, work: Path, args: argparse.Namespace) -> subprocess.Popen[Any]:
    """Start one measured process under callgrind; the caller drives and collects it."""
    signal = work / mode
    out = work / f"callgrind-{mode}.out"
    env = {**os.environ, "FLUSH_ROWS": str(args.flush_rows)}
    cmd = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
        f"--callgrind-out-file={out}", sys.executable, __file__, "--child", mode,
        "--signal", str(signal), "--concurrency", str(args.concurrency),
        "--requests", str(args.requests),
    ]  # fmt: skip
    log = (work / f"{mode}.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def drive(mode: str, proc: subprocess.Popen[Any], work: Path) -> None:
    signal = work / mode
    _wait_for(signal.with_suffix(".ready"), proc)
    subprocess.run(
        ["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True
    )
    signal.with_suffix(".go").write_text("go")
    _wait_for(signal.with_suffix(".done"), proc)
    subprocess.run(
        ["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True
    )
    signal.with_suffix(".stop").write_text("stop")
    if proc.wait(timeout=600) != 0:
        raise SystemExit(f"{mode}: the measured process failed; see {work / f'{mode}.log'}")


def thread_totals(work: Path, mode: str) -> dict[int, int]:
    """Instructions per thread (callgrind's ``-NN`` files: 01 is the main thread)."""
    totals = {}
    for path in sorted(work.glob(f"callgrind-{mode}.out-*")):
        found = re.search(r"^totals: (\d+)", path.read_text(errors="replace"), re.M)
        totals[int(path.name.rsplit("-", 1)[1])] = int(found.group(1)) if found else 0
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1280, help="measured requests")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--flush-rows", type=int, default=640)
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    parser.add_argument("--signal", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    per_client = max(1, args.requests // args.concurrency)
    if args.child:
        import uvloop

        uvloop.run(_serve(args.child == "on", args.concurrency, per_client, args.signal))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if not REGISTRY.exists() or not BODY.exists():
        from serving import WORK, prepare  # bench/serving.py builds the same registry

        prepare(WORK)
    requests = per_client * args.concurrency
    with tempfile.TemporaryDirectory(prefix="forgeml-callgrind-") as tmp:
        work = Path(tmp)
        started = {mode: measure(mode, work, args) for mode in ("off", "on")}  # in parallel
        for mode, proc in started.items():
            drive(mode, proc, work)
        totals = {mode: thread_totals(work, mode) for mode in started}
    loop = {mode: totals[mode][1] / requests for mode in totals}
    others = {mode: sum(v for k, v in totals[mode].items() if k != 1) / requests for mode in totals}
    added = loop["on"] / loop["off"] - 1
    rows = [[mode, f"{loop[mode]:,.0f}", f"{others[mode]:,.0f}"] for mode in ("off", "on")]
    print(f"event-loop instructions per request: off {loop['off']:,.0f}, on {loop['on']:,.0f} "
          f"(+{added:.1%})")  # fmt: skip
    write_result(
        "predlog_instructions",
        {
            "title": "Prediction log: event-loop instructions per request, on vs off (callgrind)",
            "date": now_iso(),
            "machine": {
                **machine_info(),
                "shared": False,
                "note": "Instruction counts do not depend on what else runs on the machine.",
            },
            "versions": versions(["forgeml", "pyarrow", "orjson", "uvloop", "lightgbm"]),
            "parameters": {
                "requests": requests,
                "concurrency": args.concurrency,
                "flush_rows": args.flush_rows,
                "model": "adult@champion (bench/serving.py's registry)",
                "counted": "callgrind instructions per thread, measured requests only",
            },
            "table": {
                "headers": ["prediction log", "event-loop instr./request", "other threads"],
                "rows": rows,
            },
            "goal": {
                "text": "supporting measure for issue 4 (throughput loss ≤ 10%): instructions "
                "the log adds on the event loop, which a saturated server runs out of",
                "measured": f"+{added:.1%} event-loop instructions per request with the log",
                "met": None,
            },
            "results": [
                {
                    "log": mode,
                    "loop_per_request": round(loop[mode]),
                    "other_threads_per_request": round(others[mode]),
                    "threads": totals[mode],
                }
                for mode in ("off", "on")
            ],
        },
    )


if __name__ == "__main__":
    main()
