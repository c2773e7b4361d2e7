"""Does ``stgkd demo`` keep its promise on every seed?

Runs ``stgkd demo`` at its defaults once per seed (0, 1 and 2 by default), each in its own process and
its own run directory, and records per seed the table's test MAE rows, the demo's gain line and its
verdicts (:class:`stgkd.commands.demo.Gain`: the teacher better than the plain student, the distilled
student better than the plain one, both at the longest horizon and over the horizon; the student at
least 5x faster than the teacher at batch 1), the run's wall time with the load average before and
after it (the machine may be shared), and whether every verdict holds on every seed. Writes
``demo-seeds-<device>-<date>[-tag].json`` and ``.md`` (atomically) after every seed.

A smoke run (``--smoke``: one epoch each, two batches an epoch, three timed calls; or any demo flags
after ``--``) exercises the same path in seconds; its files are named ``-smoke`` and say so.

Usage::

    python -m benchmarks.demo_seeds                                   # seeds 0 1 2 at the demo's defaults
    python -m benchmarks.demo_seeds --seeds 0 --smoke --dataset data/syn
    python -m benchmarks.demo_seeds -- --train-days 2                 # demo flags after --
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from stgkd.files import atomic_write

#: demo flags of a smoke run
SMOKE = ["--teacher-epochs", "1", "--student-epochs", "1", "--limit-batches", "2", "--latency-iters", "3", "--no-compile"]
#: the models whose rows the report keeps, by their place in the demo's table (after the naive floor)
ROLES = ("teacher", "plain", "distilled")


def run_seed(seed: int, out: Path, *, device: str, demo_args: Sequence[str], threads: int | None) -> dict[str, Any]:
    """One ``stgkd demo`` in its own process: its command, exit status, wall time, load before and after,
    and what its ``summary.json`` says (rows by role, setting, gain and verdicts)."""
    from stgkd.latency import load_average

    command = [sys.executable, "-m", "stgkd", "demo", "--seed", str(seed), "--out", str(out), "--device", device,
               *demo_args]
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    atomic_write(out / "demo.log", proc.stdout + ("\n--- stderr ---\n" + proc.stderr if proc.stderr else ""))
    record: dict[str, Any] = {
        "seed": seed, "command": shlex.join(["stgkd", *command[3:]]), "out": str(out), "rc": proc.returncode,
        "wall_seconds": round(seconds, 1), "load_average_before": load_before, "load_average_after": load_average(),
    }
    summary_path = out / "summary.json"
    if proc.returncode != 0 or not summary_path.exists():
        record["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        record["all_hold"] = False
        return record
    summary = json.loads(summary_path.read_text())
    models = summary["rows"][1:]
    record["setting"] = summary["setting"]
    record["rows"] = {role: {"model": row["model"], "parameters": row["parameters"],
                             "mae": {h: m["mae"] for h, m in row["test"].items()},
                             "latency_ms": {k: v for k, v in row["latency_ms"].items() if k != "device"}}
                      for role, row in zip(ROLES, models)}
    record["naive_floor"] = {h: m["mae"] for h, m in summary["rows"][0]["test"].items()}
    gain = summary["gain"]
    record["gain"] = {k: gain[k] for k in ("horizon", "gained", "gap_closed", "speedup_b1", "line")}
    record["verdicts"] = gain["verdicts"]  # the demo gives no speed verdict from a busy machine's timing
    record["latency_busy"] = bool((summary.get("latency") or {}).get("busy"))
    # the cores other work kept busy as the timing began (the demo's busy rule; None: judged by load average)
    record["latency_others_busy_cores"] = (summary.get("latency") or {}).get("others_busy_cores")
    record["all_hold"] = all(v is True for v in record["verdicts"].values())
    record["plot"] = summary["plot"]["path"]
    return record


def _wall(seed: dict[str, Any]) -> str:
    """A seed's wall seconds, or "busy" where its timings were dropped (``wall_seconds`` None)."""
    return "busy" if seed.get("wall_seconds") is None else f"{seed['wall_seconds']:.0f}"


def render(report: dict[str, Any]) -> str:
    seeds = report["seeds"]
    ok = [s for s in seeds if "verdicts" in s]
    horizon = ok[0]["gain"]["horizon"] if ok else "60min"
    lines = [
        "# `stgkd demo` over seeds: does the promise hold on each?" + (" (smoke run)" if report["smoke"] else ""),
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {report['machine']}",
        f"- load average at start {report['load_average_start']}, at end {report['load_average_end']}",
        *([f"- setting: {ok[0]['setting']['label']}"] if ok else []),
        "",
        "Wall times are of each whole run on this machine, which may have been shared (the load averages "
        "before and after each run are in the JSON); the latency figures are the demo's own "
        "(batch 1: the lowest of three rounds of medians, one thread), each judged idle or busy by the cores "
        "other work kept busy as its timing began (a half-second sample of /proc/stat while the demo waits), "
        "not by the load average, which still carries the demo's own training for a minute.",
        "",
        f"## Verdicts (test MAE at {horizon} / avg)",
        "",
        "| seed | teacher | plain | distilled | gained | gap closed | speed-up b1 | teacher < plain | "
        "distilled < plain | speed-up >= 5x | wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]

    def pair(d: dict[str, Any]) -> str:
        return f"{d[horizon]:.3f} / {d['avg']:.3f}"

    def share(v: float | None) -> str:
        return f"{100 * v:.0f}%" if v is not None else "none"

    for s in seeds:
        if "verdicts" not in s:
            lines.append(f"| {s['seed']} | failed (exit {s['rc']}): {' '.join(s.get('error', []))[-200:]} "
                         "| | | | | | | | | " + _wall(s) + " |")
            continue
        r, g, v = s["rows"], s["gain"], list(s["verdicts"].values())
        lines.append(f"| {s['seed']} | {pair(r['teacher']['mae'])} | {pair(r['plain']['mae'])} | "
                     f"{pair(r['distilled']['mae'])} | {g['gained'][horizon]:+.3f} / {g['gained']['avg']:+.3f} | "
                     f"{share(g['gap_closed'][horizon])} / {share(g['gap_closed']['avg'])} | "
                     + ("busy: not a figure" if s.get("latency_busy") else f"{g['speedup_b1']:.1f}x") + " | "
                     + " | ".join("not measured" if x is None else "yes" if x else "**no**" for x in v)
                     + f" | {_wall(s)} |")
    lines += ["", f"**Every verdict holds on every seed: {'yes' if report['all_hold'] else 'no'}.**", ""]
    if ok:
        keys = list(ok[0]["rows"]["teacher"]["mae"])
        lines += ["## Test MAE rows", "", "| seed | model | params | " + " | ".join(keys) + " | ms @b1 |",
                  "|---:|---|---:|" + "---:|" * len(keys) + "---:|"]
        for s in ok:
            lines.append(f"| {s['seed']} | last value | | " + " | ".join(f"{s['naive_floor'][k]:.3f}" for k in keys)
                         + " | |")
            for role in ROLES:
                row = s["rows"][role]
                lines.append(f"| {s['seed']} | {row['model']} | {row['parameters']:,} | "
                             + " | ".join(f"{row['mae'][k]:.3f}" for k in keys)
                             + (" | busy |" if s.get("latency_busy") else
                                f" | {row['latency_ms'].get('b1', float('nan')):.3f} |"))
        lines += ["", "Each seed's gain line, as the demo printed it:", ""]
        lines += [f"- seed {s['seed']}: {s['gain']['line']}"
                  + (f" (other work kept {s['latency_others_busy_cores']:g} of the cores busy as the timing began)"
                     if s.get("latency_others_busy_cores") is not None else "")
                  + (" (its timings were taken on a busy machine: not figures)" if s.get("latency_busy") else "")
                  for s in ok]
    lines += ["", "```json", json.dumps(report, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    own, demo_args = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo_seeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one demo run each (default: 0 1 2)")
    parser.add_argument("--dataset", default=None, help="the demo's --dataset (default: the demo's, synthetic)")
    parser.add_argument("--smoke", action="store_true", help=f"a smoke run: the demo with {' '.join(SMOKE)}")
    parser.add_argument("--limit-batches", type=int, default=None, help="the demo's --limit-batches (smoke runs)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP/MKL threads of each demo process (default: inherited)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/demo-seeds"),
                        help="each seed's run directory is WORKDIR/seed<S> (default: runs/demo-seeds)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the result files go")
    parser.add_argument("--tag", default=None, help="suffix of the result files' names (default: 'smoke' for a "
                                                    "smoke run, none otherwise)")
    args = parser.parse_args(own)

    import torch

    from benchmarks.record import environment
    from stgkd.latency import load_average

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    extra = list(SMOKE if args.smoke else [])
    if args.dataset:
        extra += ["--dataset", args.dataset]
    if args.limit_batches:
        extra += ["--limit-batches", str(args.limit_batches)]
    extra += demo_args
    smoke = args.smoke or args.limit_batches is not None or "--limit-batches" in demo_args
    tag = args.tag if args.tag is not None else ("smoke" if smoke else "")
    stamp = dt.datetime.now(dt.timezone.utc)
    stem = args.out / f"demo-seeds-{device}-{stamp:%Y-%m-%d}{'-' + tag if tag else ''}"
    env = environment(device)
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="minutes"),
        "command": "python -m benchmarks.demo_seeds " + shlex.join(argv),
        "machine": f"{device}: {env['device_name']}, {os.cpu_count()} CPUs, torch {env['torch']}, "
                   f"Python {env['python']}, threads {args.threads or 'inherited'}",
        "environment": env, "smoke": smoke, "demo_args": extra,
        "load_average_start": load_average(), "load_average_end": None, "seeds": [], "all_hold": False,
    }

    def write() -> None:
        report["load_average_end"] = load_average()
        report["all_hold"] = bool(report["seeds"]) and all(s["all_hold"] for s in report["seeds"])
        atomic_write(stem.with_name(stem.name + ".json"), json.dumps(report, indent=1) + "\n")
        atomic_write(stem.with_name(stem.name + ".md"), render(report))

    for seed in args.seeds:
        record = run_seed(seed, args.workdir / f"seed{seed}", device=device, demo_args=extra, threads=args.threads)
        report["seeds"].append(record)
        print(f"seed {seed}: exit {record['rc']}, {record['wall_seconds']:.0f} s, verdicts "
              f"{record.get('verdicts', 'none')}", flush=True)
        write()
    write()
    print(render(report).split("```json")[0])
    print(f"written: {stem}.json, {stem}.md")
    return 0 if all(s["rc"] == 0 for s in report["seeds"]) else 1  # the verdicts are results, not errors


if __name__ == "__main__":
    sys.exit(main())
