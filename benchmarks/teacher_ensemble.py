"""Does an ensemble of teachers beat its best member, and does distilling it pay?

Scores each teacher and their ensemble (:class:`~stgkd.distill.TeacherEnsemble`, every combination
asked for: the mean, weights ∝ 1 / validation MAE per horizon step and sensor) on the test split with
the engine's evaluation (:func:`stgkd.engine.teachers.score_ensemble`: dataset-level masked MAE at
15 / 30 / 60 minutes, over the horizon and at every step). The teachers are given as checkpoints, or
trained here first (``--train``: one architecture, one seed each, the same data and budget). With
``--student`` it also trains one student three ways, same seed and budget: plainly, distilled from the
best member alone (by validation MAE) and distilled from the ensemble (``stgkd distill``'s default loss
otherwise). Writes ``teacher-ensemble-<device>-<date>[-tag].json`` and ``.md`` (atomically).

Usage::

    python -m benchmarks.teacher_ensemble --teachers A.pt B.pt C.pt
    python -m benchmarks.teacher_ensemble --dataset synthetic --train graph-wavenet --seeds 0 1 2 \\
        --teacher-epochs 4 --student dcgru --width 16 --student-epochs 12 --tag synthetic
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from stgkd.files import atomic_write

HORIZONS = ("15min", "30min", "60min", "avg")
PLAIN = {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}


def score(paths: list[Path], combines: list[str], *, split: str = "test", device: str = "cpu",
          batch_size: int = 64) -> dict[str, Any]:
    """Each member's metrics, their validation MAE, and the ensemble's metrics under every combination."""
    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.engine.checkpoint import load_checkpoint
    from stgkd.engine.teachers import load_teachers, score_ensemble

    prepared = prepare_from_meta(load_checkpoint(paths[0])["data"], device=device)
    out: dict[str, Any] = {"data": repr(prepared), "split": split, "members": {}, "ensembles": {}}
    for combine in combines:
        teachers = load_teachers(paths, prepared=prepared, combine=combine, device=device, batch_size=batch_size)
        result = score_ensemble(teachers.model, prepared, split=split, device=device, batch_size=batch_size)
        if not out["members"]:
            out["members"] = {name: {"test": result.members[name], "per_step_mae": result.per_step_mae[name],
                                     "val_mae": v, "parameters": sum(p.numel() for p in m.parameters())}
                              for (name, m), v in zip(zip(teachers.model.names, teachers.model.members),
                                                      teachers.record["val_mae"])}
        out["ensembles"][combine] = {
            "test": result.ensemble, "per_step_mae": result.per_step_mae["ensemble"],
            "best_member": {h: result.best_member(h) for h in HORIZONS},
            "gain_over_best": {h: result.gain(h) for h in HORIZONS},
            "weights": teachers.record["weights"],
        }
    return out


def render(report: dict[str, Any]) -> str:
    s = report["scores"]
    short = {name: f"T{i}" for i, name in enumerate(s["members"])}
    lines = [
        "# Teacher ensemble: does it beat its best member, and does distilling it pay?",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {report['machine']}",
        f"- data: {s['data']}",
        *([f"- teachers trained here: {report['trained']}"] if report.get("trained") else []),
        "",
        "An accuracy study: it keeps no timing (the machine may have been shared).",
        "",
        f"## Test masked MAE ({s['split']} split)",
        "",
        "| model | params | val MAE | 15 min | 30 min | 60 min | avg 12 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in s["members"].items():
        lines.append(f"| {short[name]} `{name}` | {m['parameters']:,} | {m['val_mae']:.3f} | "
                     + " | ".join(f"{m['test'][h]['mae']:.3f}" for h in HORIZONS) + " |")
    for combine, e in s["ensembles"].items():
        lines.append(f"| ensemble ({combine}) | | | " + " | ".join(f"{e['test'][h]['mae']:.3f}" for h in HORIZONS)
                     + " |")
    lines += ["", "## Ensemble − best member (negative = the ensemble is better)", "",
              "| combination | " + " | ".join(HORIZONS) + " |", "|---|" + "---:|" * len(HORIZONS)]
    for combine, e in s["ensembles"].items():
        lines.append(f"| {combine} | " + " | ".join(
            f"{-e['gain_over_best'][h]:+.3f} (vs {short[e['best_member'][h]]})" for h in HORIZONS) + " |")
    for combine, e in s["ensembles"].items():
        w = e["weights"]
        lines += ["", f"Weights ({combine}): mean per teacher "
                  + ", ".join(f"{short[n]} {v:.3f}" for n, v in zip(w["teachers"], w["mean"]))
                  + "; range per teacher " + ", ".join(f"{short[n]} {lo:.2f}–{hi:.2f}"
                                                       for n, lo, hi in zip(w["teachers"], w["min"], w["max"]))]
    students = report.get("students") or {}
    if students:
        lines += ["", f"## Student `{report['student']}` (width {report['width']}, at most {report['student_epochs']} "
                  f"epochs, seed {report['seed']})", "",
                  "| recipe | teacher(s) | 15 min | 30 min | 60 min | avg 12 | best epoch | val MAE to teacher |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for recipe, r in students.items():
            fid = r.get("val_fidelity")
            names = ", ".join(short.get(t, t) for t in r["teachers"])
            lines.append(f"| {recipe} | {names if r['distill'] != PLAIN else 'none (fidelity to ' + names + ')'} | "
                         + " | ".join(f"{r['test'][h]['mae']:.3f}" for h in HORIZONS)
                         + f" | {r['best_epoch']} | " + (f"{fid:.3f}" if fid is not None else "–") + " |")
    lines += ["", "```json", json.dumps(report, indent=1, default=str), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.teacher_ensemble", description=__doc__.split("\n\n")[0])
    parser.add_argument("--teachers", nargs="+", type=Path, help="teacher checkpoints (trained on the same data)")
    parser.add_argument("--train", metavar="MODEL", help="train the teachers here instead: this registered model")
    parser.add_argument("--dataset", default="synthetic", help="with --train: the data (default: synthetic)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="with --train: one teacher per seed")
    parser.add_argument("--teacher-epochs", type=int, default=4)
    parser.add_argument("--teacher-hparams", type=json.loads, default=None, help="with --train: hyperparameters (JSON)")
    parser.add_argument("--combine", nargs="+", default=["mean", "inverse-error"], help="combinations to score")
    parser.add_argument("--student", help="also train this student plainly, from the best member, from the ensemble")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--student-epochs", type=int, default=12)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--distill-combine", default="inverse-error", help="the combination the student distils")
    parser.add_argument("--seed", type=int, default=0, help="the students' seed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("runs/teacher-ensemble"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    args = parser.parse_args(argv)
    if bool(args.teachers) == bool(args.train):
        parser.error("give --teachers CKPT ... or --train MODEL, one of the two")
    if args.teachers and len(args.teachers) < 2:
        parser.error("--teachers: an ensemble needs at least two")
    if args.train and len(args.seeds) < 2:
        parser.error("--seeds: an ensemble needs at least two")

    import torch

    from stgkd.engine import TrainConfig, distill_student, train_model
    from stgkd.latency import device_name

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    stamp = dt.datetime.now(dt.timezone.utc)
    stem = args.out / f"teacher-ensemble-{device}-{stamp:%Y-%m-%d}{'-' + args.tag if args.tag else ''}"
    trained = None
    paths = list(args.teachers or [])
    if args.train:
        for seed in args.seeds:
            result = train_model(args.dataset, args.train, args.workdir / f"{args.train}-seed{seed}",
                                 hparams=args.teacher_hparams, overwrite=True, progress=False,
                                 config=TrainConfig(epochs=args.teacher_epochs, batch_size=args.batch_size, seed=seed,
                                                    device=device, patience=0))
            paths.append(result.best_path)
            print(f"teacher seed {seed}: best epoch {result.best_epoch}, val MAE {result.best_val_mae:.3f}", flush=True)
        trained = {"model": args.train, "dataset": args.dataset, "seeds": args.seeds, "epochs": args.teacher_epochs,
                   "hparams": args.teacher_hparams}
    scores = score(paths, args.combine, device=device, batch_size=args.batch_size)

    def write() -> dict[str, Any]:
        report = {
            "date": stamp.isoformat(timespec="minutes"),
            "command": "python -m benchmarks.teacher_ensemble " + shlex.join(argv),
            "machine": f"{device}: {device_name(device)}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                       f"load average {[round(x, 1) for x in os.getloadavg()]}",
            "trained": trained, "teachers": [str(p) for p in paths], "scores": scores,
            "student": args.student, "width": args.width, "student_epochs": args.student_epochs, "seed": args.seed,
            "students": students,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write(stem.with_name(stem.name + ".json"), json.dumps(report, indent=1, default=str))
        atomic_write(stem.with_name(stem.name + ".md"), render(report))
        return report

    students: dict[str, Any] = {}
    write()
    if args.student:
        best = min(scores["members"], key=lambda name: scores["members"][name]["val_mae"])
        recipes = {  # name: (run directory, teachers, DistillConfig fields)
            "plain": ("plain", [paths[0]], PLAIN),
            "distilled, best member": ("best-member", [Path(best)], {}),
            f"distilled, ensemble ({args.distill_combine})": ("ensemble", paths, {"teacher_combine": args.distill_combine}),
        }
        cfg = TrainConfig(epochs=args.student_epochs, batch_size=args.batch_size, seed=args.seed, device=device,
                          patience=args.patience)
        for recipe, (folder, teachers, fields) in recipes.items():
            res = distill_student(teachers if len(teachers) > 1 else teachers[0], args.student,
                                  args.workdir / f"student-{folder}", hparams={"hidden": args.width}, distill=fields, config=cfg,
                                  overwrite=True, evaluate_test=True, progress=False)
            best_logs = next((h for h in res.history if h.get("epoch") == res.best_epoch), {})
            # a plain student reads no teacher; its fidelity is measured to the first one
            students[recipe] = {"teachers": [str(Path(t).resolve()) for t in teachers],
                                "distill": fields, "test": res.test, "best_epoch": res.best_epoch,
                                "epochs_run": res.epochs_run, "val_mae": res.best_val_mae,
                                "val_fidelity": best_logs.get("val_fidelity_mae")}
            print(f"{recipe}: test " + json.dumps({h: round(res.test[h]["mae"], 3) for h in HORIZONS}), flush=True)
            write()
    report = write()
    print(render(report).split("```json")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
