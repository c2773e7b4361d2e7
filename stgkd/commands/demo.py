"""``stgkd demo``: the whole path on one dataset, end to end, in the setting where distillation pays.

Trains a Graph WaveNet teacher on the whole training split (early stopping; with the seasonal-lag
channels the student reads, ``--teacher-seasonal``), then the default student twice at its family's
training defaults, plainly and by distillation (:class:`~stgkd.distill.DistillConfig`'s default loss with
teacher-labelled augmented views, ``--augment``, :data:`DEMO_AUGMENT`), both on the most recent ``--train-days`` of the training split only: a small model retrained often on fresh
data beside a teacher that saw the whole history (``--train-days all``: every label; on the synthetic
network the plain student then beats its teacher and distillation costs accuracy).
It evaluates the three on the test split beside the baselines (:mod:`stgkd.engine.baselines`), exports the
distilled student as ``stgkd export`` does by default (``student.pt2``: the file a user deploys) and times each
architecture once (:func:`_latency`: the plain and distilled students share one), on one thread, as
:meth:`stgkd.Forecaster.load` runs it (compiled for this CPU, :mod:`stgkd.export.program_cache`: the
student's file, the teacher's checkpoint) and as its eager model, end to end in raw units; and prints one table under a line
naming the setting, ending with what distillation gained (:class:`Gain`: the MAE difference at the longest
horizon and over the horizon, the share of the teacher-plain gap it closed, the student's speed-up over the
teacher at batch 1, the deployed programs against each other). It writes, atomically, ``summary.json``
(``setting``, ``distillation``: the distilled student's loss, ``rows``, the naive floor "last value" first,
``gain``, ``latency``, ``baselines``, ``worse_than_best_baseline``, ``plot``) and beside it
``forecasts.png``: the truth and the three models' forecasts at the longest horizon for two sensors over
the first day of the test split. On the embedded ``synthetic`` network it needs no files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from stgkd.missing import add_missing_argument

#: the table's columns at 5-minute intervals (:func:`_horizons` names them at any interval)
HORIZONS = ("15min", "30min", "60min", "avg")

#: Graph WaveNet with half the paper's residual and dilation channels and its skip and end channels (about
#: 200 k instead of 300 k parameters at 64 sensors)
COMPACT_TEACHER = {"residual_channels": 16, "dilation_channels": 16, "skip_channels": 256, "end_channels": 512}

#: the distilled student's augmented views (``stgkd distill --augment``): on seeds 0, 1, 2 the default loss alone
#: gained -0.05 to +0.34 MAE at 60 minutes over the plain one-day student, with these views +0.09 to +0.39
#: (benchmarks/results/demo-augment-screen-cpu-2026-12-04.md)
DEMO_AUGMENT = "noise,dropout,mixup,shift"

#: the distilled student's loss as ``summary.json`` records it ("distillation")
DEMO_RECIPE_FIELDS = ("w_sup", "w_out", "w_feat", "w_rel", "tau", "tau_relative", "augment", "augment_fraction")

#: rounds of batch-1 timing, the programs in turn; each program's figure is its lowest median (the round least
#: disturbed by other work on the machine)
LATENCY_ROUNDS = 5

#: the speed-up at batch 1 a student should have over its teacher for the demo's promise
SPEEDUP_PROMISE = 5.0

#: the file names the demo writes in its run directory
SUMMARY, PLOT, STUDENT_FILE = "summary.json", "forecasts.png", "student.pt2"


def _days(text: str) -> float | None:
    """``--train-days``: a positive number of days, or ``all``."""
    if text.strip().lower() == "all":
        return None
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days or 'all', got {text!r}") from None
    if not days > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of days, got {text!r}")
    return days


def _augment(text: str | None) -> str | None:
    """``--augment``: the kinds of views, or ``None`` for ``none``."""
    return None if text is None or text.strip().lower() in ("", "none") else text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stgkd.data.features import SEASONS
    from stgkd.nn.registry import DEFAULT_STUDENT, DEFAULT_TEACHER

    parser.add_argument("--dataset", default="synthetic",
                        help="registered name or path (default: synthetic, generated in memory)")
    parser.add_argument("--data-dir", default=None, help="root of registered datasets")
    add_missing_argument(parser, default="the dataset's convention, zero for a path")
    parser.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER, help=f"teacher model (default: {DEFAULT_TEACHER})")
    parser.add_argument("--student", default=DEFAULT_STUDENT,
                        help="student model, trained at its family's learning rate and input channels "
                             f"(default: {DEFAULT_STUDENT}, the default student of stgkd distill)")
    parser.add_argument("--hidden", "--width", dest="hidden", type=int, default=32,
                        help="student width, its 'hidden' hyperparameter (default: 32; --width is its earlier name)")
    parser.add_argument("--student-hparams", type=json.loads, default={},
                        help="other student hyperparameters as JSON, e.g. '{\"rank\": 4}' (default: the family's)")
    parser.add_argument("--train-days", type=_days, default=1.0, metavar="D",
                        help="the students train on the most recent D days of the training split, the teacher on "
                             "all of it; 'all' trains the students on every label too (default: 1)")
    parser.add_argument("--teacher-epochs", type=int, default=13,
                        help="teacher epochs at most, the cosine schedule annealed over them (default: 13: on the "
                             "synthetic network a 15-epoch run's validation error moved by 0.01 after its 12th "
                             "epoch, seed 0)")
    parser.add_argument("--teacher-patience", type=int, default=3,
                        help="teacher early-stopping patience in epochs, 0 = off (default: 3)")
    parser.add_argument("--teacher-lr", type=float, default=None,
                        help="teacher learning rate (default: its family's, 1e-3 for graph-wavenet)")
    parser.add_argument("--teacher-seasonal", nargs="+", choices=[*SEASONS, "none"], default=["day"],
                        metavar="SEASON",
                        help="seasonal-lag input channels of the teacher, 'none' for none (default: day, the "
                             "channels the student reads by default)")
    parser.add_argument("--augment", default=DEMO_AUGMENT, metavar="KINDS",
                        help="teacher-labelled augmented views the distilled student also learns from "
                             f"(stgkd distill --augment; default: {DEMO_AUGMENT}); 'none': the default loss alone")
    parser.add_argument("--student-epochs", type=int, default=60, help="student epochs at most (default: 60)")
    parser.add_argument("--student-patience", type=int, default=10,
                        help="student early-stopping patience in epochs, 0 = off (default: 10)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per step (default: 64)")
    parser.add_argument("--limit-batches", type=int, default=None,
                        help="train on at most this many batches per epoch (smoke runs)")
    parser.add_argument("--teacher-hparams", type=json.loads, default=COMPACT_TEACHER,
                        help="teacher hyperparameters as JSON (default: Graph WaveNet with half the paper's "
                             f"residual and dilation channels, {json.dumps(COMPACT_TEACHER)}, so the demo runs on "
                             "a laptop CPU; pass '{}' for the paper's configuration)")
    parser.add_argument("--sensors", type=int, nargs=2, default=None, metavar="NODE",
                        help="the two sensors (node indices) the plot shows (default: the two whose readings "
                             "vary most over the plotted stretch)")
    parser.add_argument("--plot-hours", type=float, default=24.0,
                        help="hours of the test split the plot shows, from its start (default: 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--latency-iters", type=int, default=100,
                        help=f"timed calls per batch-1 latency figure, in each of {LATENCY_ROUNDS} rounds; a tenth "
                             "of them (at least 3) at batch 64, eager (default: 100)")
    parser.add_argument("--no-compile", action="store_true",
                        help="time the student's file and the teacher uncompiled (Forecaster.load(compile=False)), as "
                             "on a machine without a C++ compiler (smoke runs); the verdict then compares those")
    parser.add_argument("--latency-threads", type=int, default=1,
                        help="CPU threads the latency is measured with (default: 1; 0 = torch's own setting)")


def _row(name: str, params: int | None, metrics: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    return {"model": name, "parameters": params, "test": metrics, "latency_ms": latency}


@dataclass(frozen=True)
class Gain:
    """What distillation gained in one run, from the table's rows: test MAE of the teacher, the plain and
    the distilled student at ``horizon`` (the longest) and over the horizon (``"avg"``), and the median
    batch-1 latency of the teacher and the distilled student.

    ``gained[h] = plain - distilled`` (positive: distillation helped); ``gap_closed[h] = gained[h] /
    (plain - teacher)``, the share of the teacher-plain gap closed (``None`` where the teacher is not
    better than the plain student: no gap to close); ``speedup = teacher_ms / student_ms``. Latency timed
    on a busy machine (``timed_busy``) is not a figure: no speed verdict is given from it.
    """

    horizon: str
    teacher: dict[str, float]
    plain: dict[str, float]
    distilled: dict[str, float]
    teacher_ms: float
    student_ms: float
    timed_busy: bool = False

    @property
    def keys(self) -> tuple[str, str]:
        return (self.horizon, "avg")

    @property
    def gained(self) -> dict[str, float]:
        return {h: self.plain[h] - self.distilled[h] for h in self.keys}

    @property
    def gap_closed(self) -> dict[str, float | None]:
        gap = {h: self.plain[h] - self.teacher[h] for h in self.keys}
        return {h: self.gained[h] / gap[h] if gap[h] > 0 else None for h in self.keys}

    @property
    def speedup(self) -> float:
        return self.teacher_ms / self.student_ms if self.student_ms > 0 else math.nan

    @property
    def verdicts(self) -> dict[str, bool | None]:
        """The demo's promise, each part on its own: the teacher beats the plain student and the distilled
        student beats the plain one (both at the longest horizon and over the horizon), and the student is
        at least :data:`SPEEDUP_PROMISE` times faster than the teacher at batch 1 (``None``: timed on a busy
        machine, not measured)."""
        return {
            "teacher_better_than_plain": all(self.teacher[h] < self.plain[h] for h in self.keys),
            "distilled_better_than_plain": all(self.distilled[h] < self.plain[h] for h in self.keys),
            f"speedup_at_least_{SPEEDUP_PROMISE:g}x": None if self.timed_busy else bool(self.speedup >= SPEEDUP_PROMISE),
        }

    def line(self) -> str:
        """The table's last line."""
        h = self.horizon

        def share(v: float | None) -> str:
            return f"{100 * v:.0f}%" if v is not None else "none (the teacher is not better than plain)"

        return (f"distillation gained {self.gained[h]:+.3f} MAE at {h} (plain {self.plain[h]:.3f} -> distilled "
                f"{self.distilled[h]:.3f}) and {self.gained['avg']:+.3f} avg ({self.plain['avg']:.3f} -> "
                f"{self.distilled['avg']:.3f}); it closed {share(self.gap_closed[h])} of the teacher-plain gap "
                f"at {h} and {share(self.gap_closed['avg'])} avg; the student is {self.speedup:.1f}x faster than "
                f"the teacher at batch 1 ({self.student_ms:.3f} vs {self.teacher_ms:.3f} ms)")

    def to_dict(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "mae": {"teacher": self.teacher, "plain": self.plain,
                                                 "distilled": self.distilled},
                "gained": self.gained, "gap_closed": self.gap_closed,
                "latency_b1_ms": {"teacher": self.teacher_ms, "student": self.student_ms},
                "speedup_b1": self.speedup, "timed_busy": self.timed_busy, "verdicts": self.verdicts,
                "line": self.line()}


def gain_of(teacher: dict[str, Any], plain: dict[str, Any], distilled: dict[str, Any], horizon: str, *,
            timed_busy: bool = False) -> Gain:
    """:class:`Gain` from the teacher's, the plain and the distilled student's table rows (:func:`_row`), their
    latency timed on a busy machine or not."""

    def mae(row: dict[str, Any]) -> dict[str, float]:
        return {h: float(row["test"][h]["mae"]) for h in (horizon, "avg")}

    return Gain(horizon=horizon, teacher=mae(teacher), plain=mae(plain), distilled=mae(distilled),
                teacher_ms=float(teacher["latency_ms"]["b1"]), student_ms=float(distilled["latency_ms"]["b1"]),
                timed_busy=timed_busy)


def setting_of(train_windows: int, train_days: float | None, interval_minutes: float) -> dict[str, Any]:
    """The data setting of a run: how many of the ``train_windows`` training windows the students train
    on (the most recent ``train_days``; ``None``: all), and a sentence saying so."""
    from stgkd.engine.trainer import TrainConfig, recent_windows

    per_day = 1440.0 / float(interval_minutes)
    recent = recent_windows(TrainConfig(train_days=train_days), interval_minutes)
    student_windows = train_windows if recent is None else min(recent, train_windows)
    all_days = train_windows / per_day
    if recent is None or student_windows == train_windows:
        return {"name": "all-labels", "student_train_days": all_days, "student_train_windows": train_windows,
                "teacher_train_windows": train_windows,
                "label": f"all labels: teacher and students train on the whole training split "
                         f"({train_windows} windows, {all_days:.1f} days)"}
    days = f"{train_days:g} day{'' if train_days == 1 else 's'}"
    return {"name": "recent-days", "student_train_days": float(train_days), "student_train_windows": student_windows,
            "teacher_train_windows": train_windows,
            "label": f"fresh data: the students train on the most recent {days} of the training split "
                     f"({student_windows} windows), the teacher on all of it ({train_windows} windows, "
                     f"{all_days:.1f} days)"}


def run(args: argparse.Namespace) -> int:
    from stgkd.commands.train import seasonal_from_args
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
    from stgkd.export import export_student
    from stgkd.files import atomic_write, to_jsonable
    from stgkd.latency import busy_cores, is_busy, is_crowded, load_average
    from stgkd.metrics import DEFAULT_STEPS, horizon_name

    out = Path(args.out)
    data = load_data(args.dataset, data_dir=args.data_dir, missing=args.missing)
    print(f"dataset: {data}")

    def config(epochs: int, patience: int, train_days: float | None = None, lr: float | None = None) -> TrainConfig:
        return TrainConfig(epochs=epochs, patience=patience, batch_size=args.batch_size, seed=args.seed, lr=lr,
                           device=args.device, limit_batches=args.limit_batches, train_days=train_days)

    teacher = train_model(data, args.teacher, out / "teacher", hparams=args.teacher_hparams,
                          config=config(args.teacher_epochs, args.teacher_patience, lr=args.teacher_lr), overwrite=True,
                          evaluate_test=True, seasonal=seasonal_from_args(args.teacher_seasonal))
    ckpt = teacher.best_path
    students = config(args.student_epochs, args.student_patience, args.train_days)
    no_kd = DistillConfig(w_out=0.0, w_feat=0.0, w_rel=0.0)
    plain = distill_student(ckpt, args.student, out / "student-plain", hparams={**args.student_hparams, "hidden": args.hidden},
                            distill=no_kd, config=students, dataset=data, overwrite=True, evaluate_test=True)
    kd_config = DistillConfig(augment=_augment(args.augment))
    kd = distill_student(ckpt, args.student, out / "student-distilled", hparams={**args.student_hparams, "hidden": args.hidden},
                         distill=kd_config, config=students, dataset=data, overwrite=True, evaluate_test=True)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    prepared = teacher.data
    setting = setting_of(len(prepared.train), args.train_days, data.interval_minutes)
    baselines = score_baselines(prepared, "test")
    last_value = next(b for b in baselines.scored if b.name == "last-value")
    rows = [_row("last value", None, last_value.metrics, {})]
    models = (("teacher " + args.teacher, teacher), (f"{args.student} w{args.hidden} plain", plain),
              (f"{args.student} w{args.hidden} distilled", kd))
    load = load_average()  # at the start of the timing: how busy the machine was
    # the cores other work keeps busy while the demo waits: the load average still carries the demo's own
    # training for a minute (two threads on two cores read as a busy machine); it decides only where
    # /proc/stat cannot be read
    others_cores = busy_cores()
    crowded = is_crowded(others_cores, args.latency_threads or torch.get_num_threads())
    busy = crowded if crowded is not None else is_busy(load)
    files = {"student": export_student(kd.best_path, out / STUDENT_FILE, device=device)}
    latency = _latency({"teacher": (teacher.best_path, None), "student": (kd.best_path, files["student"])},
                       device=device, iters=args.latency_iters, threads=args.latency_threads,
                       compile=not args.no_compile)
    for (label, result), arch in zip(models, ("teacher", "student", "student")):
        params = sum(p.numel() for p in result.model.parameters())
        rows.append(_row(label, params, result.test or {}, latency[arch]))

    longest = horizon_name(DEFAULT_STEPS[-1], data.interval_minutes)
    gain = gain_of(*rows[1:], horizon=longest, timed_busy=busy)
    others = [_row(b.label, None, b.metrics, {}) for b in baselines.scored if b.name != "last-value"]
    best = best_baselines(baselines)
    best_row = _row("best baseline", None, {h: {"mae": mae} for h, (_, mae) in best.items()}, {})
    shortfalls = [s for r in rows[1:] for s in compare_with_baselines(r["model"], r["test"], baselines)]
    print()
    print(f"distilled with stgkd distill's default loss" + (f" and teacher-labelled views ({kd_config.augment})"
                                                            if kd_config.augment else ""))
    print(f"test MAE on {data.name}; setting: {setting['label']}")
    print(_table(rows[:1] + others + [best_row] + rows[1:], _horizons(data.interval_minutes)))
    print(gain.line())
    if busy:
        seen = f"other work kept {others_cores:g} cores busy" if crowded is not None else f"load average {load[0]:g}"
        print(f"note: the machine was busy while timing ({seen} on {os.cpu_count()} cores)")
    print("\n".join(baseline_notes(baselines)))
    print_shortfalls(shortfalls)

    plot = _plot(out / PLOT, models, step=DEFAULT_STEPS[-1], horizon=longest, hours=args.plot_hours,
                 sensors=args.sensors, device=device)
    recipe = {k: v for k, v in asdict(kd_config).items() if k in DEMO_RECIPE_FIELDS}
    summary = {"dataset": data.name, "setting": setting, "distillation": recipe, "rows": rows, "gain": gain.to_dict(),
               "latency": {"rounds_b1": LATENCY_ROUNDS, "iters_b1": args.latency_iters,
                           "iters_b64": _b64_iters(args.latency_iters), "threads": args.latency_threads or None,
                           "load_average": load, "others_busy_cores": others_cores, "busy": busy,
                           "files": {k: str(v) for k, v in files.items()},
                           "speedup_b1_eager": latency["teacher"]["b1_eager"] / latency["student"]["b1_eager"]},
               "baselines": baselines.to_dict(), "worse_than_best_baseline": [s.to_dict() for s in shortfalls],
               "plot": plot}
    atomic_write(out / SUMMARY, json.dumps(to_jsonable(summary), indent=2) + "\n")
    print(f"\nwritten: {out / SUMMARY}, {out / PLOT}; the distilled student to deploy: {files['student']} "
          f"(Forecaster.load); checkpoints under {out}/")
    return 0


def _b64_iters(iters: int) -> int:
    return max(3, iters // 10)


def _latency(architectures: dict[str, tuple[Path, Path | None]], *, device: str, iters: int,
             threads: int | None, compile: bool = True) -> dict[str, dict[str, Any]]:
    """Each architecture's latency in ms, end to end in raw units (:class:`~stgkd.latency.RawUnitsAdapter`), on
    ``threads`` CPU threads (``0``/``None``: torch's own).

    ``architectures`` maps a name to ``(checkpoint, exported file or None)``. Two programs of each are timed at
    batch 1: ``"b1"``, the program :meth:`stgkd.Forecaster.load` runs (``"program"`` names how): the exported
    file as it loads it (compiled for this CPU), or where no file is given (the teacher, which is not
    deployed: exporting it would cost the demo a trace for nothing) the checkpoint compiled the same way
    (``compile=True``; uncompiled without a C++ compiler), and on CUDA a CUDA graph's replay; and
    ``"b1_eager"``, the checkpoint's eager model in the same raw-units wrapper. Each figure is the lowest median
    of :data:`LATENCY_ROUNDS` rounds, every program timed in turn in each round. ``"b64_eager"``: the eager
    model at batch 64, once. ``compile=False``: every program uncompiled (``Forecaster.load(compile=False)``).
    """
    from stgkd import Forecaster
    from stgkd.export import build_forecaster_module, read_checkpoint
    from stgkd.export.aoti import cpp_compiler
    from stgkd.latency import RawUnitsAdapter, cpu_threads, measure

    on_cuda = str(device).startswith("cuda")
    compile_checkpoint = compile and not on_cuda and cpp_compiler() is not None
    out: dict[str, dict[str, Any]] = {name: {} for name in architectures}
    with cpu_threads(None if on_cuda else threads):
        programs: dict[tuple[str, str], tuple[RawUnitsAdapter, str]] = {}
        shapes: dict[str, dict[str, int]] = {}
        for name, (ckpt, path) in architectures.items():
            eager = build_forecaster_module(read_checkpoint(ckpt), where=str(ckpt)).to(device)
            # compiled (CPU) and warmed at batch 1 here
            if path is not None:
                fc = Forecaster.load(path, device, cuda_graphs=False, compile=None if compile else False)
            else:
                fc = Forecaster.load(ckpt, device, cuda_graphs=False, compile=compile_checkpoint)
            out[name]["program"] = fc.backend
            shapes[name] = {"num_nodes": fc.num_nodes, "in_steps": fc.input_steps, "in_channels": 1}
            programs[(name, "b1")] = (RawUnitsAdapter(fc.program, fc.input_steps, fc.interval_minutes),
                                      "cuda-graph" if on_cuda else "eager")
            programs[(name, "b1_eager")] = (RawUnitsAdapter(eager, fc.input_steps, fc.interval_minutes), "eager")
        for _ in range(LATENCY_ROUNDS):
            for (name, key), (program, mode) in programs.items():
                r = measure(program, batch_size=1, **shapes[name], device=device, mode=mode, iters=iters,
                            warmup=max(3, iters // 10))
                out[name][key] = min(out[name].get(key, math.inf), r.median_ms)
                out[name]["device"] = f"{r.device_kind}: {r.device_name}"
        for name in architectures:
            program, _ = programs[(name, "b1_eager")]
            r = measure(program, batch_size=64, **shapes[name], device=device, mode="eager", iters=_b64_iters(iters),
                        warmup=2)
            out[name]["b64_eager"] = r.median_ms
    return out


def _plot(path: Path, models: Sequence[tuple[str, Any]], *, step: int, horizon: str, hours: float,
          sensors: Sequence[int] | None, device: str) -> dict[str, Any]:
    """``forecasts.png``: the truth and each model's ``step``-ahead forecasts over the first ``hours`` of the
    test split for two sensors (given, or the two whose truth varies most there); returns what it shows."""
    from stgkd.engine.evaluate import plot_models, predict_split, target_times

    first = models[0][1].data
    windows = max(1, int(round(hours * 60 / first.data.interval_minutes)))
    forecasts: dict[str, np.ndarray] = {}
    truth = mask = None
    for label, result in models:
        prepared = result.data
        fc = predict_split(result.model, prepared.test, prepared.scaler, device=device, limit=windows)
        if truth is not None and not np.array_equal(np.nan_to_num(fc.true), np.nan_to_num(truth)):
            raise RuntimeError(f"demo plot: {label}'s test windows are not the teacher's")
        truth, mask = fc.true, fc.mask
        name = f"{label}: test MAE {result.test[horizon]['mae']:.3f} at {horizon}" if result.test else label
        forecasts[name] = fc.pred
    if sensors is None:
        spread = np.nanstd(np.where(mask[:, step - 1], truth[:, step - 1], np.nan), axis=0)
        sensors = [int(i) for i in np.argsort(-np.nan_to_num(spread, nan=-1.0), kind="stable")[:2]]
    bad = [s for s in sensors if not 0 <= s < truth.shape[2]]
    if bad:
        raise ValueError(f"--sensors: node index {bad[0]} is outside 0..{truth.shape[2] - 1}")
    interval = int(first.data.interval_minutes)
    plot_models(truth, mask, forecasts, target_times(first, first.test, truth.shape[0]), list(sensors), path,
                step=step, interval_minutes=interval, sensor_ids=[str(s) for s in first.data.sensor_ids],
                title=f"{first.data.name}, test split: the first {truth.shape[0]} windows "
                      f"({truth.shape[0] * interval / 60:g} h)")
    return {"path": str(path), "sensors": list(sensors), "step": step, "minutes_ahead": step * interval,
            "windows": int(truth.shape[0])}


def _horizons(interval_minutes: int) -> list[str]:
    """The table's metric columns: the default horizon steps named at ``interval_minutes``, and ``avg``."""
    from stgkd.metrics import DEFAULT_STEPS, horizon_name

    return [horizon_name(step, interval_minutes) for step in DEFAULT_STEPS] + ["avg"]


#: the table's latency columns: ``latency_ms`` key -> heading
LATENCY_COLUMNS = {"b1": "ms b1", "b1_eager": "b1 eager", "b64_eager": "b64 eager"}


def _table(rows: list[dict[str, Any]], horizons: Sequence[str] = HORIZONS) -> str:
    head = f"{'model':<28} {'params':>9} " + " ".join(f"{'MAE ' + h:>11}" for h in horizons)
    head += "".join(f" {title:>9}" for title in LATENCY_COLUMNS.values())
    lines = [head, "-" * len(head)]
    for r in rows:
        maes = " ".join(f"{r['test'].get(h, {}).get('mae', float('nan')):>11.3f}" for h in horizons)
        lat = r["latency_ms"]
        ms = "".join(f" {lat[k]:>9.3f}" if k in lat else f" {'-':>9}" for k in LATENCY_COLUMNS)
        params = f"{r['parameters']:>9,}" if r["parameters"] is not None else f"{'-':>9}"
        lines.append(f"{r['model']:<28} {params} {maes}{ms}")
    devices = {r["latency_ms"]["device"] for r in rows if "device" in r["latency_ms"]}
    programs = sorted({r["latency_ms"]["program"] for r in rows if "program" in r["latency_ms"]})
    lines.append(f"latency: ms per forecast end to end in raw units, one timing per architecture (the plain and the "
                 f"distilled student share theirs); ms b1: the exported file as Forecaster.load runs it "
                 f"({', '.join(programs)}), b1 eager: the eager model, each the lowest median of {LATENCY_ROUNDS} "
                 f"rounds at batch 1; b64 eager: batch 64; measured on {', '.join(sorted(devices))}")
    return "\n".join(lines)
