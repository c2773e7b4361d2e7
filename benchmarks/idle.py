"""Timing only on an idle machine: the check every timing script runs before it measures.

A CPU timing taken while more processes are runnable than there are cores measures the other work too (on a
shared 2-core machine at load 15 a width-32 student at batch 64 took 5.5 s instead of 0.15 s). A timing script
refuses to start when the 1-minute load average exceeds the core count (:func:`stgkd.latency.is_busy`);
``--allow-busy`` runs anyway, and ``benchmarks/table`` shows every figure labelled busy as "busy, not a figure".
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["EXIT_BUSY", "add_allow_busy", "refuse_busy"]

#: exit code of a timing script that refused a busy machine
EXIT_BUSY = 2


def add_allow_busy(parser: argparse.ArgumentParser) -> None:
    """The ``--allow-busy`` flag, worded alike in every timing script."""
    parser.add_argument("--allow-busy", action="store_true",
                        help="time even when the 1-minute load average exceeds the core count; the figures are "
                             "labelled busy and left out of RESULTS.md's tables")


def refuse_busy(prog: str, allow_busy: bool) -> bool:
    """``True`` (after saying why on stderr) when ``prog`` should not start timing: the machine is busy
    and ``allow_busy`` is off. With ``allow_busy`` a busy machine gets a warning and ``False``."""
    from stgkd.latency import is_busy, load_average

    load = load_average()
    if not is_busy(load):
        return False
    cores = os.cpu_count() or 1
    if allow_busy:
        print(f"{prog}: load average {load} on {cores} cores; timing anyway (--allow-busy), figures labelled busy",
              file=sys.stderr)
        return False
    print(f"{prog}: load average {load} exceeds the {cores} cores: other work is running, and timings now would "
          "measure it too. Run on an idle machine, or pass --allow-busy (figures labelled busy, left out of "
          "RESULTS.md's tables).", file=sys.stderr)
    return True
