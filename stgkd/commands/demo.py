"""``stgkd demo``: the whole path on one dataset, end to end.

Trains a Graph WaveNet teacher, trains the same student plainly and by distillation, evaluates all
three on the test split beside the baselines (:mod:`stgkd.engine.baselines`: last value, seasonal naive,
historical average and median, on the same forecast targets) and measures their latency, then prints one
table with the best baseline per horizon, a ``warning:`` line for each horizon a model loses to it, and
writes it all as JSON (``summary.json``: ``rows``, the naive floor "last value" first; ``baselines``;
``worse_than_best_baseline``).
On the embedded ``synthetic`` network it needs no files and runs on a 2-core CPU in about six minutes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from stgkd.missing import add_missing_argument

#: the table's columns at 5-minute intervals (:func:`_horizons` names them at any interval)
HORIZONS = ("15min", "30min", "60min", "avg")

#: Graph WaveNet at a quarter of the paper's width (about 46 k instead of 300 k parameters at 207 sensors)
COMPACT_TEACHER = {"residual_channels": 16, "dilation_channels": 16, "skip_channels": 64, "end_channels": 128}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="synthetic",
                        help="registered name or path (default: synthetic, generated in memory)")
    parser.add_argument("--data-dir", default=None, help="root of registered datasets")
    add_missing_argument(parser, default="the dataset's convention, zero for a path")
    parser.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    parser.add_argument("--teacher", default="graph-wavenet", help="teacher model (default: graph-wavenet)")
    parser.add_argument("--student", default="dcgru",
                        help="student model (default: dcgru, the most accurate student on the METR-LA week)")
    parser.add_argument("--width", type=int, default=32, help="student hidden size (default: 32)")
    parser.add_argument("--teacher-epochs", type=int, default=10, help="teacher epochs (default: 10)")
    parser.add_argument("--student-epochs", type=int, default=30,
                        help="student epochs at most, with early stopping (default: 30; at 10 students are "
                             "still improving, and a comparison with an under-trained baseline means nothing)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per step (default: 64)")
    parser.add_argument("--limit-batches", type=int, default=None,
                        help="train on at most this many batches per epoch (smoke runs)")
    parser.add_argument("--teacher-hparams", type=json.loads, default=COMPACT_TEACHER,
                        help="teacher hyperparameters as JSON (default: a compact Graph WaveNet, "
                             f"{json.dumps(COMPACT_TEACHER)}, so the demo runs on a laptop CPU; pass '{{}}' "
                             "for the paper's configuration)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--latency-iters", type=int, default=50, help="timed calls per latency figure (default: 50)")


def _row(name: str, params: int | None, metrics: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    return {"model": name, "parameters": params, "test": metrics, "latency_ms": latency}


def run(args: argparse.Namespace) -> int:
    from stgkd.data.rebuild import load_data
    from stgkd.distill import DistillConfig
    from stgkd.engine.baselines import (
        baseline_notes,
        best_baselines,
        compare_with_baselines,
        print_shortfalls,
        score_baselines,
    )
    from stgkd.engine.recipes import distill_student, train_model
    from stgkd.engine.trainer import TrainConfig
    from stgkd.latency import measure

    out = Path(args.out)
    data = load_data(args.dataset, data_dir=args.data_dir, missing=args.missing)
    print(f"dataset: {data}")

    def config(epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
                           limit_batches=args.limit_batches)

    teacher = train_model(data, args.teacher, out / "teacher", hparams=args.teacher_hparams,
                          config=config(args.teacher_epochs), overwrite=True, evaluate_test=True)
    ckpt = teacher.best_path
    no_kd = DistillConfig(w_out=0.0, w_feat=0.0, w_rel=0.0)
    plain = distill_student(ckpt, args.student, out / "student-plain", width=args.width, distill=no_kd,
                            config=config(args.student_epochs), overwrite=True, evaluate_test=True)
    kd = distill_student(ckpt, args.student, out / "student-distilled", width=args.width, distill=DistillConfig(),
                         config=config(args.student_epochs), overwrite=True, evaluate_test=True)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    prepared = teacher.data
    baselines = score_baselines(prepared, "test")
    last_value = next(b for b in baselines.scored if b.name == "last-value")
    rows = [_row("last value", None, last_value.metrics, {})]
    for label, result in (("teacher " + args.teacher, teacher), (f"{args.student} w{args.width} plain", plain),
                          (f"{args.student} w{args.width} distilled", kd)):
        model = result.model.eval()
        lat = {}
        for batch in (1, 64):
            r = measure(model, batch_size=batch, device=device, mode="eager", iters=args.latency_iters,
                        warmup=max(3, args.latency_iters // 10))
            lat[f"b{batch}"] = r.median_ms
            lat["device"] = f"{r.device_kind}: {r.device_name}"
        params = sum(p.numel() for p in model.parameters())
        rows.append(_row(label, params, result.test or {}, lat))

    others = [_row(b.label, None, b.metrics, {}) for b in baselines.scored if b.name != "last-value"]
    best = best_baselines(baselines)
    best_row = _row("best baseline", None, {h: {"mae": mae} for h, (_, mae) in best.items()}, {})
    shortfalls = [s for r in rows[1:] for s in compare_with_baselines(r["model"], r["test"], baselines)]
    print()
    print(_table(rows[:1] + others + [best_row] + rows[1:], _horizons(data.interval_minutes)))
    print("\n".join(baseline_notes(baselines)))
    print_shortfalls(shortfalls)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"dataset": data.name, "rows": rows, "baselines": baselines.to_dict(),
               "worse_than_best_baseline": [s.to_dict() for s in shortfalls]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwritten: {out / 'summary.json'}; checkpoints under {out}/")
    return 0


def _horizons(interval_minutes: int) -> list[str]:
    """The table's metric columns: the default horizon steps named at ``interval_minutes``, and ``avg``."""
    from stgkd.metrics import DEFAULT_STEPS, horizon_name

    return [horizon_name(step, interval_minutes) for step in DEFAULT_STEPS] + ["avg"]


def _table(rows: list[dict[str, Any]], horizons: Sequence[str] = HORIZONS) -> str:
    head = f"{'model':<28} {'params':>9} " + " ".join(f"{'MAE ' + h:>11}" for h in horizons)
    head += f" {'ms @b1':>8} {'ms @b64':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        maes = " ".join(f"{r['test'].get(h, {}).get('mae', float('nan')):>11.3f}" for h in horizons)
        lat = r["latency_ms"]
        b1 = f"{lat['b1']:>8.3f}" if "b1" in lat else f"{'-':>8}"
        b64 = f"{lat['b64']:>8.3f}" if "b64" in lat else f"{'-':>8}"
        params = f"{r['parameters']:>9,}" if r["parameters"] is not None else f"{'-':>9}"
        lines.append(f"{r['model']:<28} {params} {maes} {b1} {b64}")
    devices = {r["latency_ms"]["device"] for r in rows if "device" in r["latency_ms"]}
    lines.append(f"latency: median of eager forwards, measured on {', '.join(sorted(devices))}")
    return "\n".join(lines)
