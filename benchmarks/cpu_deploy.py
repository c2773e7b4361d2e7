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

GOAL_SPEEDUP = 2.0
GOAL_MAE_CHANGE_PCT = 1.0
PROFILE_BATCH = 64
#: the programs section's goal: the fastest faithful program this much faster than eager, at this batch
GOAL_PROGRAM_SPEEDUP = 2.0
GOAL_PROGRAM_BATCH = 1
#: benchmark sections, in the order they run
SECTIONS = ("variants", "programs")
#: student families the programs section trains when given no checkpoints
FAMILIES = ("gru", "gcn-gru", "dcgru", "stgru")

#: variant -> export_student keyword arguments
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"format": "torchscript", "checks": True},
    "int8": {"quantize": "int8"},
    "int8-recurrent": {"quantize": "int8", "int8_layers": ("recurrent",)},
    "int8-linear": {"quantize": "int8", "int8_layers": ("linear",)},
    "onnx": {"format": "onnx"},
}


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


def profile_program(path: Path, batch: int, *, top: int = 8) -> dict[str, Any]:
    """Self CPU time per op of one exported program at ``batch`` on one thread (torch.profiler)."""
    from stgkd.export import load_exported
    from stgkd.latency import RawUnitsAdapter, cpu_threads

    module, meta, _ = load_exported(path)
    adapter = RawUnitsAdapter(module, int(meta["input_steps"]), int(meta["interval_minutes"]))
    x = torch.randn(batch, int(meta["input_steps"]), len(meta["sensor_ids"]), 1, generator=torch.Generator().manual_seed(0))
    calls = 5
    with cpu_threads(1), torch.inference_mode():
        for _ in range(2):
            adapter(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                adapter(x)
    rows = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in rows)
    rows.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return {
        "batch": batch,
        "ms_per_call": total / 1e3 / calls,
        "ops": [{"op": e.key, "ms_per_call": e.self_cpu_time_total / 1e3 / calls,
                 "share": e.self_cpu_time_total / total, "calls": e.count // calls} for e in rows[:top]],
    }


def run_variants(args: argparse.Namespace, ckpt: Path, dataset: Any, work: Path) -> list[dict[str, Any]]:
    from stgkd.errors import StgkdError
    from stgkd.export import export_student, load_exported

    rows = []
    for name in args.variants:
        kwargs = dict(VARIANTS[name])
        suffix = ".onnx" if kwargs.get("format") == "onnx" else ".pt"
        out = work / f"student-{name}{suffix}"
        row: dict[str, Any] = {"variant": name, "export": {k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in kwargs.items()}}
        try:
            export_student(ckpt, out, dataset=dataset, data_dir=args.data_dir, latency_iters=args.iters,
                           **{"checks": True, **kwargs})
            _, meta, _ = load_exported(out)
        except StgkdError as exc:  # e.g. ONNX without the onnx package or onnxruntime
            row["skipped"] = str(exc)
            rows.append(row)
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        row.update(backend=meta["backend"], precision=meta["precision"], bytes=out.stat().st_size,
                   quantized_layers=meta.get("quantized_layers"), checks=meta["deployment_checks"], path=str(out))
        rows.append(row)
        lat = row["checks"]["latency"]
        print(f"{name}: speed-up vs fp32 {({b: round(v, 2) for b, v in lat['speedup'].items()})}, "
              f"load {lat['load_average']['before']}", file=sys.stderr)
    return rows


def goal_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the int8 student met the goal, and the figures that decide it."""
    row = next((r for r in rows if r["variant"] == "int8" and "checks" in r), None)
    if row is None:
        return {"met": None, "why": "the int8 variant was not run"}
    speedup = row["checks"]["latency"]["speedup"].get(str(PROFILE_BATCH))
    acc = row["checks"]["accuracy"]
    change = acc["mae_change_pct"]["avg"] if acc.get("made") else None
    fast = speedup is not None and speedup >= GOAL_SPEEDUP
    accurate = change is not None and abs(change) < GOAL_MAE_CHANGE_PCT
    verdict: dict[str, Any] = {"speedup_b64": speedup, "mae_change_pct_avg": change,
                               "fast_enough": fast, "accurate_enough": accurate if change is not None else None,
                               "met": fast and accurate}
    if change is None:
        verdict["why"] = f"accuracy not checked: {acc.get('reason')}"
    return verdict


# --------------------------------------------------------------------------- section: programs


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


def time_programs(module: Any, programs: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each program timed end to end (:func:`stgkd.latency.measure` through
    :class:`~stgkd.latency.RawUnitsAdapter`) on ``--threads`` threads at every batch size, ``--rounds`` times
    with the programs' order rotated each round: ``{program: {batch: summary}}``, the summary's
    ``median_ms`` the median of the rounds' medians."""
    import statistics

    from stgkd.latency import RawUnitsAdapter, cpu_threads, measure

    names = list(programs)
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {n: {str(b): [] for b in args.batches} for n in names}
    with cpu_threads(args.threads):
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)] if names else []
            for b in args.batches:
                for name in order:
                    adapter = RawUnitsAdapter(programs[name], module.history_steps, module.interval_minutes)
                    res = measure(adapter, batch_size=int(b), num_nodes=module.num_nodes, in_steps=module.history_steps,
                                  in_channels=1, device="cpu", warmup=args.warmup, iters=args.iters, seed=r, name=name)
                    rounds[name][str(b)].append({"median_ms": res.median_ms, "p90_ms": res.p90_ms, "p99_ms": res.p99_ms,
                                                 "busy": res.busy, "load_average": res.load_average})
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        out[name] = {}
        for b, per_round in rounds[name].items():
            medians = [x["median_ms"] for x in per_round]
            out[name][b] = {"median_ms": statistics.median(medians), "round_medians_ms": medians,
                            "p90_ms": statistics.median(x["p90_ms"] for x in per_round),
                            "busy": any(x["busy"] for x in per_round),
                            "load_average": [x["load_average"] for x in per_round]}
    return out


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
            built = build_program(name, module, threads=args.threads, batches=args.batches, where=str(ckpt))
            builds[name] = built
            state = "faithful" if built.faithful else built.reason
            print(f"{label} {name}: {state} (max abs diff {built.check.get('max_abs_diff')})", file=sys.stderr)
        before = load_average()
        timed = time_programs(module, {n: b.program for n, b in builds.items() if b.faithful}, args)
        after = load_average()
        programs = []
        for name, built in builds.items():
            row = built.to_dict()
            row["latency"] = timed.get(name)
            programs.append(row)
        eager = timed.get("eager")
        for row in programs:
            if eager and row["latency"]:
                row["speedup_vs_eager"] = {b: eager[b]["median_ms"] / row["latency"][b]["median_ms"] for b in eager}
        rows.append({
            "student": label,
            "model": payload["model"].get("name"),
            "hparams": {k: v for k, v in payload["model"].items() if k not in ("name", "num_nodes")},
            "parameters": sum(int(p.numel()) for p in module.student.parameters()),
            "sensors": module.num_nodes,
            "input_features": list(module.input_features),
            "history_steps": module.history_steps,
            "load_average": {"before": before, "after": after},
            "programs": programs,
            "fastest": fastest_faithful(programs, args.batches),
        })
        for b, best in rows[-1]["fastest"].items():
            print(f"{label}: fastest faithful at batch {b}: {best}", file=sys.stderr)
    return rows


def fastest_faithful(programs: list[dict[str, Any]], batches: list[int]) -> dict[str, dict[str, Any] | None]:
    """The faithful program with the lowest median at each batch size, with its speed-up over eager."""
    out: dict[str, dict[str, Any] | None] = {}
    for b in map(str, batches):
        timed = [r for r in programs if r["faithful"] and r["latency"]]
        if not timed:
            out[b] = None
            continue
        best = min(timed, key=lambda r: r["latency"][b]["median_ms"])
        out[b] = {"program": best["program"], "median_ms": best["latency"][b]["median_ms"],
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
    """The programs section of the Markdown report."""
    batches = [str(b) for b in report["batches"]]
    lines = ["## The fastest faithful CPU program of each student", "",
             f"Each program checked against the eager model on the same raw inputs at batch {', '.join(batches)} "
             f"(faithful: max abs difference at most {report['atol']:g} in raw units), then timed end to end on "
             f"{report['threads']} thread(s): {report['rounds']} round(s) of {report['iters']} calls after "
             f"{report['warmup']} warm-up calls, the programs' order rotated each round; a figure is the median "
             "of the rounds' medians (ms), speed-up = eager / program.", ""]
    head = "| student | program | file format | faithful | max abs diff | build s | " + " | ".join(
        f"batch {b} ms | speed-up {b}" for b in batches) + " |"
    lines += [head, "|---|---|---|---|---:|---:|" + "---:|" * (2 * len(batches))]
    for row in report["programs"]:
        for r in row["programs"]:
            diff = max(r["check"]["max_abs_diff"].values()) if r["check"] else None
            reason = r["reason"].replace("|", "/")
            cells = [row["student"], r["program"], r["file_format"] or "in memory",
                     "yes" if r["faithful"] else f"no: {reason}", f"{diff:.2g}" if diff is not None else "-",
                     f"{r['build_s']:.1f}"]
            for b in batches:
                lat = (r["latency"] or {}).get(b)
                sp = (r.get("speedup_vs_eager") or {}).get(b)
                cells += [f"{lat['median_ms']:.3f}" if lat else "-", f"{sp:.2f}x" if sp else "-"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| student | params | " + " | ".join(f"fastest faithful at batch {b}" for b in batches) + " |",
              "|---|---:|" + "---|" * len(batches)]
    for row in report["programs"]:
        cells = []
        for b in batches:
            best = row["fastest"].get(b)
            if best is None:
                cells.append("-")
                continue
            speedup = f" ({best['speedup_vs_eager']:.2f}x)" if best["speedup_vs_eager"] else ""
            cells.append(f"{best['program']} {best['median_ms']:.3f} ms{speedup}")
        name = row["student"] if row["student"] == row["model"] else f"{row['student']} ({row['model']})"
        lines.append(f"| {name} | {row['parameters']:,} | " + " | ".join(cells) + " |")
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


def variants_markdown(report: dict[str, Any]) -> list[str]:
    """The variants section of the Markdown report."""
    lines = [
        f"- student: {report['student']}",
        "- latency: the exported file end to end (raw readings and timestamps in, raw forecasts out) on one "
        f"thread, {report['iters']} timed calls after warm-up, median ms; speed-up = the fp32 TorchScript "
        "program's median in the same export run / this program's",
        "- accuracy: masked MAE on the test split, 12-step average and 60 min, the program fed raw readings as in "
        "deployment; change relative to the fp32 TorchScript program",
        "",
    ]
    lines += ["| variant | backend | int8 layers | file KB | test MAE avg | MAE change avg | MAE change 60 min "
              "| batch 1 ms | fp32 batch 1 ms | speed-up 1 | batch 64 ms | fp32 batch 64 ms | speed-up 64 |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["variants"]:
        if "skipped" in r:
            lines.append(f"| {r['variant']} | skipped: {r['skipped']} |" + " |" * 11)
            continue
        acc, lat = r["checks"]["accuracy"], r["checks"]["latency"]
        layers = ", ".join(r["quantized_layers"]) if r["quantized_layers"] else "-"
        if acc.get("made"):
            mae = f"{acc['metrics'][r['backend']]['avg']['mae']:.4f}"
            ch = f"{acc['mae_change_pct']['avg']:+.3f} %"
            ch60 = f"{acc['mae_change_pct'].get('60min', float('nan')):+.3f} %"
        else:
            mae, ch, ch60 = "not checked", "-", "-"
        res, ref = lat["results"][r["backend"]], lat["results"]["torchscript-fp32"]
        cells = []
        for b in ("1", "64"):
            cells += [f"{res[b]['median_ms']:.3f}", f"{ref[b]['median_ms']:.3f}", f"{lat['speedup'][b]:.2f}x"]
        lines.append(f"| {r['variant']} | {r['backend']} | {layers} | {r['bytes'] / 1024:.0f} | {mae} | {ch} | {ch60} | "
                     + " | ".join(cells) + " |")
    unchecked = [r for r in report["variants"] if "checks" in r and not r["checks"]["accuracy"].get("made")]
    if unchecked:
        lines += ["", f"Accuracy not checked: {unchecked[0]['checks']['accuracy']['reason']}"]
    g = report["goal"]
    lines += ["", f"## Goal: int8 at batch 64 at least {GOAL_SPEEDUP:g}x faster than fp32, test MAE change under "
                  f"{GOAL_MAE_CHANGE_PCT:g} %", ""]
    if g.get("met") is None and "why" in g:
        lines.append(f"Not decided: {g['why']}.")
    else:
        lines.append(f"**{'Met' if g['met'] else 'Not met'}**: speed-up {g['speedup_b64']:.2f}x "
                     f"({'enough' if g['fast_enough'] else 'short of the goal'}), MAE change "
                     + (f"{g['mae_change_pct_avg']:+.3f} %" if g["mae_change_pct_avg"] is not None else "not checked")
                     + (f" ({'within' if g['accurate_enough'] else 'outside'} the bound)." if g["accurate_enough"] is not None
                        else f" ({g.get('why')})."))
    if report.get("profile"):
        lines += ["", f"## Where the time goes (batch {PROFILE_BATCH}, one thread, self CPU time per call)", ""]
        for name, prof in report["profile"].items():
            lines += [f"**{name}**: {prof['ms_per_call']:.2f} ms per call (profiled)", "",
                      "| op | ms per call | share | calls per forward |", "|---|---:|---:|---:|"]
            lines += [f"| `{o['op']}` | {o['ms_per_call']:.3f} | {100 * o['share']:.1f} % | {o['calls']} |" for o in prof["ops"]]
            lines.append("")
    return lines


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
