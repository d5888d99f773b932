"""A one-line progress display on standard error for long runs.

Shown only on a terminal, and never with ``NO_COLOR`` or ``--quiet``: a pipe or a
log file gets the reports alone. The line is redrawn at most ten times a second and
erased before anything else is printed to the terminal.
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(self, stream: TextIO, total: int | None = None) -> None:
        self.stream = stream
        self.total = total
        self.done = 0
        self.passed = 0
        self.failed = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def update(self, ok: bool) -> None:
        self.done += 1
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        now = time.monotonic()
        if now - self._drawn >= 0.1 or self.done == self.total:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        if self.total:
            left = max(self.total - self.done, 0)
            eta = f", ETA {_duration(left / rate)}" if rate > 0 and left else ""
            head = f"{self.done}/{self.total}"
        else:
            eta, head = "", f"{self.done}"
        line = f"checked {head}: {self.passed} passed, {self.failed} failed, {rate:.1f}/s{eta}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        """Erase the line (before other output, and at the end)."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
