"""Section ``programs`` of ``python -m benchmarks.cpu_deploy``: every CPU program of
:data:`stgkd.export.programs.PROGRAMS` built for each student, checked against the eager model on the same
raw inputs at every batch size, the faithful ones timed end to end in rounds that rotate their order, the
fastest faithful program of each student, and the goal: that program at least :data:`GOAL_PROGRAM_SPEEDUP`
times its eager model at batch :data:`GOAL_PROGRAM_BATCH`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["GOAL_PROGRAM_BATCH", "GOAL_PROGRAM_SPEEDUP", "fastest_faithful", "program_goal", "programs_markdown",
           "run_programs", "time_programs"]

#: the programs section's goal: the fastest faithful program this much faster than eager, at this batch
GOAL_PROGRAM_SPEEDUP = 2.0
GOAL_PROGRAM_BATCH = 1


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
