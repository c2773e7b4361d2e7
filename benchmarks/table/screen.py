"""RESULTS.md's screen sections: the records of ``python -m benchmarks.screen PLAN --record PLAN-...`` (each
setting's validation and test MAE beside the best baseline table on the same targets), the setting chosen
per model family on validation and, per setting with several seeds, the mean margin. Nothing here measures
anything."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

__all__ = ["SECTIONS", "chosen", "chosen_lines", "screen_sections", "screen_table"]

#: per plan, in page order: the section's heading and what it says first (a record is ``PLAN-*.json``)
SECTIONS = {
    "counts": ("A count network: the default student against the best table",
               "From `python -m benchmarks.screen counts` (`python -m benchmarks.counts` before, the same screen; "
               "accuracy only; each row is one `stgkd train` command, named in the record). The best baseline is "
               "chosen per horizon on validation among last value, zero, seasonal naive and the historical mean and "
               "median per stop by hour, and by hour and weekday; margin = student / best baseline − 1 over the 12 "
               "steps (negative = the student is better). The simulator's statistics beside the real network's: "
               "`count-stats-*.md`."),
    "teachers": ("The teacher families at the default student's care",
                 "From `python -m benchmarks.screen teachers` (accuracy only; each row is one `stgkd train` command, "
                 "named in the record): each teacher family screened as the default student was (the same learning "
                 "rates with and without yesterday's readings, the same epochs), its setting chosen on validation. "
                 "The best baseline is chosen per horizon on validation; margin = teacher / best baseline − 1 over "
                 "the 12 steps (negative = the teacher is better)."),
}


def screen_table(report: dict[str, Any]) -> list[str]:
    """The rows of one screen report: per setting and seed, the validation MAE over the horizon, the test MAE
    per horizon (the keys of its ``metrics.json``), the best baseline over the horizon and the margin."""
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


def chosen(rows: list[dict[str, Any]], model: str = "") -> dict[str, dict[str, Any]]:
    """Per model family (a row without ``model``: ``model``), the setting of lowest validation MAE over the
    seeds every setting of the family ran (their mean), or where there is none, over each setting's own seeds;
    never on test. Each: ``setting``, ``val_mae``, ``seeds``, ``common`` (whether the seeds are shared) and the
    ``rows`` it was chosen on."""
    families: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for r in rows:
        families.setdefault(r.get("model", model), {}).setdefault(r["setting"], {})[r["seed"]] = r
    out = {}
    for family, settings in families.items():
        common = sorted(set.intersection(*(set(by_seed) for by_seed in settings.values())))
        scored = [(statistics.fmean(by_seed[s]["val_mae"] for s in common or sorted(by_seed)), label)
                  for label, by_seed in settings.items()]
        val, label = min(scored, key=lambda x: x[0])
        seeds = common or sorted(settings[label])
        out[family] = {"setting": label, "val_mae": val, "seeds": seeds, "common": bool(common),
                       "rows": [settings[label][s] for s in seeds]}
    return out


def chosen_lines(report: dict[str, Any]) -> list[str]:
    """One line per model family of ``report``: the setting chosen on validation, on which seeds, and its best
    epoch of the epochs run (a best epoch near the last says the budget was short of a plateau)."""
    lines = []
    for family, c in chosen(report["rows"], report.get("model", "")).items():
        on = (f"seed{'s' if len(c['seeds']) > 1 else ''} {', '.join(map(str, c['seeds']))}"
              + (", the seeds every setting of the family ran" if c["common"] else ", its own: no seed is shared"))
        epochs = ", ".join(f"{r['best_epoch']} of {r['epochs_run']}" for r in c["rows"])
        lines.append(f"- chosen for `{family}` on validation: {c['setting']} (val MAE {c['val_mae']:.4f}"
                     f"{' on average' if len(c['seeds']) > 1 else ''}, {on}; best epoch {epochs})")
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


def screen_sections(results_dir: Path) -> str:
    """A section per plan of :data:`SECTIONS` with a record (``PLAN-*.json``, a report with ``rows``), each
    record newest last; empty when there is none."""
    return "".join(_section(Path(results_dir), plan) for plan in SECTIONS)


def _section(results_dir: Path, plan: str) -> str:
    reports = []
    for path in sorted(results_dir.glob(f"{plan}-*.json")):
        report = json.loads(path.read_text())
        if isinstance(report, dict) and isinstance(report.get("rows"), list) and report["rows"]:
            reports.append((path, report))
    if not reports:
        return ""
    heading, intro = SECTIONS[plan]
    lines = ["", f"## {heading}", "", intro, ""]
    for path, report in reports:
        lines += [f"### `{path.name}`: {report['dataset']}, `{report['model']}`", "",
                  f"{report['date']}, {report['machine']}, load average {report['load_average_start']} at start; "
                  f"`{report['command']}`", ""]
        lines += screen_table(report) + [""] + chosen_lines(report) + _seed_means(report)
        lines += [""] + [f"Note: {n}" for n in report.get("notes", [])] if report.get("notes") else []
        lines.append("")
    return "\n".join(lines)
