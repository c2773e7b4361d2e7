"""The default student on a count network against the best baseline table: a screen of input and loss
settings, each a plain ``stgkd train`` command, chosen on validation, then the chosen one on three seeds.

Every row is the command a user types (``python -m stgkd train --dataset synthetic-counts --model stgru
--test ...``), run in its own process, one at a time; a row whose run directory already holds a
``metrics.json`` is read, not run again (the screen resumes after a kill). The table gives, per row and
seed, the validation MAE over the 12 steps (what the screen chooses on), the test MAE at 3 / 6 / 12 h and
over the 12 steps, the best baseline on the same test targets (chosen per horizon on validation,
:func:`stgkd.engine.baselines.score_baselines`) and the student's margin over it. Accuracy only: no
figure here is a timing.

    python -m benchmarks.counts --out runs/counts                       # the screen, seed 0
    python -m benchmarks.counts --out runs/counts --only defaults --seeds 0 1 2
    python -m benchmarks.counts --out runs/counts --seeds 0 1 2 --no-run --record counts-cpu-DATE   # the record
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
from pathlib import Path
from typing import Any

from benchmarks.record import environment, log, write_record

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

#: the screen: label -> extra ``stgkd train`` flags (``defaults``: none, what a user gets)
SETTINGS: dict[str, list[str]] = {
    "defaults": [],
    "defaults at 100 epochs": ["--epochs", "100"],
    "day lag, 100 epochs (the defaults before)": ["--seasonal", "day", "--no-day-of-week", "--epochs", "100"],
    "day + week lags, 100 epochs": ["--seasonal", "day", "week", "--no-day-of-week", "--epochs", "100"],
    "day + week lags + weekday, 100 epochs": ["--seasonal", "day", "week", "--day-of-week", "--epochs", "100"],
    "mse loss, 100 epochs": ["--loss", "mse", "--epochs", "100"],
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
        "setting": label, "seed": seed,
        "command": shlex.join(["stgkd", *argv[3:]]),
        "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
        "val_mae": summary["val"]["avg"]["mae"],
        "test_mae": test,
        "best_baseline": {h: best[h] for h in test if h in best},
        "margin": {h: test[h] / best[h]["mae"] - 1 for h in test if h in best},
    }


def render(report: dict[str, Any]) -> str:
    from benchmarks.table.counts import screen_table

    lines = [
        "# The default student against the best baseline table on a count network", "",
        f"- date: {report['date']}; machine: {report['machine']}; load average at start "
        f"{report['load_average_start']}, at end {report['load_average_end']}: accuracy only, no timings",
        f"- data: `{report['dataset']}` ({report['data']}); model `{report['model']}` at its family's defaults",
        "- each row is the command shown, run in its own process; the screen chooses on validation (val MAE over "
        "the 12 steps); the best baseline is chosen per horizon on validation and scored on the same test targets", "",
    ]
    lines += screen_table(report)
    lines += [""] + [f"Note: {n}" for n in report.get("notes", [])]
    lines += ["", "Commands:", ""] + [f"- {r['setting']}, seed {r['seed']}: `{r['command']}`" for r in report["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic-counts")
    parser.add_argument("--model", default="stgru")
    parser.add_argument("--out", type=Path, default=Path("runs/counts"), help="run directories (default: runs/counts)")
    parser.add_argument("--only", nargs="+", choices=sorted(SETTINGS), metavar="SETTING",
                        help=f"settings to run (default: all): {', '.join(SETTINGS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--flags", default="", help="more stgkd train flags for every run, one string "
                        "(e.g. --flags='--epochs 1' for a smoke run)")
    parser.add_argument("--note", action="append", default=[], help="a line for the record's notes (repeatable)")
    parser.add_argument("--no-run", action="store_true",
                        help="only read the runs already in --out (a setting and seed without one is skipped)")
    parser.add_argument("--record", default=None, help="record name under benchmarks/results (default: none)")
    args = parser.parse_args(argv)

    from stgkd.data.rebuild import load_data

    load_start = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for label in args.only or list(SETTINGS):
        for seed in args.seeds:
            out = args.out / f"{slug(label)}-s{seed}"
            argv_ = command(args.dataset, args.model, SETTINGS[label] + shlex.split(args.flags), seed, out)
            if args.no_run and not (out / "metrics.json").exists():
                continue
            rows.append(row(label, seed, argv_, run_one(argv_, out)))
            log(f"{label} seed {seed}: val {rows[-1]['val_mae']:.4f}, test avg {rows[-1]['test_mae']['avg']:.4f}")
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M+00:00"),
        "command": shlex.join(["python", "-m", "benchmarks.counts", *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{environment('cpu')['device_name']}, {os.cpu_count()} CPUs",
        "load_average_start": load_start, "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "dataset": args.dataset, "data": repr(load_data(args.dataset)), "model": args.model, "rows": rows,
        "notes": list(args.note),
    }
    text = render(report)
    print(text)
    if args.record:
        write_record(RESULTS / args.record, report, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
