"""Wall-clock budgets for benchmark parts: a deadline checked between units of work, fair shares of it, and
child processes stopped at their time.

Code that measures many settings calls :meth:`Deadline.check` before each one; past the deadline it raises
:class:`OutOfTime` naming the unit it did not start, and what was measured before stays in the caller's lists.
A unit is never interrupted, so a part ends at most one unit past its deadline. :class:`TimeShares` splits
what is left of a deadline between the training runs still to do, by weight, so a run that stops early
leaves its time to the runs after it and the last run still gets its share.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from stgkd.engine.callbacks import TimeLimit

__all__ = ["Deadline", "OutOfTime", "TimeShares", "last_line", "run_child"]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group has already exited: nothing left to signal


def run_child(argv: list[str], seconds: float, *, term_wait: float, cwd: Any,
              on_line: Callable[[str], None] | None = None, stdout: Any = subprocess.DEVNULL,
              stop: int = signal.SIGTERM) -> tuple[int | None, str]:
    """Run ``argv`` in its own process group (standard input closed, ``stdout`` dropped unless given, each line of
    its standard error passed to ``on_line`` when given); its exit code and how it ended: ``"exited"``, or past
    ``seconds`` ``"stopped"`` by ``stop`` sent to its group (SIGTERM: it stops where it is and writes what it has;
    SIGINT for a program that writes its report on an interruption, as pytest does) or ``"killed"``
    ``term_wait`` seconds later. Interrupted while waiting, the group is killed before the
    interruption goes on: a child never runs on alone."""
    proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.PIPE if on_line else None, text=True,
                            errors="replace", start_new_session=True)
    reader = threading.Thread(target=lambda: [on_line(line) for line in proc.stderr], daemon=True) if on_line else None
    if reader:
        reader.start()
    how = "exited"
    try:
        for timeout, sig, ended in ((max(1.0, seconds), stop, "stopped"),
                                    (term_wait, signal.SIGKILL, "killed")):
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                _signal_group(proc, sig)
                how = ended
        proc.wait()
    except BaseException:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        raise
    if reader:
        reader.join(timeout=5)
    return proc.returncode, how


def last_line(text: str) -> str:
    """The last non-blank line of a child's output, stripped, at most 200 characters (``""`` when none)."""
    return next((line.strip()[:200] for line in reversed(text.splitlines()) if line.strip()), "")


class OutOfTime(Exception):
    """Raised by :meth:`Deadline.check` past the deadline; ``what`` names the unit not started."""

    def __init__(self, what: str) -> None:
        super().__init__(f"out of time before {what}")
        self.what = what


@dataclass
class Deadline:
    """An instant ``end`` on ``clock`` (``end=None``: no limit; the clock is :func:`time.monotonic` unless
    another is given)."""

    end: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def after(cls, seconds: float | None, *, clock: Callable[[], float] = time.monotonic) -> "Deadline":
        """``seconds`` from now on ``clock`` (``None``: no limit)."""
        return cls(None if seconds is None else clock() + float(seconds), clock)

    def remaining(self) -> float:
        """Seconds left (``inf`` without a limit, negative once past it)."""
        return math.inf if self.end is None else self.end - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def check(self, what: str) -> None:
        """Raise :class:`OutOfTime` (naming ``what``, the unit about to start) past the deadline."""
        if self.expired():
            raise OutOfTime(what)

    def earliest(self, other: "Deadline") -> "Deadline":
        """The earlier of the two deadlines."""
        ends = [e for e in (self.end, other.end) if e is not None]
        return Deadline(min(ends) if ends else None, self.clock)


class TimeShares:
    """Hands out a :class:`~stgkd.engine.callbacks.TimeLimit` per training run from ``deadline`` (none without a
    limit): each run gets ``(time left - reserve) * weight / (weight of the runs left)``, ``total_weight`` at first,
    and trains ``min_epochs`` first; ``reserve`` is kept back for the work after the last run (e.g. timing the
    models)."""

    def __init__(self, deadline: Deadline | None, total_weight: float, *, reserve: float = 0.0,
                 min_epochs: int = 0) -> None:
        self.deadline = deadline or Deadline()
        self.left = float(total_weight)
        self.reserve = float(reserve)
        self.min_epochs = int(min_epochs)

    def callbacks(self, weight: float) -> list:
        """The callbacks of the next run (weight ``weight``); its weight is then taken off."""
        left, self.left = self.left, max(0.0, self.left - weight)
        if self.deadline.end is None:
            return []
        share = max(0.0, self.deadline.remaining() - self.reserve) * weight / max(left, weight)
        return [TimeLimit(until=self.deadline.clock() + share, min_epochs=self.min_epochs)]
