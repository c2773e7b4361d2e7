"""Deployment checks: what an exported program loses (test-split accuracy) and gains (one-thread CPU
latency) against the fp32 TorchScript program, recorded in the file's metadata."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from stgkd.export.onnx import OnnxProgram
from stgkd.export.torchscript import to_torchscript
from stgkd.export.wrapper import RawUnitsForecaster

__all__ = ["CHECK_BATCHES", "deployment_checks"]

#: batch sizes the deployment checks time
CHECK_BATCHES = (1, 64)


def deployment_checks(
    payload: dict[str, Any],
    fp32: RawUnitsForecaster,
    program: Any,
    backend: str,
    *,
    onnx_bytes: bytes | None = None,
    dataset: Any = None,
    data_dir: str | Path | None = None,
    batches: Sequence[int] = CHECK_BATCHES,
    threads: int = 1,
    latency_iters: int = 30,
    latency_warmup: int = 5,
    where: str = "checkpoint",
) -> dict[str, Any]:
    """What an exported program loses and gains against the fp32 TorchScript program, on the CPU.

    * ``accuracy``: masked MAE/RMSE/MAPE (15/30/60 min and the horizon average) of both programs on the
      checkpoint's test split, fed raw readings and timestamps as in deployment
      (:func:`stgkd.engine.evaluate.evaluate_program`), and the relative MAE change in percent; or
      ``{"made": False, "reason": ...}`` when the data cannot be rebuilt (``dataset``/``data_dir`` as for
      ``stgkd evaluate``) or the program cannot run here.
    * ``latency``: both programs timed end to end with :func:`stgkd.latency.measure` (through
      :class:`~stgkd.latency.RawUnitsAdapter`) on ``threads`` CPU threads at each batch size, alternating
      programs; median/p90/p99 ms, and the speed-up (fp32 median / this program's median). The load
      average before and after and ``busy`` (1-minute load above the core count) say whether other work
      shared the CPU.

    Args:
        payload: the validated checkpoint.
        fp32: the eager fp32 wrapper of the checkpoint's student (on the CPU).
        program: the exported program (``None``: an ONNX file without onnxruntime, nothing is measured).
        backend: the program's :func:`backend_of` name.
        onnx_bytes: the ONNX model, for a session pinned to ``threads`` threads.
    """
    if program is None:
        reason = "onnxruntime is not installed (pip install 'stgkd[deploy]')"
        return {"backend": backend, "accuracy": {"made": False, "reason": reason},
                "latency": {"made": False, "reason": reason}}
    if fp32.adjacency.device.type != "cpu":
        reason = "the file was exported on CUDA; the CPU checks need device='cpu'"
        return {"backend": backend, "accuracy": {"made": False, "reason": reason},
                "latency": {"made": False, "reason": reason}}
    reference = program if backend == "torchscript-fp32" else to_torchscript(fp32, torch.device("cpu"), where)
    programs = {"torchscript-fp32": reference, backend: program}
    return {
        "backend": backend,
        "reference": "torchscript-fp32",
        "accuracy": _accuracy_check(payload, programs, backend, dataset=dataset, data_dir=data_dir),
        "latency": _latency_check(
            fp32, {**programs, backend: OnnxProgram(onnx_bytes, threads=threads) if onnx_bytes else program},
            backend, batches=batches, threads=threads, iters=latency_iters, warmup=latency_warmup,
        ),
    }


def _accuracy_check(payload: dict[str, Any], programs: dict[str, Any], backend: str, *, dataset: Any,
                    data_dir: str | Path | None) -> dict[str, Any]:
    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.engine.evaluate import evaluate_program
    from stgkd.errors import StgkdError

    try:
        prepared = prepare_from_meta(payload["data"], dataset=dataset, data_dir=data_dir)
    except (StgkdError, OSError, KeyError) as exc:
        return {"made": False, "reason": f"the test split could not be rebuilt: {exc}"}
    metrics = {}
    for name, program in programs.items():
        result = evaluate_program(program, prepared, split="test")
        result.pop("per_step")
        metrics[name] = result
    ref, got = metrics["torchscript-fp32"], metrics[backend]
    change = {h: 100.0 * (got[h]["mae"] - ref[h]["mae"]) / ref[h]["mae"] if ref[h]["mae"] else None for h in ref}
    return {"made": True, "split": "test", "dataset": str(prepared.data.name), "windows": len(prepared.test),
            "metrics": metrics, "mae_change_pct": change}


def _latency_check(fp32: RawUnitsForecaster, programs: dict[str, Any], backend: str, *, batches: Sequence[int],
                   threads: int, iters: int, warmup: int) -> dict[str, Any]:
    from stgkd.latency import RawUnitsAdapter, cpu_threads, device_name, load_average, measure

    keep = ("median_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput")
    before = load_average()
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in programs}
    with cpu_threads(threads):
        cpu = device_name("cpu")
        for batch in batches:
            for name, program in programs.items():
                r = measure(RawUnitsAdapter(program, fp32.history_steps, fp32.interval_minutes), batch_size=int(batch),
                            num_nodes=fp32.num_nodes, in_steps=fp32.history_steps, in_channels=1, device="cpu",
                            warmup=warmup, iters=iters, name=name)
                results[name][str(batch)] = {k: getattr(r, k) for k in keep}
    after = load_average()
    cores = os.cpu_count() or 1
    ref, got = results["torchscript-fp32"], results[backend]
    return {
        "made": True,
        "threads": threads,
        "cpu": cpu,
        "cores": cores,
        "torch_version": torch.__version__,
        "warmup": warmup,
        "iters": iters,
        "load_average": {"before": before, "after": after},
        "busy": bool(before and max(before[0], (after or before)[0]) > cores),
        "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "results": results,
        "speedup": {b: ref[b]["median_ms"] / got[b]["median_ms"] for b in ref},
    }
