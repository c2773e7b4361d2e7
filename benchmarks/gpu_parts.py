"""The parts of ``python -m benchmarks.gpu`` (:data:`PARTS`, in order of value): what each measures, its
default budget on a GPU, its models in order.

Each part is a function ``run(ctx, deadline) -> record`` run in the part's own process over the scripts that
measure; it hands what later parts need (the metr-la-week teacher, the teacher's CUDA-graph latency, capture
verdicts) through ``ctx.handed``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import stgkd.nn.peers  # noqa: F401  (registers the peers: the timing part times every registered model)
from benchmarks.budget import Deadline, OutOfTime, run_child
from benchmarks.latency import NO_CUDA
from benchmarks.profile import part_profile, profile_lineup
from benchmarks.record import one_line
from stgkd.nn.registry import DEFAULT_STUDENT, DEFAULT_TEACHER

__all__ = ["PARTS", "Part", "Context", "kept", "NO_CUDA", "MIN_TRIALS", "TUNING_EPOCHS"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: graph size of the smoke run's latency and timing parts (MTGNN's default subgraph needs 20 sensors)
SMOKE_NODES = 20
#: trials the tuning study must finish to count as complete (the study is asked for more, within its time)
MIN_TRIALS = 30
#: epochs of each tuning trial on the GPU
TUNING_EPOCHS = 4


@dataclass(frozen=True)
class Part:
    """One part of the run: its ``--parts`` ``name``, the ``suite`` of its record, what it measures (``title``),
    its default ``budget_s`` on a GPU, ``run(ctx, deadline) -> record`` (in its own process), ``lineup(smoke)``
    (its models in order, for ``--plan``) and how far past its deadline it may run (``grace_s``: one unit of
    work) before it is stopped."""

    name: str
    suite: str
    title: str
    budget_s: float
    run: Callable[["Context", Deadline], dict[str, Any]]
    lineup: Callable[[bool], str]
    grace_s: float = 15.0


@dataclass
class Context:
    """What a part's process knows: the device, the data folder, the shared work folder, and what earlier
    parts handed over (``handover``); what this part hands to the parts after it goes in ``handed``."""

    device: str
    smoke: bool
    week: Path | None
    work: Path
    run_id: str
    command: str
    log: Callable[[str], None]
    handover: dict[str, Any] = field(default_factory=dict)
    handed: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


def kept(work: Callable[[], None], ctx: Context, name: str) -> tuple[str | None, str | None]:
    """Run ``work``; ``(reached, error)``: a deadline (:class:`OutOfTime`) or an error (a CUDA error) stops it,
    is returned, not raised, and what ``work`` measured before stays where it put it."""
    try:
        work()
    except OutOfTime as exc:
        return exc.what, None
    except Exception as exc:
        ctx.log(f"{name}: stopped by {one_line(exc)}; what it measured before is kept")
        traceback.print_exc()
        return None, one_line(exc)
    return None, None


def part_environment(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """GPU, driver, clocks (``nvidia-smi``), library versions; ``"skipped: no CUDA device"`` for what needs a GPU."""
    from benchmarks.record import environment, installed

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(), "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "packages": {n: installed(n) for n in ("torch", "torch-geometric", "torch-geometric-temporal", "optuna",
                                               "tables", "numpy", "pandas", "networkx", "scipy")},
        "gpu": {"skipped": NO_CUDA}, "nvidia_smi": {"skipped": NO_CUDA}}
    if ctx.cuda:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                       "memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
                       "devices": torch.cuda.device_count(), "cudnn": torch.backends.cudnn.version(),
                       "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
        info["nvidia_smi"] = _nvidia_smi()
    return {"suite": "environment", "title": "Device and software", "environment": environment(ctx.device),
            "details": info}


def part_cuda_tests(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """The test suite's CUDA tests (``pytest -m cuda``: the forecaster's CUDA graphs, CUDA exports, the program
    compiled for the GPU) run on this GPU in a child process stopped at the deadline; each test's outcome."""
    report = ctx.work / "cuda-tests.xml"
    report.unlink(missing_ok=True)  # never an earlier run's outcomes
    args = ["-m", "cuda", "-q", "-p", "no:cacheprovider", "--junitxml={}", "tests"]
    argv = [sys.executable, "-m", "pytest", *(a.format(report) for a in args)]
    # stopped with SIGINT: pytest then ends its session and writes the report of the tests it ran
    code, ended = run_child(argv, max(1.0, deadline.remaining()), term_wait=10, cwd=REPO_ROOT, stop=signal.SIGINT)
    tests = []
    cases = ET.parse(report).iter("testcase") if report.is_file() else ()
    for case in (c for c in cases if c.get("name")):  # an interrupted test is written without a name
        found = [c for c in case if c.tag in ("failure", "error", "skipped")]
        outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[found[0].tag] if found else "passed"
        tests.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": round(float(case.get("time") or 0.0), 2),
                      "message": " ".join((found[0].get("message") or "").split())[:300] if found else ""})
    record = {"pytest": shlex.join(["python", "-m", "pytest", *(a.format("REPORT.xml") for a in args)]),
              "exit_code": code, "ended": ended, "tests": tests, "reached": None if ended == "exited" else "the CUDA tests left when it was stopped"}
    return {**record, "error": f"pytest exited with {code} and wrote no report"} if not tests and code else record


#: ``nvidia-smi --query-gpu`` fields, most useful first (an unknown field fails the whole query, so it is retried
#: with the first few)
SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem",
              "clocks.applications.graphics", "power.limit", "power.draw", "temperature.gpu", "memory.total",
              "persistence_mode", "compute_mode", "mig.mode.current")


def _nvidia_smi() -> dict[str, Any]:
    exe, error = shutil.which("nvidia-smi"), "nvidia-smi not found"
    for fields in (SMI_FIELDS, SMI_FIELDS[:6]) if exe else ():
        try:
            out = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=15, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            error = f"nvidia-smi failed ({type(exc).__name__}: {exc})"
            continue
        first = out.strip().splitlines()[0] if out.strip() else ""
        return dict(zip(fields, (v.strip() for v in first.split(","))))
    return {"skipped": error}


def part_latency(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """The latency table (:func:`benchmarks.latency.collect`): main section, then the PGT peers; every CUDA-graph
    setting probed in a child process first. Hands on the default teacher's CUDA-graph latency at batch 1."""
    from benchmarks import latency

    nodes, batch, warmup, iters = (SMOKE_NODES, "2", "1", "2") if ctx.smoke else (207, "64", "10", "100")
    argv = ["--device", ctx.device, "--sections", "main", "peers", "--nodes", str(nodes), "--batch", "1", batch,
            "--warmup", warmup, "--iters", iters] + (["--peer-hidden", "8"] if ctx.smoke else [])
    args = latency.resolve_args(latency.build_parser().parse_args(argv))
    started, rows, verdicts = dt.datetime.now(dt.timezone.utc), [], {}

    def work() -> None:
        verdicts.update(latency.probe_captures(args, deadline, known=ctx.handover.get("capture")))
        ctx.handed["capture"] = dict(verdicts)
        latency.collect(args, rows, deadline, verdicts)

    reached, error = kept(work, ctx, "latency")
    teacher_b1 = _teacher_graph_b1(rows)
    if teacher_b1 is not None:  # the tuning study's budget is set from it
        ctx.handed["teacher_cuda_graph_b1_ms"] = teacher_b1
    record = {**latency.make_report(args, rows, started, None, command=ctx.command), "reached": reached,
              "capture": verdicts}
    return {**record, "error": error} if error else record


def _teacher_graph_b1(rows: list[dict[str, Any]]) -> float | None:
    """The default teacher's CUDA-graph latency at batch 1, fp32, in the latency part's main section (ms)."""
    return next((float(r["median_ms"]) for r in rows if "median_ms" in r and r.get("device_kind") == "cuda" and (
        r.get("section"), r.get("model"), r.get("mode"), r.get("dtype"), r.get("batch")) == (
        "main", DEFAULT_TEACHER, "cuda-graph", "fp32", 1)), None)


def _latency_lineup(smoke: bool) -> str:
    from benchmarks.latency import PEERS, student_families

    return (f"graph-wavenet; {', '.join(student_families())} at widths 16/32/64; batch {'1 and 2' if smoke else '1 and 64'}"
            ", eager and CUDA graph (each setting probed in a child process first), fp32 and bf16; then PGT peers "
            f"{', '.join(PEERS)} (eager, fp32, batch 1)")


def part_timing(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """Forward and forward+backward time of every registered model (:func:`benchmarks.latency.time_models`),
    Graph WaveNet and the students first, on METR-LA's graph; an error keeps the rows timed before it."""
    from benchmarks.latency import load_graph, time_models, timing_record, value_order
    from stgkd.nn import MODELS

    if ctx.smoke:
        (adj, graph), batch, warmup, iters = load_graph(SMOKE_NODES), 1, 0, 1
    else:
        (adj, graph), batch, warmup, iters = load_graph(207, ctx.week), 64, 5, 20
    rows: list[dict[str, Any]] = []
    names = value_order(MODELS.names())
    reached, error = kept(lambda: time_models(names, adj, batches=[batch], dtypes=["fp32", "bf16"],
                                              device=torch.device(ctx.device), warmup=warmup, iters=iters, rows=rows,
                                              deadline=deadline), ctx, "timing")
    record = {**timing_record(rows, graph=graph, nodes=int(adj.shape[0]), batches=[batch], warmup=warmup, iters=iters,
                              order=names), "reached": reached}
    return {**record, "error": error} if error else record


def _timing_lineup(smoke: bool) -> str:
    from benchmarks.latency import value_order
    from stgkd.nn import MODELS

    return (f"in this order: {', '.join(value_order(MODELS.names()))}; batch {1 if smoke else 64}, fp32 and bf16, "
            "forward and forward+backward")


#: what the metr-la-week part trains on the GPU: seeds, students (labels of the suite's), peers
WEEK_PLAN = (3, (f"{DEFAULT_STUDENT} h32", "gcn-gru h32 structured"), ("pgt-tgcn",))


def part_week(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """The ``metr-la-week`` suite of :mod:`benchmarks.run` as :data:`WEEK_PLAN` has it: every run at least
    ``--min-passes`` epochs, peers after every seed's teacher and students. Hands on the seed-0 teacher."""
    from benchmarks.run import build_parser, run_suite
    from benchmarks.suites import get_suite

    name, (seeds, students, peers) = "metr-la-week", WEEK_PLAN
    suite = get_suite(name)
    argv = ["--suite", name, "--device", ctx.device, "--latency-warmup", "1" if ctx.smoke else "5",
            "--peers", *peers, "--students", *students]
    argv += (["--tiny", "--seeds", "1", "--epochs", "1", "--limit-batches", "2", "--batch-size", "16",
              "--eval-batch-size", "256", "--latency-iters", "1", "--latency-batches", "1"] if ctx.smoke else
             ["--seeds", str(seeds), "--epochs", str(suite.epochs), "--patience", "10", "--batch-size", "64",
              "--latency-iters", "50"])
    args = build_parser().parse_args(argv)
    args.argv, args.seed_list, args.deadline = argv, list(range(args.seeds)), deadline
    args.limit_batches = args.limit_batches if args.limit_batches is not None else suite.limit_batches
    args.week, args.workdir, args.capture_verdicts = ctx.week, str(ctx.work / name), ctx.handover.get("capture")
    args.note = [("A 6-sensor, 2-day synthetic stand-in for the week, a tiny teacher, one epoch of two batches."
                  if ctx.smoke else
                  f"Every training run gets a share of the part's time budget (the teacher 3 shares, each other "
                  f"run 1) but trains at least {args.min_passes} epochs first; it stops after the epoch that "
                  "spends its share, or earlier by early stopping (patience 10). Runs the budget leaves no time "
                  "for are not started.")]
    record = run_suite(args)
    ctx.handed["capture"] = record.get("capture") or {}
    teacher = ctx.work / name / "s0" / "teacher" / "best.pt"
    if teacher.is_file():
        hp = record["budget"]["teacher_hparams"]
        ctx.handed["teacher"] = str(teacher)
        size = json.dumps(hp) if hp else "at the paper's size"
        ctx.handed["teacher_note"] = f"the metr-la-week part's seed-0 teacher (Graph WaveNet {size}, early stopping)"
    return record


def _week_lineup(smoke: bool) -> str:
    from benchmarks.table.records import MIN_PASSES

    seeds, students, peers = WEEK_PLAN
    return (f"{1 if smoke else seeds} seed(s): {DEFAULT_TEACHER} (teacher), "
            + ", ".join(f"{s} (plain, then distilled)" for s in students)
            + f"; then, for every seed, {', '.join(peers)}"
            + ("; one epoch of two batches" if smoke else f"; each run at least {MIN_PASSES} epochs"))


def part_tuning(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """An Optuna study (``tuning.search.main``) of the students, the default one first, distilled from the
    metr-la-week part's teacher, against a latency budget (:func:`tuning.budget.calibrate_budget`)."""
    from benchmarks.suites import TINY_TEACHER
    from stgkd.data.rebuild import load_data
    from stgkd.engine import TimeLimit, TrainConfig, train_model
    from stgkd.errors import DataError
    from tuning.budget import calibrate_budget
    from tuning.search import main as search_main
    from tuning.space import load_space
    from tuning.teacher import SMALL_TEACHER

    if ctx.week is None:
        raise DataError("tuning: no METR-LA week found (pass --week)")
    data = load_data(str(ctx.week))
    teacher, teacher_note = ctx.handover.get("teacher"), ctx.handover.get("teacher_note", "")
    if teacher is None or not Path(teacher).is_file():
        hp = TINY_TEACHER if ctx.smoke else SMALL_TEACHER
        limit = max(1.0, 0.2 * deadline.remaining()) if deadline.end is not None else None
        ctx.log(f"tuning: no teacher from the metr-la-week part; training a compact Graph WaveNet {hp}")
        res = train_model(data, "graph-wavenet", ctx.work / "tuning-teacher", hparams=dict(hp), overwrite=True,
                          config=TrainConfig(epochs=1 if ctx.smoke else 30, device=ctx.device, seed=0,
                                             limit_batches=2 if ctx.smoke else None),
                          callbacks=[TimeLimit(seconds=limit)] if limit else [], progress=False, log=False)
        teacher = res.best_path
        teacher_note = f"a compact Graph WaveNet {json.dumps(hp)} trained here ({res.epochs_run} epochs)"
    space = load_space(None)
    mode, capture_note = _tuning_mode(ctx, data, space, deadline)
    calibration = calibrate_budget(data.adj, space, device=ctx.device, mode=mode, teacher_ms=ctx.handover.get(
        "teacher_cuda_graph_b1_ms"), **({"warmup": 1, "iters": 2} if ctx.smoke else {}))
    out, target = ctx.work / "study", 2 if ctx.smoke else MIN_TRIALS
    argv = ["--dataset", str(ctx.week), "--teacher", str(teacher), "--latency-budget-ms",
            f"{calibration['budget_ms']:.6g}", "--latency-batch", "1", "--latency-mode", mode, "--latency-device",
            ctx.device, "--n-trials", str(2 if ctx.smoke else MIN_TRIALS + 10), "--seed", "0", "--no-progress",
            "--out", str(out), "--device", ctx.device]
    argv += (["--epochs", "1", "--limit-batches", "2", "--latency-iters", "2", "--latency-warmup", "1", "--no-plots"]
             if ctx.smoke else ["--epochs", str(TUNING_EPOCHS), "--latency-iters", "50", "--latency-warmup", "5"])
    if deadline.end is not None:  # the report, the export and the trial in flight after the study's time
        argv += ["--timeout", f"{max(1.0, deadline.remaining() - (5.0 if ctx.smoke else 15.0)):.0f}"]
    ctx.log("tuning: python -m tuning.search " + shlex.join(argv))
    code = search_main(argv)
    if not (out / "report.json").is_file():
        raise RuntimeError(f"tuning.search exited with {code} and wrote no report")
    report = json.loads((out / "report.json").read_text())
    c = report["counts"]
    finished = c["total"] - c.get("running", 0) - c.get("waiting", 0)
    notes = [f"Teacher: {teacher_note}.", f"Latency budget {calibration['budget_ms']:.4g} ms: {calibration['rule']}."]
    notes += [] if ctx.smoke else [f"Trials of {TUNING_EPOCHS} epochs: a screen of architectures within the GPU plan's "
                                   "time, not converged scores."]
    notes += [] if ctx.cuda else [f"CUDA-graph latency budget skipped: {NO_CUDA}; the budget and the trials' latency "
                                  "are CPU eager figures."]
    notes += [capture_note] if capture_note else []
    artifacts = {"report.md": out / "report.md"}
    artifacts.update({rel: out / rel for rel in (report.get("plots") or {}).values() if str(rel).endswith(".png")})
    return {"suite": "tuning", "title": "Tuning study against a latency budget",
            "search_command": "python -m tuning.search " + shlex.join(argv), "exit_code": code,
            "calibration": calibration, "report": report,
            "reached": None if finished >= target else f"{finished} of the {target} trials wanted",
            "notes": notes, "_artifacts": {k: str(v) for k, v in artifacts.items() if v.is_file()}}


def _tuning_mode(ctx: Context, data: Any, space: Any, deadline: Deadline) -> tuple[str, str | None]:
    """The study's latency mode: a CUDA graph on CUDA when the probe captures the students the budget is set from,
    else eager (and why)."""
    from benchmarks.capture import CaptureJob, probe_missing, setting_key
    from tuning.budget import budget_students

    if not ctx.cuda:
        return "eager", None
    jobs = [CaptureJob(setting_key(cfg, 1, "fp32"), cfg, data.adj, 1, "fp32")
            for cfg in budget_students(space, int(data.num_nodes)).values()]
    verdicts = probe_missing(jobs, ctx.handover.get("capture"), device=ctx.device, deadline=deadline, log=ctx.log)
    ctx.handed["capture"] = verdicts
    refused = "; ".join(f"{k} not capturable: {v}" for k, v in verdicts.items() if v)
    return ("eager", f"Latency budget and trials timed eagerly: {refused}.") if refused else ("cuda-graph", None)


def _tuning_lineup(smoke: bool) -> str:
    trials = "2 trials of one epoch" if smoke else f">= {MIN_TRIALS} trials of {TUNING_EPOCHS} epochs"
    return (f"{trials} ({MIN_TRIALS + 10} asked for, within the time), {DEFAULT_STUDENT} (the default student) first, "
            f"against a CUDA-graph latency budget at batch 1 of 1/10 of {DEFAULT_TEACHER}'s from the latency part "
            "(without it: between the default student h32 and the widest students of the search space); the "
            "metr-la-week part's seed-0 teacher")


PARTS: list[Part] = [
    Part("environment", "environment", "environment: GPU, driver, clocks, versions", 5, part_environment,
         lambda smoke: "GPU, driver, clocks (nvidia-smi), torch / CUDA / cuDNN and package versions", grace_s=10),
    Part("latency", "latency", "latency table at 207 sensors (teacher, students, then PGT peers)", 45, part_latency,
         _latency_lineup),
    Part("profile", "profile", "profiler summary of the default student and teacher, eager / CUDA graph / compile",
         85, part_profile, profile_lineup),
    Part("cuda-tests", "cuda-tests", "the test suite's CUDA tests (pytest -m cuda)", 40, part_cuda_tests,
         lambda smoke: "pytest -m cuda: CUDA graphs, CUDA exports, the program compiled for the GPU"),
    Part("timing", "model-timing", "forward / forward+backward time of every model, batch 64", 10, part_timing,
         _timing_lineup),
    Part("metr-la-week", "metr-la-week", "metr-la-week suite, 3 seeds", 65, part_week, _week_lineup, grace_s=30),
    Part("tuning", "tuning", "tuning study, >= 30 trials, CUDA-graph latency budget", 75, part_tuning,
         _tuning_lineup, grace_s=20),
]
