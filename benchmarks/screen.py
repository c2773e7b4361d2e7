"""Screens of ``stgkd train`` and ``stgkd distill`` commands, by plan: each setting chosen on validation, the
chosen one on three seeds; a train row against the best baseline table on the same test targets, a distill
row against its plain row (the same student trained without a distillation loss), paired by seed.

Plans (``--list`` prints a plan's settings and their flags; ``benchmarks/README.md`` says what each screens):
``counts``, ``teachers`` (train plans), ``distill``, ``regime`` and ``ensemble`` (distill plans, from
``--teacher`` files). Every row is the command a user types, run from the repository root in its own process,
one at a time; a row whose run directory (named by the setting and the seed) already holds a ``metrics.json``
is read, not run again, so a changed ``--epochs``, ``--flags`` or ``--teacher`` needs another ``--out``. Per
model family the setting of lowest validation MAE is chosen, never on test; ``--chosen`` runs each family's
choice on ``--seeds``. Accuracy only: no figure here is a timing.

    python -m benchmarks.screen counts --out runs/counts --only defaults --seeds 0 1 2
    python -m benchmarks.screen counts --out runs/counts --only 'default teacher' --seeds 0 1 2 --flags='--device cuda'
    python -m benchmarks.screen teachers --chosen --seeds 1 2                  # each family's choice, 2 more seeds
    python -m benchmarks.screen teachers --seeds 0 1 2 --no-run --record teachers-cpu-DATE   # the record
    python -m benchmarks.screen teachers --dataset DIR --out /tmp/t --smoke    # tiny models, 1 epoch of 2 batches
    python -m benchmarks.screen distill --teacher benchmarks/teachers/gwn-metr-la-week.pt --seeds 0 1 2
    python -m benchmarks.screen ensemble --teacher A/best.pt B/best.pt C/best.pt --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.record import RESULTS, environment, log, write_record
from benchmarks.suites import SHARED_WEEK, TINY_TEACHER
from stgkd.latency import load_average
from stgkd.nn.registry import DEFAULT_TEACHER

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plan:
    """A screen. ``dataset`` ``None``: the teacher's; ``model`` ``None``: each setting names its own; settings:
    label -> (model or ``None``, extra flags); ``epochs`` ``None``: each setting's own. A distill plan
    (``command="distill"``) runs ``stgkd distill``: ``flags`` go to every row before its own, ``plain`` names
    the row each setting's gain is measured against (default: ``plain``, where there is one), the settings of
    ``best_member`` are distilled from the teacher of lowest validation MAE alone, and ``teachers`` is the
    fewest ``--teacher`` files it takes."""

    title: str
    dataset: str | None
    model: str | None
    settings: dict[str, tuple[str | None, list[str]]]
    epochs: int | None = None
    command: str = "train"
    flags: tuple[str, ...] = ()
    plain: dict[str, str] = field(default_factory=dict)
    best_member: tuple[str, ...] = ()
    teachers: int = 1


#: the counts screen: label -> extra ``stgkd train`` flags (``defaults``: none, what a user gets)
COUNTS: dict[str, list[str]] = {
    "defaults": [],
    "defaults at 100 epochs": ["--epochs", "100"],
    "day lag, 100 epochs (the defaults before)": ["--seasonal", "day", "--no-day-of-week", "--epochs", "100"],
    "day + week lags, 100 epochs": ["--seasonal", "day", "week", "--no-day-of-week", "--epochs", "100"],
    "day + week lags + weekday, 100 epochs": ["--seasonal", "day", "week", "--day-of-week", "--epochs", "100"],
    "mse loss, 100 epochs": ["--loss", "mse", "--epochs", "100"],
    "defaults + weekday embedding (8)": ["--hparams", "dow_embed=8"],
}
#: the teacher families screened
TEACHERS = ("graph-wavenet", "staeformer")
#: the default student's learning rates with (``day``) and without (``none``) yesterday's readings in its
#: screen (student-frontier-screen-cpu-2026-12-03.md), at 30 epochs: each teacher family gets the same
RATES = {"none": ("1e-3", "3e-3", "1e-2"), "day": ("1e-3", "3e-3", "5e-3", "1e-2", "2e-2")}
#: ``--smoke``: tiny models per family, one epoch of two batches on the CPU (a distilled student: width 4)
SMOKE_HPARAMS = {
    "stgru": ["hidden=4"],
    "graph-wavenet": [f"{k}={v}" for k, v in TINY_TEACHER.items()],
    "staeformer": ["input_embed=4", "tod_embed=4", "adaptive_embed=8", "feed_forward=8", "heads=2", "layers=1"],
}
SMOKE_FLAGS = ["--epochs", "1", "--limit-batches", "2", "--device", "cpu"]

#: ``stgkd distill`` with every distillation weight at 0: the student trained plainly on the teacher's data
PLAIN = ["--w-out", "0", "--w-feat", "0", "--w-rel", "0"]
#: output distillation alone (``--w-out`` 1 and ``--tau`` 1, their defaults)
OUTPUT = ["--w-feat", "0", "--w-rel", "0"]
INHERIT = ["--inherit-adjacency"]
ADAPTIVE, ALL_STRUCTURE = ["adaptive=true"], ["adaptive=true", "input_hops=2", "node_embed=16"]
ALL_PLAIN = "all structure (adaptive, 2 hops, embedding 16), inherited, plain"
#: the distillation ablation (``benchmarks.distill_ablation``'s SETTINGS, its DistillConfig fields and
#: student hyperparameters as flags over ``stgkd distill``'s defaults): label -> (flags, the row it is
#: measured against)
ABLATION: dict[str, tuple[list[str], str | None]] = {
    "plain": (PLAIN, None),
    "default KD (out 1, feat 0.1, rel 0.1, tau 1)": ([], "plain"),
    "output only (out 1, tau 1)": (OUTPUT, "plain"),
    "teacher as target (sup 0.2, out 1, tau inf)": (["--w-sup", "0.2", *OUTPUT, "--tau", "inf"], "plain"),
    "adaptive student + teacher adjacency (rel 1)": (
        ["--hparams", *ADAPTIVE, "--w-rel", "1", "--relation-source", "adaptive"], "adaptive student, plain"),
    "adaptive student, plain": (["--hparams", *ADAPTIVE, *PLAIN], "plain"),
    "adaptive student, inherited adjacency": (["--hparams", *ADAPTIVE, *PLAIN, *INHERIT], "adaptive student, plain"),
    "adaptive student, inherited adjacency + output (out 1, tau 1)": (
        ["--hparams", *ADAPTIVE, *OUTPUT, *INHERIT], "adaptive student, inherited adjacency"),
    "two graph layers, adaptive, plain": (["--hparams", *ADAPTIVE, "graph_layers=2", *PLAIN], "plain"),
    "two graph layers, adaptive, inherited + output (out 1, tau 1)": (
        ["--hparams", *ADAPTIVE, "graph_layers=2", *OUTPUT, *INHERIT], "two graph layers, adaptive, plain"),
    "diffused inputs (2 hops), plain": (["--hparams", "input_hops=2", *PLAIN], "plain"),
    "diffused inputs (2 hops), output (out 1, tau 1)": (
        ["--hparams", "input_hops=2", *OUTPUT], "diffused inputs (2 hops), plain"),
    "sensor embedding (16), plain": (["--hparams", "node_embed=16", *PLAIN], "plain"),
    "sensor embedding (16), output (out 1, tau 1)": (
        ["--hparams", "node_embed=16", *OUTPUT], "sensor embedding (16), plain"),
    ALL_PLAIN: (["--hparams", *ALL_STRUCTURE, *PLAIN, *INHERIT], "plain"),
    "all structure, inherited, tuned KD (trial 12: out 0.11, feat 0.26, rel 0.84, tau 1.13)": (
        ["--hparams", *ALL_STRUCTURE, "--w-out", "0.1126", "--w-feat", "0.2598", "--w-rel", "0.8398", "--tau", "1.134",
         "--relation-tau", "1.134", *INHERIT], ALL_PLAIN),
}
#: the regime study's distillation (``benchmarks.distill_regime``'s KD: forecasts and hints, no relations)
KD = ["--w-rel", "0"]
#: the recipes of ``benchmarks.distill_regime``'s records: recipe -> (student, flags, its plain recipe)
REGIME: dict[str, tuple[str, list[str], str | None]] = {
    "stgru w32 plain": ("stgru", PLAIN, None),
    "stgru w32 inherited": ("stgru", PLAIN + INHERIT, "stgru w32 plain"),
    "stgru w32 output KD": ("stgru", OUTPUT, "stgru w32 plain"),
    "stgru w32 hints": ("stgru", ["--w-out", "0", *KD, "--pairs", "graph:skip"], "stgru w32 plain"),
    "stgru w32 KD": ("stgru", [*KD, "--pairs", "graph:skip", *INHERIT], "stgru w32 plain"),
    "dcgru w32 plain": ("dcgru", PLAIN, None),
    "dcgru w32 KD": ("dcgru", [*KD, "--pairs", "hidden:skip", *INHERIT], "dcgru w32 plain"),
    "gcn-gru w32 plain": ("gcn-gru", PLAIN, None),
    "gcn-gru w32 KD": ("gcn-gru", [*KD, "--pairs", "graph:skip"], "gcn-gru w32 plain"),
}
#: the training data of the regime study: the most recent day of the training split, and all of it
DAYS = {"1 day": ["--train-days", "1"], "all days": []}
#: a student from the best teacher, from the ensemble of all (each combination), and plainly
ENSEMBLE: dict[str, list[str]] = {
    "plain": PLAIN,
    "best member": [],
    "ensemble, mean": ["--teacher-combine", "mean"],
    "ensemble, inverse-error": ["--teacher-combine", "inverse-error"],
}


def _teacher_settings() -> dict[str, tuple[str | None, list[str]]]:
    lrs = sorted({lr for rates in RATES.values() for lr in rates}, key=float)
    return {f"{m} lr {lr}" + (" + day lag" if season == "day" else ""): (m, ["--lr", lr, "--seasonal", season])
            for m in TEACHERS for lr in lrs for season in ("none", "day") if lr in RATES[season]}


def _regime_plan() -> Plan:
    settings: dict[str, tuple[str | None, list[str]]] = {}
    plain: dict[str, str] = {}
    for days, data in DAYS.items():
        for recipe, (student, flags, base) in REGIME.items():
            settings[f"{recipe}, {days}"] = (student, ["--hidden", "32", *flags, *data])
            if base:
                plain[f"{recipe}, {days}"] = f"{base}, {days}"
    return Plan("When distillation pays: students plain and distilled by training days", None, None, settings,
                epochs=30, command="distill", plain=plain)


PLANS: dict[str, Plan] = {
    "counts": Plan("The default student against the best baseline table on a count network", "synthetic-counts",
                   "stgru", {**{label: (None, flags) for label, flags in COUNTS.items()},
                             "default teacher": (DEFAULT_TEACHER, [])}),
    "teachers": Plan("The teacher families at the default student's care on the METR-LA week",
                     os.path.relpath(SHARED_WEEK, REPO), None, _teacher_settings(), epochs=30),
    "distill": Plan("Which distillation settings help: one teacher, one student", None, "gcn-gru",
                    {label: (None, flags) for label, (flags, _) in ABLATION.items()}, epochs=12,
                    command="distill", flags=("--hidden", "32", "--lr", "3e-3", "--patience", "0"),
                    plain={label: base for label, (_, base) in ABLATION.items() if base}),
    "regime": _regime_plan(),
    "ensemble": Plan("A student from the best teacher and from the teachers' ensemble", None, "stgru",
                     {label: (None, flags) for label, flags in ENSEMBLE.items()}, epochs=30,
                     command="distill", flags=("--hidden", "32"), best_member=("plain", "best member"), teachers=2),
}


def slug(label: str) -> str:
    """A setting's run directory name: ``"day lag + weekday"`` -> ``"day-lag-and-weekday"``."""
    return re.sub(r"[^a-z0-9]+", "-", label.replace("+", "and").lower()).strip("-")


def command(dataset: str, model: str, flags: list[str], seed: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "stgkd", "train", "--dataset", dataset, "--model", model, "--test",
            "--no-progress", "--seed", str(seed), "--out", str(out), "--overwrite", *flags]


def plain_of(plan: Plan, label: str) -> str | None:
    """The row ``label``'s gain is measured against (``None``: none, it is a plain row)."""
    if label in plan.plain:
        return plan.plain[label]
    return "plain" if "plain" in plan.settings and label != "plain" and plan.command == "distill" else None


def run_one(argv: list[str], out: Path) -> dict[str, Any]:
    """The run's ``metrics.json``, running ``argv`` first unless it is there already."""
    metrics = out / "metrics.json"
    if not metrics.exists():
        started = time.monotonic()
        subprocess.run(argv, check=True, cwd=REPO)
        log(f"{out.name}: {time.monotonic() - started:.0f} s")
    return json.loads(metrics.read_text())


def row(label: str, seed: int, argv: list[str], summary: dict[str, Any], plain: str | None = None) -> dict[str, Any]:
    best = summary["baselines"]["best"]
    test = {h: m["mae"] for h, m in summary["test"].items() if isinstance(m, dict) and "mae" in m}
    out = {
        "setting": label, "model": argv[argv.index("--model" if "--model" in argv else "--student") + 1],
        "seed": seed, "command": shlex.join(["stgkd", *argv[3:]]),
        "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
        "val_mae": summary["val"]["avg"]["mae"],
        "test_mae": test,
        "best_baseline": {h: best[h] for h in test if h in best},
        "margin": {h: test[h] / best[h]["mae"] - 1 for h in test if h in best},
    }
    if argv[3] == "distill":
        out.update(plain=plain, teachers=argv[argv.index("--teacher") + 1:argv.index("--student")],
                   val_fidelity=(summary.get("val_fidelity") or {}).get("avg", {}).get("mae"),
                   teacher_val_mae=summary.get("teacher_val_mae"))
    return out


def models_of(report: dict[str, Any]) -> list[str]:
    """The model families of a report's rows, in order (a record from before rows named theirs: its model)."""
    return list(dict.fromkeys(r.get("model", report["model"]) for r in report["rows"])) or [report["model"]]


def render(report: dict[str, Any]) -> str:
    from benchmarks.table.screen import chosen_lines, table_lines, teacher_lines

    plan = PLANS[report.get("plan", "counts")]
    models = ", ".join(f"`{m}`" for m in models_of(report))
    how = ("each row is the command shown, run in its own process; the screen chooses on validation (val MAE over "
           "the 12 steps); ")
    if plan.command == "distill":
        what = (f"student{'s' if len(models_of(report)) > 1 else ''} {models} distilled by `stgkd distill` at its "
                "defaults but for the flags of each command")
        how += "a setting's gain is its plain row's test MAE minus its own, paired by seed"
    else:
        what = (f"model `{report['model']}` at its family's defaults" if plan.model else
                f"models {models} at their families' defaults but for the flags of each command")
        how += "the best baseline is chosen per horizon on validation and scored on the same test targets"
    lines = [
        f"# {plan.title}", "",
        f"- date: {report['date']}; machine: {report['machine']}; load average at start "
        f"{report['load_average_start']}, at end {report['load_average_end']}: accuracy only, no timings",
        f"- data: `{report['dataset']}` ({report['data']}); {what}",
        *teacher_lines(report), f"- {how}", "",
    ]
    lines += table_lines(report)
    lines += [""] + chosen_lines(report)
    lines += [""] + [f"Note: {n}" for n in report.get("notes", [])]
    lines += ["", "Commands:", ""] + [f"- {r['setting']}, seed {r['seed']}: `{r['command']}`" for r in report["rows"]]
    return "\n".join(lines) + "\n"


def _argv(args: argparse.Namespace, plan: Plan, label: str, seed: int) -> tuple[list[str], Path]:
    """The command of ``label`` at ``seed`` and its run directory."""
    model, flags = plan.settings[label]
    model = model or plan.model
    if args.smoke:
        extra = SMOKE_FLAGS + (["--hidden", "4"] if plan.command == "distill" else ["--hparams", *SMOKE_HPARAMS[model]])
    else:
        extra = ["--epochs", str(args.epochs)] if args.epochs else []
    out = args.out / f"{slug(label)}-s{seed}"
    flags = [*plan.flags, *flags, *extra, *shlex.split(args.flags)]
    if plan.command == "train":
        return command(args.dataset, model, flags, seed, out), out
    teachers = [args.best] if label in plan.best_member else list(args.teacher)  # the best on validation alone
    return [sys.executable, "-m", "stgkd", "distill", "--teacher", *teachers, "--student", model,
            "--out", str(out), "--test", "--no-progress", "--seed", str(seed), "--overwrite",
            *(["--dataset", args.dataset] if args.dataset else []), *flags], out


def _seeds_on_disk(out: Path, label: str) -> list[int]:
    found = (re.fullmatch(rf"{re.escape(slug(label))}-s(\d+)", p.name) for p in out.glob(f"{slug(label)}-s*"))
    return sorted(int(m.group(1)) for m in found if m and (out / m.group(0) / "metrics.json").exists())


def _read(args: argparse.Namespace, plan: Plan, labels: list[str], seeds: list[int] | None) -> list[dict[str, Any]]:
    """The rows of ``labels`` on ``seeds`` (``None``: every seed on disk), running what is missing unless
    ``--no-run`` (or ``seeds`` is ``None``)."""
    rows = []
    for label in labels:
        for seed in seeds if seeds is not None else _seeds_on_disk(args.out, label):
            argv_, out = _argv(args, plan, label, seed)
            if (args.no_run or seeds is None) and not (out / "metrics.json").exists():
                continue
            rows.append(row(label, seed, argv_, run_one(argv_, out), plain_of(plan, label)))
            log(f"{label} seed {seed}: val {rows[-1]['val_mae']:.4f}, test avg {rows[-1]['test_mae']['avg']:.4f}")
    return rows


def _teacher_record(paths: list[str]) -> list[dict[str, Any]]:
    """Each ``--teacher`` file's model, validation MAE over the horizon (its checkpoint's, the best epoch's)
    and data."""
    from stgkd.engine.checkpoint import load_checkpoint

    out = []
    for path in paths:
        payload = load_checkpoint(path)
        out.append({"path": path, "model": payload["model"].get("name"), "epoch": payload.get("epoch"),
                    "val_mae": ((payload.get("metrics") or {}).get("avg") or {}).get("mae"), "data": payload["data"]})
    return out


def _data_of(teacher: dict[str, Any]) -> str:
    meta = teacher["data"]
    return (f"the teacher's: {meta.get('name')}, {len(meta.get('sensor_ids') or [])} sensors at "
            f"{meta.get('interval_minutes')} min, {meta.get('in_steps')} → {meta.get('out_steps')} steps, split "
            f"{meta.get('split')}, inputs {meta.get('input_features')}")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", choices=sorted(PLANS))
    parser.add_argument("--dataset", default=None, help="name or path (default: the plan's: synthetic-counts, "
                        "the real METR-LA week; a distill plan's teacher's)")
    parser.add_argument("--teacher", nargs="+", metavar="CKPT", help="a distill plan's teacher checkpoint(s) "
                        "(distill, regime: every one given is distilled, one as usual; ensemble: two or more)")
    parser.add_argument("--out", type=Path, default=None, help="run directories (default: runs/PLAN)")
    parser.add_argument("--only", nargs="+", metavar="SETTING", help="settings to run (default: all; --list)")
    parser.add_argument("--list", action="store_true", help="print the plan's settings and flags, and stop")
    parser.add_argument("--chosen", action="store_true", help="run each model family's setting chosen on "
                        "validation from the runs in --out (of --only, if given) on --seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="--epochs for every run (default: the plan's: "
                        "teachers, regime, ensemble 30; distill 12; counts none, each setting's own); 0: none, "
                        "stgkd's default")
    parser.add_argument("--smoke", action="store_true", help="tiny models, one epoch of two batches on the CPU")
    parser.add_argument("--flags", default="", help="more stgkd train / distill flags for every run, one string "
                        "(e.g. --flags='--epochs 1' for a smoke run)")
    parser.add_argument("--note", action="append", default=[], help="a line for the record's notes (repeatable)")
    parser.add_argument("--no-run", action="store_true",
                        help="only read the runs already in --out (a setting and seed without one is skipped)")
    parser.add_argument("--record", default=None, help="record name under benchmarks/results, starting with the "
                        "plan's name (RESULTS.md finds it by that) (default: none)")
    args = parser.parse_args(argv)
    plan = PLANS[args.plan]
    unknown = sorted(set(args.only or []) - set(plan.settings))
    if unknown:
        parser.error(f"{args.plan} has no setting {', '.join(map(repr, unknown))} (--list)")
    if args.record and not args.record.startswith(f"{args.plan}-"):
        parser.error(f"--record {args.record}: a {args.plan} record's name starts with '{args.plan}-'")
    args.teachers_info, args.best = [], None
    if plan.command != "distill":
        if args.teacher:
            parser.error(f"--teacher: the {args.plan} plan trains with stgkd train; a teacher is for the distill "
                         f"plans ({', '.join(p for p in PLANS if PLANS[p].command == 'distill')})")
    elif not args.teacher and args.list:  # placeholders: the commands' shape
        args.teacher = ["CKPT"] if plan.teachers == 1 else [f"CKPT{i}" for i in range(1, plan.teachers + 1)]
        args.best = "CKPT" if plan.teachers == 1 else "BEST_CKPT"
    else:
        if not args.teacher:
            parser.error(f"the {args.plan} plan distils from a teacher: give its checkpoint with --teacher PATH "
                         f"[PATH ...] (e.g. --teacher benchmarks/teachers/gwn-metr-la-week.pt)")
        for path in args.teacher:
            if not Path(path).is_file():
                parser.error(f"--teacher {path}: no such file")
        if len(args.teacher) < plan.teachers:
            parser.error(f"--teacher: the {args.plan} plan needs at least {plan.teachers} teacher checkpoints "
                         f"(an ensemble and its best member), got {len(args.teacher)}")
        args.teachers_info = _teacher_record(args.teacher)
        args.best = min(args.teachers_info, key=lambda t: (t["val_mae"] is None, t["val_mae"] or 0.0))["path"]
    args.dataset = args.dataset or plan.dataset
    args.model = plan.model
    args.out = args.out or Path("runs") / args.plan
    args.epochs = plan.epochs if args.epochs is None else args.epochs
    return args, plan


def main(argv: list[str] | None = None) -> int:
    args, plan = parse(argv)
    labels = args.only or list(plan.settings)
    if args.list:
        for label in labels:
            print(f"{label}: {shlex.join(['stgkd', *_argv(args, plan, label, 0)[0][3:]])}")
        return 0
    if args.chosen:
        from benchmarks.table.screen import chosen

        screened = _read(args, plan, labels, None)
        if not screened:
            raise SystemExit(f"--chosen: no run of {args.plan} in {args.out} to choose from; run the screen first")
        choice = chosen(screened, args.model or "")
        for model, c in choice.items():
            log(f"{model}: chose {c['setting']!r} on validation (val MAE {c['val_mae']:.4f}, seeds {c['seeds']})")
        labels = [c["setting"] for c in choice.values()]

    from stgkd.data.rebuild import load_data

    load_start = load_average()
    rows = _read(args, plan, labels, args.seeds)
    models = [args.model] if plan.model else list(dict.fromkeys(plan.settings[lb][0] for lb in labels))
    if args.dataset:
        dataset, data = args.dataset, repr(load_data(args.dataset))
    else:  # a distill plan on the teacher's data
        dataset, data = args.teachers_info[0]["data"].get("name"), _data_of(args.teachers_info[0])
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M+00:00"),
        "command": shlex.join(["python", "-m", "benchmarks.screen", *(argv if argv is not None else sys.argv[1:])]),
        "plan": args.plan, "kind": plan.command,
        "machine": f"{environment('cpu')['device_name']}, {os.cpu_count()} CPUs",
        "load_average_start": load_start, "load_average_end": load_average(),
        "dataset": dataset, "data": data, "model": ", ".join(models), "rows": rows,
        "notes": list(args.note),
    }
    if plan.command == "distill":
        report["teachers"] = [{k: v for k, v in t.items() if k != "data"} for t in args.teachers_info]
        report["best_member"] = args.best if plan.best_member else None
    text = render(report)
    print(text)
    if args.record:
        write_record(RESULTS / args.record, report, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
