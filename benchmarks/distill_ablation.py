"""Which distillation terms help? One teacher, one student, several loss settings, several seeds.

Trains a Graph WaveNet teacher once on a dataset (or takes one), runs it once over the training
windows (one teacher cache shared by every distilled run), then trains the same student (``gcn-gru``)
with each setting below for every seed, all at the same budget, and reports the test masked MAE at 15 / 30 / 60
minutes (mean ± sample std over seeds) and the share of the plain student's 60-minute gap to the
teacher that each setting closes. Writes ``distill-ablation-<device>-<date>.json`` and ``.md``.

Usage::

    python -m benchmarks.distill_ablation --dataset ../shared/data/metr-la-week --teacher-epochs 15 \\
        --student-epochs 15 --seeds 0 1 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

#: setting name -> (student hyperparameters, DistillConfig fields); "plain" is the baseline
SETTINGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({}, {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}),
    "default KD (out 1, feat 0.1, rel 0.1, tau 1)": ({}, {}),
    "output only (out 1, tau 1)": ({}, {"w_feat": 0.0, "w_rel": 0.0}),
    "teacher as target (sup 0.2, out 1, tau inf)": ({}, {"w_sup": 0.2, "w_feat": 0.0, "w_rel": 0.0, "tau": float("inf")}),
    "adaptive student + teacher adjacency (rel 1)": (
        {"adaptive": True}, {"w_out": 1.0, "w_feat": 0.1, "w_rel": 1.0, "relation_source": "adaptive"}),
    "adaptive student, plain": ({"adaptive": True}, {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}),
    "adaptive student, inherited adjacency": (
        {"adaptive": True}, {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0, "inherit_adjacency": True}),
    "adaptive student, inherited adjacency + output (out 1, tau 1)": (
        {"adaptive": True}, {"w_feat": 0.0, "w_rel": 0.0, "inherit_adjacency": True}),
    "two graph layers, adaptive, plain": ({"adaptive": True, "graph_layers": 2}, {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}),
    "two graph layers, adaptive, inherited + output (out 1, tau 1)": (
        {"adaptive": True, "graph_layers": 2}, {"w_feat": 0.0, "w_rel": 0.0, "inherit_adjacency": True}),
    "diffused inputs (2 hops), plain": ({"input_hops": 2}, {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}),
    "diffused inputs (2 hops), output (out 1, tau 1)": ({"input_hops": 2}, {"w_feat": 0.0, "w_rel": 0.0}),
    "sensor embedding (16), plain": ({"node_embed": 16}, {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}),
    "sensor embedding (16), output (out 1, tau 1)": ({"node_embed": 16}, {"w_feat": 0.0, "w_rel": 0.0}),
    "all structure (adaptive, 2 hops, embedding 16), inherited, plain": (
        {"adaptive": True, "input_hops": 2, "node_embed": 16},
        {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0, "inherit_adjacency": True}),
    "all structure, inherited, tuned KD (trial 12: out 0.11, feat 0.26, rel 0.84, tau 1.13)": (
        {"adaptive": True, "input_hops": 2, "node_embed": 16},
        {"w_out": 0.1126, "w_feat": 0.2598, "w_rel": 0.8398, "tau": 1.134, "relation_tau": 1.134,
         "inherit_adjacency": True}),
}

HORIZONS = ("15min", "30min", "60min", "avg")


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def render(report: dict[str, Any]) -> str:
    lines = [
        "# Distillation ablation",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {report['machine']}",
        f"- data: {report['data']}",
        f"- teacher: {report['teacher']['model']} {json.dumps(report['teacher']['hparams'])}, "
        f"{report['teacher']['parameters']:,} parameters, {report['teacher']['epochs']} epochs "
        f"(best epoch {report['teacher']['best_epoch']}), {report['teacher']['seconds']:.0f} s",
        f"- student: {report['student']} width {report['width']}, {report['student_epochs']} epochs each, "
        f"seeds {report['seeds']}; the best-validation epoch is scored once on the test split",
        *([] if report.get("complete", True) else
          [f"- **partial**: {len(report['settings'])} of the requested settings finished so far"]),
        "",
        "Test masked MAE (mean ± sample std over seeds); Δ60 is the paired difference to the plain student at",
        "60 minutes (same seeds; mean ± std of the per-seed differences, negative = better):",
        "",
        "| setting | params | 15 min | 30 min | 60 min | avg 12 | Δ60 vs plain | 60-min gap closed | s/run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    t = report["teacher"]["test"]
    lines.append(f"| teacher | {report['teacher']['parameters']:,} | " + " | ".join(
        f"{t[h]['mae']:.3f}" for h in HORIZONS) + " | | | |")
    plain = report["settings"].get("plain")
    plain_by_seed = {r["seed"]: r["test"]["60min"]["mae"] for r in plain["runs"]} if plain else {}

    def cell(mean: float, sd: float) -> str:
        return f"{mean:.3f} ± {sd:.3f}" if sd == sd else f"{mean:.3f}"

    for name, row in report["settings"].items():
        cells = [cell(*row["mae"][h]) for h in HORIZONS]
        diffs = [r["test"]["60min"]["mae"] - plain_by_seed[r["seed"]] for r in row["runs"] if r["seed"] in plain_by_seed]
        delta = cell(*_stats(diffs)) if diffs and name != "plain" else ""
        closed = ""
        if plain is not None and plain["mae"]["60min"][0] > t["60min"]["mae"]:
            gap = plain["mae"]["60min"][0] - t["60min"]["mae"]
            closed = f"{100 * (plain['mae']['60min'][0] - row['mae']['60min'][0]) / gap:.0f} %"
        lines.append(f"| {name} | {row['parameters']:,} | " + " | ".join(cells)
                     + f" | {delta} | {closed} | {row['seconds']:.0f} |")
    lines += ["", "Test masked RMSE and MAPE at 15 / 30 / 60 minutes (mean over seeds):", "",
              "| setting | RMSE 15 | RMSE 30 | RMSE 60 | MAPE 15 | MAPE 30 | MAPE 60 |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines.append("| teacher | " + " | ".join(f"{t[h]['rmse']:.3f}" for h in HORIZONS[:3]) + " | "
                 + " | ".join(f"{100 * t[h]['mape']:.2f} %" for h in HORIZONS[:3]) + " |")
    for name, row in report["settings"].items():
        rmse = [statistics.fmean(r["test"][h]["rmse"] for r in row["runs"]) for h in HORIZONS[:3]]
        mape = [statistics.fmean(r["test"][h]["mape"] for r in row["runs"]) for h in HORIZONS[:3]]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in rmse) + " | "
                     + " | ".join(f"{100 * v:.2f} %" for v in mape) + " |")
    lines += ["", "Settings (DistillConfig fields over its defaults; student hyperparameters):", ""]
    for name, (hp, kd) in SETTINGS.items():
        lines.append(f"- {name}: {json.dumps(kd)}; {json.dumps(hp) if hp else '{}'}")
    lines += ["", "```json", json.dumps(report, indent=1, default=str), "```", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from stgkd.missing import add_missing_argument

    parser = argparse.ArgumentParser(prog="python -m benchmarks.distill_ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="../shared/data/metr-la-week", help="name or path (default: the real week)")
    add_missing_argument(parser, default="the dataset's convention, zero for a path")
    parser.add_argument("--teacher-hparams", type=json.loads,
                        default={"residual_channels": 16, "dilation_channels": 16, "skip_channels": 64, "end_channels": 128})
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--teacher", type=Path, default=None,
                        help="reuse this teacher checkpoint instead of training one (its test metrics are re-measured)")
    parser.add_argument("--student", default="gcn-gru")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--student-epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help="subset of the settings, by name")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("runs/distill-ablation"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="", help="suffix of the result files' names (several runs on one day)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train (or take) the teacher, then every setting for every seed; the report is rewritten after
    each setting, so a stopped run keeps the rows it finished."""
    parser = build_parser()
    args = parser.parse_args(argv)

    import torch

    from stgkd.data.rebuild import load_data

    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {list(SETTINGS)}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = load_data(args.dataset, missing=args.missing)
    started = time.perf_counter()
    teacher, teacher_info = _teacher(args, data, device)
    print(f"teacher: test {json.dumps({h: round(teacher.test[h]['mae'], 3) for h in HORIZONS})}", flush=True)
    cache = _SharedCache(teacher.best_path, device, batch_size=max(args.batch_size, 64))
    stamp = dt.datetime.now(dt.timezone.utc)
    command = "python -m benchmarks.distill_ablation " + shlex.join(sys.argv[1:] if argv is None else argv)
    settings: dict[str, Any] = {}

    def write(complete: bool) -> dict[str, Any]:
        return _write_report(args, data=data, device=device, stamp=stamp, command=command, teacher=teacher,
                             teacher_info=teacher_info, settings=settings, complete=complete,
                             wall_seconds=time.perf_counter() - started, cache_seconds=cache.seconds)

    for name in args.settings:
        settings[name] = _run_setting(name, args, teacher.best_path, device, cache, index=len(settings))
        write(complete=len(settings) == len(args.settings))
    report = write(complete=True)
    print(render(report).split("```json")[0])
    return 0


def _config(args: argparse.Namespace, epochs: int, seed: int, device: str) -> Any:
    from stgkd.engine import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, device=device, patience=0)


def _teacher(args: argparse.Namespace, data: Any, device: str) -> tuple[Any, dict[str, Any]]:
    """The teacher (trained here, or ``--teacher`` with its test metrics measured again) and what the
    report says of its training."""
    if args.teacher is None:
        from stgkd.engine.recipes import train_model

        teacher = train_model(data, "graph-wavenet", args.workdir / "teacher", hparams=args.teacher_hparams,
                              config=_config(args, args.teacher_epochs, 0, device), overwrite=True, evaluate_test=True,
                              progress=False)
        return teacher, {"path": str(teacher.best_path), "best_epoch": teacher.best_epoch, "seconds": teacher.seconds,
                         "epochs": args.teacher_epochs}
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.engine.evaluate import evaluate_checkpoint

    payload = load_checkpoint(args.teacher)
    args.teacher_hparams = payload["model"]["hparams"]
    teacher = SimpleNamespace(best_path=args.teacher, test=evaluate_checkpoint(args.teacher, split="test").metrics,
                              model=None, parameters=model_from_checkpoint(payload).num_parameters())
    log = args.teacher.parent / "log.jsonl"  # the run's epoch log, when the checkpoint sits in its run folder
    epochs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return teacher, {"path": str(args.teacher), "best_epoch": payload["epoch"],
                     "seconds": sum(e.get("seconds", 0.0) for e in epochs) if epochs else float("nan"),
                     "epochs": len(epochs) or payload["epoch"]}


class _SharedCache:
    """One teacher pass over the training windows, made on the first call and shared by every
    distilled run (``seconds``: how long it took; ``None`` before)."""

    def __init__(self, teacher_path: Path, device: str, *, batch_size: int) -> None:
        self.teacher_path, self.device, self.batch_size = teacher_path, device, batch_size
        self.cache: Any = None
        self.seconds: float | None = None

    def __call__(self) -> Any:
        if self.cache is None:
            from stgkd.data.rebuild import prepare_from_meta
            from stgkd.distill import TeacherCache
            from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint

            payload = load_checkpoint(self.teacher_path)
            model = model_from_checkpoint(payload, device=self.device)
            prepared = prepare_from_meta(payload["data"], device=self.device)
            t0 = time.perf_counter()
            self.cache = TeacherCache.build(model, prepared.train, [model.distill_feature], self.device,
                                            batch_size=self.batch_size)
            self.seconds = time.perf_counter() - t0
        return self.cache


def _run_setting(name: str, args: argparse.Namespace, teacher_path: Path, device: str, cache: _SharedCache, *,
                 index: int) -> dict[str, Any]:
    """Distill the student with setting ``name`` for every seed; its runs and their summary."""
    from stgkd.engine.recipes import distill_student

    hp, kd = SETTINGS[name]
    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        res = distill_student(teacher_path, args.student, args.workdir / f"s{seed}-{index}",
                              hparams={**hp, "hidden": args.width}, distill=kd,
                              config=_config(args, args.student_epochs, seed, device),
                              overwrite=True, evaluate_test=True, progress=False, cache=cache)
        runs.append({"seed": seed, "test": res.test, "best_epoch": res.best_epoch,
                     "seconds": time.perf_counter() - t0,
                     "parameters": sum(p.numel() for p in res.model.parameters())})
        print(f"{name} seed {seed}: test {json.dumps({h: round(res.test[h]['mae'], 3) for h in HORIZONS})}",
              flush=True)
    return {
        "student_hparams": hp, "distill": kd, "runs": runs,
        "parameters": runs[0]["parameters"],
        "seconds": statistics.fmean(r["seconds"] for r in runs),
        "mae": {h: _stats([r["test"][h]["mae"] for r in runs]) for h in HORIZONS},
    }


def _write_report(args: argparse.Namespace, *, data: Any, device: str, stamp: dt.datetime, command: str, teacher: Any,
                  teacher_info: dict[str, Any], settings: dict[str, Any], complete: bool, wall_seconds: float,
                  cache_seconds: float | None) -> dict[str, Any]:
    """Write the JSON and markdown as they stand; returns the report."""
    import torch

    from stgkd.files import atomic_write
    from stgkd.latency import device_name

    report = {
        "date": stamp.isoformat(timespec="minutes"),
        "command": command,
        "machine": f"{device}: {device_name(device)}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"load average {[round(x, 1) for x in os.getloadavg()]}",
        "data": repr(data),
        "teacher": {"model": "graph-wavenet", "hparams": args.teacher_hparams,
                    "parameters": (teacher.parameters if teacher.model is None
                                   else sum(p.numel() for p in teacher.model.parameters())),
                    **teacher_info, "test": teacher.test},
        "student": args.student, "width": args.width, "student_epochs": args.student_epochs, "seeds": args.seeds,
        "settings": settings, "complete": complete, "wall_seconds": wall_seconds,
        "teacher_cache_seconds": cache_seconds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"distill-ablation-{device}-{stamp:%Y-%m-%d}{'-' + args.tag if args.tag else ''}"
    for suffix, text in ((".json", json.dumps(report, indent=1, default=str)), (".md", render(report))):
        atomic_write(stem.with_name(stem.name + suffix), text)
    return report


if __name__ == "__main__":
    sys.exit(main())
