"""``python -m benchmarks.gpu``: every GPU figure of the study from one command, each part under a time budget.

A GPU machine is lent for minutes at a time, so the whole measurement is one process that runs, in
order of value:

1. ``environment``: GPU, driver, clocks (when ``nvidia-smi`` can read them), torch, CUDA, cuDNN,
   package versions;
2. ``latency``: the latency table at 207 sensors, 12 -> 12 (:func:`benchmarks.latency.collect`): Graph
   WaveNet and every registered student family at widths 16/32/64, batch 1 and 64, eager and CUDA graph,
   fp32 and bf16; torch-geometric-temporal's ``A3TGCN2``, ``TGCN2`` stepped over 12 inputs,
   ``BatchedDCRNN`` and ``MTGNN`` at batch 1, eager, in the same process;
3. ``timing``: forward and forward+backward time of every registered model at batch 64, fp32 and bf16
   (:func:`benchmarks.model_timing.time_models`);
4. ``scaling``: teacher and default student on synthetic networks of 207, 883, 2,000 and 8,600 sensors
   (:func:`benchmarks.scaling.run_scaling`; RESULTS.md states the power-law growth);
5. ``metr-la-week``: the suite of :mod:`benchmarks.run` on the real week, 3 seeds: the teacher with
   early stopping, the reference and the structured student, plainly and distilled, one PGT peer;
6. ``los-loop``: the same under T-GCN's Los-loop protocol;
7. ``tuning``: an Optuna study (``tuning.search.main``) of at least 30 trials against a CUDA-graph
   latency budget placed between the reference student and the widest students of the search space,
   so that those are excluded.

Each part has its own budget (``--budget-PART`` seconds); the budgets form one schedule, so a part that
finishes early leaves its time to the next and one that overruns (by at most one unit of work: one
setting, one epoch, one trial) takes it from the next. Inside a part the work checks its deadline
between units (:mod:`benchmarks.budget`); a part cut short stops cleanly and its record says
``"completed": false`` and ``"reached"`` (the first unit it did not start); a part that fails records
the error; either way the next part runs. Each part's JSON is written (atomically) to
``benchmarks/results/`` and to ``--out`` as soon as the part ends, and RESULTS.md is regenerated, so a
run cut off from outside still returns what finished.

``--smoke`` runs every part end to end on the CPU at toy size (a 6-sensor synthetic week, tiny models,
one epoch of two batches, two trials) into ``--out`` only (never ``benchmarks/results/``); CUDA-only
settings are recorded as skipped, with the reason, not as figures.

    python -m benchmarks.gpu --out "$OUT"                   # the GPU machine (see benchmarks/README.md)
    python -m benchmarks.gpu --smoke --out /tmp/gpu-smoke   # anywhere, under a minute
    python -m benchmarks.gpu --parts latency timing --budget-latency 90 --out "$OUT"
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from benchmarks.budget import Deadline, OutOfTime
from benchmarks.record import environment
from benchmarks.run import SCHEMA

__all__ = ["PARTS", "Part", "build_parser", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
RESULTS_MD = REPO_ROOT / "benchmarks" / "RESULTS.md"
NO_CUDA = "no CUDA device"
#: graph size of the smoke run's latency and timing parts (MTGNN's default subgraph needs 20 sensors)
SMOKE_NODES = 20
#: trials the tuning study must finish to count as complete (the study is asked for more, within its time)
MIN_TRIALS = 30


@dataclass(frozen=True)
class Part:
    """One part of the run: its name (``--parts``), what it measures and its default budget on a GPU."""

    name: str
    title: str
    budget_s: float
    run: Callable[["Context", Deadline], dict[str, Any]]


@dataclass
class Context:
    """What the parts share: settings, the device, the data folder, a work folder, and hand-overs
    (the metr-la-week teacher, reused by the tuning study)."""

    args: argparse.Namespace
    device: str
    smoke: bool
    week: Path | None
    work: Path
    run_id: str
    command: str
    log: Callable[[str], None]
    handover: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


# ============================================================================ the parts


def part_environment(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """GPU, driver, clocks, library versions; ``"skipped: no CUDA device"`` for what needs a GPU."""
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


def part_latency(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """The latency table (:func:`benchmarks.latency.collect`): main section and PGT peers."""
    from benchmarks import latency

    if ctx.smoke:
        argv = ["--device", ctx.device, "--sections", "main", "peers", "--nodes", str(SMOKE_NODES), "--batch", "1", "2",
                "--warmup", "1", "--iters", "2", "--peer-hidden", "8"]
    else:
        argv = ["--device", ctx.device, "--sections", "main", "peers", "--nodes", "207", "--batch", "1", "64",
                "--warmup", "10", "--iters", "100"]
    args = latency.resolve_args(latency.build_parser().parse_args(argv))
    started = dt.datetime.now(dt.timezone.utc)
    rows: list[dict[str, Any]] = []
    reached = None
    try:
        latency.collect(args, rows, deadline)
    except OutOfTime as exc:
        reached = exc.what
    report = latency.make_report(args, argv, rows, started, None, command=ctx.command)
    return {
        "suite": "latency", "title": f"Inference latency ({args.nodes} sensors, 12 -> 12)",
        "settings": report["settings"], "results": rows, "reached": reached,
        "students": list(args.students), "widths": list(args.widths),
    }


def part_timing(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """Forward and forward+backward time of every registered model (:func:`benchmarks.model_timing.time_models`)."""
    import benchmarks.suites  # noqa: F401  (registers PGT's own recurrent cells as models too)
    from benchmarks.model_timing import time_models
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
    reached = None
    try:
        time_models(MODELS.names(), adj, batches={"teacher": [batch], "student": [batch]}, dtypes=["fp32", "bf16"],
                    passes=["forward", "forward+backward"], device=device, warmup=warmup, iters=iters,
                    log=ctx.log, rows=rows, deadline=deadline)
    except OutOfTime as exc:
        reached = exc.what
    return {
        "suite": "model-timing", "title": f"Forward and forward+backward time, batch {batch}",
        "graph": graph, "nodes": int(adj.shape[0]), "batch": batch, "warmup": warmup, "iters": iters,
        "models": [asdict(r) for r in rows], "reached": reached,
    }


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
    """Cost against the network size (:func:`benchmarks.scaling.run_scaling`)."""
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
    return run_scaling(args)


def _suite_part(name: str) -> Callable[[Context, Deadline], dict[str, Any]]:
    def run(ctx: Context, deadline: Deadline) -> dict[str, Any]:
        """One suite of :mod:`benchmarks.run` (3 seeds, the reference and the structured student, one peer)."""
        from benchmarks.run import build_parser, run_suite
        from benchmarks.suites import STUDENT_REFERENCE, STUDENT_STRUCTURED, get_suite

        suite = get_suite(name)
        students = [STUDENT_REFERENCE[0], STUDENT_STRUCTURED[0]]
        if ctx.smoke:
            argv = ["--suite", name, "--device", ctx.device, "--tiny", "--seeds", "1", "--epochs", "1",
                    "--limit-batches", "2", "--batch-size", "16", "--eval-batch-size", "256", "--latency-iters", "1",
                    "--latency-warmup", "1", "--latency-batches", "1", "--peers", "pgt-tgcn", "--students", *students]
        else:
            argv = ["--suite", name, "--device", ctx.device, "--seeds", "3", "--epochs", str(suite.epochs),
                    "--patience", "10", "--batch-size", "64", "--latency-iters", "50", "--latency-warmup", "5",
                    "--peers", "pgt-tgcn", "--students", *students]
        args = build_parser().parse_args(argv)
        args.argv, args.seed_list, args.deadline = argv, list(range(args.seeds)), deadline
        args.limit_batches = args.limit_batches if args.limit_batches is not None else suite.limit_batches
        args.week = ctx.week
        args.workdir = str(ctx.work / name)
        args.note = [("A 6-sensor, 2-day synthetic stand-in for the week, a tiny teacher, one epoch of two batches."
                      if ctx.smoke else
                      "Every training run gets a share of the part's time budget (the teacher 3 shares, each other "
                      "run 1) and stops after the epoch that spends it, or earlier by early stopping (patience 10).")]
        record = run_suite(args)
        if name == "metr-la-week":
            teacher = ctx.work / name / "s0" / "teacher" / "best.pt"
            if teacher.is_file():
                hp = record["budget"]["teacher_hparams"]
                ctx.handover["teacher"] = teacher
                ctx.handover["teacher_note"] = (
                    "the metr-la-week part's seed-0 teacher (Graph WaveNet "
                    + (f"{json.dumps(hp)}" if hp else "at the paper's size") + ", early stopping)")
        return record

    return run


def part_tuning(ctx: Context, deadline: Deadline) -> dict[str, Any]:
    """An Optuna study (``tuning.search.main``) against a latency budget that excludes the widest students."""
    from benchmarks.suites import TINY_TEACHER
    from stgkd.data.rebuild import load_data
    from stgkd.engine import TimeLimit, TrainConfig, train_model
    from stgkd.errors import DataError
    from tuning.search import SMALL_TEACHER
    from tuning.search import main as search_main
    from tuning.space import load_space

    if ctx.week is None:
        raise DataError("tuning: no METR-LA week found (pass --week)")
    data = load_data(str(ctx.week))
    teacher = ctx.handover.get("teacher")
    teacher_note = ctx.handover.get("teacher_note", "")
    if teacher is None:
        hp = TINY_TEACHER if ctx.smoke else SMALL_TEACHER
        limit = max(1.0, 0.2 * deadline.remaining()) if deadline.end is not None else None
        ctx.log(f"tuning: no teacher from the metr-la-week part; training a compact Graph WaveNet {hp}")
        res = train_model(data, "graph-wavenet", ctx.work / "tuning-teacher", hparams=dict(hp), overwrite=True,
                          config=TrainConfig(epochs=1 if ctx.smoke else 30, device=ctx.device, seed=0,
                                             limit_batches=2 if ctx.smoke else None),
                          callbacks=[TimeLimit(seconds=limit)] if limit else [], progress=False, log=False)
        teacher = res.best_path
        teacher_note = f"a compact Graph WaveNet {json.dumps(hp)} trained here ({res.epochs_run} epochs)"
    mode = "cuda-graph" if ctx.cuda else "eager"
    space = load_space(None)
    calibration = _calibrate_budget(ctx, data, space, mode)
    budget_ms = calibration["budget_ms"]
    n_trials = 2 if ctx.smoke else MIN_TRIALS + 10
    reserve = 5.0 if ctx.smoke else 20.0  # report, export and the trial in flight
    timeout = max(1.0, deadline.remaining() - reserve) if deadline.end is not None else None
    out = ctx.work / "study"
    argv = ["--dataset", str(ctx.week), "--teacher", str(teacher), "--latency-budget-ms", f"{budget_ms:.6g}",
            "--latency-batch", "1", "--latency-mode", mode, "--latency-device", ctx.device, "--n-trials", str(n_trials),
            "--seed", "0", "--no-progress", "--out", str(out), "--device", ctx.device]
    argv += (["--epochs", "1", "--limit-batches", "2", "--latency-iters", "2", "--latency-warmup", "1", "--no-plots"]
             if ctx.smoke else ["--epochs", "6", "--latency-iters", "50", "--latency-warmup", "5"])
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
    notes = [f"Teacher: {teacher_note}."]
    if not ctx.cuda:
        notes.append(f"CUDA-graph latency budget skipped: {NO_CUDA}; the budget and the trials' latency are CPU "
                     "eager figures.")
    artifacts = {"report.md": out / "report.md"}
    artifacts.update({rel: out / rel for rel in (report.get("plots") or {}).values() if str(rel).endswith(".png")})
    return {
        "suite": "tuning", "title": "Tuning study against a latency budget",
        "search_command": "python -m tuning.search " + shlex.join(argv), "exit_code": code,
        "calibration": calibration, "report": report,
        "reached": None if finished >= target else f"{finished} of the {target} trials wanted",
        "notes": notes, "_artifacts": {k: v for k, v in artifacts.items() if v.is_file()},
    }


def _calibrate_budget(ctx: Context, data: Any, space: Any, mode: str) -> dict[str, Any]:
    """The latency budget: the geometric mean of the reference student's latency (gcn-gru, width 32, one
    layer) and the fastest of the widest students of each family in the space (largest width, depth, hops),
    so the reference is feasible and no widest student is. Measured as the study measures (batch 1)."""
    from stgkd.latency import measure
    from stgkd.nn import build

    adj = data.adj
    n = int(data.num_nodes)
    hidden = space["hidden"].high
    families = list(space["family"].choices) if space["family"].kind == "categorical" else [space["family"].value]

    def widest_hparams(family: str) -> dict[str, Any]:
        """The largest student of ``family`` the space allows: top width and every integer size
        parameter that applies to the family (GRU depth, diffusion hops) at its top."""
        hp: dict[str, Any] = {"hidden": hidden}
        for spec in space.specs:
            applies = family in spec.when.get("family", (family,))
            if spec.kind == "int" and applies and (spec.name == "layers" or spec.name.startswith("student.")):
                hp[spec.name.removeprefix("student.")] = spec.high
        return hp

    iters, warmup = (2, 1) if ctx.smoke else (50, 5)

    def lat(name: str, **hp: Any) -> float:
        torch.manual_seed(0)
        model = build(name, num_nodes=n, graph=adj, **hp)
        return measure(model, batch_size=1, device=ctx.device, mode=mode, warmup=warmup, iters=iters,
                       name=name).median_ms

    reference = lat("gcn-gru", hidden=32, layers=1)
    widest_hp = {f: widest_hparams(f) for f in families}
    widest = {f: lat(f, **widest_hp[f]) for f in families}
    low_wide = min(widest.values())
    if low_wide > 1.05 * reference:
        budget, note = math.sqrt(reference * low_wide), "geometric mean of the reference and the fastest widest student"
    else:
        budget = 1.05 * reference
        note = ("the widest students are not measurably slower than the reference here, so no budget above the "
                "reference excludes them; budget = 1.05 x the reference")
    return {"mode": mode, "device": ctx.device, "batch": 1, "reference": {"model": "gcn-gru", "hidden": 32, "layers": 1,
            "median_ms": reference}, "widest": {f + " " + " ".join(f"{k}={v}" for k, v in widest_hp[f].items()): v
                                               for f, v in widest.items()},
            "budget_ms": budget, "rule": note}


PARTS: list[Part] = [
    Part("environment", "environment: GPU, driver, clocks, versions", 5, part_environment),
    Part("latency", "latency table at 207 sensors (teacher, students, PGT peers)", 60, part_latency),
    Part("timing", "forward / forward+backward time of every model, batch 64", 40, part_timing),
    Part("scaling", "teacher and student on 207 / 883 / 2,000 / 8,600 sensors", 45, part_scaling),
    Part("metr-la-week", "metr-la-week suite, 3 seeds", 115, _suite_part("metr-la-week")),
    Part("los-loop", "Los-loop suite, 3 seeds", 60, _suite_part("los-loop")),
    Part("tuning", "tuning study, >= 30 trials, CUDA-graph latency budget", 110, part_tuning),
]
#: generous budgets of --smoke (toy sizes finish in seconds; a budget only guards against a hang)
SMOKE_BUDGET_S = 120.0


# ============================================================================ running and writing


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_json(record: dict[str, Any], name: str, folders: list[Path]) -> list[Path]:
    """Write ``record`` to ``folder/name`` in every folder, atomically (fsync'ed temp file, then rename)."""
    from stgkd.files import atomic_write

    data = (json.dumps(record, indent=1, default=_json_default) + "\n").encode()
    return [atomic_write(folder / name, data) for folder in folders]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)


def _render(results: Path, markdowns: list[Path], log: Callable[[str], None]) -> None:
    """Regenerate each RESULTS.md from ``results`` (a rendering failure is logged: it must not stop the
    measuring; ``python -m benchmarks.run --render`` redoes it from the JSON files)."""
    from benchmarks.table.page import write_markdown

    for md in markdowns:
        try:
            write_markdown(results, md)
        except Exception as exc:
            log(f"rendering {md} failed ({type(exc).__name__}: {exc}); the JSON files are intact")


def run_part(part: Part, ctx: Context, deadline: Deadline, *, index: int, budget_s: float) -> dict[str, Any]:
    """Run one part and return its complete record (an error is recorded, not raised)."""
    started = _now()
    t0 = time.monotonic()
    ctx.log(f"part {index} {part.name}: budget {budget_s:g} s ({max(0.0, deadline.remaining()):.1f} s until its "
            "deadline in the schedule)")
    error = None
    try:
        deadline.check(f"{part.name} (its time went to the parts before it)")
        record = part.run(ctx, deadline)
    except OutOfTime as exc:
        record = {"reached": exc.what}
    except Exception as exc:  # one part's failure must not cost the others their turn: recorded, not raised
        error = f"{type(exc).__name__}: {exc}"
        ctx.log(f"part {part.name} failed: {error}")
        if ctx.args.debug:
            traceback.print_exc()
        record = {"error": error, "traceback": traceback.format_exc(limit=8)}
    wall = time.monotonic() - t0
    if ctx.cuda:  # what one part cached must not crowd the next
        gc.collect()
        torch.cuda.empty_cache()
    record.setdefault("suite", part.name)
    record.setdefault("title", part.title)
    record.setdefault("protocol", record["suite"])
    record.setdefault("environment", environment(ctx.device))
    record.setdefault("notes", [])
    record["schema"] = SCHEMA
    record["date"] = started.strftime("%Y-%m-%d")
    record["started"] = started.isoformat(timespec="seconds")
    record["wall_seconds"] = wall
    record["command"] = ctx.command
    reached = record.get("reached")
    completed = error is None and reached is None and record.get("completed", True)
    record["completed"] = bool(completed)
    record["run"] = {"id": ctx.run_id, "part": part.name, "index": index, "budget_s": budget_s, "wall_s": wall,
                     "completed": bool(completed), "reached": reached, "error": error, "smoke": ctx.smoke}
    state = "completed" if completed else (f"failed ({error})" if error else f"stopped before {reached}")
    ctx.log(f"part {part.name}: {state} in {wall:.1f} s")
    return record


def _smoke_week(folder: Path) -> Path:
    """A 6-sensor, 2-day synthetic stand-in for the METR-LA week, in the week's file layout."""
    import pandas as pd

    from stgkd.cli import main as stgkd_main

    code = stgkd_main(["data", "synth", "--out", str(folder), "--nodes", "6", "--days", "2", "--seed", "0", "--force"])
    if code != 0:
        raise RuntimeError(f"stgkd data synth exited with {code}")
    (folder / "synthetic.h5").replace(folder / "metr-la-week.h5")
    frame = pd.read_hdf(folder / "metr-la-week.h5", key="df")
    frame.to_csv(folder / "los_speed.csv", index=False)
    return folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [part.name for part in PARTS]
    p.add_argument("--parts", nargs="+", default=names, choices=names, metavar="PART",
                   help=f"parts to run, in the fixed order {' '.join(names)} (default: all)")
    p.add_argument("--out", default=None, help="also write every JSON file and RESULTS.md here (e.g. $OUT)")
    p.add_argument("--results-dir", default=None,
                   help="where the JSON files go (default: benchmarks/results; with --smoke only --out)")
    p.add_argument("--markdown", default=None,
                   help="RESULTS.md to regenerate from the results folder (default: benchmarks/RESULTS.md; with "
                        "--smoke OUT/RESULTS.md)")
    p.add_argument("--week", default=None,
                   help="folder of the real METR-LA week (default: $STGKD_WEEK, else ../shared/data/metr-la-week, "
                        "else .gpu/data/metr-la-week)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                   help="auto: CUDA, refusing to run full size without it (default: auto; --smoke: cpu)")
    p.add_argument("--smoke", action="store_true",
                   help="every part at toy size on the CPU, into --out only (a minute; what CI runs)")
    p.add_argument("--workdir", default=None, help="keep checkpoints and the study here (default: a temporary folder)")
    p.add_argument("--debug", action="store_true", help="print tracebacks of failed parts")
    budgets = p.add_argument_group("time budgets (seconds; one schedule: time a part leaves goes to the next)")
    for part in PARTS:
        budgets.add_argument(f"--budget-{part.name}", type=float, default=None, metavar="S",
                             help=f"{part.title} (default: {part.budget_s:g}; --smoke: {SMOKE_BUDGET_S:g})")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts; 0 when every part wrote its record without an error (a part cut short by
    its budget is recorded, not an error), 1 when a part failed, 2 for bad arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = "cpu" if args.smoke and args.device == "auto" else args.device
    if device == "auto":
        if not torch.cuda.is_available():
            print("benchmarks.gpu: no CUDA device; run with --smoke (toy sizes on the CPU) or --device cpu "
                  "(full size on the CPU, which the budgets cut short)", file=sys.stderr)
            return 2
        device = "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("benchmarks.gpu: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else None
    if args.smoke and out is None and args.results_dir is None:
        out = Path(tempfile.mkdtemp(prefix="stgkd-gpu-smoke-"))
    results = Path(args.results_dir) if args.results_dir else (None if args.smoke else RESULTS_DIR)
    folders = [f for f in dict.fromkeys(p.resolve() for p in (results, out) if p is not None)]
    primary = folders[0]
    markdown = Path(args.markdown) if args.markdown else (primary / "RESULTS.md" if args.smoke else RESULTS_MD)
    markdowns = list(dict.fromkeys([markdown.resolve()] + ([out.resolve() / "RESULTS.md"] if out else [])))
    started = _now()
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    log_path = (out or primary) / "gpu-run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        line = f"[{_now().strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="stgkd-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        week = _smoke_week(work / "toy-week") if args.smoke else _find_week(args.week)
        ctx = Context(args=args, device=device, smoke=args.smoke, week=week, work=work, run_id=run_id,
                      command="python -m benchmarks.gpu " + shlex.join(argv), log=log)
        log(f"benchmarks.gpu on {device} ({'smoke' if args.smoke else 'full size'}); week: {week}; "
            f"results: {', '.join(map(str, folders))}")
        selected = [part for part in PARTS if part.name in args.parts]
        t_start = time.monotonic()
        schedule = 0.0
        failed = []
        tag = "-smoke" if args.smoke else ""
        for index, part in enumerate(selected, start=1):
            budget = getattr(args, f"budget_{part.name.replace('-', '_')}")
            budget = budget if budget is not None else (SMOKE_BUDGET_S if args.smoke else part.budget_s)
            schedule += budget
            deadline = Deadline(t_start + schedule)
            record = run_part(part, ctx, deadline, index=index, budget_s=budget)
            if record["run"]["error"]:
                failed.append(part.name)
            stem = f"{record['suite']}-{device}-{record['date']}{tag}"
            artifacts = record.pop("_artifacts", {})
            record["files"] = {k: f"{stem}-{k}" for k in artifacts}
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                for key, src in artifacts.items():
                    shutil.copyfile(src, folder / record["files"][key])
            for path in _write_json(record, f"{stem}.json", folders):
                log(f"wrote {path}")
            _render(primary, markdowns, log)
        log(f"done in {time.monotonic() - t_start:.0f} s; RESULTS.md: {', '.join(map(str, markdowns))}"
            + (f"; failed parts: {', '.join(failed)}" if failed else ""))
        return 1 if failed else 0
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _find_week(week: str | None) -> Path | None:
    from benchmarks.suites import week_folder
    from stgkd.errors import DataError

    try:
        return week_folder(week)
    except DataError as exc:
        print(f"benchmarks.gpu: {exc}; the week's parts will record the error", file=sys.stderr)
        return None


if __name__ == "__main__":
    raise SystemExit(main())
