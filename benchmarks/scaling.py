"""How cost grows with the network: training time, latency and peak memory against the sensor count.

``python -m benchmarks.run --suite scaling [--device cuda] [--sizes 207 883 2000 8600]``

For each size ``N`` a synthetic road network of ``N`` sensors (:func:`stgkd.data.synthetic.generate`, one day),
and for the teacher (Graph WaveNet) and the library's default student (width 32): ``--scaling-batches``
optimiser steps (masked MAE in raw units, AdamW) on ``--batch-size`` windows timed after ``--scaling-warmup``
untimed ones (``seconds_per_batch``; ``full_epoch_seconds_est`` scales it to a METR-LA-length epoch),
:func:`stgkd.latency.measure` at the ``--latency-batches`` (a CUDA graph where a probe in a child process captured
the model, :mod:`benchmarks.capture`), and the peak GPU memory of the steps (on the CPU the process's peak
resident memory so far, an upper bound since the sizes grow). RESULTS.md fits a power law per model and quantity.

Under a time budget (``args.deadline`` or ``--time-budget``) a point whose cost *bound* (:func:`cost_bound`) does
not fit the time left is skipped with that reason, as is one whose peak-memory bound exceeds 90 % of the GPU's;
the record then says ``"completed": false`` and ``"reached"`` names the first point left out. The bound is not a
power law fitted to the smaller sizes: on a GPU those are launch-bound, their exponent is near 0, and a
prediction from it let Graph WaveNet at 8,600 sensors overrun.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import resource
import shlex
import time
from typing import Any, Sequence

import torch

from benchmarks.budget import Deadline
from stgkd.nn.registry import DEFAULT_STUDENT

__all__ = ["run_scaling", "cost_bound", "METR_LA_TRAIN_WINDOWS", "DEFAULT_SIZES"]

#: training windows of METR-LA under DCRNN's split (34,272 steps, 12 + 12, 70%)
METR_LA_TRAIN_WINDOWS = 23974
DEFAULT_SIZES = (207, 883, 2000, 8600)
#: the highest power of the sensor count in the cost of the models scaled here: Graph WaveNet's adaptive
#: adjacency and diffusion and gcn-gru's dense graph operator are N x N products
COST_DEGREE = 2
#: a point is started only when its cost bound times this margin (timing noise) fits in the time left
BOUND_MARGIN = 1.25


def cost_bound(done: Sequence[tuple[int, float]], n: int, *, degree: int = COST_DEGREE) -> float | None:
    """An upper bound on a cost at size ``n`` from the costs ``done`` (``(size, cost)`` pairs) measured at
    sizes up to ``n``; ``None`` without any.

    The cost is taken to be ``c(N) = a + b_1 N + ... + b_d N^d`` with non-negative terms (a fixed overhead
    such as kernel launches, work per sensor, the dense ``N x N`` products), ``d = degree``. With ``m0``
    the smallest size measured (cost ``w0``) and ``m`` the largest (cost ``w``), every term but ``a``
    grows at most as ``(N/m)^d``, so for ``n >= m``::

        c(n) <= a + (w - a) (n/m)^d,

    which decreases in ``a``; and every term but ``a`` shrinks at least as ``N/m`` below ``m``, so
    ``w0 <= a + (w - a) m0/m``, i.e. ``a >= (w0 - w r) / (1 - r)`` with ``r = m0/m``. The bound takes the
    least such ``a`` (and ``a >= 0``): launch-bound small sizes (``w0`` close to ``w``) give a large ``a``
    and a bound that grows with ``(n/m)^d`` only in the part of the cost that does.
    """
    pts = sorted((int(m), float(w)) for m, w in done if m <= n)
    if not pts:
        return None
    (m0, w0), (m, w) = pts[0], pts[-1]
    if m == n:
        return w
    a = 0.0
    if m > m0:
        r = m0 / m
        a = min(w, max(0.0, (w0 - w * r) / (1.0 - r)))
    return a + (w - a) * (n / m) ** degree


def _time_training(model, prepared, *, batch_size: int, batches: int, warmup: int,
                   device: str) -> tuple[float, float | None, float]:
    """Mean seconds per optimiser step (the library's :class:`~stgkd.engine.SupervisedStep`, fp32, and AdamW), the
    peak GPU memory (MiB, CUDA only) and the seconds of the untimed warm-up steps (lazy initialisation, autotuning)."""
    from stgkd.engine import SupervisedStep

    step = SupervisedStep(model.train(), prepared.scaler, amp=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + batches):
        idx = (torch.arange(batch_size) + i * batch_size) % len(prepared.train)
        batch = prepared.train.batch(idx).to(device)
        sync()
        t0 = time.perf_counter()
        loss = step(batch.x, batch.y, batch.mask, idx)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return sum(times[warmup:]) / batches, peak, sum(times[:warmup])


def run_scaling(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (model, size) point and return the record ``benchmarks.run`` writes."""
    import json

    from benchmarks.capture import CaptureJob, model_config, not_capturable, probe_missing, setting_key, timed
    from benchmarks.record import environment, log
    from stgkd.data.synthetic import generate
    from stgkd.data.windows import prepare
    from stgkd.errors import ConfigError
    from stgkd.latency import is_busy, load_average, release_cached_memory
    from stgkd.nn import build_for

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine; run with --device cpu")
    sizes = list(args.sizes or DEFAULT_SIZES)
    teacher_hp = json.loads(args.teacher_hparams) if args.teacher_hparams else {}
    student, student_hp = DEFAULT_STUDENT, {"hidden": 32}
    lineup = [("graph-wavenet", teacher_hp, args.teacher_max_nodes), (student, student_hp, None)]
    deadline = getattr(args, "deadline", None) or Deadline.after(getattr(args, "time_budget", None))
    budget_s = deadline.remaining() if deadline.end is not None else None
    started, t_start = _dt.datetime.now(_dt.timezone.utc), time.perf_counter()
    points, skipped = [], []
    costs: dict[str, list[tuple[int, float]]] = {}  # model -> (N, seconds of its point after warm-up)
    peaks: dict[str, list[tuple[int, float]]] = {}  # model -> (N, peak GPU MiB)
    reached = None
    memory_mb = torch.cuda.get_device_properties(0).total_memory / 2**20 if device == "cuda" else None
    graph_mode = "cuda-graph" if device == "cuda" else "eager"
    verdicts: dict[str, str | None] = {}
    capture_notes: dict[str, str] = {}

    def skip(name: str, n: int) -> bool:
        """Whether ``name`` at ``n`` is not started (time or memory bound over what is left), saying why."""
        bound, mem = cost_bound(costs.get(name, []), n), cost_bound(peaks.get(name, []), n)
        if deadline.expired():
            why = "time budget spent"
        elif bound is not None and BOUND_MARGIN * bound > deadline.remaining():
            why = (f"its cost bound from N={', '.join(str(m) for m, _ in costs[name])} is {bound:.0f} s "
                   f"(a + b N + c N^{COST_DEGREE}), {deadline.remaining():.0f} s left")
        elif memory_mb is not None and mem is not None and mem > 0.9 * memory_mb:
            why = f"its peak-memory bound is {mem / 1024:.0f} GiB of the GPU's {memory_mb / 1024:.0f} GiB"
        else:
            return False
        nonlocal reached
        skipped.append(f"{name} at N={n} ({why})")
        reached = reached or f"{name} N={n}"
        log(f"scaling: {name} N={n} skipped ({why})")
        return True

    for n in sizes:
        over = [name for name, _, most in lineup if most is not None and n > most]
        skipped += [f"{name} at N={n} (above --teacher-max-nodes {args.teacher_max_nodes})" for name in over]
        todo = [(name, hp) for name, hp, _ in lineup if name not in over and not skip(name, n)]
        if not todo:
            continue
        log(f"scaling: generating a {n}-sensor network")
        data, _ = generate(num_nodes=n, num_days=1, seed=0)
        prepared = prepare(data, device=device)
        edges = int((data.adj != 0).sum())

        def config_of(name: str, hp: dict[str, Any]) -> dict[str, Any]:
            return model_config(name, n, in_steps=prepared.in_steps, out_steps=prepared.out_steps,
                                in_channels=prepared.in_channels, **hp)

        if graph_mode == "cuda-graph" and not verdicts:  # the first size: ask a child process what captures
            jobs = [CaptureJob(setting_key(config_of(name, hp), b, "fp32"), config_of(name, hp), data.adj, b, "fp32")
                    for name, hp, _ in lineup for b in args.latency_batches]
            verdicts = probe_missing(jobs, getattr(args, "capture_verdicts", None), device=device, deadline=deadline)
        for name, hp in todo:
            if skip(name, n):  # (again: the time the models before it took)
                continue
            t_point = time.perf_counter()
            torch.manual_seed(0)
            model = build_for(name, prepared, **hp).to(device)
            log(f"scaling: {name} N={n}: training steps")
            spb, peak, warm = _time_training(model, prepared, batch_size=args.batch_size,
                                             batches=args.scaling_batches, warmup=args.scaling_warmup, device=device)
            point: dict[str, Any] = {
                "model": name, "nodes": n, "edges": edges, "parameters": sum(p.numel() for p in model.parameters()),
                "seconds_per_batch": spb, "batch_size": args.batch_size,
                "full_epoch_seconds_est": spb * math.ceil(METR_LA_TRAIN_WINDOWS / args.batch_size),
                "peak_gpu_mem_mb": peak,
            }
            config = config_of(name, hp)
            refused = {b: verdicts.get(setting_key(config, b, "fp32")) for b in args.latency_batches}
            mode = "eager" if any(refused.values()) else graph_mode  # one mode per model across the sizes
            if mode != graph_mode:
                capture_notes[name] = not_capturable(next(v for v in refused.values() if v))
            for b in args.latency_batches:
                log(f"scaling: {name} N={n}: latency batch {b}")
                r, why = timed(model, batch=b, mode=mode, device=device, warmup=args.latency_warmup,
                               iters=args.latency_iters if b == 1 else max(3, args.latency_iters // 4), name=name)
                point[f"latency_b{b}_ms"] = None if r is None else r.median_ms
                point["busy"] = point.get("busy", False) or (r is not None and r.busy)
                if why:  # e.g. out of memory at the largest size: recorded, not fatal
                    point[f"latency_b{b}_error"] = why
            point["latency_mode"] = mode
            if device != "cuda":  # the process's peak resident memory so far: an upper bound on this point's
                point["peak_rss_mb_so_far"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            point["load_average"] = load_average()
            point["busy"] = point.get("busy", False) or is_busy(point["load_average"])
            point["wall_seconds"] = time.perf_counter() - t_point
            # what the next size is predicted from: the point without its warm-up (lazy initialisation), with
            # a steady step in its place
            point["steady_seconds"] = point["wall_seconds"] - warm + spb * args.scaling_warmup
            costs.setdefault(name, []).append((n, point["steady_seconds"]))
            if peak is not None:
                peaks.setdefault(name, []).append((n, peak))
            points.append(point)
            del model
            release_cached_memory()
    notes = list(args.note or [])
    if skipped:
        notes.append("Not measured: " + "; ".join(skipped) + ".")
    for name, why in capture_notes.items():
        notes.append(f"{name}: latency timed eagerly, {why}.")
    return {
        "schema": "stgkd-bench/1", "suite": "scaling", "title": "Scaling with the network size", "protocol": "scaling",
        "description": (
            "Synthetic road networks of the sizes listed (one simulated day each, DCRNN windows); the teacher "
            "is Graph WaveNet" + (f" with {json.dumps(teacher_hp)}" if teacher_hp else " at the paper's size")
            + f", the student {student} (hidden {student_hp['hidden']}). Training seconds per full epoch are "
            f"extrapolated from the timed steps to a METR-LA-length epoch ({METR_LA_TRAIN_WINDOWS:,} windows)."
        ),
        "date": started.strftime("%Y-%m-%d"), "started": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t_start, "command": "python -m benchmarks.run " + shlex.join(args.argv),
        "environment": environment(device),
        "budget": {"sizes": sizes, "batch_size": args.batch_size, "batches": args.scaling_batches,
                   "warmup_batches": args.scaling_warmup, "latency_iters": args.latency_iters,
                   "latency_batches": list(args.latency_batches), "teacher_hparams": teacher_hp,
                   "time_budget_s": budget_s,
                   "skip_rule": (f"a point starts only when {BOUND_MARGIN:g} x its cost bound (a + b N + c N^"
                                 f"{COST_DEGREE} with non-negative terms, from the smallest and largest sizes "
                                 "measured) fits in the time left" + (", and its peak-memory bound in 90% of the "
                                                                       "GPU's memory" if device == "cuda" else ""))},
        "completed": reached is None, "reached": reached, "notes": notes, "capture": verdicts, "points": points,
    }
