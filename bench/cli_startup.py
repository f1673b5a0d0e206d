"""CLI start-up: ``forgeml --help`` wall time, next to ``mlflow --help``.

Goal (issue): ``forgeml --help`` answers in under 0.5 s (heavy libraries are imported only
by the command that needs them). Each command runs as a fresh process, the way a user
types it; repeats are interleaved so machine load falls on both alike.

Run: ``.venv/bin/python bench/cli_startup.py [--repeats 15]``.
Results: a table on stdout and ``bench/results/cli_startup.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from _common import (
    format_table,
    machine_info,
    now_iso,
    timeit_interleaved,
    versions,
    write_result,
)

NAME = "cli_startup"
GOAL_SECONDS = 0.5


def command(name: str) -> list[str]:
    """The console script ``name`` of the running venv."""
    script = Path(sys.executable).with_name(name)
    found = script if script.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name}: not installed in this environment")
    return [str(found), "--help"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    contenders = {}
    for name in ("forgeml", "mlflow"):
        try:
            argv = command(name)
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            continue
        contenders[f"{name} --help"] = lambda argv=argv: subprocess.run(
            argv, check=True, capture_output=True
        )
    timings = timeit_interleaved(contenders, repeats=args.repeats, warmup=1)
    rows = [
        [name, f"{t['median']:.3f}", f"{t['min']:.3f}", f"{t['max']:.3f}"]
        for name, t in timings.items()
    ]
    headers = ["command", "median s", "min s", "max s"]
    print(format_table(headers, rows))
    ours = timings["forgeml --help"]["median"]
    write_result(
        NAME,
        {
            "benchmark": NAME,
            "command": " ".join(["bench/cli_startup.py", *sys.argv[1:]]),
            "title": "CLI start-up: forgeml --help",
            "date": now_iso(),
            "machine": machine_info(),
            "versions": versions(["forgeml", "typer", "rich", "mlflow"]),
            "parameters": {"repeats": args.repeats, "warmup": 1, "order": "interleaved"},
            "goal": {
                "text": f"forgeml --help under {GOAL_SECONDS} s",
                "met": ours < GOAL_SECONDS,
                "measured": f"{ours:.3f} s (median)",
            },
            "table": {"headers": headers, "rows": rows},
            "notes": [
                "Each repeat starts a fresh process, as a user typing the command does.",
                "mlflow --help is shown for scale: the CLI of a tool users already have.",
            ],
            "timings": timings,
        },
    )


if __name__ == "__main__":
    main()
