"""Cost of a distillation epoch against a plain student epoch.

    python -m benchmarks.distill_epoch [--dataset synthetic] [--student gcn-gru --width 32]
        [--epochs 3] [--repeats 2] [--threads N] [--out benchmarks/results/distill-epoch-cpu-DATE.md]

A teacher (Graph WaveNet, default size) is trained for one batch only -- its weights do not change
the cost -- and saved. Then the same student is trained with :func:`stgkd.engine.distill_student`
twice per repeat, alternating: plainly (all distillation weights 0: the supervised step, no teacher
outputs read) and with the default distillation loss (output KD, feature matching through an
adapter, relation KD; teacher outputs from the cache). Alternating spreads any drift of a shared
machine's load over both. Reported: the median training seconds of an epoch (optimiser steps only)
and of a whole epoch (with validation), their ratio, and the one-off cost of building the teacher
cache (setup time of the distillation run minus that of the plain run).

Refuses to start on a busy machine (1-minute load average above the core count; exit code 2,
:mod:`benchmarks.idle`); with ``--allow-busy`` it times anyway and a report timed while the machine was
busy says so at its top and shows "busy, not a figure" instead of its ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.idle import EXIT_BUSY, add_allow_busy, busy_now, refuse_busy
from benchmarks.table.records import BUSY
from stgkd.latency import device_name
from stgkd.missing import add_missing_argument


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    add_missing_argument(parser, default="the dataset's convention, zero for a path")
    parser.add_argument("--student", default="gcn-gru")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paired-steps", type=int, default=40,
                        help="optimiser steps timed back to back, plain then distillation, on the same batches")
    parser.add_argument("--out", type=Path, default=None, help="markdown report to write")
    add_allow_busy(parser)
    args = parser.parse_args(argv)
    if refuse_busy("benchmarks.distill_epoch", args.allow_busy):
        return EXIT_BUSY
    busy = busy_now()

    from stgkd.data.rebuild import load_data
    from stgkd.distill import DistillConfig
    from stgkd.engine import TrainConfig, distill_student, train_model

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(args.dataset, missing=args.missing)
    work = Path(tempfile.mkdtemp(prefix="stgkd-distill-epoch-"))
    train_model(data, "graph-wavenet", work / "teacher", config=TrainConfig(epochs=1, limit_batches=1, device=args.device),
                progress=False, log=False)
    teacher = work / "teacher" / "best.pt"
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=0, device=args.device, seed=0)
    modes = {"plain": DistillConfig(w_out=0.0, w_feat=0.0, w_rel=0.0), "distill": DistillConfig()}
    train_s: dict[str, list[float]] = {m: [] for m in modes}
    epoch_s: dict[str, list[float]] = {m: [] for m in modes}
    setup_s: dict[str, list[float]] = {m: [] for m in modes}
    resolved = None
    for _ in range(args.repeats):
        for mode, dcfg in modes.items():
            t0 = time.perf_counter()
            res = distill_student(teacher, args.student, None, width=args.width, distill=dcfg, config=cfg,
                                  dataset=data, progress=False, log=False)
            total = time.perf_counter() - t0
            train_s[mode] += [h["train_seconds"] for h in res.history]
            epoch_s[mode] += [h["seconds"] for h in res.history]
            setup_s[mode].append(total - res.seconds)
            if mode == "distill":
                resolved = res.distill
            print(f"{mode}: epochs {[round(h['train_seconds'], 2) for h in res.history]} s", file=sys.stderr)
    paired = _paired_steps(teacher, res.data, resolved, args) if args.paired_steps > 0 else None
    busy = busy or busy_now()
    med = {m: statistics.median(v) for m, v in train_s.items()}
    med_epoch = {m: statistics.median(v) for m, v in epoch_s.items()}
    cache_s = statistics.median(setup_s["distill"]) - statistics.median(setup_s["plain"])
    prepared_windows = len(res.data.train)
    ratio, ratio_epoch = med["distill"] / med["plain"], med_epoch["distill"] / med_epoch["plain"]

    now = dt.datetime.now(dt.timezone.utc)
    command = "python -m benchmarks.distill_epoch " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Distillation epoch vs plain student epoch ({args.device.upper()})",
        "",
        f"- date: {now:%Y-%m-%d %H:%M} UTC",
        f"- command: `{command.strip()}`",
        f"- machine: {device_name('cpu')}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op thread(s); load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (the machine was shared)",
        f"- data: {data.name} ({data.num_nodes} sensors, {data.num_steps} steps), {prepared_windows} training windows, "
        f"batch {args.batch_size} ({-(-prepared_windows // args.batch_size)} steps per epoch)",
        f"- student: {args.student}, width {args.width}; teacher: graph-wavenet (default size)",
        f"- distillation: {resolved}",
        f"- {args.repeats} repeats x {args.epochs} epochs per mode, modes alternated",
        "",
    ]
    if busy:
        lines += [f"> **Busy machine**: the 1-minute load average exceeded the {os.cpu_count()} cores before or after "
                  "timing (`--allow-busy`); other work shared the CPU, so these times measure it too and are not "
                  "figures.", ""]
        report = "\n".join(lines + ["| mode | median train s/epoch |", "|---|---:|"]
                           + [f"| {m} | {BUSY} |" for m in modes] + [""])
        print(report)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(report)
        return 0
    lines += [
        "| mode | median train s/epoch | median epoch s (with validation) | all train s/epoch |",
        "|---|---:|---:|---|",
    ]
    for m in modes:
        lines.append(f"| {m} | {med[m]:.3f} | {med_epoch[m]:.3f} | {', '.join(f'{x:.2f}' for x in train_s[m])} |")
    lines += [
        "",
        f"**ratio distill / plain: {ratio:.2f}x** (training steps), {ratio_epoch:.2f}x (whole epoch); goal <= 1.3x.",
        f"One-off teacher cache build (teacher forward over the training windows, before epoch 1): {cache_s:.2f} s.",
        "",
    ]
    if paired is not None:
        lines += [
            f"Paired steps ({args.paired_steps} batches of the validation windows, each timed as a plain step then a "
            "distillation step (alternating which goes first), forward + backward + AdamW, teacher outputs from a cache of those windows): "
            f"median plain {1e3 * paired['plain']:.1f} ms, median distillation {1e3 * paired['distill']:.1f} ms, "
            f"**median per-pair ratio {paired['ratio']:.3f}x** (quartiles {paired['q1']:.3f}-{paired['q3']:.3f}).",
            "",
        ]
    report = "\n".join(lines)
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


def _paired_steps(teacher_path: Path, prepared, resolved: dict, args) -> dict[str, float]:
    """Time a plain and a distillation step back to back on the same batch (alternating which goes
    first), many times; the per-pair ratio cancels the slow drift of a shared machine's load."""
    import copy

    from stgkd.distill import DistillConfig
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.engine.steps import SupervisedStep, make_distill_step
    from stgkd.engine.trainer import seed_everything
    from stgkd.nn import build_for

    seed_everything(0)
    device = torch.device(args.device)
    teacher = model_from_checkpoint(load_checkpoint(teacher_path), device=device)
    student = build_for(args.student, prepared, hidden=args.width).to(device)
    other = copy.deepcopy(student)
    split = prepared.val
    distill, _ = make_distill_step(other, teacher, prepared, DistillConfig.from_dict(resolved), device=device,
                                   split=split)
    steps = {"plain": SupervisedStep(student, prepared.scaler), "distill": distill}
    optims = {k: torch.optim.AdamW([p for p in v.parameters() if p.requires_grad], lr=1e-3) for k, v in steps.items()}
    gen = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {"plain": [], "distill": []}
    for i in range(args.paired_steps + 3):
        idx = torch.randperm(len(split), generator=gen)[: args.batch_size]
        batch = split.batch(idx).to(device)
        order = ["plain", "distill"] if i % 2 == 0 else ["distill", "plain"]  # neither always goes first
        for mode in order:
            step = steps[mode]
            t0 = time.perf_counter()
            loss, _, _ = step(batch.x, batch.y, batch.mask, batch.index)
            optims[mode].zero_grad(set_to_none=True)
            loss.backward()
            optims[mode].step()
            if i >= 3:  # warm-up
                times[mode].append(time.perf_counter() - t0)
    ratios = sorted(d / p for d, p in zip(times["distill"], times["plain"]))
    q = statistics.quantiles(ratios, n=4)
    return {"plain": statistics.median(times["plain"]), "distill": statistics.median(times["distill"]),
            "ratio": statistics.median(ratios), "q1": q[0], "q3": q[2]}


if __name__ == "__main__":
    sys.exit(main())
