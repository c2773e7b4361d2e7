"""The count simulator beside the real bus network it imitates: every figure of
:data:`stgkd.data.count_stats.BUS_NETWORK`, measured by :func:`stgkd.data.count_stats.count_statistics` on
``stgkd.data.synthetic_counts.generate_counts()`` at its defaults (the registered dataset ``synthetic-counts``), seed by
seed, with its relative difference from the real figure and whether that is within the tolerance.

    python -m benchmarks.count_stats                    # seeds 0, 1, 2
    python -m benchmarks.count_stats --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from typing import Any

from benchmarks.record import add_record_args, environment, record_stem, write_record
from benchmarks.table.records import table
from stgkd.data.count_stats import BUS_NETWORK, count_statistics
from stgkd.data.synthetic_counts import generate_counts
from stgkd.latency import load_average

#: how each figure of BUS_NETWORK reads in the table
LABELS = {
    "stops": "stops",
    "days": "days (hourly)",
    "links": "links (pairs of stops)",
    "zero_share": "share of stop-hours that are 0",
    "dispersion_index": "variance / mean, all cells",
    "mean": "mean boardings per stop-hour",
    "p99": "99th percentile of the cells",
    "max": "maximum of the cells",
    "stop_mean_q10": "per-stop mean, 10 % quantile",
    "stop_mean_q50": "per-stop mean, 50 % quantile",
    "stop_mean_q90": "per-stop mean, 90 % quantile",
    "stop_mean_q99": "per-stop mean, 99 % quantile",
    "lag_1h": "correlation of centred counts, lag 1 h",
    "lag_24h": "correlation of centred counts, lag 24 h",
    "lag_168h": "correlation of centred counts, lag 168 h",
    "zero_share_night": "zero share at night (00-04 h)",
    "zero_share_lowest_hour": "zero share at the hour with the fewest zeros",
}


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def render(report: dict[str, Any]) -> str:
    seeds = " / ".join(str(s) for s in report["seeds"])
    runs = report["runs"]
    lines = [
        "# The count simulator against the real bus network", "",
        f"- date: {report['date']}", f"- command: `{report['command']}`", f"- machine: {report['machine']}",
        f"- load average at start {report['load_average_start']}, at end {report['load_average_end']}",
        f"- data: `{report['generator']}`, seeds {seeds}; statistics: `stgkd.data.count_stats.count_statistics`",
        "",
    ] + table(["statistic", "real", f"simulated (seeds {seeds})", "relative difference",
               f"within {report['tolerance']:.0%}"], (
        [row["label"], _fmt(row["real"]), " / ".join(_fmt(v) for v in row["simulated"]),
         " / ".join(f"{d:+.1%}" for d in row["relative_difference"]), "yes" if row["within"] else "no"]
        for row in report["rows"]))
    hours = " / ".join(f"{r['lowest_hour']:02d} h" for r in runs)
    missing = " / ".join(f"{r['missing_share']:.1%}" for r in runs)
    seconds = " / ".join(f"{r['generate_seconds']:.3f}" for r in runs)
    lines += [
        "",
        f"Every figure within {report['tolerance']:.0%} on every seed: {'yes' if report['all_within'] else 'no'}. "
        f"Hour with the fewest zeros: {hours} (real: midday). Missing cells (NaN): {missing}. "
        f"Generation: {seconds} s.",
        "", "```json", json.dumps(report, indent=1), "```", "",
    ]
    return "\n".join(lines)


def compare(seeds: list[int], tolerance: float) -> dict[str, Any]:
    """``runs`` (each seed's statistics and generation time) and ``rows`` (each figure of
    :data:`BUS_NETWORK`: real, simulated per seed, relative difference per seed, within ``tolerance``)."""
    runs = []
    for seed in seeds:
        t0 = time.perf_counter()
        data = generate_counts(seed=seed)
        seconds = time.perf_counter() - t0
        stats = count_statistics(data.values[..., 0], data.timestamps, data.adj).as_dict()
        runs.append({"seed": seed, "generate_seconds": seconds, **stats})
    rows = []
    for key, real in BUS_NETWORK.items():
        sims = [float(r[key]) for r in runs]
        diffs = [(s - real) / real for s in sims]
        rows.append({"statistic": key, "label": LABELS[key], "real": real, "simulated": sims,
                     "relative_difference": diffs, "within": all(abs(d) <= tolerance for d in diffs)})
    return {"runs": runs, "rows": rows, "all_within": all(r["within"] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.count_stats", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--tolerance", type=float, default=0.2,
                        help="largest relative difference counted as a match (default: 0.2)")
    args = add_record_args(parser).parse_args(argv)
    env = environment("cpu")
    stamp = dt.datetime.now(dt.timezone.utc)
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="minutes"),
        "command": shlex.join(["python", "-m", "benchmarks.count_stats",
                               *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"cpu: {env['device_name']}, {os.cpu_count()} CPUs, Python {env['python']}",
        "load_average_start": load_average(),
        "generator": "stgkd.data.synthetic_counts.generate_counts(seed=SEED) with its other defaults",
        "seeds": args.seeds, "tolerance": args.tolerance, "real": dict(BUS_NETWORK),
    }
    report.update(compare(args.seeds, args.tolerance))
    report["load_average_end"] = load_average()
    markdown = render(report)
    print(markdown.split("\n```json")[0], flush=True)
    write_record(record_stem(args, "count-stats", f"{stamp:%Y-%m-%d}"), report, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
