"""Students deployed on the CPU: exported files (fp32 / int8 TorchScript, ONNX) and every CPU program.

    python -m benchmarks.cpu_deploy [--sections variants programs]
        [--checkpoint runs/st/best.pt] [--dataset NAME_OR_PATH] [--data-dir DIR]
        [--nodes 207 --days 14 --width 32 --epochs 5 --limit-batches 50]   # without --checkpoint
        [--students gru gcn-gru dcgru stgru | --student-checkpoints A.pt B.pt] [--programs ...]
        [--batches 1 64] [--rounds 3] [--warmup 10] [--iters 50] [--no-profile] [--allow-busy] [--smoke]
        [--tag T] [--out benchmarks/results]

Section ``variants`` (the default) exports one student (``--checkpoint``, or a ``gcn-gru`` trained here on the synthetic network, or on
``--dataset``) with :func:`stgkd.export.export_student` as fp32 TorchScript, int8 TorchScript (linear and
recurrent layers; and each group alone, to show where int8 helps) and ONNX (where onnx and onnxruntime
are installed). Each export measures itself against the fp32 TorchScript program in the same run
(``deployment_checks`` in its metadata): masked MAE/RMSE/MAPE on the test split, fed raw readings as in
deployment, and CPU latency end to end on one thread at batch 1 and 64. A profile of the fp32 and int8
programs at batch 64 (torch.profiler, one thread) shows where the time goes. Writes
``OUT/cpu-deploy-<date>[-tag].md`` and ``.json`` with the command, machine, date and load average.

The goal checked: an int8 student on one thread at least 2x faster than fp32 at batch 64 with a test MAE
change under 1 %.

Section ``programs`` finds the fastest faithful CPU program of every student family: each student
(``--student-checkpoints``, or each of ``--students`` trained here as above) is built as every program of
:data:`stgkd.export.programs.PROGRAMS` (eager, the default torch.export file uncompiled and compiled in
process as ``Forecaster.load`` runs it, TorchScript, TorchScript frozen + optimize_for_inference,
torch.compile in its default and max-autotune modes, an AOTInductor package, ONNX Runtime at graph
optimisation levels ALL and EXTENDED), each checked against the eager model on the same raw inputs at every
batch size (max absolute difference at most 1e-4 in raw units); a program that fails to build or is not
faithful is recorded with the reason and not timed. The faithful ones are timed end to end (raw readings
and timestamps in, raw forecasts out) on ``--threads`` (1) threads at each batch size, in ``--rounds``
rounds that rotate the order of the programs; a figure is the median of the rounds' medians. Written to
``OUT/cpu-programs-<date>[-tag].md`` and ``.json`` (``cpu-deploy-...`` when both sections run). The goal
checked: the fastest faithful program of each family at least 2x faster than its eager model at batch 1.

Timings are only worth recording on an idle machine: the script refuses to write results when the
1-minute load average exceeds the number of cores (before or after measuring) unless ``--allow-busy``,
and then labels them busy. ``--smoke`` runs a tiny network (6 sensors, 2 days, width 8, 3 timed calls, one
round) to check the code path; its figures mean nothing and are labelled so.

The sections live in :mod:`benchmarks.cpu_variants` and :mod:`benchmarks.cpu_programs`; this module trains
the students they need, runs them and writes the report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.cpu_programs import program_goal, programs_markdown, run_programs
from benchmarks.cpu_variants import PROFILE_BATCH, VARIANTS, goal_verdict, profile_program, run_variants, variants_markdown

#: benchmark sections, in the order they run
SECTIONS = ("variants", "programs")
#: student families the programs section trains when given no checkpoints
FAMILIES = ("gru", "gcn-gru", "dcgru", "stgru")


def build_parser() -> argparse.ArgumentParser:
    from stgkd.export.programs import PROGRAMS

    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu_deploy", description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=["variants"],
                   help="variants: one student's exported files (fp32/int8/ONNX) with test-split accuracy; "
                        "programs: every CPU program of every student family (default: variants)")
    p.add_argument("--checkpoint", type=Path, default=None, help="student checkpoint (default: train one here)")
    p.add_argument("--dataset", default=None,
                   help="series: for training when no --checkpoint (default: the synthetic network), else for "
                        "the accuracy check instead of the checkpoint's")
    p.add_argument("--data-dir", default=None, help="root of registered datasets")
    p.add_argument("--nodes", type=int, default=207, help="synthetic network size (default: 207, METR-LA's)")
    p.add_argument("--days", type=int, default=14, help="synthetic days (default: 14)")
    p.add_argument("--student", default="gcn-gru")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--limit-batches", type=int, default=50, help="training batches per epoch (default: 50)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--students", nargs="+", default=list(FAMILIES), metavar="FAMILY",
                   help=f"programs section: student families trained here (default: {' '.join(FAMILIES)})")
    p.add_argument("--student-checkpoints", nargs="+", type=Path, default=None, metavar="CKPT",
                   help="programs section: student checkpoints to use instead of training --students here")
    p.add_argument("--programs", nargs="+", choices=list(PROGRAMS), default=list(PROGRAMS),
                   help="programs section: the CPU programs to build, check and time (default: all)")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64],
                   help="programs section: batch sizes checked and timed (default: 1 64)")
    p.add_argument("--threads", type=int, default=1, help="programs section: CPU threads (default: 1)")
    p.add_argument("--rounds", type=int, default=3,
                   help="programs section: timing rounds, the programs' order rotated each round (default: 3)")
    p.add_argument("--warmup", type=int, default=10,
                   help="programs section: untimed calls before each figure (default: 10)")
    p.add_argument("--iters", type=int, default=50, help="timed calls per latency figure (default: 50)")
    p.add_argument("--no-profile", action="store_true", help="skip the per-op profile at batch 64")
    p.add_argument("--allow-busy", action="store_true",
                   help="write results even when the load average exceeds the core count (labelled busy)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code path, figures mean nothing")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    return p


def machine() -> dict[str, Any]:
    from stgkd.latency import device_name, load_average

    info: dict[str, Any] = {
        "cpu": device_name("cpu").rsplit(" (", 1)[0],
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "quantized_engine": torch.backends.quantized.engine,
        "os": platform.platform(),
        "load_average": load_average(),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    from stgkd.export.aoti import compiled_for, cpp_compiler

    info["cxx"] = cpp_compiler()
    info["vector_isa"] = compiled_for()["vector_isa"]
    return info


def busy(load: list[float] | None) -> bool:
    """The 1-minute load average exceeds the number of cores (:func:`stgkd.latency.is_busy`)."""
    from stgkd.latency import is_busy

    return is_busy(load)


def train_student(args: argparse.Namespace, work: Path, family: str | None = None) -> tuple[Path, Any]:
    """A student of ``family`` (default: ``--student``) trained here: ``(checkpoint, dataset to rebuild its
    test split from)``."""
    from stgkd.engine import TrainConfig, train_model

    if args.dataset:
        data: Any = args.dataset
    else:
        from stgkd.data.synthetic import generate

        data, _ = generate(num_nodes=args.nodes, num_days=args.days, seed=0)
    config = TrainConfig(epochs=args.epochs, batch_size=64, limit_batches=args.limit_batches, device="cpu", seed=0)
    family = family or args.student
    hparams = student_hparams(family, args.width, args.nodes)
    run = work / f"student-{family}"
    train_model(data, family, run, hparams=hparams, config=config, data_dir=args.data_dir, progress=False, log=False)
    return run / "best.pt", data


def student_hparams(family: str, width: int, nodes: int) -> dict[str, Any]:
    """``hidden`` = ``width`` for the families of :data:`FAMILIES`, and a low-rank graph's ``rank`` kept
    within the number of sensors (a smoke run's 6)."""
    import inspect

    from stgkd.nn import MODELS

    hparams: dict[str, Any] = {"hidden": width} if family in FAMILIES else {}
    rank = inspect.signature(MODELS.get(family)).parameters.get("rank")
    if rank is not None and isinstance(rank.default, int) and rank.default > nodes:
        hparams["rank"] = nodes
    return hparams


def program_students(args: argparse.Namespace, work: Path, trained: dict[str, tuple[Path, Any]]) -> list[tuple[str, Path]]:
    """``(label, checkpoint)`` of each student the programs section measures: ``--student-checkpoints``,
    or each of ``--students`` trained here (reusing one the variants section trained)."""
    if args.student_checkpoints:
        return [(str(path), path) for path in args.student_checkpoints]
    out = []
    for family in args.students:
        if family not in trained:
            trained[family] = train_student(args, work, family)
        out.append((family, trained[family][0]))
    return out


#: the report's title, by the sections it holds
TITLES = {("variants",): "A student deployed on the CPU: fp32, int8, ONNX",
          ("programs",): "The fastest faithful CPU program of each student family"}


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    sections = tuple(report.get("sections", ["variants"]))
    lines = [
        f"# {TITLES.get(sections, 'Students deployed on the CPU: exported files and CPU programs')}",
        "",
        f"- date: {report['date']}; command: `{report['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']} "
        f"(quantised engine {m['quantized_engine']}), onnxruntime {m['onnxruntime'] or 'not installed'}; "
        f"C++ compiler {m.get('cxx') or 'none'}, inductor vector ISA {m.get('vector_isa')}; {m['os']}",
        f"- load average (1/5/15 min) at start {report['load_average']['start']}, at end {report['load_average']['end']}",
        "",
    ]
    if report["smoke"]:
        lines += ["> **Smoke run** (tiny network, few calls): checks the code path; the figures mean nothing.", ""]
    if report["busy"]:
        lines += ["> **Busy machine**: the load average exceeded the core count while measuring; other work "
                  "shared the CPU, so the latencies and speed-ups compare only loosely.", ""]
    if "variants" in sections:
        lines += variants_markdown(report)
    if "programs" in sections:
        lines += programs_markdown(report)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.nodes, args.days, args.width, args.epochs, args.limit_batches = 6, 2, 8, 1, 2
        args.iters, args.rounds, args.warmup = min(args.iters, 3), 1, min(args.warmup, 2)
    sections = [name for name in SECTIONS if name in args.sections]
    from stgkd.export.programs import FAITHFUL_ATOL
    from stgkd.files import atomic_write
    from stgkd.latency import load_average

    start_load = load_average()
    if busy(start_load) and not args.allow_busy:
        print(f"benchmarks.cpu_deploy: load average {start_load} exceeds the {os.cpu_count()} cores; timings now "
              "would measure the other work too. Run on an idle machine, or pass --allow-busy (labelled busy).",
              file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.timezone.utc)
    info = machine()
    where = args.dataset or f"the synthetic network ({args.nodes} sensors, {args.days} days)"
    trained_here = f"trained here on {where}, {args.epochs} epochs of at most {args.limit_batches} batches"
    report: dict[str, Any] = {"sections": sections}
    loads: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stgkd-cpu-deploy-") as tmp:
        work = Path(tmp)
        trained: dict[str, tuple[Path, Any]] = {}
        if "variants" in sections:
            if args.checkpoint is not None:
                ckpt, dataset = args.checkpoint, args.dataset
                student = f"checkpoint `{args.checkpoint}`"
            else:
                ckpt, dataset = trained[args.student] = train_student(args, work)
                student = f"`{args.student}` width {args.width} {trained_here}"
            rows = run_variants(args, ckpt, dataset, work)
            profile = {}
            if not args.no_profile:
                for r in rows:
                    if r["variant"] in ("fp32", "int8") and "path" in r:
                        profile[r["variant"]] = profile_program(Path(r["path"]), PROFILE_BATCH)
            for r in rows:
                r.pop("path", None)
            loads += [r["checks"]["latency"]["load_average"] for r in rows if "checks" in r]
            report.update(student=student, variants=rows, goal=goal_verdict(rows), profile=profile)
        if "programs" in sections:
            students = program_students(args, work, trained)
            rows = run_programs(args, students)
            loads += [r["load_average"] for r in rows]
            report.update(
                students=("checkpoints given" if args.student_checkpoints else
                          f"{', '.join(args.students)} width {args.width} {trained_here}"),
                programs=rows, program_goal=program_goal(rows), batches=args.batches, threads=args.threads,
                rounds=args.rounds, warmup=args.warmup, atol=FAITHFUL_ATOL,
            )
    end_load = load_average()
    was_busy = busy(start_load) or busy(end_load) or any(busy(v["before"]) or busy(v["after"]) for v in loads)
    if "programs" in report:
        was_busy = was_busy or any(lat[b]["busy"] for row in report["programs"] for r in row["programs"]
                                   if (lat := r["latency"]) for b in lat)
    if was_busy and not args.allow_busy:
        print(f"benchmarks.cpu_deploy: the load average rose above the {os.cpu_count()} cores while measuring "
              f"(end {end_load}); no results written. Run again on an idle machine, or pass --allow-busy.",
              file=sys.stderr)
        return 2
    report = {
        "schema": "stgkd-cpu-deploy/2",
        "command": "python -m benchmarks.cpu_deploy " + shlex.join(argv),
        "date": started.isoformat(timespec="seconds"),
        "machine": info,
        "load_average": {"start": start_load, "end": end_load},
        "busy": was_busy,
        "smoke": args.smoke,
        "iters": args.iters,
        **report,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = "cpu-deploy" if "variants" in sections else "cpu-programs"
    stem = f"{prefix}-{started:%Y-%m-%d}{'-' + args.tag if args.tag else ''}"
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    atomic_write(json_path, json.dumps(report, indent=2, default=str) + "\n")
    atomic_write(md_path, to_markdown(report))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
