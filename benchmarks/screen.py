"""Screens of plain ``stgkd train`` commands, by plan: each setting chosen on validation, the chosen one on
three seeds, every row against the best baseline table on the same test targets.

Plans (``--list`` prints a plan's settings and their flags):

* ``counts``: the default student (``stgru``) on the count simulator (``synthetic-counts``): a screen of
  input, budget and loss settings (``benchmarks.counts`` before: the same settings, run directories and
  record).
* ``teachers``: every teacher family (``graph-wavenet``, ``staeformer``) on the real METR-LA week, screened
  as the default student was (``results/student-frontier-screen-cpu-2026-12-03.md``): its learning rates
  1e-3, 3e-3, 5e-3, 1e-2 and 2e-2 with yesterday's readings (``--seasonal day``) and 1e-3, 3e-3 and 1e-2
  without (``--seasonal none``), at ``--epochs 30`` (its budget; patience 10, cosine schedule): 8 settings
  per family, as the student's rate and input rows were.

Every row is the command a user types (``python -m stgkd train --dataset D --model M --test ...``), run
from the repository root in its own process, one at a time; a row whose run directory already holds a
``metrics.json`` is read, not run again (the screen resumes after a kill; the directory's name is the
setting's and the seed's, so a changed ``--epochs`` or ``--flags`` needs another ``--out``). The table gives,
per row and seed, the validation MAE over the 12 steps, the test MAE per horizon (the keys of
``metrics.json``) and over the 12 steps, the best baseline on the same test targets (chosen per horizon on
validation, :func:`stgkd.engine.baselines.score_baselines`) and the margin over it. Per model family the
setting with the lowest validation MAE is chosen (:func:`benchmarks.table.screen.chosen`), never on test;
``--chosen`` runs each family's choice on ``--seeds``. Accuracy only: no figure here is a timing.

    python -m benchmarks.screen counts --out runs/counts                       # the screen, seed 0
    python -m benchmarks.screen counts --out runs/counts --only defaults --seeds 0 1 2
    python -m benchmarks.screen counts --out runs/counts --seeds 0 1 2 --no-run --record counts-cpu-DATE
    python -m benchmarks.screen teachers                                       # runs/teachers, seed 0
    python -m benchmarks.screen teachers --chosen --seeds 1 2                  # each family's choice, 2 more seeds
    python -m benchmarks.screen teachers --seeds 0 1 2 --no-run --record teachers-cpu-DATE   # the record
    python -m benchmarks.screen teachers --dataset DIR --out /tmp/t --smoke    # tiny models, 1 epoch of 2 batches
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.record import environment, log, write_record
from benchmarks.suites import SHARED_WEEK, TINY_TEACHER

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@dataclass(frozen=True)
class Plan:
    """A screen: its record's title, default dataset, run folder and model (``None``: each setting names
    its own), the settings (label -> (model or ``None``, extra ``stgkd train`` flags)) and the ``--epochs``
    given to every run (``None``: none, each setting's own)."""

    title: str
    dataset: str
    out: Path
    model: str | None
    settings: dict[str, tuple[str | None, list[str]]]
    epochs: int | None = None


#: the counts screen: label -> extra ``stgkd train`` flags (``defaults``: none, what a user gets)
COUNTS: dict[str, list[str]] = {
    "defaults": [],
    "defaults at 100 epochs": ["--epochs", "100"],
    "day lag, 100 epochs (the defaults before)": ["--seasonal", "day", "--no-day-of-week", "--epochs", "100"],
    "day + week lags, 100 epochs": ["--seasonal", "day", "week", "--no-day-of-week", "--epochs", "100"],
    "day + week lags + weekday, 100 epochs": ["--seasonal", "day", "week", "--day-of-week", "--epochs", "100"],
    "mse loss, 100 epochs": ["--loss", "mse", "--epochs", "100"],
}
#: the teacher families screened
TEACHERS = ("graph-wavenet", "staeformer")
#: the default student's learning rates with (``day``) and without (``none``) yesterday's readings in its
#: screen (student-frontier-screen-cpu-2026-12-03.md), at 30 epochs: each teacher family gets the same
RATES = {"none": ("1e-3", "3e-3", "1e-2"), "day": ("1e-3", "3e-3", "5e-3", "1e-2", "2e-2")}
#: ``--smoke``: tiny models per family, one epoch of two batches on the CPU
SMOKE_HPARAMS = {
    "stgru": ["hidden=4"],
    "graph-wavenet": [f"{k}={v}" for k, v in TINY_TEACHER.items()],
    "staeformer": ["input_embed=4", "tod_embed=4", "adaptive_embed=8", "feed_forward=8", "heads=2", "layers=1"],
}
SMOKE_FLAGS = ["--epochs", "1", "--limit-batches", "2", "--device", "cpu"]


def _teacher_settings() -> dict[str, tuple[str | None, list[str]]]:
    lrs = sorted({lr for rates in RATES.values() for lr in rates}, key=float)
    return {f"{m} lr {lr}" + (" + day lag" if season == "day" else ""): (m, ["--lr", lr, "--seasonal", season])
            for m in TEACHERS for lr in lrs for season in ("none", "day") if lr in RATES[season]}


PLANS: dict[str, Plan] = {
    "counts": Plan("The default student against the best baseline table on a count network", "synthetic-counts",
                   Path("runs/counts"), "stgru", {label: (None, flags) for label, flags in COUNTS.items()}),
    "teachers": Plan("The teacher families at the default student's care on the METR-LA week",
                     os.path.relpath(SHARED_WEEK, REPO), Path("runs/teachers"), None, _teacher_settings(), epochs=30),
}


def slug(label: str) -> str:
    """A setting's run directory name: ``"day lag + weekday"`` -> ``"day-lag-and-weekday"``."""
    return re.sub(r"[^a-z0-9]+", "-", label.replace("+", "and").lower()).strip("-")


def command(dataset: str, model: str, flags: list[str], seed: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "stgkd", "train", "--dataset", dataset, "--model", model, "--test",
            "--no-progress", "--seed", str(seed), "--out", str(out), "--overwrite", *flags]


def run_one(argv: list[str], out: Path) -> dict[str, Any]:
    """The run's ``metrics.json``, running ``argv`` first unless it is there already."""
    metrics = out / "metrics.json"
    if not metrics.exists():
        started = time.monotonic()
        subprocess.run(argv, check=True, cwd=REPO)
        log(f"{out.name}: {time.monotonic() - started:.0f} s")
    return json.loads(metrics.read_text())


def row(label: str, seed: int, argv: list[str], summary: dict[str, Any]) -> dict[str, Any]:
    best = summary["baselines"]["best"]
    test = {h: m["mae"] for h, m in summary["test"].items() if isinstance(m, dict) and "mae" in m}
    return {
        "setting": label, "model": argv[argv.index("--model") + 1], "seed": seed,
        "command": shlex.join(["stgkd", *argv[3:]]),
        "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
        "val_mae": summary["val"]["avg"]["mae"],
        "test_mae": test,
        "best_baseline": {h: best[h] for h in test if h in best},
        "margin": {h: test[h] / best[h]["mae"] - 1 for h in test if h in best},
    }


def models_of(report: dict[str, Any]) -> list[str]:
    """The model families of a report's rows, in order (a record from before rows named theirs: its model)."""
    return list(dict.fromkeys(r.get("model", report["model"]) for r in report["rows"])) or [report["model"]]


def render(report: dict[str, Any]) -> str:
    from benchmarks.table.screen import chosen_lines, screen_table

    plan = PLANS[report.get("plan", "counts")]
    what = (f"model `{report['model']}` at its family's defaults" if plan.model else
            "models " + ", ".join(f"`{m}`" for m in models_of(report)) + " at their families' defaults but for the "
            "flags of each command")
    lines = [
        f"# {plan.title}", "",
        f"- date: {report['date']}; machine: {report['machine']}; load average at start "
        f"{report['load_average_start']}, at end {report['load_average_end']}: accuracy only, no timings",
        f"- data: `{report['dataset']}` ({report['data']}); {what}",
        "- each row is the command shown, run in its own process; the screen chooses on validation (val MAE over "
        "the 12 steps); the best baseline is chosen per horizon on validation and scored on the same test targets", "",
    ]
    lines += screen_table(report)
    lines += [""] + chosen_lines(report)
    lines += [""] + [f"Note: {n}" for n in report.get("notes", [])]
    lines += ["", "Commands:", ""] + [f"- {r['setting']}, seed {r['seed']}: `{r['command']}`" for r in report["rows"]]
    return "\n".join(lines) + "\n"


def _argv(args: argparse.Namespace, plan: Plan, label: str, seed: int) -> tuple[list[str], Path]:
    """The command of ``label`` at ``seed`` and its run directory."""
    model, flags = plan.settings[label]
    model = model or args.model or plan.model
    if args.smoke:
        extra = SMOKE_FLAGS + ["--hparams", *SMOKE_HPARAMS[model]]
    else:
        extra = ["--epochs", str(args.epochs)] if args.epochs else []
    out = args.out / f"{slug(label)}-s{seed}"
    return command(args.dataset, model, flags + extra + shlex.split(args.flags), seed, out), out


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
            rows.append(row(label, seed, argv_, run_one(argv_, out)))
            log(f"{label} seed {seed}: val {rows[-1]['val_mae']:.4f}, test avg {rows[-1]['test_mae']['avg']:.4f}")
    return rows


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", choices=sorted(PLANS))
    parser.add_argument("--dataset", default=None, help="name or path (default: the plan's: synthetic-counts, "
                        "the real METR-LA week)")
    parser.add_argument("--model", default=None, help="the model of a plan whose settings name none (counts: "
                        "default stgru)")
    parser.add_argument("--out", type=Path, default=None, help="run directories (default: runs/PLAN)")
    parser.add_argument("--only", nargs="+", metavar="SETTING", help="settings to run (default: all; --list)")
    parser.add_argument("--list", action="store_true", help="print the plan's settings and flags, and stop")
    parser.add_argument("--chosen", action="store_true", help="run each model family's setting chosen on "
                        "validation from the runs in --out (of --only, if given) on --seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="stgkd train --epochs for every run (default: "
                        "the plan's: teachers 30; counts none, each setting's own)")
    parser.add_argument("--smoke", action="store_true", help="tiny models, one epoch of two batches on the CPU")
    parser.add_argument("--flags", default="", help="more stgkd train flags for every run, one string "
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
    if args.model and not plan.model:
        parser.error(f"{args.plan}: each setting names its model (--only chooses)")
    if args.record and not args.record.startswith(f"{args.plan}-"):
        parser.error(f"--record {args.record}: a {args.plan} record's name starts with '{args.plan}-'")
    args.dataset = args.dataset or plan.dataset
    args.model = args.model or plan.model
    args.out = args.out or plan.out
    args.epochs = args.epochs or plan.epochs
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

    load_start = [round(x, 2) for x in os.getloadavg()]
    rows = _read(args, plan, labels, args.seeds)
    models = [args.model] if plan.model else list(dict.fromkeys(plan.settings[lb][0] for lb in labels))
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M+00:00"),
        "command": shlex.join(["python", "-m", "benchmarks.screen", *(argv if argv is not None else sys.argv[1:])]),
        "plan": args.plan,
        "machine": f"{environment('cpu')['device_name']}, {os.cpu_count()} CPUs",
        "load_average_start": load_start, "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "dataset": args.dataset, "data": repr(load_data(args.dataset)), "model": ", ".join(models), "rows": rows,
        "notes": list(args.note),
    }
    text = render(report)
    print(text)
    if args.record:
        write_record(RESULTS / args.record, report, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
