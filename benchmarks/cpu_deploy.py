"""The fastest faithful CPU program of every student family.

    python -m benchmarks.cpu_deploy [--sections programs] [--students FAMILY ... | --student-checkpoints CKPT ...]
        [--programs ...] [--batches 1 64] [--threads 1] [--rounds 3] [--warmup 10] [--iters 50] [--allow-busy]
        [--smoke] [--tag T] [--out benchmarks/results]

Each student (``--student-checkpoints``, or each of ``--students`` trained here, :data:`TRAIN`) is built as every
program of :data:`stgkd.export.programs.PROGRAMS` and checked against the eager model on the same raw inputs at
every batch size (faithful: within 1e-4 in raw units); a program that fails to build or is not faithful is
recorded with the reason and not timed. The faithful ones are timed end to end on ``--threads`` threads in
``--rounds`` rounds that rotate their order; a figure is the median of the rounds' medians. Records
``OUT/cpu-programs-<date>[-tag].json`` and ``.md``, with the goal (:data:`GOAL_PROGRAM_SPEEDUP`). It refuses a
busy machine, before and after measuring, unless ``--allow-busy``; ``--smoke`` checks the code path at toy
size (its figures mean nothing and are labelled so). The section ``variants`` is retired
(``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.idle import EXIT_BUSY, refuse_busy
from benchmarks.record import add_record_args, installed, record_stem, write_record
from benchmarks.table.records import table

#: benchmark sections (``variants`` is retired)
SECTIONS = ("programs",)
#: student families trained when given no checkpoints
FAMILIES = ("gru", "gcn-gru", "dcgru", "stgru")
#: how the students of ``--students`` are trained here: on a synthetic network (``--smoke``: :data:`SMOKE_TRAIN`)
TRAIN = {"nodes": 207, "days": 14, "width": 32, "epochs": 5, "limit_batches": 50}
SMOKE_TRAIN = {"nodes": 6, "days": 2, "width": 8, "epochs": 1, "limit_batches": 2}
#: the goal: the fastest faithful program this much faster than eager, at this batch
GOAL_PROGRAM_SPEEDUP = 2.0
GOAL_PROGRAM_BATCH = 1


def build_parser() -> argparse.ArgumentParser:
    from stgkd.export.programs import PROGRAMS

    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu_deploy", description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="programs: every CPU program of every student family (the only section left)")
    p.add_argument("--students", nargs="+", default=list(FAMILIES), metavar="FAMILY",
                   help=f"student families trained here (default: {' '.join(FAMILIES)})")
    p.add_argument("--student-checkpoints", nargs="+", type=Path, default=None, metavar="CKPT",
                   help="student checkpoints to use instead of training --students here")
    p.add_argument("--programs", nargs="+", choices=list(PROGRAMS), default=list(PROGRAMS),
                   help="the CPU programs to build, check and time (default: all)")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64], help="batch sizes checked and timed (default: 1 64)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    p.add_argument("--rounds", type=int, default=3,
                   help="timing rounds, the programs' order rotated each round (default: 3)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before each figure (default: 10)")
    p.add_argument("--iters", type=int, default=50, help="timed calls per latency figure (default: 50)")
    return add_record_args(p, allow_busy=True, smoke="tiny sizes: checks the code path, figures mean nothing")


def machine() -> dict[str, Any]:
    from stgkd.export.aoti import compiled_for, cpp_compiler
    from stgkd.latency import device_name, load_average

    return {"cpu": device_name("cpu").rsplit(" (", 1)[0], "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "quantized_engine": torch.backends.quantized.engine, "os": platform.platform(),
            "load_average": load_average(), "onnxruntime": installed("onnxruntime"), "cxx": cpp_compiler(),
            "vector_isa": compiled_for()["vector_isa"]}


def train_student(train: dict[str, Any], work: Path, family: str) -> Path:
    """The checkpoint of a student of ``family`` trained here on the synthetic network (:data:`TRAIN`)."""
    import inspect

    from stgkd.data.synthetic import generate
    from stgkd.engine import TrainConfig, train_model
    from stgkd.nn import MODELS

    data, _ = generate(num_nodes=train["nodes"], num_days=train["days"], seed=0)
    hparams: dict[str, Any] = {"hidden": train["width"]} if family in FAMILIES else {}
    rank = inspect.signature(MODELS.get(family)).parameters.get("rank")
    if rank is not None and isinstance(rank.default, int) and rank.default > train["nodes"]:
        hparams["rank"] = train["nodes"]  # a low-rank graph's rank within the sensors (a smoke run's 6)
    config = TrainConfig(epochs=train["epochs"], batch_size=64, limit_batches=train["limit_batches"], device="cpu",
                         seed=0)
    train_model(data, family, work / f"student-{family}", hparams=hparams, config=config, progress=False, log=False)
    return work / f"student-{family}" / "best.pt"


def time_programs(module: Any, programs: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``{program: {batch: summary}}``: each program timed end to end (through
    :class:`~stgkd.latency.RawUnitsAdapter`) at every batch, ``--rounds`` times, its order rotated each round."""
    from stgkd.latency import RawUnitsAdapter, cpu_threads, measure

    names = list(programs)
    rounds: dict[str, dict[str, list[Any]]] = {n: {str(b): [] for b in args.batches} for n in names}
    with cpu_threads(args.threads):
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)] if names else []
            for b in args.batches:
                for name in order:
                    adapter = RawUnitsAdapter(programs[name], module.history_steps, module.interval_minutes)
                    rounds[name][str(b)].append(measure(
                        adapter, batch_size=int(b), num_nodes=module.num_nodes, in_steps=module.history_steps,
                        in_channels=1, device="cpu", warmup=args.warmup, iters=args.iters, seed=r, name=name))
    return {name: {b: _rounds(per_round) for b, per_round in by_batch.items()} for name, by_batch in rounds.items()}


def _rounds(per_round: list[Any]) -> dict[str, Any]:
    """One program's rounds at one batch: the median of their medians (and p90s), busy when any round was."""
    medians = [x.median_ms for x in per_round]
    return {"median_ms": statistics.median(medians), "round_medians_ms": medians,
            "p90_ms": statistics.median(x.p90_ms for x in per_round), "busy": any(x.busy for x in per_round),
            "load_average": [x.load_average for x in per_round]}


def run_programs(args: argparse.Namespace, students: list[tuple[str, Path]]) -> list[dict[str, Any]]:
    """Every program of every student built, checked against eager and, where faithful, timed."""
    import torch._dynamo

    from stgkd.export import build_forecaster_module, read_checkpoint
    from stgkd.export.programs import build_program
    from stgkd.latency import load_average

    rows = []
    for label, ckpt in students:
        payload = read_checkpoint(ckpt)
        module = build_forecaster_module(payload, where=str(ckpt)).cpu()
        torch._dynamo.reset()  # each student's compiled programs start from an empty cache
        builds = {}
        for name in args.programs:
            builds[name] = built = build_program(name, module, threads=args.threads, batches=args.batches,
                                                 where=str(ckpt))
            state = "faithful" if built.faithful else built.reason
            print(f"{label} {name}: {state} (max abs diff {built.check.get('max_abs_diff')})", file=sys.stderr)
        before = load_average()
        timed = time_programs(module, {n: b.program for n, b in builds.items() if b.faithful}, args)
        after = load_average()
        programs, eager = [], timed.get("eager")
        for name, built in builds.items():
            row = {**built.to_dict(), "latency": timed.get(name)}
            if eager and row["latency"]:
                row["speedup_vs_eager"] = {b: eager[b]["median_ms"] / row["latency"][b]["median_ms"] for b in eager}
            programs.append(row)
        rows.append({
            "student": label, "model": payload["model"].get("name"),
            "hparams": {k: v for k, v in payload["model"].items() if k not in ("name", "num_nodes")},
            "parameters": sum(int(p.numel()) for p in module.student.parameters()), "sensors": module.num_nodes,
            "input_features": list(module.input_features), "history_steps": module.history_steps,
            "load_average": {"before": before, "after": after}, "programs": programs,
            "fastest": fastest_faithful(programs, args.batches),
        })
        for b, best in rows[-1]["fastest"].items():
            print(f"{label}: fastest faithful at batch {b}: {best}", file=sys.stderr)
    return rows


def fastest_faithful(programs: list[dict[str, Any]], batches: list[int]) -> dict[str, dict[str, Any] | None]:
    """The faithful program with the lowest median at each batch size, with its speed-up over eager."""
    timed = [r for r in programs if r["faithful"] and r["latency"]]
    out: dict[str, dict[str, Any] | None] = {}
    for b in map(str, batches):
        best = min(timed, key=lambda r: r["latency"][b]["median_ms"], default=None)
        out[b] = best and {"program": best["program"], "median_ms": best["latency"][b]["median_ms"],
                           "speedup_vs_eager": (best.get("speedup_vs_eager") or {}).get(b)}
    return out


def program_goal(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether each student's fastest faithful program is at least :data:`GOAL_PROGRAM_SPEEDUP` times its
    eager model at batch :data:`GOAL_PROGRAM_BATCH`."""
    b = str(GOAL_PROGRAM_BATCH)
    per = {}
    for row in rows:
        best = row["fastest"].get(b)
        speedup = best["speedup_vs_eager"] if best else None
        per[row["student"]] = {"program": best["program"] if best else None, "speedup": speedup,
                               "met": speedup is not None and speedup >= GOAL_PROGRAM_SPEEDUP}
    return {"batch": GOAL_PROGRAM_BATCH, "speedup": GOAL_PROGRAM_SPEEDUP, "students": per,
            "met": bool(per) and all(v["met"] for v in per.values())}


def programs_markdown(report: dict[str, Any]) -> list[str]:
    """The programs table, the fastest program of each student and the goal, as Markdown lines."""
    batches = [str(b) for b in report["batches"]]
    lines = ["## The fastest faithful CPU program of each student", "",
             f"Each program checked against the eager model on the same raw inputs at batch {', '.join(batches)} "
             f"(faithful: max abs difference at most {report['atol']:g} in raw units), then timed end to end on "
             f"{report['threads']} thread(s): {report['rounds']} round(s) of {report['iters']} calls after "
             f"{report['warmup']} warm-up calls, the programs' order rotated each round; a figure is the median "
             "of the rounds' medians (ms), speed-up = eager / program.", ""]

    def program_row(student: str, r: dict[str, Any]) -> list[str]:
        diff = max(r["check"]["max_abs_diff"].values()) if r["check"] else None
        cells = [student, r["program"], r["file_format"] or "in memory",
                 "yes" if r["faithful"] else f"no: {r['reason'].replace('|', '/')}",
                 f"{diff:.2g}" if diff is not None else "-", f"{r['build_s']:.1f}"]
        for b in batches:
            lat, sp = (r["latency"] or {}).get(b), (r.get("speedup_vs_eager") or {}).get(b)
            cells += [f"{lat['median_ms']:.3f}" if lat else "-", f"{sp:.2f}x" if sp else "-"]
        return cells

    def fastest(best: dict[str, Any] | None) -> str:
        speedup = f" ({best['speedup_vs_eager']:.2f}x)" if best and best["speedup_vs_eager"] else ""
        return f"{best['program']} {best['median_ms']:.3f} ms{speedup}" if best else "-"

    lines += table(["student", "program", "file format", "faithful", "max abs diff", "build s"]
                   + [h for b in batches for h in (f"batch {b} ms", f"speed-up {b}")],
                   (program_row(row["student"], r) for row in report["programs"] for r in row["programs"]))
    lines += [""] + table(["student", "params"] + [f"fastest faithful at batch {b}" for b in batches], (
        [row["student"] if row["student"] == row["model"] else f"{row['student']} ({row['model']})",
         f"{row['parameters']:,}"] + [fastest(row["fastest"].get(b)) for b in batches] for row in report["programs"]))
    g = report["program_goal"]
    verdict = ("**Met** for every student." if g["met"] else "**Not met**: see each student below.") \
        if g["students"] else "Not decided: no student measured."
    lines += ["", f"## Goal: the fastest faithful program at least {g['speedup']:g}x its eager model at batch "
                  f"{g['batch']}", "", verdict, ""]
    for student, v in g["students"].items():
        speed = f"{v['speedup']:.2f}x" if v["speedup"] is not None else "not timed"
        lines.append(f"- {student}: {v['program'] or 'no faithful program'}, {speed} "
                     f"({'met' if v['met'] else 'not met'})")
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# The fastest faithful CPU program of each student family",
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
    return "\n".join(lines + programs_markdown(report)) + "\n"


def main(argv: list[str] | None = None) -> int:
    from stgkd.export.programs import FAITHFUL_ATOL
    from stgkd.latency import is_busy as busy
    from stgkd.latency import load_average

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.iters, args.rounds, args.warmup = min(args.iters, 3), 1, min(args.warmup, 2)
    if refuse_busy("benchmarks.cpu_deploy", args.allow_busy):
        return EXIT_BUSY
    started, start_load, info = dt.datetime.now(dt.timezone.utc), load_average(), machine()
    t = SMOKE_TRAIN if args.smoke else TRAIN
    with tempfile.TemporaryDirectory(prefix="stgkd-cpu-deploy-") as tmp:
        students = ([(str(path), path) for path in args.student_checkpoints] if args.student_checkpoints
                    else [(family, train_student(t, Path(tmp), family)) for family in args.students])
        rows = run_programs(args, students)
    end_load = load_average()
    was_busy = (busy(start_load) or busy(end_load)
                or any(busy(r["load_average"]["before"]) or busy(r["load_average"]["after"]) for r in rows)
                or any(lat[b]["busy"] for row in rows for r in row["programs"] if (lat := r["latency"]) for b in lat))
    if was_busy and not args.allow_busy:
        print(f"benchmarks.cpu_deploy: the load average rose above the {os.cpu_count()} cores while measuring "
              f"(end {end_load}); no results written. Run again on an idle machine, or pass --allow-busy.",
              file=sys.stderr)
        return EXIT_BUSY
    report = {
        "schema": "stgkd-cpu-deploy/2", "command": "python -m benchmarks.cpu_deploy " + shlex.join(argv),
        "date": started.isoformat(timespec="seconds"), "machine": info,
        "load_average": {"start": start_load, "end": end_load}, "busy": was_busy, "smoke": args.smoke,
        "iters": args.iters, "sections": list(SECTIONS),
        "students": ("checkpoints given" if args.student_checkpoints else
                     f"{', '.join(args.students)} width {t['width']} trained here on the synthetic network "
                     f"({t['nodes']} sensors, {t['days']} days), {t['epochs']} epochs of at most {t['limit_batches']} "
                     "batches"),
        "programs": rows, "program_goal": program_goal(rows), "batches": args.batches, "threads": args.threads,
        "rounds": args.rounds, "warmup": args.warmup, "atol": FAITHFUL_ATOL,
    }
    write_record(record_stem(args, "cpu-programs", f"{started:%Y-%m-%d}"), report, to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
