"""How cost grows with the network: training time, latency and peak memory against the sensor count.

``python -m benchmarks.run --suite scaling [--device cuda] [--sizes 207 883 2000 8600]``

For each size ``N`` a synthetic road network of ``N`` sensors is generated
(:func:`stgkd.data.synthetic.generate`, one day, so the graph has a road network's sparsity), and
for the teacher (Graph WaveNet) and the student (``gcn-gru``, hidden 32):

* **training**: ``--scaling-batches`` optimiser steps (forward, masked MAE in raw units, backward,
  AdamW) on batches of ``--batch-size`` windows are timed after ``--scaling-warmup`` untimed ones;
  ``seconds_per_batch`` is their mean and ``full_epoch_seconds_est`` scales it to an epoch of a
  METR-LA-length series (23,974 training windows: 70% of 34,272 steps) at that batch size;
* **latency**: :func:`stgkd.latency.measure` at the ``--latency-batches`` sizes;
* **peak GPU memory** of the training steps (CUDA only).

A power law ``cost = a · N^k`` is fitted per model and quantity in RESULTS.md
(:func:`benchmarks.table.records.power_law`).

Under a time budget (``args.deadline`` or ``--time-budget``) a point whose predicted cost (the model's
last point scaled by the power law fitted so far, ``N^2`` before two points exist) exceeds the time
left is skipped with that reason, and no point starts past the deadline; the record then says
``"completed": false`` and ``"reached"`` names the first point left out.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import shlex
import time
from typing import Any

import torch

from benchmarks.budget import Deadline

__all__ = ["run_scaling", "METR_LA_TRAIN_WINDOWS", "DEFAULT_SIZES"]

#: training windows of METR-LA under DCRNN's split (34,272 steps, 12 + 12, 70%)
METR_LA_TRAIN_WINDOWS = 23974
DEFAULT_SIZES = (207, 883, 2000, 8600)


def _time_training(model, prepared, *, batch_size: int, batches: int, warmup: int, device: str) -> tuple[float, float | None]:
    """Mean seconds per optimiser step and the peak GPU memory (MiB, CUDA only)."""
    from stgkd.distill.losses import masked_mae

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = prepared.scaler
    n = len(prepared.train)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + batches):
        idx = (torch.arange(batch_size) + i * batch_size) % n
        batch = prepared.train.batch(idx).to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        pred = scaler.inverse_transform(model(batch.x))
        loss = masked_mae(pred, batch.y, batch.mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return sum(times) / len(times), peak


def run_scaling(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (model, size) point and return the record ``benchmarks.run`` writes."""
    import json

    from benchmarks.record import environment, log
    from benchmarks.table.records import power_law
    from stgkd.data.synthetic import generate
    from stgkd.data.windows import prepare
    from stgkd.errors import ConfigError
    from stgkd.latency import is_busy, load_average, measure
    from stgkd.nn import build_for

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine; run with --device cpu")
    sizes = list(args.sizes or DEFAULT_SIZES)
    teacher_hp = json.loads(args.teacher_hparams) if args.teacher_hparams else {}
    lineup = [("graph-wavenet", teacher_hp, args.teacher_max_nodes), ("gcn-gru", {"hidden": 32}, None)]
    deadline = getattr(args, "deadline", None) or Deadline.after(getattr(args, "time_budget", None))
    budget_s = deadline.remaining() if deadline.end is not None else None
    started = _dt.datetime.now(_dt.timezone.utc)
    t_start = time.perf_counter()
    points = []
    skipped = []
    walls: dict[str, list[tuple[int, float]]] = {}  # model -> (N, seconds of its point)
    reached = None

    def predicted(name: str, n: int) -> float | None:
        done = walls.get(name, [])
        if not done:
            return None
        fit = power_law([m for m, _ in done], [w for _, w in done]) if len(done) >= 2 else None
        k = max(1.0, fit[1]) if fit else 2.0
        last_n, last_w = done[-1]
        return last_w * (n / last_n) ** k

    for n in sizes:
        if deadline.expired():
            reached = reached or f"N={n}"
            skipped.append(f"every model at N={n} (time budget spent)")
            continue
        log(f"scaling: generating a {n}-sensor network")
        data, _ = generate(num_nodes=n, num_days=1, seed=0)
        prepared = prepare(data, device=device)
        edges = int((data.adj != 0).sum())
        for name, hp, max_nodes in lineup:
            if max_nodes is not None and n > max_nodes:
                skipped.append(f"{name} at N={n} (above --teacher-max-nodes {max_nodes})")
                continue
            guess = predicted(name, n)
            if deadline.expired() or (guess is not None and guess > deadline.remaining()):
                why = ("time budget spent" if deadline.expired() else
                       f"predicted {guess:.0f} s from the smaller sizes, {deadline.remaining():.0f} s left")
                skipped.append(f"{name} at N={n} ({why})")
                reached = reached or f"{name} N={n}"
                log(f"scaling: {name} N={n} skipped ({why})")
                continue
            t_point = time.perf_counter()
            torch.manual_seed(0)
            model = build_for(name, prepared, **hp).to(device)
            log(f"scaling: {name} N={n}: training steps")
            spb, peak = _time_training(model, prepared, batch_size=args.batch_size, batches=args.scaling_batches,
                                       warmup=args.scaling_warmup, device=device)
            point: dict[str, Any] = {
                "model": name, "nodes": n, "edges": edges, "parameters": sum(p.numel() for p in model.parameters()),
                "seconds_per_batch": spb, "batch_size": args.batch_size,
                "full_epoch_seconds_est": spb * math.ceil(METR_LA_TRAIN_WINDOWS / args.batch_size),
                "peak_gpu_mem_mb": peak,
            }
            mode = "cuda-graph" if device == "cuda" else "eager"
            for b in args.latency_batches:
                log(f"scaling: {name} N={n}: latency batch {b}")
                try:
                    r = measure(model, batch_size=b, device=device, mode=mode, warmup=args.latency_warmup,
                                iters=args.latency_iters if b == 1 else max(3, args.latency_iters // 4), name=name)
                    point[f"latency_b{b}_ms"] = r.median_ms
                    point["busy"] = point.get("busy", False) or r.busy
                except Exception as exc:  # e.g. out of memory at the largest size: recorded, not fatal
                    point[f"latency_b{b}_ms"] = None
                    point[f"latency_b{b}_error"] = f"{type(exc).__name__}: {exc}"
            point["latency_mode"] = mode
            point["load_average"] = load_average()
            point["busy"] = point.get("busy", False) or is_busy(point["load_average"])
            point["wall_seconds"] = time.perf_counter() - t_point
            walls.setdefault(name, []).append((n, point["wall_seconds"]))
            points.append(point)
            del model
            if device == "cuda":
                torch.cuda.empty_cache()
    notes = list(args.note or [])
    if skipped:
        notes.append("Not measured: " + "; ".join(skipped) + ".")
    return {
        "schema": "stgkd-bench/1",
        "suite": "scaling",
        "title": "Scaling with the network size",
        "protocol": "scaling",
        "description": (
            "Synthetic road networks of the sizes listed (one simulated day each, DCRNN windows); the teacher "
            "is Graph WaveNet" + (f" with {json.dumps(teacher_hp)}" if teacher_hp else " at the paper's size")
            + ", the student gcn-gru (hidden 32, dense graph operator). Training seconds per full epoch are "
            f"extrapolated from the timed steps to a METR-LA-length epoch ({METR_LA_TRAIN_WINDOWS:,} windows)."
        ),
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t_start,
        "command": "python -m benchmarks.run " + shlex.join(args.argv),
        "environment": environment(device),
        "budget": {"sizes": sizes, "batch_size": args.batch_size, "batches": args.scaling_batches,
                   "warmup_batches": args.scaling_warmup, "latency_iters": args.latency_iters,
                   "latency_batches": list(args.latency_batches), "teacher_hparams": teacher_hp,
                   "time_budget_s": budget_s},
        "completed": reached is None,
        "reached": reached,
        "notes": notes,
        "points": points,
    }
