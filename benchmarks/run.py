"""Run a benchmark suite: teachers, students with and without distillation, peers, latency.

Usage::

    python -m benchmarks.run --suite synthetic                    # anywhere, minutes
    python -m benchmarks.run --suite metr-la-week --device cuda --seeds 3
    python -m benchmarks.run --suite los-loop --seeds 3           # T-GCN's protocol, same week
    python -m benchmarks.run --suite metr-la --device cuda        # full datasets, when present
    python -m benchmarks.run --suite scaling                      # cost vs. network size
    python -m benchmarks.run --render                             # only regenerate RESULTS.md

A run refuses to start on a busy machine (1-minute load average above the core count; exit code 2,
:mod:`benchmarks.idle`); ``--allow-busy`` runs anyway and latency timed while the machine was busy is
labelled ``"busy"`` (RESULTS.md shows no figure for it).

Each run writes ``benchmarks/results/<suite>-<device>-<date>.json`` and regenerates
``benchmarks/RESULTS.md`` from every JSON file in ``benchmarks/results/``. The JSON records the
command, the device, versions, the training budget and, per model and seed, the test metrics,
epochs and seconds; per model the parameters, FLOPs and latency; and the baselines (last value, seasonal
naive, historical average and median) scored on the same test targets
(:func:`stgkd.engine.baselines.score_baselines`), which RESULTS.md shows beside the models.

For every seed the suite trains the teacher (Graph WaveNet), then each student twice (plainly, and
distilled from that seed's teacher with stgkd's default :class:`~stgkd.distill.DistillConfig`); then,
for every seed, the peers: all with the same windows, split, scaler, optimiser settings and budget, in
order of value, so that a time budget spent on a slow peer never costs the models the study is about.

Under a time budget every run gets its share (:class:`~benchmarks.budget.TimeShares`) but trains at least
``--min-passes`` epochs first (default: the main body's rule, :data:`benchmarks.table.records.MIN_PASSES`),
so every run that starts reaches the passes a result needs; the runs the budget leaves no time for are
not started, and the record says which. Latency of the trained models is timed eagerly and, on CUDA, as
a CUDA graph where a probe in a child process captured the model (:mod:`benchmarks.capture`): a model
that cannot be captured (PGT's TGCN copies a CPU tensor to the device in its forward) is recorded as
"not capturable: <reason>" and costs no other model its figures.
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
import traceback
from pathlib import Path
from typing import Any, Sequence

import torch

from benchmarks import suites as _suites
from benchmarks.budget import Deadline, OutOfTime, TimeShares
from benchmarks.idle import EXIT_BUSY, add_allow_busy, refuse_busy
from benchmarks.protocols import TEACHER_WEIGHT, run_dcrnn, run_los_loop
from benchmarks.record import environment, log
from benchmarks.suite_state import SuiteState
from benchmarks.table.records import MIN_PASSES, SCHEMA  # SCHEMA re-exported; its home is the module that reads it
from stgkd.errors import ConfigError, DataError, StgkdError

__all__ = ["main", "run_suite", "RESULTS_DIR", "RESULTS_MD", "SCHEMA"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
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


def _run_weights(seeds: int, students, peers) -> float:
    return seeds * (TEACHER_WEIGHT + 2 * len(students) + len(peers))


# ============================================================================ a suite


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.suite`` and return its JSON record (also written to ``args.results_dir``).

    With a time budget (``args.deadline``, a :class:`~benchmarks.budget.Deadline`, or
    ``args.time_budget`` seconds) every training run gets its share of the time left
    (:class:`~benchmarks.budget.TimeShares`; a teacher :data:`~benchmarks.protocols.TEACHER_WEIGHT` shares,
    :data:`PROFILE_RESERVE` of the budget kept for timing the models) and stops after the epoch that passes
    it; past the deadline no further run starts, and the record keeps what finished with
    ``"completed": false`` and ``"reached"`` naming the first run not started. The protocols that train
    the models are :mod:`benchmarks.protocols`'.
    """
    suite = _suites.get_suite(args.suite)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine; run with --device cpu")
    deadline = getattr(args, "deadline", None) or Deadline.after(getattr(args, "time_budget", None))
    data = suite.load(args.tiny, week=getattr(args, "week", None))  # DataError names missing files and where to get them
    teacher_hp = dict(suite.tiny_teacher if args.tiny else suite.teacher[1])
    teacher_hp.update(json.loads(args.teacher_hparams) if args.teacher_hparams else {})
    students = _selected(suite.students, args.students)
    peers = _selected(suite.peers, args.peers)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    budget_s = deadline.remaining() if deadline.end is not None else None
    min_epochs = min(args.epochs, max(0, getattr(args, "min_passes", MIN_PASSES)))
    shares = TimeShares(deadline, _run_weights(len(args.seed_list), students, peers),
                        reserve=PROFILE_RESERVE * budget_s if budget_s is not None else 0.0, min_epochs=min_epochs)
    state = SuiteState()
    reached = None
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"stgkd-bench-{suite.name}-"))
    try:
        runner = run_los_loop if suite.protocol == "los-loop" else run_dcrnn
        try:
            runner(suite, data, args=args, device=device, teacher_hp=teacher_hp, students=students, peers=peers,
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
        of = f" of {budget_s:.0f} s" if budget_s is not None else ""
        notes.append(f"Time budget{of} spent: {state.runs_done} of {total} training runs finished, "
                     f"stopped before {reached}.")
    state.profile(device=device, args=args, deadline=deadline)  # what an early stop left untimed
    unprofiled = state.unprofiled
    if unprofiled:
        notes.append(f"Not timed (time budget spent): {', '.join(unprofiled)}.")
    models, dataset_info = state.result()
    record = {
        "schema": SCHEMA,
        "suite": suite.name,
        "title": suite.title,
        "protocol": suite.protocol,
        "description": suite.description,
        "published": suite.published,
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t0,
        "command": "python -m benchmarks.run " + shlex.join(args.argv),
        "environment": environment(device),
        "dataset": {
            "name": data.name, "nodes": int(data.num_nodes), "steps": int(data.num_steps),
            "interval_minutes": int(data.interval_minutes), "split": list(data.split),
            "source": [str(s) for s in (data.source or [])], **dataset_info,
        },
        "budget": {
            "seeds": list(args.seed_list), "epochs": args.epochs, "limit_batches": args.limit_batches,
            "batch_size": args.batch_size, "lr": args.lr, "patience": args.patience, "tiny": bool(args.tiny),
            "teacher_hparams": teacher_hp, "latency_iters": args.latency_iters, "latency_warmup": args.latency_warmup,
            "time_budget_s": budget_s, "min_epochs": min_epochs if budget_s is not None else None,
        },
        "completed": reached is None and not unprofiled,
        "reached": reached,
        "notes": notes,
        "capture": state.capture,
        "models": models,
        "baselines": state.baselines,
    }
    if getattr(args, "reduced_by_design", None):
        record["reduced_by_design"] = args.reduced_by_design
    return record


def timed_busy(record: dict[str, Any]) -> bool:
    """Whether any figure of a suite or scaling record was timed on a busy machine (``"busy"`` in its
    latency results or points; :func:`stgkd.latency.is_busy`)."""
    lat = [entry for m in record.get("models", []) for entry in (m.get("latency") or {}).values()]
    return any(bool(x.get("busy")) for x in lat + list(record.get("points", [])))


def _results_path(record: dict[str, Any], results_dir: Path) -> Path:
    return results_dir / f"{record['suite']}-{record['environment']['device']}-{record['date']}.json"


def write_results(record: dict[str, Any], results_dir: Path, markdown: Path) -> Path:
    """Write the record's JSON file and regenerate ``markdown`` from every JSON file in ``results_dir``."""
    from benchmarks.table.page import write_markdown

    results_dir.mkdir(parents=True, exist_ok=True)
    path = _results_path(record, results_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=float) + "\n")
    tmp.replace(path)
    write_markdown(results_dir, markdown)
    return path


# ============================================================================ CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--suite", help=f"one of {', '.join(_suites.SUITES.names())}, or 'scaling'")
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
    p.add_argument("--peers", nargs="+", default=None, help="peer labels or model names to run, or 'none' (default: all)")
    p.add_argument("--latency-iters", type=int, default=50, help="timed calls at batch 1 (batch 64: a quarter) (default: 50)")
    p.add_argument("--latency-warmup", type=int, default=5, help="untimed calls first (default: 5)")
    p.add_argument("--latency-batches", type=int, nargs="+", default=[1, 64], help="batch sizes timed (default: 1 64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="wall-clock seconds for the whole suite: each training run gets its share and stops after "
                        "the epoch that spends it; no run starts past it (default: none)")
    p.add_argument("--min-passes", type=int, default=MIN_PASSES,
                   help="under a time budget, epochs every run trains before its share may stop it (default: "
                        f"{MIN_PASSES}, what RESULTS.md's main body needs; capped at --epochs)")
    p.add_argument("--week", default=None,
                   help="folder of the real METR-LA week (default: $STGKD_WEEK, else ../shared/data/metr-la-week, "
                        "else .gpu/data/metr-la-week)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where the JSON goes (default: benchmarks/results)")
    p.add_argument("--markdown", default=str(RESULTS_MD), help="RESULTS.md to regenerate (default: benchmarks/RESULTS.md)")
    p.add_argument("--workdir", default=None, help="keep checkpoints here (default: a temporary directory, removed)")
    p.add_argument("--note", action="append", help="a note recorded in the JSON and RESULTS.md (repeatable)")
    p.add_argument("--progress", action="store_true", help="show per-epoch progress")
    p.add_argument("--render", action="store_true", help="only regenerate RESULTS.md from the JSON files")
    add_allow_busy(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    # scaling suite
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="scaling: network sizes (default: 207 883 2000 8600)")
    p.add_argument("--scaling-batches", type=int, default=3, help="scaling: timed training steps per point (default: 3)")
    p.add_argument("--scaling-warmup", type=int, default=1, help="scaling: untimed training steps first (default: 1)")
    p.add_argument("--scaling-student", default=None,
                   help="scaling: the student family scaled beside the teacher (default: stgru)")
    p.add_argument("--scaling-width", type=int, default=32, help="scaling: the student's width (default: 32)")
    p.add_argument("--teacher-max-nodes", type=int, default=None,
                   help="scaling: skip the teacher above this many sensors (default: none)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.render:
            from benchmarks.table.page import write_markdown

            write_markdown(Path(args.results_dir), Path(args.markdown))
            print(f"wrote {args.markdown}")
            return 0
        if not args.suite:
            parser.error("--suite is required (or --render)")
        if refuse_busy("benchmarks.run", args.allow_busy):
            return EXIT_BUSY
        if args.seeds < 1:
            raise ConfigError("--seeds must be >= 1")
        args.seed_list = list(range(args.seeds))
        if args.suite == "scaling":
            from benchmarks.scaling import run_scaling

            record = run_scaling(args)
        else:
            suite = _suites.get_suite(args.suite)
            if args.epochs is None:
                args.epochs = 1 if args.tiny else suite.epochs
            if args.limit_batches is None:
                args.limit_batches = suite.limit_batches
            record = run_suite(args)
        record["busy"] = timed_busy(record)
        path = write_results(record, Path(args.results_dir), Path(args.markdown))
        print(f"wrote {path} and {args.markdown}")
        return 0
    except (StgkdError, DataError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
