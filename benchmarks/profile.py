"""Where a forward's time goes: a ``torch.profiler`` summary of one model at one shape.

For each requested mode (``eager``, ``cuda-graph``, ``compile``) the model runs ``--warmup`` times, then
``--iters`` times under the profiler, and the summary gives, per forward:

* wall time (host clock around the synchronised calls) and the device's busy time (sum of kernel
  times on a GPU), whose difference is launch and framework overhead the device sits idle through;
* on a GPU, the number of kernels and of launch calls (``cudaLaunchKernel`` & co, or one
  ``cudaGraphLaunch`` in CUDA-graph mode) and the host time spent in them;
* the slowest operators (by self host time) and, on a GPU, the slowest kernels (by device time);
* faithfulness: the largest absolute difference of the mode's output from eager's on the same input, and
  whether it is within :data:`FAITHFUL_ATOL` (``1e-4``).

``compile`` is ``torch.compile`` with inductor: on CUDA ``mode="reduce-overhead"`` (fused Triton kernels
replayed in a CUDA graph), on the CPU inductor's default mode (fused C++ kernels); compilation happens
in the warm-up (at least :data:`COMPILE_WARMUP` calls), is timed apart (``compile_s``) and is not profiled.
A mode that fails (no Triton, a graph break the backend refuses) is recorded with its error, and the
other modes go on.

It is what explains a missed latency goal: a student whose forward is 40 kernels of 2 µs each is
bound by launch overhead, not arithmetic, and CUDA graphs are the cure. Without CUDA it profiles on
the CPU and labels the result so. Writes ``profile-<device>-<date>-<model>-w<width>-b<batch>.json``
and ``.md`` (and a Chrome trace per mode with ``--trace``).

    python -m benchmarks.profile --model stgru --width 32 --batch 1 64 --device cuda
    python -m benchmarks.profile --model graph-wavenet --batch 64 --device cuda --modes eager compile
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.record import one_line as _one_line
from stgkd.latency import CudaGraphRunner, device_name, random_graph

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("eager", "cuda-graph", "compile")
#: a mode's output is faithful when it is this close to eager's (max absolute difference)
FAITHFUL_ATOL = 1e-4
#: calls before a compiled model is profiled (compilation, then the CUDA-graph recording of reduce-overhead)
COMPILE_WARMUP = 3
#: host-side calls that put work on the GPU
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch",
                "cudaMemcpyAsync", "cudaMemsetAsync")


def _us(value: float) -> float:
    return round(float(value), 3)


def _device_time(event: Any) -> float:
    """Device (self) time of a profiler event in µs, across torch versions."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def summarize(prof: torch.profiler.profile, iters: int, wall_ms: float, *, top: int) -> dict[str, Any]:
    """Per-forward figures of one profiled loop of ``iters`` forwards (times in µs unless named ms)."""
    events = prof.events()
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    averages = prof.key_averages()
    host_ops = sorted((a for a in averages if a.key not in LAUNCH_CALLS and a.self_cpu_time_total > 0),
                      key=lambda a: a.self_cpu_time_total, reverse=True)
    launches = [a for a in averages if a.key in LAUNCH_CALLS]
    by_kernel: dict[str, list[float]] = {}
    for k in kernels:
        by_kernel.setdefault(k.name, []).append(_device_time(k) or float(k.time_range.elapsed_us()))
    kernel_rows = sorted(((name, len(ts), sum(ts)) for name, ts in by_kernel.items()), key=lambda r: r[2], reverse=True)
    device_busy = sum(r[2] for r in kernel_rows)
    return {
        "iters": iters,
        "wall_ms_per_forward": round(wall_ms / iters, 4),
        "host_ops_per_forward": round(sum(a.count for a in host_ops) / iters, 1),
        "kernels_per_forward": round(len(kernels) / iters, 1),
        "device_busy_us_per_forward": _us(device_busy / iters),
        "idle_share": (round(1.0 - device_busy / (wall_ms * 1000.0), 3) if kernels and wall_ms > 0 else None),
        "launch_calls_per_forward": {a.key: round(a.count / iters, 1) for a in launches},
        "launch_host_us_per_forward": _us(sum(a.self_cpu_time_total for a in launches) / iters),
        "top_host_ops": [{"op": a.key, "calls_per_forward": round(a.count / iters, 1),
                          "self_host_us_per_forward": _us(a.self_cpu_time_total / iters)} for a in host_ops[:top]],
        "top_kernels": [{"kernel": name[:120], "calls_per_forward": round(n / iters, 1),
                         "device_us_per_forward": _us(total / iters)} for name, n, total in kernel_rows[:top]],
    }


def compiled(model: nn.Module, *, cuda: bool) -> tuple[Any, str]:
    """``torch.compile(model)`` with inductor and the mode used: ``reduce-overhead`` on CUDA (Triton kernels
    replayed in a CUDA graph), inductor's default on the CPU."""
    mode = "reduce-overhead" if cuda else "default"
    return torch.compile(model, backend="inductor", mode=mode, dynamic=False), mode


def faithfulness(out: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """How far a mode's output is from eager's on the same input: max absolute difference, and whether it
    is within :data:`FAITHFUL_ATOL`."""
    diff = float((out.float() - reference.float()).abs().max()) if out.numel() else 0.0
    return {"max_abs_diff": diff, "atol": FAITHFUL_ATOL, "within_atol": diff <= FAITHFUL_ATOL}


def profile_model(model: nn.Module, x: torch.Tensor, *, mode: str, warmup: int, iters: int, top: int,
                  trace: Path | None = None, reference: torch.Tensor | None = None) -> dict[str, Any]:
    """Profile ``iters`` forwards of ``model`` on ``x`` (already on its device) in ``mode``; with
    ``reference`` (eager's output on ``x``) the summary also says how far this mode's output is from it."""
    cuda = x.is_cuda
    extra: dict[str, Any] = {}
    if mode == "cuda-graph":
        if not cuda:
            raise ValueError("mode 'cuda-graph' needs a CUDA device")
        runner = CudaGraphRunner(model, [x], warmup=max(1, warmup))
        call = lambda: runner(x)  # noqa: E731
    elif mode == "eager":
        def call():
            with torch.inference_mode():
                return model(x)
    elif mode == "compile":
        fn, extra["compile_mode"] = compiled(model, cuda=cuda)

        def call():
            with torch.inference_mode():
                return fn(x)

        t0 = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        extra["compile_s"] = round(time.perf_counter() - t0, 2)
        warmup = max(warmup, COMPILE_WARMUP)
    else:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    for _ in range(warmup):
        call()
    if reference is not None:
        out = call().clone()  # a CUDA graph's output is a static buffer the next replay overwrites
        extra["faithfulness"] = faithfulness(out, reference)
    if cuda:
        torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(iters):
            call()
        if cuda:
            torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - start) * 1000.0
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    return {"mode": mode, **extra, **summarize(prof, iters, wall_ms, top=top)}


def to_markdown(report: dict[str, Any]) -> str:
    c = report["conditions"]
    lines = [
        f"# Profile: {c['model']} width {c['width']} at batch {c['batch']}, {c['nodes']} nodes",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- device: **{c['device_kind']}** ({c['device']}), torch {c['torch']}",
        f"- input `(B, T, N, C)` = ({c['batch']}, {c['in_steps']}, {c['nodes']}, {c['in_channels']}), fp32, "
        f"{c['parameters']:,} parameters; untrained weights (timing does not depend on them)",
        "- the profiler adds its own overhead to the wall time: compare its figures with each other, and take "
        "latency from `python -m benchmarks.latency`",
        "",
        f"- faithful: a mode's output within {FAITHFUL_ATOL:g} of eager's on the same input (max abs diff); "
        "compile: `torch.compile` (inductor; `reduce-overhead` on CUDA), its compilation not profiled",
        "",
        "| mode | wall ms / forward | device busy µs | idle share | kernels | launch calls | launch host µs "
        "| host ops | max abs diff to eager |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in report["modes"]:
        if "skipped" in r or "error" in r:
            why = f"skipped: {r['skipped']}" if "skipped" in r else f"failed: {r['error']}"
            lines.append(f"| {r['mode']} | {why} | | | | | | | |")
            continue
        f = r.get("faithfulness")
        faithful = "-" if f is None else f"{f['max_abs_diff']:.2e} ({'within' if f['within_atol'] else '**over**'})"
        calls = ", ".join(f"{k} {v:g}" for k, v in r["launch_calls_per_forward"].items()) or "-"
        idle = "-" if r["idle_share"] is None else f"{100 * r['idle_share']:.0f} %"
        busy = f"{r['device_busy_us_per_forward']:.1f}" if r["kernels_per_forward"] else "-"
        lines.append(f"| {r['mode']} | {r['wall_ms_per_forward']:.4f} | {busy} | {idle} | "
                     f"{r['kernels_per_forward']:g} | {calls} | {r['launch_host_us_per_forward']:.1f} | "
                     f"{r['host_ops_per_forward']:g} | {faithful} |")
    for r in report["modes"]:
        if "skipped" in r or "error" in r:
            continue
        lines += ["", f"## {r['mode']}: slowest operators (self host time per forward)", "",
                  "| operator | calls | µs |", "|---|---:|---:|"]
        lines += [f"| `{o['op']}` | {o['calls_per_forward']:g} | {o['self_host_us_per_forward']:.1f} |"
                  for o in r["top_host_ops"]]
        if r["top_kernels"]:
            lines += ["", f"## {r['mode']}: slowest kernels (device time per forward)", "",
                      "| kernel | calls | µs |", "|---|---:|---:|"]
            lines += [f"| `{k['kernel']}` | {k['calls_per_forward']:g} | {k['device_us_per_forward']:.1f} |"
                      for k in r["top_kernels"]]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gcn-gru", help="registered model (default: gcn-gru)")
    p.add_argument("--width", type=int, default=32, help="the model's 'hidden' size; ignored for teachers (default: 32)")
    p.add_argument("--batch", type=int, nargs="+", default=[1],
                   help="batch sizes, one profile (and file) each (default: 1)")
    p.add_argument("--nodes", type=int, default=207, help="sensors of the seeded random graph (default: 207)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                   help="default: all three (cuda-graph needs CUDA)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--top", type=int, default=10, help="rows of the slowest-op and slowest-kernel tables")
    p.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    p.add_argument("--trace", action="store_true", help="also write a Chrome trace per mode")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: benchmarks/results)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from stgkd.nn import MODELS, build

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: CUDA is not available on this machine", file=sys.stderr)
        return 2
    cls = MODELS.get(args.model)
    hparams = {"hidden": args.width} if getattr(cls, "role", "") == "student" else {}
    torch.manual_seed(0)
    model = build(args.model, num_nodes=args.nodes, graph=random_graph(args.nodes), **hparams).to(device).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.profile " + shlex.join(sys.argv[1:] if argv is None else argv)
    for batch in args.batch:
        report = profile_batch(args, model, device, batch, command)
        print(to_markdown(report))
    return 0


def profile_batch(args: argparse.Namespace, model: nn.Module, device: torch.device, batch: int,
                  command: str) -> dict[str, Any]:
    """Profile ``model`` at ``batch`` in every mode of ``args.modes``; write and return the report."""
    torch.manual_seed(0)
    x = torch.randn(batch, model.in_steps, args.nodes, model.in_channels, device=device)
    with torch.inference_mode():
        reference = model(x).clone()
    now = dt.datetime.now(dt.timezone.utc)
    stem = f"profile-{device.type}-{now:%Y-%m-%d}-{args.model}-w{args.width}-b{batch}"
    modes = []
    for mode in args.modes:
        if mode == "cuda-graph" and device.type != "cuda":
            modes.append({"mode": mode, "skipped": "needs a CUDA device"})
            continue
        trace = args.out / f"{stem}-{mode}.trace.json" if args.trace else None
        try:
            r = profile_model(model, x, mode=mode, warmup=args.warmup, iters=args.iters, top=args.top, trace=trace,
                              reference=None if mode == "eager" else reference)
        except Exception as exc:  # recorded, and the other modes go on
            modes.append({"mode": mode, "error": _one_line(exc)})
            print(f"{mode:<10} failed: {modes[-1]['error']}", file=sys.stderr)
            continue
        modes.append(r)
        print(f"b{batch} {mode:<10} wall {r['wall_ms_per_forward']:.4f} ms/forward, {r['kernels_per_forward']:g} "
              f"kernels, device busy {r['device_busy_us_per_forward']:.1f} µs, {r['host_ops_per_forward']:g} host ops",
              file=sys.stderr)
    report = {
        "date": now.isoformat(timespec="minutes"),
        "command": command,
        "conditions": {"model": args.model, "width": args.width, "batch": batch, "nodes": args.nodes,
                       "in_steps": model.in_steps, "in_channels": model.in_channels,
                       "parameters": sum(p.numel() for p in model.parameters()),
                       "device_kind": device.type, "device": device_name(device), "torch": torch.__version__,
                       "threads": torch.get_num_threads()},
        "modes": modes,
        "faithfulness": {r["mode"]: r["faithfulness"] for r in modes if "faithfulness" in r},
    }
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"{stem}.md").write_text(to_markdown(report))
    return report


if __name__ == "__main__":
    sys.exit(main())
