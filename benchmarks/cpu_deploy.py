"""A student deployed on the CPU: fp32 TorchScript, dynamic int8 TorchScript and ONNX (onnxruntime).

    python -m benchmarks.cpu_deploy [--checkpoint runs/st/best.pt] [--dataset NAME_OR_PATH] [--data-dir DIR]
        [--nodes 207 --days 14 --width 32 --epochs 5 --limit-batches 50]   # without --checkpoint
        [--iters 50] [--no-profile] [--allow-busy] [--smoke] [--tag T] [--out benchmarks/results]

Exports the student (``--checkpoint``, or a ``gcn-gru`` trained here on the synthetic network, or on
``--dataset``) with :func:`stgkd.export.export_student` as fp32 TorchScript, int8 TorchScript (linear and
recurrent layers; and each group alone, to show where int8 helps) and ONNX (where onnx and onnxruntime
are installed). Each export measures itself against the fp32 TorchScript program in the same run
(``deployment_checks`` in its metadata): masked MAE/RMSE/MAPE on the test split, fed raw readings as in
deployment, and CPU latency end to end on one thread at batch 1 and 64. A profile of the fp32 and int8
programs at batch 64 (torch.profiler, one thread) shows where the time goes. Writes
``OUT/cpu-deploy-<date>[-tag].md`` and ``.json`` with the command, machine, date and load average.

The goal checked: an int8 student on one thread at least 2x faster than fp32 at batch 64 with a test MAE
change under 1 %.

Timings are only worth recording on an idle machine: the script refuses to write results when the
1-minute load average exceeds the number of cores (before or after measuring) unless ``--allow-busy``,
and then labels them busy. ``--smoke`` runs a tiny network (6 sensors, 2 days, width 8, 3 timed calls)
to check the code path; its figures mean nothing and are labelled so.
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

#: variant -> export_student keyword arguments
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"checks": True},
    "int8": {"quantize": "int8"},
    "int8-recurrent": {"quantize": "int8", "int8_layers": ("recurrent",)},
    "int8-linear": {"quantize": "int8", "int8_layers": ("linear",)},
    "onnx": {"format": "onnx"},
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu_deploy", description=__doc__.splitlines()[0])
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
    return info


def busy(load: list[float] | None) -> bool:
    """The 1-minute load average exceeds the number of cores (:func:`stgkd.latency.is_busy`)."""
    from stgkd.latency import is_busy

    return is_busy(load)


def train_student(args: argparse.Namespace, work: Path) -> tuple[Path, Any]:
    """A student trained here: ``(checkpoint, dataset to rebuild its test split from)``."""
    from stgkd.engine import TrainConfig, train_model

    if args.dataset:
        data: Any = args.dataset
    else:
        from stgkd.data.synthetic import generate

        data, _ = generate(num_nodes=args.nodes, num_days=args.days, seed=0)
    config = TrainConfig(epochs=args.epochs, batch_size=64, limit_batches=args.limit_batches, device="cpu", seed=0)
    hparams = {"hidden": args.width} if args.student in ("gru", "gcn-gru") else {}
    train_model(data, args.student, work / "student", hparams=hparams, config=config, data_dir=args.data_dir,
                progress=False, log=False)
    return work / "student" / "best.pt", data


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


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# A student deployed on the CPU: fp32, int8, ONNX",
        "",
        f"- date: {report['date']}; command: `{report['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']} "
        f"(quantised engine {m['quantized_engine']}), onnxruntime {m['onnxruntime'] or 'not installed'}; {m['os']}",
        f"- load average (1/5/15 min) at start {report['load_average']['start']}, at end {report['load_average']['end']}",
        f"- student: {report['student']}",
        "- latency: the exported file end to end (raw readings and timestamps in, raw forecasts out) on one "
        f"thread, {report['iters']} timed calls after warm-up, median ms; speed-up = the fp32 TorchScript "
        "program's median in the same export run / this program's",
        "- accuracy: masked MAE on the test split, 12-step average and 60 min, the program fed raw readings as in "
        "deployment; change relative to the fp32 TorchScript program",
        "",
    ]
    if report["smoke"]:
        lines += ["> **Smoke run** (tiny network, few calls): checks the code path; the figures mean nothing.", ""]
    if report["busy"]:
        lines += ["> **Busy machine**: the load average exceeded the core count while measuring; other work "
                  "shared the CPU, so the latencies and speed-ups compare only loosely.", ""]
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
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.nodes, args.days, args.width, args.epochs, args.limit_batches = 6, 2, 8, 1, 2
        args.iters = min(args.iters, 3)
    from stgkd.latency import load_average

    start_load = load_average()
    if busy(start_load) and not args.allow_busy:
        print(f"benchmarks.cpu_deploy: load average {start_load} exceeds the {os.cpu_count()} cores; timings now "
              "would measure the other work too. Run on an idle machine, or pass --allow-busy (labelled busy).",
              file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.timezone.utc)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="stgkd-cpu-deploy-") as tmp:
        work = Path(tmp)
        if args.checkpoint is not None:
            ckpt, dataset = args.checkpoint, args.dataset
            student = f"checkpoint `{args.checkpoint}`"
        else:
            ckpt, dataset = train_student(args, work)
            where = args.dataset or f"the synthetic network ({args.nodes} sensors, {args.days} days)"
            student = (f"`{args.student}` width {args.width} trained here on {where}, {args.epochs} epochs of at most "
                       f"{args.limit_batches} batches")
        rows = run_variants(args, ckpt, dataset, work)
        profile = {}
        if not args.no_profile:
            for r in rows:
                if r["variant"] in ("fp32", "int8") and "path" in r:
                    profile[r["variant"]] = profile_program(Path(r["path"]), PROFILE_BATCH)
    end_load = load_average()
    loads = [r["checks"]["latency"]["load_average"] for r in rows if "checks" in r]
    was_busy = busy(start_load) or busy(end_load) or any(busy(v["before"]) or busy(v["after"]) for v in loads)
    if was_busy and not args.allow_busy:
        print(f"benchmarks.cpu_deploy: the load average rose above the {os.cpu_count()} cores while measuring "
              f"(end {end_load}); no results written. Run again on an idle machine, or pass --allow-busy.",
              file=sys.stderr)
        return 2
    for r in rows:
        r.pop("path", None)
    report = {
        "schema": "stgkd-cpu-deploy/1",
        "command": "python -m benchmarks.cpu_deploy " + shlex.join(argv),
        "date": started.isoformat(timespec="seconds"),
        "machine": info,
        "load_average": {"start": start_load, "end": end_load},
        "busy": was_busy,
        "smoke": args.smoke,
        "student": student,
        "iters": args.iters,
        "variants": rows,
        "goal": goal_verdict(rows),
        "profile": profile,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"cpu-deploy-{started:%Y-%m-%d}{'-' + args.tag if args.tag else ''}"
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(to_markdown(report))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
