"""``stgkd evaluate CKPT [CKPT ...] --split test [--sensors 0 5 ...] [--out DIR]``.

Prints masked MAE/RMSE/MAPE at 15/30/60 minutes and averaged over the horizon (accumulated over
every window of the split, not per batch), writes them as ``DIR/metrics-<split>.json`` and draws
``DIR/forecast-<split>.png``: the truth and the 15/30/60-minute forecasts of the chosen sensors.

A distilled student is compared with its teacher (the checkpoint it records, or ``--teacher CKPT``):
the teacher's metrics, the student's fidelity (its metrics against the teacher's forecasts, where the
truth is observed; also in the JSON) and the teacher's forecasts as dashed lines in the plot.

Beside the model, the baselines on the same forecast targets (:mod:`stgkd.engine.baselines`: last value,
seasonal naive, historical average and median), the best of them per horizon, and one ``warning:`` line
per horizon where the model is worse than that best (also in the JSON); ``--no-baselines`` skips them.

Several checkpoints (trained on the same data) are scored as one ensemble, their forecasts combined as
``stgkd distill`` combines several teachers (``--teacher-combine``): each member's metrics, the ensemble's,
and its gain over the best member, the member with the lowest validation MAE (chosen on validation, as one
model would be); written as ``DIR/metrics-<split>-ensemble.json`` (``DIR``: the first checkpoint's folder by
default), with the combination's weights. An ensemble is worth distilling only if it beats its best member.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stgkd.files import to_jsonable
from stgkd.missing import add_missing_argument

HELP = "masked MAE/RMSE/MAPE of a checkpoint, with a forecast plot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stgkd.distill.ensemble import TEACHER_COMBINES

    parser.add_argument("checkpoint", type=Path, nargs="+", metavar="CKPT",
                        help="a checkpoint written by train or distill; several: scored as one ensemble")
    parser.add_argument("--teacher-combine", choices=TEACHER_COMBINES.names(), default="mean",
                        help="several checkpoints' forecasts: their mean, or weighted per horizon step and sensor "
                             "by 1 / validation MAE (default: mean)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="windows to score (default: test)")
    parser.add_argument("--sensors", nargs="+", default=None, metavar="SENSOR",
                        help="sensors to plot, by id or index (default: the first three)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR", help="where to write (default: the checkpoint's folder)")
    parser.add_argument("--dataset", metavar="NAME_OR_PATH", help="series to use instead of the checkpoint's")
    parser.add_argument("--data-dir", metavar="DIR", help="root of registered datasets")
    add_missing_argument(parser, default="the checkpoint's, the only one accepted")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per forward (default: 64)")
    parser.add_argument("--plot-windows", type=int, default=576,
                        help="windows shown in the plot, from the split's start (default: 576 = two days at 5 min)")
    parser.add_argument("--no-plot", action="store_true", help="metrics only")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the baselines (last value, seasonal naive, historical average and median)")
    teacher = parser.add_mutually_exclusive_group()
    teacher.add_argument("--teacher", type=Path, metavar="CKPT",
                         help="compare with this teacher (default: the one a distilled student records)")
    teacher.add_argument("--no-teacher", action="store_true", help="no teacher comparison")


def resolve_sensors(items: list[str] | None, sensor_ids: list[str]) -> list[int]:
    """Sensor arguments as indices: an exact sensor id first, else an integer index."""
    from stgkd.errors import ConfigError

    if not items:
        return list(range(min(3, len(sensor_ids))))
    index = {s: i for i, s in enumerate(sensor_ids)}
    out = []
    for item in items:
        if item in index:
            out.append(index[item])
            continue
        try:
            i = int(item)
        except ValueError:
            raise ConfigError(f"--sensors: {item!r} is neither a sensor id nor an index") from None
        if not 0 <= i < len(sensor_ids):
            raise ConfigError(f"--sensors: index {i} outside 0..{len(sensor_ids) - 1}")
        out.append(i)
    return out


def run_ensemble(args: argparse.Namespace) -> int:
    """Several checkpoints scored as one ensemble, beside each member and the baselines."""
    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.engine.checkpoint import load_checkpoint
    from stgkd.engine.distributed import resolve_device
    from stgkd.engine.evaluate import format_metrics
    from stgkd.engine.teachers import load_teachers, score_ensemble

    device = resolve_device(args.device)
    first = load_checkpoint(args.checkpoint[0])
    prepared = prepare_from_meta(first["data"], dataset=args.dataset, data_dir=args.data_dir, device=device,
                                 missing=args.missing)
    teachers = load_teachers(args.checkpoint, prepared=prepared, combine=args.teacher_combine, device=device,
                             batch_size=args.batch_size)
    score = score_ensemble(teachers.model, prepared, split=args.split, device=device, batch_size=args.batch_size,
                           val_mae=teachers.record["val_mae"])
    for name, metrics in score.members.items():
        print(f"member {name} (validation MAE {score.val_mae[name]:.4f}):")
        print(format_metrics(metrics))
    best = score.best_member()
    print(f"ensemble of {len(score.members)} ({args.teacher_combine}), {args.split} split:")
    print(format_metrics(score.ensemble))
    gains = ", ".join(f"{k} {score.gain(k):+.4f}" for k in score.ensemble if k != "per_step")
    print(f"gain over the best member on validation ({best}): {gains} (positive: the ensemble is better)")
    report = {**score.to_dict(), "combine": args.teacher_combine, "weights": teachers.record["weights"]}
    if not args.no_baselines:
        from stgkd.engine.baselines import report_baselines, score_baselines

        baselines = score_baselines(prepared, args.split)
        shortfalls = report_baselines(baselines, {"ensemble": score.ensemble})
        report["baselines"] = baselines.to_dict()
        report["worse_than_best_baseline"] = [s.to_dict() for s in shortfalls]
    out = args.out if args.out is not None else args.checkpoint[0].parent
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"metrics-{args.split}-ensemble.json"
    path.write_text(json.dumps(to_jsonable(report), indent=2) + "\n")
    print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from stgkd.engine.evaluate import evaluate_checkpoint, format_metrics, plot_forecasts
    from stgkd.errors import ConfigError

    if len(args.checkpoint) > 1:
        if args.teacher is not None or args.sensors:
            raise ConfigError("stgkd evaluate: --teacher and --sensors apply to one checkpoint, not an ensemble")
        return run_ensemble(args)
    args.checkpoint = args.checkpoint[0]
    evaluation = evaluate_checkpoint(
        args.checkpoint, split=args.split, dataset=args.dataset, data_dir=args.data_dir, device=args.device,
        batch_size=args.batch_size, keep_forecasts=0 if args.no_plot else args.plot_windows, missing=args.missing,
        teacher=False if args.no_teacher else args.teacher,
    )
    sensors = resolve_sensors(args.sensors, evaluation.sensor_ids)
    out = args.out if args.out is not None else args.checkpoint.parent
    out.mkdir(parents=True, exist_ok=True)
    print(f"{evaluation.model} on {evaluation.dataset}, {evaluation.split} split ({evaluation.windows} windows):")
    print(format_metrics(evaluation.metrics))
    if evaluation.teacher_note:
        print(f"note: {evaluation.teacher_note}", file=sys.stderr)
    if evaluation.teacher_checkpoint is not None:
        print(f"teacher {evaluation.teacher_checkpoint}:")
        print(format_metrics(evaluation.teacher_metrics))
        print("fidelity (student against the teacher's forecasts, where the truth is observed):")
        print(format_metrics(evaluation.fidelity))
    report = evaluation.to_dict()
    if not args.no_baselines:
        from stgkd.engine.baselines import report_baselines, score_baselines

        baselines = score_baselines(evaluation.prepared, args.split)
        shortfalls = report_baselines(baselines, {evaluation.model: evaluation.metrics})
        report["baselines"] = baselines.to_dict()
        report["worse_than_best_baseline"] = [s.to_dict() for s in shortfalls]
    metrics_path = out / f"metrics-{args.split}.json"
    metrics_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {metrics_path}")
    if not args.no_plot:
        plot_path = out / f"forecast-{args.split}.png"
        plot_forecasts(evaluation, sensors, plot_path)
        print(f"wrote {plot_path}")
    return 0
