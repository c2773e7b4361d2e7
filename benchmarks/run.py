"""Run a benchmark suite: the teacher, students with and without distillation, peers, baselines and latency.

Usage::

    python -m benchmarks.run --suite synthetic                    # anywhere, minutes
    python -m benchmarks.run --suite metr-la-week --device cuda --seeds 3
    python -m benchmarks.run --suite metr-la --device cuda        # full datasets, when present
    python -m benchmarks.run --render                             # only regenerate RESULTS.md

A suite (:mod:`benchmarks.suites`) is trained and timed by :func:`benchmarks.protocols.train_suite`; each run
writes ``benchmarks/results/<suite>-<device>-<date>.json`` and regenerates ``benchmarks/RESULTS.md`` from every
record there. Under a time budget every run still trains ``--min-passes`` epochs (the main body's rule); runs the
budget leaves no time for are not started, and the record says which. A busy machine is refused
(:mod:`benchmarks.idle`) unless ``--allow-busy``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from benchmarks import suites as _suites
from benchmarks.budget import Deadline, OutOfTime, TimeShares
from benchmarks.idle import EXIT_BUSY, add_allow_busy, refuse_busy
from benchmarks.protocols import TEACHER_WEIGHT, SuiteState, train_suite
from benchmarks.record import RESULTS, environment, log, write_json
from benchmarks.table.records import MIN_PASSES, SCHEMA  # SCHEMA re-exported; its home is the module that reads it
from stgkd.errors import ConfigError, StgkdError

__all__ = ["main", "run_suite", "RESULTS_DIR", "RESULTS_MD", "SCHEMA"]

RESULTS_DIR = RESULTS
RESULTS_MD = RESULTS.parent / "RESULTS.md"
#: share of a suite's time budget kept back for timing the trained models at the end
PROFILE_RESERVE = 0.1


def _selected(items: list[tuple[str, str, dict[str, Any]]], wanted: Sequence[str] | None) -> list:
    if wanted is None:
        return items
    if list(wanted) == ["none"]:
        return []
    known = {label for label, _, _ in items} | {name for _, name, _ in items}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown} for this suite; choose from {sorted(known)}")
    return [it for it in items if it[0] in wanted or it[1] in wanted]


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.suite`` and return its JSON record. Under a time budget (``args.deadline`` or
    ``args.time_budget`` seconds) each training run gets its share of the time left; past the deadline no run
    starts, and the record keeps what finished with ``"completed": false`` and ``"reached"``, the first run not
    started."""
    suite = _suites.get_suite(args.suite)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine; run with --device cpu")
    deadline = getattr(args, "deadline", None) or Deadline.after(getattr(args, "time_budget", None))
    data = suite.load(args.tiny, week=getattr(args, "week", None))  # DataError names missing files and where to get them
    teacher_hp = dict(suite.tiny_teacher if args.tiny else suite.teacher[1])
    teacher_hp.update(json.loads(args.teacher_hparams) if args.teacher_hparams else {})
    students, peers = _selected(suite.students, args.students), _selected(suite.peers, args.peers)
    started, t0 = _dt.datetime.now(_dt.timezone.utc), time.perf_counter()
    budget_s = deadline.remaining() if deadline.end is not None else None
    min_epochs = min(args.epochs, max(0, getattr(args, "min_passes", MIN_PASSES)))
    weights = len(args.seed_list) * (TEACHER_WEIGHT + 2 * len(students) + len(peers))
    shares = TimeShares(deadline, weights, reserve=PROFILE_RESERVE * (budget_s or 0.0), min_epochs=min_epochs)
    state, reached = SuiteState(), None
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"stgkd-bench-{suite.name}-"))
    try:
        train_suite(suite, data, args=args, device=device, teacher_hp=teacher_hp, students=students, peers=peers,
                    state=state, deadline=deadline, shares=shares, work=work)
    except OutOfTime as exc:
        reached = exc.what
        log(f"time budget spent: stopped before {exc.what}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    notes = list(args.note or [])
    if reached is not None:
        total = len(args.seed_list) * (1 + 2 * len(students) + len(peers))
        notes.append(f"Time budget{f' of {budget_s:.0f} s' if budget_s is not None else ''} spent: {state.runs_done} "
                     f"of {total} training runs finished, stopped before {reached}.")
    state.profile(device=device, args=args, deadline=deadline)  # what an early stop left untimed
    if state.unprofiled:
        notes.append(f"Not timed (time budget spent): {', '.join(state.unprofiled)}.")
    return {
        "schema": SCHEMA, "suite": suite.name, "title": suite.title, "protocol": suite.protocol,
        "description": suite.description, "published": suite.published, "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"), "wall_seconds": time.perf_counter() - t0,
        "command": "python -m benchmarks.run " + shlex.join(args.argv), "environment": environment(device),
        "dataset": {"name": data.name, "nodes": int(data.num_nodes), "steps": int(data.num_steps),
                    "interval_minutes": int(data.interval_minutes), "split": list(data.split),
                    "source": [str(s) for s in (data.source or [])], **state.dataset_info},
        "budget": {"seeds": list(args.seed_list), "epochs": args.epochs, "limit_batches": args.limit_batches,
                   "batch_size": args.batch_size, "lr": args.lr, "patience": args.patience, "tiny": bool(args.tiny),
                   "teacher_hparams": teacher_hp, "latency_iters": args.latency_iters,
                   "latency_warmup": args.latency_warmup, "time_budget_s": budget_s,
                   "min_epochs": min_epochs if budget_s is not None else None},
        "completed": reached is None and not state.unprofiled, "reached": reached, "notes": notes,
        "capture": state.capture, "models": list(state.models.values()), "baselines": state.baselines,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--suite", help=f"one of {', '.join(_suites.SUITES.names())}")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train and time (default: cpu)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default: 3)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the suite's)")
    p.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch (default: all)")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size (default: 64)")
    p.add_argument("--eval-batch-size", type=int, default=None, help="evaluation batch size (default: --batch-size)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience, 0 = off (default: 10)")
    p.add_argument("--tiny", action="store_true", help="tiny data and teacher (tests and smoke runs)")
    p.add_argument("--teacher-hparams", default=None, help="JSON overriding teacher hyperparameters")
    p.add_argument("--students", nargs="+", default=None, help="student labels or model names to run (default: all)")
    p.add_argument("--peers", nargs="+", default=None, help="peer labels or model names, or 'none' (default: all)")
    p.add_argument("--latency-iters", type=int, default=50, help="timed calls at batch 1, a quarter above (default: 50)")
    p.add_argument("--latency-warmup", type=int, default=5, help="untimed calls first (default: 5)")
    p.add_argument("--latency-batches", type=int, nargs="+", default=[1, 64], help="batch sizes timed (default: 1 64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="wall-clock seconds for the whole suite, shared by its training runs (default: none)")
    p.add_argument("--min-passes", type=int, default=MIN_PASSES,
                   help=f"under a time budget, epochs every run trains first (default: {MIN_PASSES}, capped at --epochs)")
    p.add_argument("--week", default=None, help="folder of the real METR-LA week (default: $STGKD_WEEK, else "
                   "../shared/data/metr-la-week, else .gpu/data/metr-la-week)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where the JSON goes (default: benchmarks/results)")
    p.add_argument("--markdown", default=str(RESULTS_MD), help="RESULTS.md to regenerate (default: benchmarks/RESULTS.md)")
    p.add_argument("--workdir", default=None, help="keep checkpoints here (default: a temporary directory, removed)")
    p.add_argument("--note", action="append", help="a note recorded in the JSON and RESULTS.md (repeatable)")
    p.add_argument("--render", action="store_true", help="only regenerate RESULTS.md from the JSON files")
    add_allow_busy(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from benchmarks.table.page import write_markdown

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    results, markdown = Path(args.results_dir), Path(args.markdown)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.render:
            write_markdown(results, markdown)
            print(f"wrote {markdown}")
            return 0
        if not args.suite:
            parser.error("--suite is required (or --render)")
        if refuse_busy("benchmarks.run", args.allow_busy):
            return EXIT_BUSY
        if args.seeds < 1:
            raise ConfigError("--seeds must be >= 1")
        args.seed_list = list(range(args.seeds))
        suite = _suites.get_suite(args.suite)
        args.epochs = args.epochs if args.epochs is not None else 1 if args.tiny else suite.epochs
        args.limit_batches = args.limit_batches if args.limit_batches is not None else suite.limit_batches
        record = run_suite(args)
        # whether any figure was timed on a busy machine (stgkd.latency.is_busy)
        record["busy"] = any(bool(x.get("busy")) for m in record["models"] for x in (m.get("latency") or {}).values())
        path = write_json(results / f"{record['suite']}-{record['environment']['device']}-{record['date']}.json",
                          record)
        write_markdown(results, markdown)
        print(f"wrote {path} and {markdown}")
        return 0
    except StgkdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
