"""The parts of ``python -m benchmarks.gpu``: what each measures, its default budget, its models in order.

Each part is a function ``run(ctx, deadline) -> record`` that :mod:`benchmarks.gpu` calls in the part's
own process; a part hands what later parts need (the metr-la-week teacher, capture verdicts) through
``ctx.handed``. :data:`PARTS` is the run, in order of value, with each part's budget on a GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import shutil
import subprocess
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from benchmarks.budget import Deadline, OutOfTime
from benchmarks.gpu_profile import default_student, default_teacher, part_profile, profile_lineup
from benchmarks.record import one_line as _one_line

__all__ = ["PARTS", "Part", "Context", "SuitePlan", "NO_CUDA", "MIN_TRIALS", "TUNING_EPOCHS"]

NO_CUDA = "no CUDA device"
#: graph size of the smoke run's latency and timing parts (MTGNN's default subgraph needs 20 sensors)
SMOKE_NODES = 20
#: trials the tuning study must finish to count as complete (the study is asked for more, within its time)
MIN_TRIALS = 30
#: epochs of each tuning trial on the GPU
TUNING_EPOCHS = 4


@dataclass(frozen=True)
class Part:
    """One part of the run.

    Attributes:
        name: its ``--parts`` name.
        suite: the ``suite`` of its record (and of its JSON file name).
        title: what it measures.
        budget_s: its default budget on a GPU (seconds, the part's process start and CUDA start-up included).
        run: ``run(ctx, deadline) -> record``, in the part's own process.
        lineup: ``lineup(smoke) -> str``: the models it runs, in order (``--plan``).
        grace_s: how far past its deadline the part may run (one unit of work) before it is stopped.
    """

    name: str
    suite: str
    title: str
    budget_s: float
    run: Callable[["Context", Deadline], dict[str, Any]]
    lineup: Callable[[bool], str]
    grace_s: float = 15.0


@dataclass
class Context:
    """What a part's process knows: settings, the device, the data folder, the shared work folder, and
    what earlier parts handed over (the metr-la-week teacher for the tuning study, capture verdicts)."""

    args: argparse.Namespace
    device: str
    smoke: bool
    week: Path | None
    work: Path
    run_id: str
    command: str
    log: Callable[[str], None]
    handover: dict[str, Any] = field(default_factory=dict)
    handed: dict[str, Any] = field(default_factory=dict)  # what this part hands to the parts after it

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


# ============================================================================ the parts


def part_environment(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """GPU, driver, clocks, library versions; ``"skipped: no CUDA device"`` for what needs a GPU."""
    from benchmarks.record import environment

    env = environment(ctx.device)
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "packages": _versions(["torch", "torch-geometric", "torch-geometric-temporal", "optuna", "tables", "numpy",
                               "pandas", "networkx", "scipy"]),
    }
    if ctx.cuda:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {
            "name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
            "devices": torch.cuda.device_count(), "cudnn": torch.backends.cudnn.version(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        }
        info["nvidia_smi"] = _nvidia_smi()
    else:
        info["gpu"] = {"skipped": NO_CUDA}
        info["nvidia_smi"] = {"skipped": NO_CUDA}
    return {"suite": "environment", "title": "Device and software", "environment": env, "details": info}


def _versions(names: list[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


#: ``nvidia-smi --query-gpu`` fields, most useful first (an unknown field fails the whole query, so it is
#: retried with the first few)
SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem",
              "clocks.applications.graphics", "power.limit", "power.draw", "temperature.gpu", "memory.total",
              "persistence_mode", "compute_mode", "mig.mode.current")


def _nvidia_smi() -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"skipped": "nvidia-smi not found"}
    for fields in (SMI_FIELDS, SMI_FIELDS[:6]):
        try:
            out = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=15, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            continue
        first = out.strip().splitlines()[0] if out.strip() else ""
        return dict(zip(fields, (v.strip() for v in first.split(","))))
    return {"skipped": f"nvidia-smi failed ({error})"}


def _latency_argv(ctx: Context) -> list[str]:
    if ctx.smoke:
        return ["--device", ctx.device, "--sections", "main", "peers", "--nodes", str(SMOKE_NODES), "--batch", "1", "2",
                "--warmup", "1", "--iters", "2", "--peer-hidden", "8"]
    return ["--device", ctx.device, "--sections", "main", "peers", "--nodes", "207", "--batch", "1", "64",
            "--warmup", "10", "--iters", "100"]


def part_latency(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """The latency table (:func:`benchmarks.latency.collect`): main section, then the PGT peers. Every
    CUDA-graph setting is probed in a child process first; an error keeps the rows measured before it."""
    from benchmarks import latency

    argv = _latency_argv(ctx)
    args = latency.resolve_args(latency.build_parser().parse_args(argv))
    started = dt.datetime.now(dt.timezone.utc)
    rows: list[dict[str, Any]] = []
    verdicts: dict[str, str | None] = {}
    reached = error = None
    try:
        verdicts = latency.probe_captures(args, deadline, known=ctx.handover.get("capture"))
        ctx.handed["capture"] = verdicts
        latency.collect(args, rows, deadline, verdicts)
    except OutOfTime as exc:
        reached = exc.what
    except Exception as exc:  # a CUDA error: the rows measured so far are the part's record
        error = _one_line(exc)
        ctx.log(f"latency: stopped by {error} after {len(rows)} settings; they are kept")
        traceback.print_exc()
    teacher_b1 = _teacher_graph_b1(rows)
    if teacher_b1 is not None:  # the tuning study's budget is set from it
        ctx.handed["teacher_cuda_graph_b1_ms"] = teacher_b1
    report = latency.make_report(args, argv, rows, started, None, command=ctx.command)
    record = {
        "suite": "latency", "title": f"Inference latency ({args.nodes} sensors, 12 -> 12)",
        "settings": report["settings"], "results": rows, "reached": reached, "capture": verdicts,
        "students": list(args.students), "widths": list(args.widths),
    }
    if error:
        record["error"] = error
    return record


def _teacher_graph_b1(rows: list[dict[str, Any]]) -> float | None:
    """The default teacher's CUDA-graph latency at batch 1, fp32, in the latency part's main section (ms)."""
    for r in rows:
        if (r.get("section"), r.get("model"), r.get("mode"), r.get("dtype"), r.get("batch")) == (
                "main", default_teacher(), "cuda-graph", "fp32", 1) and r.get("device_kind") == "cuda" \
                and "median_ms" in r:
            return float(r["median_ms"])
    return None


def _latency_lineup(smoke: bool) -> str:
    from benchmarks.latency import PEERS, student_families

    widths = "16/32/64"
    batches = "1 and 2" if smoke else "1 and 64"
    return (f"graph-wavenet; {', '.join(student_families())} at widths {widths}; batch {batches}, eager and CUDA graph "
            "(each setting probed in a child process first), fp32 and bf16; then PGT peers "
            f"{', '.join(PEERS)} (eager, fp32, batch 1)")


def part_timing(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """Forward and forward+backward time of every registered model, Graph WaveNet and the students first
    (:func:`benchmarks.model_timing.time_models`); an error keeps the rows timed before it."""
    import benchmarks.suites  # noqa: F401  (registers PGT's own recurrent cells as models too)
    from benchmarks.model_timing import time_models, value_order
    from stgkd.latency import random_graph
    from stgkd.nn import MODELS

    device = torch.device(ctx.device)
    if ctx.smoke:
        adj, graph = random_graph(SMOKE_NODES), f"random, 8 out-edges per node, seed 0 (N={SMOKE_NODES})"
        batch, warmup, iters = 1, 0, 1
    else:
        adj, graph = _week_graph(ctx)
        batch, warmup, iters = 64, 5, 20
    rows: list[Any] = []
    reached = error = None
    names = value_order(MODELS.names())
    try:
        roles = {getattr(MODELS.get(n), "role", "") for n in names}  # teachers, students, baselines, ...
        time_models(names, adj, batches={role: [batch] for role in roles}, dtypes=["fp32", "bf16"],
                    passes=["forward", "forward+backward"], device=device, warmup=warmup, iters=iters,
                    log=ctx.log, rows=rows, deadline=deadline)
    except OutOfTime as exc:
        reached = exc.what
    except Exception as exc:  # a CUDA error: the rows timed so far are the part's record
        error = _one_line(exc)
        ctx.log(f"timing: stopped by {error} after {len(rows)} settings; they are kept")
        traceback.print_exc()
    record = {
        "suite": "model-timing", "title": f"Forward and forward+backward time, batch {batch}",
        "graph": graph, "nodes": int(adj.shape[0]), "batch": batch, "warmup": warmup, "iters": iters,
        "order": names, "models": [asdict(r) for r in rows], "reached": reached,
    }
    if error:
        record["error"] = error
    return record


def _timing_lineup(smoke: bool) -> str:
    import benchmarks.suites  # noqa: F401  (registers PGT's own recurrent cells as models too)
    from benchmarks.model_timing import value_order
    from stgkd.nn import MODELS

    return (f"in this order: {', '.join(value_order(MODELS.names()))}; batch {1 if smoke else 64}, fp32 and bf16, "
            "forward and forward+backward")


def _week_graph(ctx: Context):
    """METR-LA's adjacency from the week folder, else a seeded random graph of 207 sensors."""
    from stgkd.latency import random_graph

    if ctx.week is not None:
        import numpy as np

        from stgkd.data.readers import read_adj_pickle

        _, adj = read_adj_pickle(ctx.week / "adj_mx.pkl")
        return np.asarray(adj, dtype=np.float32), "METR-LA (DCRNN adj_mx.pkl)"
    return random_graph(207), "random, 8 out-edges per node, seed 0 (N=207)"


def part_scaling(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """Cost against the network size (:func:`benchmarks.scaling.run_scaling`); a size whose cost bound does
    not fit the time left is skipped with the bound."""
    from benchmarks.run import build_parser
    from benchmarks.scaling import run_scaling
    from benchmarks.suites import TINY_TEACHER

    if ctx.smoke:
        argv = ["--suite", "scaling", "--device", ctx.device, "--sizes", "8", "16", "--batch-size", "4",
                "--scaling-batches", "1", "--scaling-warmup", "1", "--latency-batches", "1", "--latency-iters", "2",
                "--latency-warmup", "1", "--teacher-hparams", json.dumps(TINY_TEACHER)]
    else:
        argv = ["--suite", "scaling", "--device", ctx.device, "--sizes", "207", "883", "2000", "8600",
                "--batch-size", "16", "--scaling-batches", "3", "--scaling-warmup", "1", "--latency-batches", "1",
                "--latency-iters", "50", "--latency-warmup", "5"]
    args = build_parser().parse_args(argv)
    args.argv, args.deadline = argv, deadline
    args.capture_verdicts = ctx.handover.get("capture")
    record = run_scaling(args)
    ctx.handed["capture"] = record.get("capture") or {}
    return record


def _scaling_lineup(smoke: bool) -> str:
    from benchmarks.scaling import DEFAULT_STUDENT

    sizes = "8, 16" if smoke else "207, 883, 2,000, 8,600"
    return (f"graph-wavenet and {DEFAULT_STUDENT} h32 at N = {sizes} (3 training steps of 16 windows, latency at batch 1); a "
            "size whose cost bound (a + b N + c N^2 from the sizes measured) does not fit the time left is skipped, "
            "with the bound")


@dataclass(frozen=True)
class SuitePlan:
    """What a suite part trains on the GPU: seeds, students, peers, and why it is reduced (if it is).

    ``students`` are labels or model names of the suite's students."""

    seeds: int
    students: tuple[str, ...]
    peers: tuple[str, ...]
    reduced_by_design: str | None = None


def _suite_plans() -> dict[str, SuitePlan]:
    from benchmarks.suites import STUDENT_DEFAULT, STUDENT_REFERENCE, STUDENT_STRUCTURED

    return {
        "metr-la-week": SuitePlan(3, (STUDENT_DEFAULT[0], STUDENT_STRUCTURED[0]), ("pgt-tgcn",)),
        "los-loop": SuitePlan(1, (STUDENT_REFERENCE[0],), (), reduced_by_design=(
            "1 seed, the reference student (plainly and distilled), no peer: what the 8-minute GPU plan leaves "
            "after the parts before it (`python -m benchmarks.run --suite los-loop` runs the whole suite)")),
    }


def _suite_part(name: str) -> Callable[[Context, Deadline], dict[str, Any]]:
    def run(ctx: Context, deadline: Deadline) -> dict[str, Any]:
        """One suite of :mod:`benchmarks.run` as :func:`_suite_plans` has it: every run at least
        ``MIN_PASSES`` epochs, peers after every seed's teacher and students."""
        from benchmarks.run import build_parser, run_suite
        from benchmarks.suites import get_suite

        suite = get_suite(name)
        sp = _suite_plans()[name]
        peers = list(sp.peers) or ["none"]
        if ctx.smoke:
            argv = ["--suite", name, "--device", ctx.device, "--tiny", "--seeds", "1", "--epochs", "1",
                    "--limit-batches", "2", "--batch-size", "16", "--eval-batch-size", "256", "--latency-iters", "1",
                    "--latency-warmup", "1", "--latency-batches", "1", "--peers", *peers, "--students", *sp.students]
        else:
            argv = ["--suite", name, "--device", ctx.device, "--seeds", str(sp.seeds), "--epochs", str(suite.epochs),
                    "--patience", "10", "--batch-size", "64", "--latency-iters", "50", "--latency-warmup", "5",
                    "--peers", *peers, "--students", *sp.students]
        args = build_parser().parse_args(argv)
        args.argv, args.seed_list, args.deadline = argv, list(range(args.seeds)), deadline
        args.limit_batches = args.limit_batches if args.limit_batches is not None else suite.limit_batches
        args.week = ctx.week
        args.workdir = str(ctx.work / name)
        args.capture_verdicts = ctx.handover.get("capture")
        args.reduced_by_design = sp.reduced_by_design
        args.note = [("A 6-sensor, 2-day synthetic stand-in for the week, a tiny teacher, one epoch of two batches."
                      if ctx.smoke else
                      f"Every training run gets a share of the part's time budget (the teacher 3 shares, each other "
                      f"run 1) but trains at least {args.min_passes} epochs first; it stops after the epoch that "
                      "spends its share, or earlier by early stopping (patience 10). Runs the budget leaves no time "
                      "for are not started.")]
        record = run_suite(args)
        ctx.handed["capture"] = record.get("capture") or {}
        if name == "metr-la-week":
            teacher = ctx.work / name / "s0" / "teacher" / "best.pt"
            if teacher.is_file():
                hp = record["budget"]["teacher_hparams"]
                ctx.handed["teacher"] = str(teacher)
                ctx.handed["teacher_note"] = (
                    "the metr-la-week part's seed-0 teacher (Graph WaveNet "
                    + (f"{json.dumps(hp)}" if hp else "at the paper's size") + ", early stopping)")
        return record

    return run


def _suite_lineup(name: str) -> Callable[[bool], str]:
    def lineup(smoke: bool) -> str:
        from benchmarks.table.records import MIN_PASSES

        sp = _suite_plans()[name]
        seeds = 1 if smoke else sp.seeds
        students = ", ".join(f"{s} (plain, then distilled)" for s in sp.students)
        peers = f"; then, for every seed, {', '.join(sp.peers)}" if sp.peers else "; no peer"
        each = "one epoch of two batches" if smoke else f"each run at least {MIN_PASSES} epochs"
        text = f"{seeds} seed(s): {default_teacher()} (teacher), {students}{peers}; {each}"
        return text + (f" — reduced by design: {sp.reduced_by_design}" if sp.reduced_by_design else "")

    return lineup


def part_tuning(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """An Optuna study (``tuning.search.main``) of the students, the default one first (the study's enqueued
    default point), distilled from the metr-la-week part's default teacher, against a latency budget: on CUDA
    1/10 of the default teacher's CUDA-graph latency at batch 1 from the latency part, else one that excludes
    the widest students (:func:`_calibrate_budget`)."""
    from benchmarks.suites import TINY_TEACHER
    from stgkd.data.rebuild import load_data
    from stgkd.engine import TimeLimit, TrainConfig, train_model
    from stgkd.errors import DataError
    from tuning.teacher import SMALL_TEACHER
    from tuning.search import main as search_main
    from tuning.space import load_space

    if ctx.week is None:
        raise DataError("tuning: no METR-LA week found (pass --week)")
    data = load_data(str(ctx.week))
    teacher = ctx.handover.get("teacher")
    teacher_note = ctx.handover.get("teacher_note", "")
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
    calibration = _calibrate_budget(ctx, data, space, mode, teacher_ms=ctx.handover.get("teacher_cuda_graph_b1_ms"))
    budget_ms = calibration["budget_ms"]
    n_trials = 2 if ctx.smoke else MIN_TRIALS + 10
    reserve = 5.0 if ctx.smoke else 15.0  # report, export and the trial in flight
    timeout = max(1.0, deadline.remaining() - reserve) if deadline.end is not None else None
    out = ctx.work / "study"
    argv = ["--dataset", str(ctx.week), "--teacher", str(teacher), "--latency-budget-ms", f"{budget_ms:.6g}",
            "--latency-batch", "1", "--latency-mode", mode, "--latency-device", ctx.device, "--n-trials", str(n_trials),
            "--seed", "0", "--no-progress", "--out", str(out), "--device", ctx.device]
    argv += (["--epochs", "1", "--limit-batches", "2", "--latency-iters", "2", "--latency-warmup", "1", "--no-plots"]
             if ctx.smoke else ["--epochs", str(TUNING_EPOCHS), "--latency-iters", "50", "--latency-warmup", "5"])
    if timeout is not None:
        argv += ["--timeout", f"{timeout:.0f}"]
    ctx.log("tuning: python -m tuning.search " + shlex.join(argv))
    code = search_main(argv)
    report_path = out / "report.json"
    if not report_path.is_file():
        raise RuntimeError(f"tuning.search exited with {code} and wrote no report")
    report = json.loads(report_path.read_text())
    finished = report["counts"]["total"] - report["counts"].get("running", 0) - report["counts"].get("waiting", 0)
    target = 2 if ctx.smoke else MIN_TRIALS
    notes = [f"Teacher: {teacher_note}.", f"Latency budget {budget_ms:.4g} ms: {calibration['rule']}."]
    if not ctx.smoke:
        notes.append(f"Trials of {TUNING_EPOCHS} epochs: a screen of architectures within the GPU plan's time, not "
                     "converged scores.")
    if not ctx.cuda:
        notes.append(f"CUDA-graph latency budget skipped: {NO_CUDA}; the budget and the trials' latency are CPU "
                     "eager figures.")
    if capture_note:
        notes.append(capture_note)
    artifacts = {"report.md": out / "report.md"}
    artifacts.update({rel: out / rel for rel in (report.get("plots") or {}).values() if str(rel).endswith(".png")})
    return {
        "suite": "tuning", "title": "Tuning study against a latency budget",
        "search_command": "python -m tuning.search " + shlex.join(argv), "exit_code": code,
        "calibration": calibration, "report": report,
        "reached": None if finished >= target else f"{finished} of the {target} trials wanted",
        "notes": notes, "_artifacts": {k: str(v) for k, v in artifacts.items() if v.is_file()},
    }


def _tuning_students(data: Any, space: Any) -> dict[str, dict[str, Any]]:
    """The students the latency budget is set from: the reference (the default student at width 32, its
    family's other hyperparameters at their defaults) and the widest student of each family the space allows
    (top width and every integer size parameter that applies to the family, GRU depth, diffusion hops or
    stgru's rank (capped at the sensors), at its top), as model configs."""
    from benchmarks.capture import model_config

    n = int(data.num_nodes)
    hidden = space["hidden"].high
    families = list(space["family"].choices) if space["family"].kind == "categorical" else [space["family"].value]
    out = {"reference": model_config(default_student(), n, hidden=32)}
    for family in families:
        hp: dict[str, Any] = {"hidden": hidden}
        for spec in space.specs:
            applies = family in spec.when.get("family", (family,))
            if spec.kind == "int" and applies and (spec.name == "layers" or spec.name.startswith("student.")):
                # a rank is at most the number of sensors (stgru's adaptive graph)
                hp[spec.name.removeprefix("student.")] = min(spec.high, n) if spec.name == "student.rank" else spec.high
        out[family + " " + " ".join(f"{k}={v}" for k, v in hp.items())] = model_config(family, n, **hp)
    return out


def _tuning_mode(ctx: Context, data: Any, space: Any, deadline: Deadline) -> tuple[str, str | None]:
    """The study's latency mode: a CUDA graph on CUDA when the probe captures the students the budget is set
    from, else eager (and why)."""
    from benchmarks.capture import CaptureJob, probe_missing, setting_key

    if not ctx.cuda:
        return "eager", None
    jobs = [CaptureJob(setting_key(cfg, 1, "fp32"), cfg, data.adj, 1, "fp32")
            for cfg in _tuning_students(data, space).values()]
    verdicts = probe_missing(jobs, ctx.handover.get("capture"), device=ctx.device, deadline=deadline, log=ctx.log)
    ctx.handed["capture"] = verdicts
    refused = {k: v for k, v in verdicts.items() if v}
    if not refused:
        return "cuda-graph", None
    return "eager", ("Latency budget and trials timed eagerly: " + "; ".join(
        f"{k} not capturable: {v}" for k, v in refused.items()) + ".")


#: the tuning budget on CUDA: this fraction of the default teacher's CUDA-graph latency at batch 1 (issue 32's
#: goal: the default student >= 10x faster than Graph WaveNet)
TEACHER_FRACTION = 0.1


def _calibrate_budget(ctx: Context, data: Any, space: Any, mode: str, *, teacher_ms: float | None = None
                      ) -> dict[str, Any]:
    """The latency budget. On CUDA in CUDA-graph mode with the latency part's figure of the default teacher
    (``teacher_ms``, CUDA graph, batch 1, fp32): :data:`TEACHER_FRACTION` of it. Otherwise the geometric mean
    of the reference student's latency (the default student, width 32) and the fastest of the widest students
    of each family in the space (largest width, depth, hops), so the reference is feasible and no widest
    student is. The students are measured as the study measures (batch 1) either way, so the record says
    which of them the budget admits."""
    from stgkd.latency import measure
    from stgkd.nn.registry import from_config

    iters, warmup = (2, 1) if ctx.smoke else (50, 5)

    def lat(config: dict[str, Any]) -> float:
        torch.manual_seed(0)
        return measure(from_config(config, data.adj), batch_size=1, device=ctx.device, mode=mode, warmup=warmup,
                       iters=iters, name=config["name"]).median_ms

    students = _tuning_students(data, space)
    ref_config = students.pop("reference")
    reference = lat(ref_config)
    widest = {label: lat(cfg) for label, cfg in students.items()}
    low_wide = min(widest.values())
    source = "calibrated here"
    if ctx.cuda and mode == "cuda-graph" and teacher_ms:
        budget = TEACHER_FRACTION * float(teacher_ms)
        source = "the latency part"
        note = (f"1/{round(1 / TEACHER_FRACTION)} of {default_teacher()}'s CUDA-graph latency at batch 1, fp32 "
                f"({float(teacher_ms):.4g} ms, measured by the latency part of this run)")
    elif low_wide > 1.05 * reference:
        budget, note = math.sqrt(reference * low_wide), "geometric mean of the reference and the fastest widest student"
    else:
        budget = 1.05 * reference
        note = ("the widest students are not measurably slower than the reference here, so no budget above the "
                "reference excludes them; budget = 1.05 x the reference")
    if ctx.cuda and not (mode == "cuda-graph" and teacher_ms):
        note += (" (no CUDA-graph figure of the teacher from the latency part" if not teacher_ms else
                 " (the students are timed eagerly here") + ", so not 1/10 of the teacher's)"
    return {"mode": mode, "device": ctx.device, "batch": 1, "source": source,
            "reference": {"model": ref_config["name"], "hidden": 32, "median_ms": reference,
                          "within_budget": reference <= budget},
            "teacher": {"model": default_teacher(), "mode": "cuda-graph", "batch": 1, "median_ms": teacher_ms},
            "widest": widest, "budget_ms": budget, "rule": note}


def _tuning_lineup(smoke: bool) -> str:
    trials = "2 trials of one epoch" if smoke else f">= {MIN_TRIALS} trials of {TUNING_EPOCHS} epochs"
    return (f"{trials} ({MIN_TRIALS + 10} asked for, within the time), {default_student()} (the default student) "
            f"first, against a CUDA-graph latency budget at batch 1 of 1/10 of {default_teacher()}'s from the latency "
            "part (without it: between the default student h32 and the widest students of the search space); the "
            "metr-la-week part's seed-0 teacher")


PARTS: list[Part] = [
    Part("environment", "environment", "environment: GPU, driver, clocks, versions", 5, part_environment,
         lambda smoke: "GPU, driver, clocks (nvidia-smi), torch / CUDA / cuDNN and package versions", grace_s=10),
    Part("latency", "latency", "latency table at 207 sensors (teacher, students, then PGT peers)", 50, part_latency,
         _latency_lineup),
    Part("profile", "profile", "profiler summary of the default student and teacher, eager / CUDA graph / compile",
         95, part_profile, profile_lineup),
    Part("timing", "model-timing", "forward / forward+backward time of every model, batch 64", 10, part_timing,
         _timing_lineup),
    Part("scaling", "scaling", "teacher and student on 207 / 883 / 2,000 / 8,600 sensors", 15, part_scaling,
         _scaling_lineup, grace_s=20),
    Part("metr-la-week", "metr-la-week", "metr-la-week suite, 3 seeds", 70, _suite_part("metr-la-week"),
         _suite_lineup("metr-la-week"), grace_s=30),
    Part("tuning", "tuning", "tuning study, >= 30 trials, CUDA-graph latency budget", 55, part_tuning,
         _tuning_lineup, grace_s=20),
    Part("los-loop", "los-loop", "Los-loop suite, reduced by design", 10, _suite_part("los-loop"),
         _suite_lineup("los-loop"), grace_s=20),
]
