"""How long-running work tells the caller what it is doing.

The workflow never prints: it calls a :class:`Reporter`. The CLI passes one that draws
progress bars on stderr (only when stderr is a terminal); the Python API passes
:class:`NullReporter` unless the user gives their own.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NullReporter", "Reporter"]


class Reporter(Protocol):
    def stage(self, name: str, detail: str = "") -> None:
        """A pipeline stage starts (``validate``, ``features``, ``tune``, ...)."""

    def rows(self, n_rows: int) -> None:
        """Progress in rows while streaming data (cumulative)."""

    def budget(self, trials: int | None, seconds: float | None) -> None:
        """The tuning budget, before the first trial."""

    def trial(self, record: Any, best: Any) -> None:
        """A tuning trial finished; ``best`` is the best complete trial so far."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def done(self) -> None:
        """The work finished (successfully or not); release the display."""


class NullReporter:
    """Reports nothing (the default for the Python API)."""

    def stage(self, name: str, detail: str = "") -> None:
        pass

    def rows(self, n_rows: int) -> None:
        pass

    def budget(self, trials: int | None, seconds: float | None) -> None:
        pass

    def trial(self, record: Any, best: Any) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def done(self) -> None:
        pass
