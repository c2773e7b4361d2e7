"""Where a forward's time goes: :func:`stgkd.profiling.profile_model` of one model at each batch, in every mode,
written as a record; and the ``profile`` part of ``python -m benchmarks.gpu``.

A mode that fails is recorded with its error and the others go on. Writes
``profile-<device>-<date>-<model>-w<width>-b<batch>.json`` and ``.md`` per batch (a Chrome trace per mode with
``--trace``). The part (:func:`part_profile`) profiles the default student, then the default teacher, each in its
own process (a failed capture or compilation poisons only that process); a child stopped at its time keeps the
batches it finished.

    python -m benchmarks.profile --model stgru --width 32 --batch 1 64 --device cuda
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from benchmarks.budget import Deadline, OutOfTime, run_child
from benchmarks.record import RESULTS, log, one_line, write_record
from benchmarks.table.records import table
from stgkd.latency import device_name, random_graph
from stgkd.profiling import FAITHFUL_ATOL, MODES, profile_model
from stgkd.nn.registry import DEFAULT_STUDENT, DEFAULT_TEACHER

if TYPE_CHECKING:
    from benchmarks.gpu_parts import Context

#: the part: the default student's width, the batches and modes; its smoke run at toy size without compile
PART = {"width": 32, "batches": (1, 64), "nodes": 207, "modes": MODES, "warmup": 10, "iters": 50, "top": 12}
SMOKE = {"width": 4, "batches": (1, 2), "nodes": 6, "modes": MODES[:2], "warmup": 1, "iters": 2, "top": 5}


def _mode_row(r: dict[str, Any]) -> list[Any]:
    if "skipped" in r or "error" in r:
        return [r["mode"], f"skipped: {r['skipped']}" if "skipped" in r else f"failed: {r['error']}"] + [""] * 7
    f, idle = r.get("faithfulness"), r["idle_share"]
    return [r["mode"], f"{r['wall_ms_per_forward']:.4f}",
            f"{r['device_busy_us_per_forward']:.1f}" if r["kernels_per_forward"] else "-",
            "-" if idle is None else f"{100 * idle:.0f} %", f"{r['kernels_per_forward']:g}",
            ", ".join(f"{k} {v:g}" for k, v in r["launch_calls_per_forward"].items()) or "-",
            f"{r['launch_host_us_per_forward']:.1f}", f"{r['host_ops_per_forward']:g}",
            "-" if f is None else f"{f['max_abs_diff']:.2e} ({'within' if f['within_atol'] else '**over**'})"]


def to_markdown(report: dict[str, Any]) -> str:
    c = report["conditions"]
    lines = [f"# Profile: {c['model']} width {c['width']} at batch {c['batch']}, {c['nodes']} nodes", "",
             f"- date: {report['date']}; command: `{report['command']}`",
             f"- device: **{c['device_kind']}** ({c['device']}), torch {c['torch']}; input (B, T, N, C) = ({c['batch']}, "
             f"{c['in_steps']}, {c['nodes']}, {c['in_channels']}), fp32, {c['parameters']:,} parameters, untrained",
             "- the profiler adds its own overhead: compare its figures with each other, take latency from "
             f"`python -m benchmarks.latency`; faithful: within {FAITHFUL_ATOL:g} of eager's output", ""]
    lines += table(["mode", "wall ms / forward", "device busy µs", "idle share", "kernels", "launch calls",
                    "launch host µs", "host ops", "max abs diff to eager"], map(_mode_row, report["modes"]))
    for r in report["modes"]:
        for what, key, us in (("operators (self host time", "op", "self_host_us_per_forward"),
                              ("kernels (device time", "kernel", "device_us_per_forward")):
            rows = r.get("top_host_ops" if key == "op" else "top_kernels")
            if rows:
                lines += ["", f"## {r['mode']}: slowest {what} per forward)", ""] + table(
                    [key, "calls", "µs"], ([f"`{o[key]}`", f"{o['calls_per_forward']:g}", f"{o[us]:.1f}"] for o in rows))
    return "\n".join(lines) + "\n"


def profile_batch(args: argparse.Namespace, model: nn.Module, device: torch.device, batch: int,
                  command: str) -> dict[str, Any]:
    """Profile ``model`` at ``batch`` in every mode of ``args.modes``; write and return the report."""
    torch.manual_seed(0)
    x = torch.randn(batch, model.in_steps, args.nodes, model.in_channels, device=device)
    with torch.inference_mode():
        reference = model(x).clone()
    now = dt.datetime.now(dt.timezone.utc)
    stem = args.out / f"profile-{device.type}-{now:%Y-%m-%d}-{args.model}-w{args.width}-b{batch}"
    modes = []
    for mode in args.modes:
        if mode == "cuda-graph" and device.type != "cuda":
            modes.append({"mode": mode, "skipped": "needs a CUDA device"})
            continue
        try:
            modes.append(profile_model(model, x, mode=mode, warmup=args.warmup, iters=args.iters, top=args.top,
                                       trace=Path(f"{stem}-{mode}.trace.json") if args.trace else None,
                                       reference=None if mode == "eager" else reference))
            log(f"b{batch} {mode}: {modes[-1]['wall_ms_per_forward']:.4f} ms/forward, "
                f"{modes[-1]['kernels_per_forward']:g} kernels")
        except Exception as exc:  # recorded, and the other modes go on
            modes.append({"mode": mode, "error": one_line(exc)})
            log(f"b{batch} {mode} failed: {modes[-1]['error']}")
    report = {"date": now.isoformat(timespec="minutes"), "command": command,
              "conditions": {"model": args.model, "width": args.width, "batch": batch, "nodes": args.nodes,
                             "in_steps": model.in_steps, "in_channels": model.in_channels,
                             "parameters": sum(p.numel() for p in model.parameters()), "device_kind": device.type,
                             "device": device_name(device), "torch": torch.__version__,
                             "threads": torch.get_num_threads()},
              "modes": modes, "faithfulness": {r["mode"]: r["faithfulness"] for r in modes if "faithfulness" in r}}
    write_record(stem, report, to_markdown(report))
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_STUDENT, help=f"registered model (default: {DEFAULT_STUDENT})")
    p.add_argument("--width", type=int, default=32, help="a student's 'hidden' size; ignored for others (default: 32)")
    p.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes, one report each (default: 1)")
    p.add_argument("--nodes", type=int, default=207, help="sensors of the seeded random graph (default: 207)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="default: all three")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--top", type=int, default=10, help="rows of the slowest-op and slowest-kernel tables")
    p.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    p.add_argument("--trace", action="store_true", help="also write a Chrome trace per mode")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: benchmarks/results)")
    return p


def main(argv: list[str] | None = None) -> int:
    from stgkd.nn import MODELS, build

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: CUDA is not available on this machine", file=sys.stderr)
        return 2
    hparams = {"hidden": args.width} if getattr(MODELS.get(args.model), "role", "") == "student" else {}
    torch.manual_seed(0)
    model = build(args.model, num_nodes=args.nodes, graph=random_graph(args.nodes), **hparams).to(device).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    for batch in args.batch:
        profile_batch(args, model, device, batch, "python -m benchmarks.profile " + shlex.join(argv))
    return 0


# ============================================================================ the part of benchmarks.gpu


def _run_child(argv: list[str], seconds: float, log) -> dict[str, Any]:
    """``python -m benchmarks.profile ARGV`` in its own process group, stopped after ``seconds``; how it ended."""
    code, how = run_child([sys.executable, "-m", "benchmarks.profile", *argv], seconds, term_wait=5.0,
                          cwd=RESULTS.parents[1])
    if how != "exited":
        log(f"profile: stopped at its time ({seconds:.0f} s)")
    return {"exit_code": code, "ended": "exited" if how == "exited" else f"stopped at its time ({seconds:.0f} s)"}


def part_profile(ctx: "Context", deadline: Deadline) -> dict[str, Any]:
    """Profile the default student and the default teacher (:data:`PART`; :data:`SMOKE` at toy size), each in its
    own process; the record holds every report written and a summary row per (model, batch, mode)."""
    s = SMOKE if ctx.smoke else PART
    models, runs, reports, artifacts, reached = [DEFAULT_STUDENT, DEFAULT_TEACHER], [], [], {}, None
    for i, model in enumerate(models):
        out = ctx.work / "profile" / model
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("profile-*"):  # a kept --workdir: only this run's reports count
            old.unlink()
        argv = ["--model", model, "--width", str(s["width"]), "--batch", *map(str, s["batches"]), "--nodes",
                str(s["nodes"]), "--device", ctx.device, "--modes", *s["modes"], "--warmup", str(s["warmup"]),
                "--iters", str(s["iters"]), "--top", str(s["top"]), "--out", str(out)] + (
                ["--threads", "1"] if ctx.smoke else [])
        if deadline.expired():
            reached = f"profile of {model}"
            break
        left = deadline.remaining()
        seconds = 3600.0 if left == float("inf") else left / 2 if i == 0 else left
        ctx.log(f"profile: python -m benchmarks.profile {shlex.join(argv)} (at most {seconds:.0f} s)")
        try:
            outcome = _run_child(argv, seconds, ctx.log)
        except OutOfTime as exc:  # the part was stopped from outside: keep what the child wrote
            outcome, reached = {"exit_code": None, "ended": "stopped with the part"}, exc.what
        paths = sorted(out.glob("profile-*.json"), key=lambda p: int(p.stem.rsplit("-b", 1)[1]))
        written = [json.loads(p.read_text()) for p in paths]
        reports += written
        artifacts.update({f"{model}-b{r['conditions']['batch']}.md": str(p.with_suffix(".md"))
                          for p, r in zip(paths, written)})
        runs.append({"model": model, "argv": argv, **outcome, "batches": [r["conditions"]["batch"] for r in written]})
        if reached:
            break
    notes = [f"Default student: {DEFAULT_STUDENT} (stgkd distill's), width {s['width']}; default teacher: "
             f"{DEFAULT_TEACHER} (stgkd train's); untrained weights on a seeded random graph."]
    if not ctx.cuda:
        notes.append("CUDA graphs skipped: no CUDA device; CPU figures, labelled cpu.")
    if ctx.smoke:
        notes.append("Smoke run: compile mode left out (its CPU smoke is tests/benchmarks/test_profile.py).")
    failed = [r for r in runs if r["exit_code"] != 0]
    short = [r for r in runs if len(r["batches"]) < len(s["batches"])]
    if failed and not reached:
        reached = "; ".join(f"{r['model']}: {r['ended']} (exit code {r['exit_code']}), batches "
                            f"{r['batches'] or 'none'} written" for r in failed)
    elif short and not reached:
        reached = f"{short[0]['model']}: only batches {short[0]['batches']} written"
    return {"suite": "profile", "title": "Where the forward's time goes (torch.profiler)", "models": models,
            "runs": runs, "summary": summary(reports), "reports": reports, "reached": reached, "notes": notes,
            "_artifacts": artifacts}


def summary(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, batch, mode): wall time, kernels, device busy time, launch calls and the max abs
    difference to eager (or why the mode has no figures)."""
    rows = []
    for report in reports:
        c = report["conditions"]
        for m in report["modes"]:
            row = {k: c[k] for k in ("model", "width", "batch")} | {"mode": m["mode"], "device_kind": c["device_kind"]}
            if "skipped" in m or "error" in m:
                row["skipped" if "skipped" in m else "error"] = m.get("skipped") or m.get("error")
            else:
                row.update({k: m[k] for k in ("wall_ms_per_forward", "kernels_per_forward",
                                              "device_busy_us_per_forward", "launch_calls_per_forward")})
                f = m.get("faithfulness")
                row["max_abs_diff_to_eager"] = None if f is None else f["max_abs_diff"]
                row["within_1e-4"] = None if f is None else f["within_atol"]
                row.update({"compile_s": m["compile_s"]} if "compile_s" in m else {})
            rows.append(row)
    return rows


def profile_lineup(smoke: bool) -> str:
    s = SMOKE if smoke else PART
    return (f"{DEFAULT_STUDENT} w{s['width']} (the default student), then {DEFAULT_TEACHER} (the default teacher), "
            f"each in its own process; batch {' and '.join(map(str, s['batches']))}; {', '.join(s['modes'])} "
            "(compile: inductor, reduce-overhead on CUDA); kernels, device time, launches, top kernels, max abs "
            "diff to eager")


if __name__ == "__main__":
    sys.exit(main())
