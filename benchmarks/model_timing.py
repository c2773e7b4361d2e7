"""Forward and forward+backward time of every registered model.

Run::

    python -m benchmarks.model_timing                      # CUDA when present, else CPU
    python -m benchmarks.model_timing --device cpu --iters 3 --warmup 1

It times every model in ``stgkd.nn.MODELS`` (teachers at their paper defaults, students at
their defaults) on a METR-LA-sized input ``(64, 12, 207, 2)`` in fp32 and bf16, forward
(eval, no grad) and forward+backward (train mode, mean of the forecast as the loss), and every
student at batch 1. bf16 is autocast, or, for a model with recurrent layers, a copy of the model cast
to bf16 (cuDNN's RNN under CUDA autocast runs fp16 whatever is asked); each row's ``precision`` says
which (:func:`stgkd.precision.inference_precision`). Models are timed in order of value
(:func:`value_order`): Graph WaveNet, the students, then the peers, so a time budget spent on a slow
peer never costs the models the study is about. (Its second part, the ``gcn-gru`` student's graph operator
``"dense"`` against PyG's ``"gcnconv"``, record ``results/graph_op.md``, is retired: ``benchmarks/README.md``.)

The graph is DCRNN's METR-LA adjacency from ``../shared/data/metr-la-week/adj_mx.pkl`` when it is
there (1722 non-zeros), else a seeded random graph with 8 out-edges per node. On CUDA the times
are CUDA-event times after warm-up with synchronisation; on the CPU wall-clock ``perf_counter``.
Results go to ``benchmarks/results/model_timing[_TAG].{json,md}`` with the
command, machine, load average and date. The script refuses to start on a busy machine (1-minute load
average above the core count; exit code 2, :mod:`benchmarks.idle`); with ``--allow-busy`` it times anyway
and the report says ``"busy": true``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

import stgkd.nn
from benchmarks.budget import Deadline
from benchmarks.idle import EXIT_BUSY, add_allow_busy, refuse_busy
from stgkd.errors import ConfigError
from benchmarks.table.latency import models_table
from benchmarks.record import environment, write_record
from stgkd.latency import device_name, is_busy, load_average, random_graph, release_cached_memory, summarize
from stgkd.nn import MODELS, build, count_flops
from stgkd.precision import inference_precision

ROOT = Path(__file__).resolve().parents[1]
METR_LA_ADJ = ROOT / ".." / "shared" / "data" / "metr-la-week" / "adj_mx.pkl"
#: the precisions timed (names of :data:`stgkd.precision.DTYPES`)
DTYPES = ("fp32", "bf16")


@dataclass
class Timing:
    """Milliseconds per call of one (model, batch, precision, pass) setting."""

    model: str
    role: str
    batch: int
    dtype: str
    passes: str  # "forward" or "forward+backward"
    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    iters: int
    warmup: int
    parameters: int
    gflops: float  # forward FLOPs estimate (stgkd.nn.count_flops), fp32, this batch
    device: str
    error: str = ""
    precision: str = ""  # how dtype ran: "fp32", "autocast" or "cast" (stgkd.precision.inference_precision)


def load_graph(num_nodes: int) -> tuple[np.ndarray, str]:
    """METR-LA's adjacency when present and ``num_nodes == 207``, else a seeded random graph."""
    if num_nodes == 207 and METR_LA_ADJ.exists():
        from stgkd.data.readers import read_adj_pickle

        _, adj = read_adj_pickle(METR_LA_ADJ)
        return np.asarray(adj, dtype=np.float32), "METR-LA (DCRNN adj_mx.pkl)"
    return random_graph(num_nodes), f"random, 8 out-edges per node, seed 0 (N={num_nodes})"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, *, warmup: int, iters: int) -> list[float]:
    """Per-call times (ms) of ``fn()``: CUDA events on the GPU, ``perf_counter`` on the CPU."""
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def time_model(model: nn.Module, x: Tensor, *, passes: str, dtype: str, device: torch.device,
               warmup: int, iters: int) -> list[float]:
    """Time ``model(x)`` (eval, no grad) or one forward+backward (train mode) at precision ``dtype``
    (autocast, or a copy of a model with recurrent layers cast to ``dtype``: :func:`inference_precision`)."""
    if passes not in ("forward", "forward+backward"):
        raise ConfigError(f"passes={passes!r}: 'forward' or 'forward+backward'")
    precision = inference_precision(model, dtype)
    run, xin = precision.prepare(model), precision.inputs(x)
    if passes == "forward":
        run.eval()

        def step() -> None:
            with torch.no_grad(), precision.context(device):
                run(xin)

    else:
        run.train()

        def step() -> None:
            with precision.context(device):
                loss = run(xin).float().mean()
            loss.backward()
            run.zero_grad(set_to_none=True)

    return time_call(step, device, warmup=warmup, iters=iters)


def value_order(names: list[str]) -> list[str]:
    """``names`` in order of value: Graph WaveNet (the teacher), the students, then every other model (the
    peers), each group alphabetical."""
    def rank(name: str) -> tuple[int, str]:
        role = getattr(MODELS.get(name), "role", "")
        return (0 if name == "graph-wavenet" else 1 if role == "student" else 2, name)

    return sorted(names, key=rank)


def _summary(samples: list[float]) -> dict[str, float]:
    """The fields of :class:`Timing` that :func:`stgkd.latency.summarize` gives."""
    return {k: v for k, v in summarize(samples).items() if k in ("median_ms", "mean_ms", "std_ms", "min_ms")}


def time_models(names: list[str], adj: np.ndarray, *, batches: dict[str, list[int]], dtypes: list[str],
                passes: list[str], device: torch.device, warmup: int, iters: int,
                log: Callable[[str], None] = print, rows: list[Timing] | None = None,
                deadline: Deadline | None = None) -> list[Timing]:
    """Time every model in ``names`` at the batches of its role (``batches["teacher"|"student"]``).

    Rows are appended to ``rows`` (a new list by default) and returned. Past ``deadline`` it raises
    :class:`~benchmarks.budget.OutOfTime` before the next setting; ``rows`` keeps what was timed. A setting
    that fails is recorded with its error and the next one runs.
    """
    n = adj.shape[0]
    rows = [] if rows is None else rows
    deadline = deadline or Deadline()
    for name in names:
        cls = MODELS.get(name)
        for batch in batches.get(cls.role, []):
            deadline.check(f"{name} B={batch}")
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(batch, 12, n, 2, generator=gen).to(device)
            try:
                torch.manual_seed(0)
                model = build(name, num_nodes=n, graph=adj).to(device)
                params = model.num_parameters()
                gflops = count_flops(model.eval(), x) / 1e9
            except Exception as exc:  # record and go on: one broken model must not hide the others
                rows.append(Timing(name, cls.role, batch, "-", "-", *([float("nan")] * 4), 0, 0, 0, 0.0,
                                   str(device), f"{type(exc).__name__}: {exc}"))
                log(f"{name} B={batch}: build failed: {exc}")
                continue
            for dtype in dtypes:
                for p in passes:
                    if p != "forward" and cls.role == "baseline":  # fitted, not trained: no backward to time
                        continue
                    deadline.check(f"{name} B={batch} {dtype} {p}")
                    try:
                        stats = _summary(time_model(model, x, passes=p, dtype=dtype, device=device,
                                                    warmup=warmup, iters=iters))
                        error = ""
                    except Exception as exc:
                        stats = dict.fromkeys(("median_ms", "mean_ms", "std_ms", "min_ms"), float("nan"))
                        error = f"{type(exc).__name__}: {exc}"
                        traceback.print_exc()
                        release_cached_memory()
                    row = Timing(name, cls.role, batch, dtype, p, **stats, iters=iters, warmup=warmup,
                                 parameters=params, gflops=round(gflops, 4), device=str(device), error=error,
                                 precision=inference_precision(model, dtype).method)
                    rows.append(row)
                    log(f"{name:14s} B={batch:<3d} {dtype} {p:17s} {row.median_ms:10.2f} ms {error}")
            del model
    return rows


def to_markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        "# Model timing",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}",
        f"- device: **{report['device']}** ({report['device_name']})",
        f"- machine: {env['platform']}, {report['cpu_count']} CPUs, torch {env['torch']} ({env['threads']} threads), "
        f"load average at start {report['load_average']['start']}, at end {report['load_average']['end']}",
        f"- graph: {report['graph']}; input (B, 12, {report['nodes']}, 2)",
    ]
    if report["models"]:
        lines.append(f"- models: warm-up {report['warmup']}, timed iterations {report['iters']}; median ms per call")
    lines.append("")
    if report.get("note"):
        lines += [report["note"], ""]
    if report["models"]:
        lines += models_table(report["models"]) + [""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.model_timing", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA when present, else CPU (default: auto)")
    p.add_argument("--models", nargs="*", default=None, help="registered names (default: all)")
    p.add_argument("--nodes", type=int, default=207, help="N (default: 207, METR-LA)")
    p.add_argument("--batch", type=int, default=64, help="batch of every model (default: 64)")
    p.add_argument("--student-batch", type=int, default=1, help="extra batch for students (default: 1)")
    p.add_argument("--dtypes", nargs="*", default=["fp32", "bf16"], choices=DTYPES)
    p.add_argument("--warmup", type=int, default=None, help="default: 10 on CUDA, 1 on CPU")
    p.add_argument("--iters", type=int, default=None, help="default: 50 on CUDA, 3 on CPU")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results folder")
    p.add_argument("--tag", default="", help="suffix of the result file names, e.g. 'cpu'")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice). On a busy shared VM, 2 OpenMP "
                        "threads can wait ~200 ms on each other per op; 1 thread gives stable CPU figures")
    add_allow_busy(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("model_timing: --device cuda but CUDA is not available here; use --device cpu", file=sys.stderr)
        return 2
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
    iters = args.iters if args.iters is not None else (50 if device.type == "cuda" else 3)
    if refuse_busy("benchmarks.model_timing", args.allow_busy):
        return EXIT_BUSY
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    adj, graph_desc = load_graph(args.nodes)
    names = args.models if args.models else value_order(MODELS.names())
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    load_start = load_average()
    print(f"model_timing on {device} ({device_name(device)}), graph: {graph_desc}")

    rows = time_models(
        names, adj,
        batches={"teacher": [args.batch], "student": sorted({args.batch, args.student_batch}, reverse=True)},
        dtypes=args.dtypes, passes=["forward", "forward+backward"], device=device, warmup=warmup, iters=iters,
    )
    load_end = load_average()
    busy = is_busy(load_start) or is_busy(load_end)
    report = {
        "command": "python -m benchmarks.model_timing " + shlex.join(argv),
        "date": started,
        "device": device.type,
        "device_name": device_name(device),
        "environment": environment(device.type),
        "cpu_count": os.cpu_count(),
        "load_average": {"start": load_start, "end": load_end},
        "busy": busy,
        "graph": graph_desc,
        "nodes": args.nodes,
        "warmup": warmup,
        "iters": iters,
        "stgkd_models": names,
        "note": (f"**Busy machine**: the load average exceeded the {os.cpu_count()} cores (see above); other "
                 "work shared the CPU, so absolute times are inflated and noisy; compare rows measured in the same "
                 "run." if busy else ""),
        "models": [asdict(r) for r in rows],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_record(args.out / f"model_timing{'_' + args.tag if args.tag else ''}", report, to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
