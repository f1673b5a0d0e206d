"""Console helpers: results on stdout, logs and progress on stderr, JSON for machines."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.text import Text

__all__ = ["RichReporter", "emit_json", "err_console", "out_console"]

# Markup is off: messages carry user text (paths, values, `pip install 'forgeml[s3]'`) that
# must print as it is; styling goes through `style=` and Text objects instead.
out_console = Console(soft_wrap=True, markup=False, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def emit_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (one document, newline terminated)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class RichReporter:
    """Progress on stderr: bars on a terminal, one line per stage otherwise."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.live = err_console.is_terminal and not quiet
        self._progress: Any = None
        self._task: Any = None
        self._stage_started = time.monotonic()
        self._trials: int | None = None
        self._seconds: float | None = None
        self._started_tuning = 0.0

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _bar(self, description: str, total: float | None) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._stop_bar()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            TextColumn("{task.fields[status]}", markup=False),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, status="")

    def stage(self, name: str, detail: str = "") -> None:
        self._stop_bar()
        self._stage_started = time.monotonic()
        if self.quiet:
            return
        err_console.print(Text.assemble((f"▸ {name}", "bold cyan"), f" {detail}".rstrip()))
        if self.live and name in ("validate", "predict"):
            self._bar(f"{name}: rows", None)

    def rows(self, n_rows: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=n_rows, status=f"{n_rows:,} rows")

    def budget(self, trials: int | None, seconds: float | None) -> None:
        self._trials, self._seconds = trials, seconds
        self._started_tuning = time.monotonic()
        if self.live:
            total = float(trials) if trials is not None and seconds is None else seconds
            self._bar("tune", total)

    def trial(self, record: Any, best: Any) -> None:
        status = (
            f"trial {record.number} {record.model} {record.state} {_fmt(record.value)}"
            f" | best {_fmt(getattr(best, 'value', None))} ({getattr(best, 'model', '-')})"
        )
        if self._progress is not None:
            if self._trials is not None and self._seconds is None:
                completed = float(record.number + 1)
            else:
                completed = time.monotonic() - self._started_tuning
            self._progress.update(self._task, completed=completed, status=status)
        elif not self.quiet and not self.live:
            err_console.print(f"  {status}")

    def info(self, message: str) -> None:
        if not self.quiet:
            err_console.print(f"  {message}")

    def warn(self, message: str) -> None:
        err_console.print(Text.assemble(("warning:", "yellow"), f" {message}"))

    def done(self) -> None:
        self._stop_bar()
