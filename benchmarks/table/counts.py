"""RESULTS.md's count-network section: the screens of ``python -m benchmarks.counts`` (each setting's
validation and test MAE beside the best baseline table on the same targets) and, per setting with several
seeds, the mean margin. Nothing here measures anything."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

__all__ = ["counts_section", "screen_table"]


def screen_table(report: dict[str, Any]) -> list[str]:
    """The rows of one ``benchmarks.counts`` report: per setting and seed, the validation MAE over the
    horizon, the test MAE per horizon, the best baseline over the horizon and the margin against it."""
    rows = report["rows"]
    horizons = [h for h in rows[0]["test_mae"] if h != "avg"] if rows else []
    lines = ["| setting | seed | val MAE | " + " | ".join(f"test {h}" for h in horizons)
             + " | test avg | best baseline avg | margin avg |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in horizons) + " | ---: | --- | ---: |"]
    for r in rows:
        t, b = r["test_mae"], r["best_baseline"].get("avg", {})
        lines.append(f"| {r['setting']} | {r['seed']} | {r['val_mae']:.4f} | "
                     + " | ".join(f"{t[h]:.4f}" for h in [*horizons, "avg"])
                     + f" | {b.get('mae', float('nan')):.4f} ({b.get('baseline', '-')}) | "
                     f"{100 * r['margin'].get('avg', float('nan')):+.1f} % |")
    return lines


def _seed_means(report: dict[str, Any]) -> list[str]:
    by_setting: dict[str, list[dict[str, Any]]] = {}
    for r in report["rows"]:
        by_setting.setdefault(r["setting"], []).append(r)
    lines = []
    for setting, rows in by_setting.items():
        if len(rows) < 2:
            continue
        margins = [100 * r["margin"]["avg"] for r in rows]
        test = [r["test_mae"]["avg"] for r in rows]
        worst = max(margins)
        lines.append(f"- {setting}, seeds {', '.join(str(r['seed']) for r in rows)}: test MAE over the horizon "
                     f"{statistics.fmean(test):.4f} ± {statistics.stdev(test):.4f}, margin against the best baseline "
                     f"{statistics.fmean(margins):+.1f} % on average, {worst:+.1f} % on the worst seed")
    return lines


def counts_section(results_dir: Path) -> str:
    """Every ``counts-*.json`` written by ``benchmarks.counts`` (a report with ``rows``), newest last;
    empty when there is none."""
    reports = []
    for path in sorted(Path(results_dir).glob("counts-*.json")):
        report = json.loads(path.read_text())
        if isinstance(report, dict) and isinstance(report.get("rows"), list) and report["rows"]:
            reports.append((path, report))
    if not reports:
        return ""
    lines = ["", "## A count network: the default student against the best table", "",
             "From `python -m benchmarks.counts` (accuracy only; each row is one `stgkd train` command, named in the "
             "record). The best baseline is chosen per horizon on validation among last value, zero, seasonal naive "
             "and the historical mean and median per stop by hour, and by hour and weekday; margin = student / best "
             "baseline − 1 over the 12 steps (negative = the student is better). The simulator's statistics beside "
             "the real network's: `count-stats-*.md`.", ""]
    for path, report in reports:
        lines += [f"### `{path.name}`: {report['dataset']}, `{report['model']}`", "",
                  f"{report['date']}, {report['machine']}, load average {report['load_average_start']} at start; "
                  f"`{report['command']}`", ""]
        lines += screen_table(report) + [""] + _seed_means(report)
        lines += [""] + [f"Note: {n}" for n in report.get("notes", [])] if report.get("notes") else []
        lines.append("")
    return "\n".join(lines)
