"""Where a forward's time goes: a ``torch.profiler`` summary of one model at one input shape.

:func:`profile_model` runs a model's forward ``warmup`` times, then ``iters`` times under the profiler, in one of
three modes (``eager``; ``cuda-graph``: :class:`stgkd.latency.CudaGraphRunner`; ``compile``: ``torch.compile``
with inductor, ``reduce-overhead`` on CUDA), and returns per-forward figures (:func:`summarize_profile`): the wall
time and the device's busy time (their difference is launch and framework overhead the device idles through), on a
GPU the kernels and launch calls (one ``cudaGraphLaunch`` for a CUDA graph), the slowest operators and kernels,
and, given eager's output, how far this mode's output is from it (:func:`faithfulness`). Compilation is timed apart
(``compile_s``), not profiled. It is what explains a missed latency goal: a forward of 40 kernels of 2 µs each is
bound by launches, and CUDA graphs are the cure. The profiler adds its own overhead: compare its figures with each
other and take latency from :func:`stgkd.latency.measure`.

Example::

    >>> summary = profile_model(model, x, mode="eager", warmup=10, iters=50)
    >>> summary["wall_ms_per_forward"], summary["top_host_ops"][0]["op"]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stgkd.export.programs import FAITHFUL_ATOL
from stgkd.latency import MODES, CudaGraphRunner

__all__ = ["MODES", "FAITHFUL_ATOL", "LAUNCH_CALLS", "profile_model", "summarize_profile", "compiled", "faithfulness"]

#: calls before a compiled model is profiled (compilation, then the CUDA-graph recording of reduce-overhead)
COMPILE_WARMUP = 3
#: host-side calls that put work on the GPU
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch",
                "cudaMemcpyAsync", "cudaMemsetAsync")


def summarize_profile(prof: torch.profiler.profile, iters: int, wall_ms: float, *, top: int = 10) -> dict[str, Any]:
    """Per-forward figures of one profiled loop of ``iters`` forwards that took ``wall_ms`` (times in µs unless
    named ms): host operators, kernels, device busy time, idle share, launch calls and the ``top`` slowest
    operators (self host time) and kernels (device time)."""
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    averages = prof.key_averages()
    host_ops = sorted((a for a in averages if a.key not in LAUNCH_CALLS and a.self_cpu_time_total > 0),
                      key=lambda a: a.self_cpu_time_total, reverse=True)
    launches = [a for a in averages if a.key in LAUNCH_CALLS]
    by_kernel: dict[str, list[float]] = {}
    for k in kernels:
        own = getattr(k, "self_device_time_total", getattr(k, "self_cuda_time_total", 0.0))
        by_kernel.setdefault(k.name, []).append(float(own) or float(k.time_range.elapsed_us()))
    kernel_rows = sorted(((name, len(ts), sum(ts)) for name, ts in by_kernel.items()), key=lambda r: r[2], reverse=True)
    busy = sum(r[2] for r in kernel_rows)
    return {
        "iters": iters,
        "wall_ms_per_forward": round(wall_ms / iters, 4),
        "host_ops_per_forward": round(sum(a.count for a in host_ops) / iters, 1),
        "kernels_per_forward": round(len(kernels) / iters, 1),
        "device_busy_us_per_forward": round(busy / iters, 3),
        "idle_share": round(1.0 - busy / (wall_ms * 1000.0), 3) if kernels and wall_ms > 0 else None,
        "launch_calls_per_forward": {a.key: round(a.count / iters, 1) for a in launches},
        "launch_host_us_per_forward": round(sum(a.self_cpu_time_total for a in launches) / iters, 3),
        "top_host_ops": [{"op": a.key, "calls_per_forward": round(a.count / iters, 1),
                          "self_host_us_per_forward": round(a.self_cpu_time_total / iters, 3)} for a in host_ops[:top]],
        "top_kernels": [{"kernel": name[:120], "calls_per_forward": round(n / iters, 1),
                         "device_us_per_forward": round(total / iters, 3)} for name, n, total in kernel_rows[:top]],
    }


def compiled(model: nn.Module, *, cuda: bool) -> tuple[Any, str]:
    """``torch.compile(model)`` with inductor and the mode used: ``reduce-overhead`` on CUDA, else its default."""
    mode = "reduce-overhead" if cuda else "default"
    return torch.compile(model, backend="inductor", mode=mode, dynamic=False), mode


def faithfulness(out: Tensor, reference: Tensor) -> dict[str, Any]:
    """The max absolute difference of a mode's output from eager's, and whether it is within :data:`FAITHFUL_ATOL`."""
    diff = float((out.float() - reference.float()).abs().max()) if out.numel() else 0.0
    return {"max_abs_diff": diff, "atol": FAITHFUL_ATOL, "within_atol": diff <= FAITHFUL_ATOL}


def profile_model(model: nn.Module, x: Tensor, *, mode: str = "eager", warmup: int = 10, iters: int = 50,
                  top: int = 10, trace: Path | None = None, reference: Tensor | None = None) -> dict[str, Any]:
    """Profile ``iters`` forwards of ``model`` on ``x`` (both on one device) in ``mode`` after ``warmup`` untimed
    ones; ``{"mode", ..., **summarize_profile(...)}``, with ``compile_mode`` and ``compile_s`` for ``compile``.

    Args:
        model: the forecaster, in eval mode. Shapes: ``x`` is ``(B, T, N, C)``.
        mode: ``"eager"``, ``"cuda-graph"`` (needs ``x`` on CUDA; :class:`ValueError` otherwise) or ``"compile"``.
        top: rows of the slowest operators and kernels (default: 10).
        trace: write a Chrome trace of the profiled loop here (default: none).
        reference: eager's output on ``x``; then the summary has ``faithfulness`` (:func:`faithfulness`).
    """
    cuda, extra = x.is_cuda, {}
    fn: Any = model
    if mode == "cuda-graph":
        if not cuda:
            raise ValueError("mode 'cuda-graph' needs a CUDA device")
        runner = CudaGraphRunner(model, [x], warmup=max(1, warmup))
    elif mode == "compile":
        fn, extra["compile_mode"] = compiled(model, cuda=cuda)
    elif mode != "eager":
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")

    def call() -> Tensor:
        if mode == "cuda-graph":
            return runner(x)
        with torch.inference_mode():
            return fn(x)

    def synced() -> None:
        if cuda:
            torch.cuda.synchronize()

    if mode == "compile":
        t0 = time.perf_counter()
        call()
        synced()
        extra["compile_s"] = round(time.perf_counter() - t0, 2)
        warmup = max(warmup, COMPILE_WARMUP)
    for _ in range(warmup):
        call()
    if reference is not None:  # cloned: a CUDA graph's output is a buffer the next replay overwrites
        extra["faithfulness"] = faithfulness(call().clone(), reference)
    synced()
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(iters):
            call()
        synced()
        wall_ms = (time.perf_counter() - start) * 1000.0
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    return {"mode": mode, **extra, **summarize_profile(prof, iters, wall_ms, top=top)}
