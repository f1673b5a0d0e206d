"""Shared helpers for forgeml's benchmarks: machine facts, timing, results, peer virtualenvs.

Every benchmark compares forgeml with the tool a user would otherwise use, side by side in
one run on the same machine. Peers live in their own virtualenvs under ``bench/.cache/``
(git-ignored) so their pins never touch forgeml's environment; :func:`peer_python` creates
or reuses one and :func:`run_json` runs a script in it and reads back its JSON answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
CACHE = BENCH / ".cache"
SHARED_NOTE = (
    "The 2 CPUs were shared with other engineers' work during the run: absolute times are "
    "noisy; compare the ratios measured side by side in the same run."
)


# --- data ------------------------------------------------------------------------------------


def datasets_dir() -> Path:
    """``$FORGEML_DATASETS``, else ``../shared/datasets`` next to the repository."""
    return Path(os.environ.get("FORGEML_DATASETS") or ROOT.parent / "shared" / "datasets")


def dataset_path(name: str, *, required: bool = True) -> Path | None:
    """The path of a shared dataset file; exits with a clear message when it is absent."""
    path = datasets_dir() / name
    if path.is_file():
        return path
    if required:
        raise SystemExit(
            f"dataset not found: {path}\n"
            "Set FORGEML_DATASETS to the folder holding it (default: ../shared/datasets "
            "relative to the repository root)."
        )
    return None


# --- machine and versions --------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS and Python of this machine, with the shared-CPU caveat."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "shared": True,
        "note": SHARED_NOTE,
    }


def versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``packages`` in this interpreter (missing ones are left out)."""
    found = {"python": platform.python_version()}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- results ---------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON: temp file in the same folder, fsync, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_result(name: str, data: dict[str, Any], out: Path | None = None) -> Path:
    """Write ``bench/results/<name>.json`` (or ``out``) atomically and say where."""
    path = write_json_atomic(out or RESULTS / f"{name}.json", data)
    print(f"\nwritten: {path}")
    return path


# --- timing ----------------------------------------------------------------------------------


def summarize(seconds: list[float]) -> dict[str, Any]:
    """All repeats (in run order) with their median, min and max."""
    return {
        "seconds": [round(s, 6) for s in seconds],
        "median": round(statistics.median(seconds), 6),
        "min": round(min(seconds), 6),
        "max": round(max(seconds), 6),
    }


def timeit(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 0) -> dict[str, Any]:
    """Time ``fn()`` ``repeats`` times (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return summarize(times)


def timeit_interleaved(
    contenders: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, dict[str, Any]]:
    """Time several contenders alternately (A B, B A, A B, ...) so that load from other
    processes falls on all of them alike; returns :func:`summarize` per contender."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else reversed(names):
            started = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - started)
    return {name: summarize(times[name]) for name in names}


# --- peer virtualenvs ------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def peer_python(peer: str, packages: list[str], *, quiet: bool = True) -> Path:
    """The Python of ``bench/.cache/venv-<peer>`` with exactly ``packages`` (pinned
    requirement strings) installed; created on first use, reused while the pins match."""
    venv = CACHE / f"venv-{peer}"
    marker = venv / "forgeml-bench-pins.json"
    python = venv_python(venv)
    wanted = sorted(packages)
    if python.exists() and marker.is_file() and json.loads(marker.read_text()) == wanted:
        return python
    print(f"setting up the {peer} virtualenv in {venv} (first run only) ...", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, *(["-q"] if quiet else []), *wanted], check=True)
    write_json_atomic(marker, wanted)
    return python


def peer_versions(python: Path, packages: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``packages`` in another interpreter."""
    code = (
        "import json, platform, sys\nfrom importlib import metadata\n"
        "out = {'python': platform.python_version()}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = metadata.version(p)\n"
        "    except metadata.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


# --- child processes -------------------------------------------------------------------------


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process we can see (from ``/proc/<pid>/stat``)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children.get(current, [])
    return pids


def _pss_mib(pid: int) -> float:
    """Proportional set size of one process (shared pages split among their users)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


class TreeMemorySampler:
    """Samples the summed PSS of a process and all its descendants every ``interval`` s.

    PSS rather than RSS so that pages shared by a pool of forked workers (or memory-mapped
    data) are counted once, not once per worker. It is a sampled peak: a spike shorter
    than the interval can be missed.
    """

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(_pss_mib(p) for p in _tree(self.pid))
            self.peak_mib = max(self.peak_mib, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_json(
    python: Path | str,
    script: Path | str,
    args: Iterable[str] = (),
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``python script args`` as a subprocess and return the JSON object it prints on
    its last stdout line, plus ``_process``: wall seconds, the largest single-process
    peak RSS of its tree (``wait4``) and the sampled peak PSS of the whole tree.

    ``script`` is a file path, or Python source when it contains a newline.
    """
    cmd = [str(python)]
    cmd += ["-c", str(script)] if "\n" in str(script) else [str(script)]
    cmd += list(args)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, env=env, cwd=ROOT, start_new_session=True
        )
        with TreeMemorySampler(proc.pid) as sampler:
            status, usage = _wait(proc, timeout)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} ... exited {status}:\n{stderr[-4000:]}")
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON on stdout from {cmd[:2]}:\n{stdout[-2000:]}{stderr[-2000:]}")
    result = json.loads(lines[-1])
    result["_process"] = {
        "wall_seconds": round(wall, 3),
        "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "tree_peak_pss_mib": round(sampler.peak_mib, 1),
    }
    return result


def _wait(proc: subprocess.Popen[Any], timeout: float | None) -> tuple[int, Any]:
    """Wait for ``proc`` with ``wait4`` (to get its rusage); after ``timeout`` s, kill its
    process group (it was started in a new session, so that is it and its workers)."""

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if timer:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


def child_peak_rss_mib() -> float:
    """This process's own peak RSS (``VmHWM``), for a child to report about itself."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- tables ----------------------------------------------------------------------------------


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table with right-aligned columns (the first left-aligned)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, cells)])
