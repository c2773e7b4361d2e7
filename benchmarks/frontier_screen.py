"""Screen student designs on the METR-LA week, for accuracy and FLOPs (no timings).

Every variant is trained with ``stgkd train``'s defaults plus ``--epochs 30`` (``stgkd distill``'s, from
the week's teacher file :data:`TEACHER`, for the distilled ones; one process at a
time, one intra-op thread: on a shared 2-core machine two threads waiting on each other cost more than
they bring), then its test masked MAE at 15 / 30 / 60 minutes and over the 12 steps, its best
validation and last training MAE, parameters and FLOPs at batch 1 are read back from the run directory.

    python -m benchmarks.frontier_screen --out runs/frontier --only default no-seasonal
    python -m benchmarks.frontier_screen --out runs/frontier --only gru-w16 kd-w32
    python -m benchmarks.frontier_screen --out runs/frontier --collect benchmarks/results/FILE.json

Runs whose ``metrics.json`` exists are not trained again, so a screen can be continued.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASET = "../shared/data/metr-la-week"
#: the week's Graph WaveNet teacher (``benchmarks/teachers/README.md``), distilled from by the ``distill`` variants
TEACHER = "benchmarks/teachers/gwn-metr-la-week.pt"


@dataclass(frozen=True)
class Variant:
    """One design: a student family's hyperparameters, input channels and extra training flags;
    ``seasonal``: ``--seasonal day`` (``False``: no flag, the family's default, which is one day for
    ``stgru`` since it became its default); ``distill``: trained by ``stgkd distill`` from
    :data:`TEACHER` at its defaults, not plainly."""

    name: str
    what: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seasonal: bool = True
    flags: tuple[str, ...] = ()
    model: str = "stgru"
    seed: int = 0
    distill: bool = False


VARIANTS = [
    Variant("default", "stgru defaults (last-shot, road + rank-16 adaptive, embeddings) + seasonal day"),
    Variant("no-seasonal", "defaults, without the seasonal-lag channels", seasonal=False),
    Variant("input-mixing", "graph also on every step's inputs", {"mixing": "input"}),
    Variant("step-mixing", "graph also inside the recurrence at every step", {"mixing": "steps"}),
    Variant("no-adaptive", "road supports only", {"adaptive": False}),
    Variant("no-embeddings", "no sensor, time-of-day or window embedding",
            {"node_embed": 0, "tod_embed": 0, "window_embed": 0}),
    Variant("no-graph", "no graph at all (GRU + embeddings)", {"graph_layers": 0, "adaptive": False}),
    Variant("lr3e-3", "defaults with --lr 3e-3", flags=("--lr", "3e-3")),
    Variant("w48", "defaults at width 48", {"hidden": 48}),
    Variant("lr5e-3", "defaults with --lr 5e-3", flags=("--lr", "5e-3")),
    Variant("lr1e-2", "defaults with --lr 1e-2", flags=("--lr", "1e-2")),
    Variant("lr2e-2", "defaults with --lr 2e-2", flags=("--lr", "2e-2")),
    Variant("no-seasonal-lr3e-3", "without the seasonal-lag channels, --lr 3e-3", seasonal=False, flags=("--lr", "3e-3")),
    Variant("no-seasonal-lr1e-2", "without the seasonal-lag channels, --lr 1e-2", seasonal=False, flags=("--lr", "1e-2")),
    Variant("dcgru-seasonal", "dcgru w32 defaults + seasonal day (the input change alone)", model="dcgru"),
    Variant("w16-lr1e-2", "width 16 at --lr 1e-2 (the family's default rate)", {"hidden": 16}, flags=("--lr", "1e-2")),
    Variant("w64-lr1e-2", "width 64 at --lr 1e-2 (the family's default rate)", {"hidden": 64}, flags=("--lr", "1e-2")),
    # the other families at the command's defaults (no seasonal input, AdamW 1e-3), the widths the latency
    # benchmark times, for the accuracy-latency chart
    *(Variant(f"{family}-w{width}", f"{family} w{width} at the command's defaults", {"hidden": width},
              seasonal=False, model=family)
      for family, widths in (("gru", (16, 32, 64)), ("gcn-gru", (16,)), ("dcgru", (16, 64))) for width in widths),
    # the default student distilled from the week's teacher at stgkd distill's defaults, on all the labels
    *(Variant(f"kd-w{width}", f"stgru w{width} distilled from {TEACHER} at stgkd distill's defaults",
              {"hidden": width}, seasonal=False, distill=True) for width in (16, 32, 64)),
    # and the other families, at the widths no other record distilled
    *(Variant(f"kd-{family}-w{width}", f"{family} w{width} distilled from {TEACHER} at stgkd distill's defaults",
              {"hidden": width}, seasonal=False, model=family, distill=True)
      for family, widths in (("gru", (16, 32, 64)), ("gcn-gru", (16,)), ("dcgru", (16, 64))) for width in widths),
    # torch-geometric-temporal's recurrent cells (the suites' peers), trained the same way, for the chart
    *(Variant(f"{peer}-w32", f"{peer} w32 (torch-geometric-temporal's cell) at the command's defaults",
              {"hidden": 32}, seasonal=False, model=peer) for peer in ("pgt-tgcn", "pgt-a3tgcn", "pgt-gconvgru")),
]


def command(variant: Variant, out: Path) -> list[str]:
    model = ["--teacher", TEACHER, "--student", variant.model] if variant.distill else ["--model", variant.model]
    cmd = ["stgkd", "distill" if variant.distill else "train", "--dataset", DATASET, *model,
           "--out", str(out / variant.name), "--epochs", "30", "--test", "--seed", str(variant.seed),
           "--no-progress", "--overwrite"]
    if variant.hparams:
        cmd += ["--hparams", json.dumps(variant.hparams, separators=(",", ":"))]
    if variant.seasonal:
        cmd += ["--seasonal", "day"]
    return cmd + list(variant.flags)


def run(variant: Variant, out: Path) -> None:
    if (out / variant.name / "metrics.json").exists():
        print(f"{variant.name}: done already", file=sys.stderr)
        return
    cmd = command(variant, out)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    print(f"[{_dt.datetime.now():%H:%M:%S}] {shlex.join(cmd)}", file=sys.stderr, flush=True)
    (out / variant.name).mkdir(parents=True, exist_ok=True)
    with open(out / variant.name / "stdout.txt", "w") as log:
        subprocess.run([sys.executable, "-m", "stgkd", *cmd[1:]], env=env, stdout=log, stderr=subprocess.STDOUT,
                       check=True)


def collect(variant: Variant, out: Path) -> dict[str, Any] | None:
    """Test metrics, train/val MAE, parameters and FLOPs at batch 1 of a finished run, and the baselines
    its ``--test`` scored on the same test targets."""
    import torch

    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.nn import count_flops

    run_dir = out / variant.name
    if not (run_dir / "metrics.json").exists():
        return None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    best = metrics["best_epoch"]
    at_best = next(h for h in history if h["epoch"] == best)
    train_at_best = at_best.get("train_mae", at_best["train_loss"])  # a distill run's loss is not a MAE
    payload = load_checkpoint(run_dir / "best.pt")
    model = model_from_checkpoint(payload).eval()
    x = torch.zeros(1, model.in_steps, model.num_nodes, model.in_channels)
    return {
        "name": variant.name, "what": variant.what, "command": shlex.join(command(variant, out)),
        "test": {k: metrics["test"][k]["mae"] for k in ("15min", "30min", "60min", "avg")},
        "val_mae": metrics["val"]["avg"]["mae"], "train_mae": train_at_best, "best_epoch": best,
        "epochs_run": metrics["epochs_run"], "params": model.num_parameters(), "flops_b1": count_flops(model, x),
        "input_features": payload["data"]["input_features"],
        "baselines": metrics.get("baselines"),
    }


def report(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | what | 15 min | 30 min | 60 min | avg 12 | train MAE | val MAE | best ep. | params | "
             "FLOPs b1 |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        t = r["test"]
        lines.append(f"| `{r['name']}` | {r['what']} | {t['15min']:.2f} | {t['30min']:.2f} | **{t['60min']:.2f}** | "
                     f"{t['avg']:.2f} | {r['train_mae']:.2f} | {r['val_mae']:.2f} | {r['best_epoch']}/{r['epochs_run']} | "
                     f"{r['params']:,} | {r['flops_b1'] / 1e6:.1f} M |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/frontier"))
    parser.add_argument("--only", nargs="+", help="variant names (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (runs named NAME-sK beyond 0)")
    parser.add_argument("--collect", type=Path, metavar="JSON", help="write the collected rows here, train nothing")
    args = parser.parse_args(argv)
    chosen = [v for v in VARIANTS if not args.only or v.name in args.only]
    unknown = set(args.only or ()) - {v.name for v in VARIANTS}
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {[v.name for v in VARIANTS]}")
    variants = [v if s == 0 else Variant(**{**v.__dict__, "name": f"{v.name}-s{s}", "seed": s})
                for v in chosen for s in args.seeds]
    if args.collect:
        rows = [r for r in (collect(v, args.out) for v in variants) if r is not None]
        args.collect.write_text(json.dumps(rows, indent=1) + "\n")
        print(report(rows))
        return 0
    for variant in variants:
        run(variant, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
