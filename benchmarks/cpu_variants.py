"""Section ``variants`` of ``python -m benchmarks.cpu_deploy``: one student exported as fp32 TorchScript,
int8 TorchScript (linear and recurrent layers, and each group alone) and ONNX, each export measuring itself
against the fp32 program (test-split accuracy fed raw readings, CPU latency at batch 1 and 64), a per-op
profile of the fp32 and int8 programs, and the goal: int8 at least :data:`GOAL_SPEEDUP` times faster than
fp32 at batch :data:`PROFILE_BATCH` with a test MAE change under :data:`GOAL_MAE_CHANGE_PCT` %.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

__all__ = ["GOAL_MAE_CHANGE_PCT", "GOAL_SPEEDUP", "PROFILE_BATCH", "VARIANTS", "goal_verdict", "profile_program",
           "run_variants", "variants_markdown"]

GOAL_SPEEDUP = 2.0
GOAL_MAE_CHANGE_PCT = 1.0
PROFILE_BATCH = 64

#: variant -> export_student keyword arguments
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"format": "torchscript", "checks": True},
    "int8": {"quantize": "int8"},
    "int8-recurrent": {"quantize": "int8", "int8_layers": ("recurrent",)},
    "int8-linear": {"quantize": "int8", "int8_layers": ("linear",)},
    "onnx": {"format": "onnx"},
}


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
    """Each of ``--variants`` exported from ``ckpt`` with its deployment checks: one row per variant (a
    variant that cannot be exported here, e.g. ONNX without onnxruntime, is a row saying why)."""
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
