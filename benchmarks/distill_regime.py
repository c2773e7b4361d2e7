"""When does distillation pay? Distilled minus plain, same student, by training data and capacity.

One trained teacher (its checkpoint), several student recipes, each a plain baseline and distilled
variants of the same architecture, trained on the most recent ``D`` days of the training slice
(``TrainConfig.train_windows``; validation and test unchanged) for every seed. The teacher always
saw the whole slice. Reports the test masked MAE at 15 / 30 / 60 minutes and over the 12 steps, the
paired difference distilled − plain (same seed, same days; negative = distillation helps) against
twice the seed spread, the share of the plain student's 60-minute gap to the teacher it closes, and
the diagnostics that explain it: best epoch, train MAE, the student's distance to the teacher's
forecasts on the validation windows, and each loss term's share of the gradient. Writes
``distill-regime-<device>-<date>[-tag].json``, ``.md`` and a ``.png`` of Δ60 against training days,
after every run (atomically); run the same command again to continue a stopped study.

Usage::

    python -m benchmarks.distill_regime --teacher benchmarks/teachers/gwn-metr-la-week.pt \\
        --recipes "dcgru w32 plain" "dcgru w32 KD" --days 1 2 all --seeds 0 1 2 --match-steps --tag regime
    python -m benchmarks.distill_regime --combine A.json B.json --out benchmarks/results/STEM   # one table
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import os
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from stgkd.files import atomic_write

PLAIN = {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}
#: distillation from the teacher's forecasts and its last hidden state (hints after spatial mixing)
KD = {"w_out": 1.0, "w_feat": 0.1, "w_rel": 0.0, "tau": 1.0, "tau_relative": True, "pairs": ["hidden:skip"]}

#: recipe name -> student, its hyperparameters, DistillConfig fields, and the plain recipe it is paired with
RECIPES: dict[str, dict[str, Any]] = {
    "gcn-gru w32 plain": {"student": "gcn-gru", "hparams": {"hidden": 32}, "distill": PLAIN},
    "gcn-gru w32 KD": {"student": "gcn-gru", "hparams": {"hidden": 32},
                       "distill": {**KD, "pairs": ["graph:skip"]}, "baseline": "gcn-gru w32 plain"},
    "dcgru w32 plain": {"student": "dcgru", "hparams": {"hidden": 32}, "distill": PLAIN},
    "dcgru w32 inherited": {"student": "dcgru", "hparams": {"hidden": 32},
                            "distill": {**PLAIN, "inherit_adjacency": True}, "baseline": "dcgru w32 plain"},
    "dcgru w32 KD": {"student": "dcgru", "hparams": {"hidden": 32},
                     "distill": {**KD, "inherit_adjacency": True}, "baseline": "dcgru w32 plain"},
    "dcgru w32 output KD": {"student": "dcgru", "hparams": {"hidden": 32},
                            "distill": {**KD, "w_feat": 0.0, "inherit_adjacency": True}, "baseline": "dcgru w32 plain"},
    "dcgru w32 staged KD": {"student": "dcgru", "hparams": {"hidden": 32},
                            "distill": {**KD, "inherit_adjacency": True, "stages": "hint:0.2,kd:0.6,fine:0.2"},
                            "baseline": "dcgru w32 plain"},
    "dcgru w32 KD tau inf": {"student": "dcgru", "hparams": {"hidden": 32},
                             "distill": {**KD, "tau": math.inf, "inherit_adjacency": True}, "baseline": "dcgru w32 plain"},
    "dcgru w32 embed plain": {"student": "dcgru", "hparams": {"hidden": 32, "node_embed": 16, "tod_embed": 8},
                              "distill": PLAIN},
    "dcgru w32 embed KD": {"student": "dcgru", "hparams": {"hidden": 32, "node_embed": 16, "tod_embed": 8},
                           "distill": {**KD, "inherit_adjacency": True}, "baseline": "dcgru w32 embed plain"},
    "dcgru w16 plain": {"student": "dcgru", "hparams": {"hidden": 16}, "distill": PLAIN},
    "dcgru w16 KD": {"student": "dcgru", "hparams": {"hidden": 16},
                     "distill": {**KD, "inherit_adjacency": True}, "baseline": "dcgru w16 plain"},
    "dcgru w64 plain": {"student": "dcgru", "hparams": {"hidden": 64, "node_embed": 16}, "distill": PLAIN},
    "dcgru w64 KD": {"student": "dcgru", "hparams": {"hidden": 64, "node_embed": 16},
                     "distill": {**KD, "inherit_adjacency": True}, "baseline": "dcgru w64 plain"},
    # the default student, each mechanism on its own (hints after its graph layer, as gcn-gru's)
    "stgru w32 plain": {"student": "stgru", "hparams": {"hidden": 32}, "distill": PLAIN},
    "stgru w32 inherited": {"student": "stgru", "hparams": {"hidden": 32},
                            "distill": {**PLAIN, "inherit_adjacency": True}, "baseline": "stgru w32 plain"},
    "stgru w32 output KD": {"student": "stgru", "hparams": {"hidden": 32},
                            "distill": {**KD, "w_feat": 0.0}, "baseline": "stgru w32 plain"},
    "stgru w32 hints": {"student": "stgru", "hparams": {"hidden": 32},
                        "distill": {**KD, "w_out": 0.0, "pairs": ["graph:skip"]}, "baseline": "stgru w32 plain"},
    "stgru w32 KD": {"student": "stgru", "hparams": {"hidden": 32},
                     "distill": {**KD, "pairs": ["graph:skip"], "inherit_adjacency": True},
                     "baseline": "stgru w32 plain"},
}

HORIZONS = ("15min", "30min", "60min", "avg")


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def _cell(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}" if sd == sd else f"{mean:.3f}"


def _key(recipe: str, days: str, seed: int) -> str:
    return f"{recipe} | {days} | {seed}"


def paired(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Distilled − plain per (recipe, days), over the seeds both have finished: the rows the verdict
    and the figure are made of."""
    runs = report["runs"]
    rows = []
    for recipe in report["recipes"]:
        base = RECIPES[recipe].get("baseline")
        if base is None:
            continue
        for days in report["days"]:
            seeds = [s for s in report["seeds"] if _key(recipe, days, s) in runs and _key(base, days, s) in runs]
            if not seeds:
                continue
            row: dict[str, Any] = {"recipe": recipe, "baseline": base, "days": days, "seeds": seeds}
            for h in ("60min", "avg"):
                diffs = [runs[_key(recipe, days, s)]["test"][h]["mae"] - runs[_key(base, days, s)]["test"][h]["mae"]
                         for s in seeds]
                plain_sd = _stats([runs[_key(base, days, s)]["test"][h]["mae"] for s in seeds])[1]
                mean, sd = _stats(diffs)
                row[h] = {"delta": mean, "delta_sd": sd, "plain_sd": plain_sd,
                          # pays: better by more than twice the seed spread of the plain student
                          "pays": bool(len(seeds) > 1 and mean < 0 and -mean > 2 * plain_sd)}
            rows.append(row)
    return rows


def render(report: dict[str, Any]) -> str:
    t = report["teacher"]
    lines = [
        "# When distillation pays: distilled − plain by training data and student",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        *([f"- combined from: {', '.join(f'`{x}`' for x in report['sources'])} (each run keeps its own budget; see each file)"]
          if report.get("sources") else []),
        f"- machine: {report['machine']}",
        f"- data: {report['data']}",
        f"- teacher: `{t['path']}`, {t['parameters']:,} parameters, trained on the whole training slice; test MAE "
        + " / ".join(f"{t['test'][h]['mae']:.3f}" for h in HORIZONS) + " (15 / 30 / 60 min / avg)",
        f"- students: {report['epochs']} epochs at most (early stopping patience {report['patience']}, lr {report['lr']}, "
        f"cosine schedule); the best-validation epoch is scored once on the test split; seeds {report['seeds']}"
        + ("; a student on fewer days gets as many optimiser steps as one on all days (epochs and patience scaled)"
           if report.get("match_steps") else ""),
        f"- training data: the most recent D days of the training slice ({report['steps_per_day']} windows a day; "
        f"'all' = {report['train_windows_all']} windows)",
        *([] if report.get("complete") else ["- **partial**: the study has not finished every run yet"]),
        "",
        "An accuracy study: it keeps no timing (the machine may have been shared; timings come from the timing",
        "benchmarks, on an idle machine).",
        "",
        "## Test masked MAE (mean ± sample std over seeds)",
        "",
        "| recipe | days | params | 15 min | 30 min | 60 min | avg 12 | best epoch | train MAE | val MAE to teacher |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for recipe in report["recipes"]:
        for days in report["days"]:
            rs = [report["runs"][_key(recipe, days, s)] for s in report["seeds"] if _key(recipe, days, s) in report["runs"]]
            if not rs:
                continue
            cells = [_cell(*_stats([r["test"][h]["mae"] for r in rs])) for h in HORIZONS]
            fid = [r["val_fidelity"] for r in rs if r.get("val_fidelity") is not None]
            lines.append(
                f"| {recipe} | {days} | {rs[0]['parameters']:,} | " + " | ".join(cells)
                + f" | {statistics.fmean(r['best_epoch'] for r in rs):.0f}"
                + f" | {statistics.fmean(r['train_mae'] for r in rs):.3f}"
                + (f" | {statistics.fmean(fid):.3f} |" if fid else " | – |"))
    rows = paired(report)
    if rows:
        lines += ["", "## Distilled − plain (paired by seed; negative = distillation helps)", "",
                  "It pays where it is better by more than twice the plain student's seed spread.", "",
                  "| recipe | vs | days | seeds | Δ60 | 2 × plain sd | Δavg | 2 × plain sd | pays at 60 / avg |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            lines.append(
                f"| {r['recipe']} | {r['baseline']} | {r['days']} | {len(r['seeds'])} | "
                f"{_cell(r['60min']['delta'], r['60min']['delta_sd'])} | {2 * r['60min']['plain_sd']:.3f} | "
                f"{_cell(r['avg']['delta'], r['avg']['delta_sd'])} | {2 * r['avg']['plain_sd']:.3f} | "
                f"{'yes' if r['60min']['pays'] else 'no'} / {'yes' if r['avg']['pays'] else 'no'} |")
    shares = [(k, r["grad_share"]) for k, r in report["runs"].items() if r.get("grad_share")]
    if shares:
        lines += ["", "## Each term's share of the gradient norm (first / last epoch)", "",
                  "| run | first | last |", "|---|---|---|"]
        for k, g in shares:
            def fmt(d: Any) -> str:
                return ", ".join(f"{n} {v:.2f}" for n, v in d.items()) if isinstance(d, dict) else str(d)
            lines.append(f"| {k.replace(' | ', ', ')} | {fmt(g.get('first', {}))} | {fmt(g.get('last', {}))} |")
    lines += ["", "Recipes (student, hyperparameters, DistillConfig fields):", ""]
    for name in report["recipes"]:
        r = RECIPES[name]
        lines.append(f"- {name}: `{r['student']}` {json.dumps(r['hparams'])}; {json.dumps(r['distill'], default=str)}")
    lines += ["", "```json", json.dumps(report, indent=1, default=str), "```", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Δ60 (distilled − plain) against training days, one line per distilled recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = paired(report)
    if not rows:
        return
    order = {d: i for i, d in enumerate(report["days"])}
    fig, ax = plt.subplots(figsize=(6, 4))
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        rs = sorted((r for r in rows if r["recipe"] == recipe), key=lambda r: order[r["days"]])
        xs = [order[r["days"]] for r in rs]
        ys = [r["60min"]["delta"] for r in rs]
        err = [0.0 if r["60min"]["delta_sd"] != r["60min"]["delta_sd"] else r["60min"]["delta_sd"] for r in rs]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=recipe)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(report["days"])), [f"{d} d" if d != "all" else "all" for d in report["days"]])
    ax.set_xlabel("training data the student sees (most recent days)")
    ax.set_ylabel("test MAE at 60 min, distilled − plain (mph)")
    ax.set_title("Below zero, distillation helps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def _grad_shares(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each loss term's share of the gradient norm at the first and last epoch (from the epoch log)."""
    records = [h["grad_share"] for h in history if isinstance(h.get("grad_share"), dict)]
    if not records:
        return None
    return {"first": records[0].get("share", {}), "last": records[-1].get("share", {})}


def combine(paths: list[Path], out: Path, command: str) -> dict[str, Any]:
    """One report from several studies of the same teacher (e.g. the whole slice and one day, run
    with different budgets): their runs side by side, each keeping its own epochs; written as
    ``out`` (.json, .md, .png)."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    teachers = {r["teacher"]["path"] for r in reports}
    if len(teachers) != 1:
        raise SystemExit(f"--combine: the studies have different teachers: {sorted(teachers)}")
    merged = dict(reports[0])
    merged.update({
        "command": command, "sources": [str(p) for p in paths], "runs": {}, "complete": all(r.get("complete") for r in reports),
        "recipes": list(dict.fromkeys(x for r in reports for x in r["recipes"])),
        "days": sorted(dict.fromkeys(x for r in reports for x in r["days"]), key=lambda d: math.inf if d == "all" else float(d)),
        "seeds": list(dict.fromkeys(x for r in reports for x in r["seeds"])),
        "match_steps": any(r.get("match_steps") for r in reports),
    })
    for r in reports:
        merged["runs"].update(r["runs"])
    atomic_write(out.with_suffix(".json"), json.dumps(merged, indent=1, default=str))
    atomic_write(out.with_suffix(".md"), render(merged))
    plot(merged, out.with_suffix(".png"))
    return merged


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--combine":  # python -m benchmarks.distill_regime --combine A.json B.json --out STEM
        *paths, flag, stem = argv[1:]
        if flag != "--out" or not paths:
            raise SystemExit("usage: python -m benchmarks.distill_regime --combine A.json B.json ... --out STEM")
        combine([Path(p) for p in paths], Path(stem), "python -m benchmarks.distill_regime " + shlex.join(argv))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distill_regime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint (trained on the whole slice)")
    parser.add_argument("--recipes", nargs="+", default=["dcgru w32 plain", "dcgru w32 KD"],
                        help=f"recipes by name; known: {list(RECIPES)}")
    parser.add_argument("--days", nargs="+", default=["all"], help="training days the student sees, or 'all'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: each student family's, e.g. 1e-2 for stgru)")
    parser.add_argument("--match-steps", action="store_true",
                        help="give every data size the optimiser steps of the full slice (epochs and patience "
                             "scaled by all windows / the windows used), so a student on one day is trained as "
                             "long as one on all days, not under-trained")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("runs/distill-regime"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    args = parser.parse_args(argv)
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; known: {list(RECIPES)}")
    for d in args.days:
        if d != "all" and not (d.replace(".", "", 1).isdigit() and float(d) > 0):
            parser.error(f"--days: {d!r} is neither a positive number nor 'all'")

    import torch

    from stgkd.distill import TeacherCache
    from stgkd.engine import TrainConfig
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.engine.evaluate import evaluate_checkpoint
    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.engine.recipes import distill_student
    from stgkd.latency import device_name

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    payload = load_checkpoint(args.teacher)
    prepared = prepare_from_meta(payload["data"], device=device)
    teacher_model = model_from_checkpoint(payload, device=device)
    interval = float(payload["data"].get("interval_minutes") or 5.0)
    steps_per_day = int(round(24 * 60 / interval))
    stamp = dt.datetime.now(dt.timezone.utc)
    stem = args.out / f"distill-regime-{device}-{stamp:%Y-%m-%d}{'-' + args.tag if args.tag else ''}"
    previous = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {}
    runs: dict[str, Any] = dict(previous.get("runs", {}))
    # a continued study reports everything it holds: earlier recipes, days and seeds stay in the tables
    recipes = list(dict.fromkeys([*previous.get("recipes", []), *args.recipes]))
    days_all = list(dict.fromkeys([*previous.get("days", []), *args.days]))
    seeds_all = list(dict.fromkeys([*previous.get("seeds", []), *args.seeds]))
    teacher_test = previous.get("teacher", {}).get("test") or evaluate_checkpoint(args.teacher, split="test").metrics
    shared: dict[str, Any] = {}

    def cache() -> Any:
        if "cache" not in shared:
            shared["cache"] = TeacherCache.build(teacher_model, prepared.train, [teacher_model.distill_feature], device,
                                                 batch_size=max(args.batch_size, 64))
        return shared["cache"]

    def write(complete: bool) -> dict[str, Any]:
        report = {
            "date": stamp.isoformat(timespec="minutes"),
            "command": "python -m benchmarks.distill_regime " + shlex.join(argv),
            "machine": f"{device}: {device_name(device)}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                       f"load average {[round(x, 1) for x in os.getloadavg()]}",
            "data": repr(prepared), "steps_per_day": steps_per_day, "train_windows_all": len(prepared.train),
            "teacher": {"path": str(args.teacher), "parameters": teacher_model.num_parameters(), "test": teacher_test,
                        "epoch": payload.get("epoch")},
            "recipes": recipes, "days": days_all, "seeds": seeds_all, "epochs": args.epochs,
            "patience": args.patience, "match_steps": args.match_steps, "lr": args.lr, "runs": runs,
            "complete": complete,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write(stem.with_name(stem.name + ".json"), json.dumps(report, indent=1, default=str))
        atomic_write(stem.with_name(stem.name + ".md"), render(report))
        plot(report, stem.with_name(stem.name + ".png"))
        return report

    # seed-major: a study cut short still holds every recipe and data size for its first seeds
    for seed in args.seeds:
        for days in args.days:
            windows = None if days == "all" else min(len(prepared.train), int(round(float(days) * steps_per_day)))
            for recipe in args.recipes:
                key = _key(recipe, days, seed)
                if key in runs:
                    continue
                spec = RECIPES[recipe]
                scale = len(prepared.train) / windows if (args.match_steps and windows) else 1.0
                epochs, patience = math.ceil(args.epochs * scale), math.ceil(args.patience * scale)
                cfg = TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, device=device,
                                  patience=patience, train_windows=windows)
                res = distill_student(args.teacher, spec["student"], args.workdir / key.replace(" | ", "-").replace(" ", "_"),
                                      hparams=spec["hparams"], distill=spec["distill"], config=cfg, overwrite=True,
                                      evaluate_test=True, progress=False, cache=cache)
                best = next((h for h in res.history if h.get("epoch") == res.best_epoch), {})
                runs[key] = {
                    "recipe": recipe, "days": days, "seed": seed, "train_windows": windows, "epochs": epochs,
                    "patience": patience, "test": res.test,
                    "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                    "train_mae": best.get("train_mae", float("nan")), "val_mae": best.get("val_mae"),
                    "val_fidelity": best.get("val_fidelity_mae"),
                    "grad_share": _grad_shares(res.history),
                    "parameters": res.model.num_parameters(),
                }
                print(f"{key}: test " + json.dumps({h: round(res.test[h]["mae"], 3) for h in HORIZONS})
                      + f", best epoch {res.best_epoch}", flush=True)
                write(complete=False)
    report = write(complete=True)
    print(render(report).split("```json")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
