"""RESULTS.md's screen sections: the records of ``python -m benchmarks.screen PLAN --record PLAN-...`` (a train
screen's rows beside the best baseline; a distill screen's settings over seeds, with their gain over their plain
row paired by seed) and the setting chosen per model family on validation."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.table.records import fmt_pm, mean_spread, table

#: per plan, in page order: the section's heading and what it says first (a record is ``PLAN-*.json``)
SECTIONS = {
    "counts": ("A count network: the default student against the best table",
               "The default student on the count simulator (its statistics beside the real network's: "
               "`count-stats-*.md`); margin = student / best baseline − 1 over the 12 steps (negative = better)."),
    "teachers": ("The teacher families at the default student's care",
                 "Each teacher family screened as the default student was, its setting chosen on validation; "
                 "margin = teacher / best baseline − 1 over the 12 steps (negative = better)."),
    "distill": ("Which distillation settings help",
                "One student from one teacher under each setting; gain = its plain row's test MAE − its own, "
                "paired by seed (positive = better)."),
    "regime": ("When distillation pays, by training data",
               "Students plain and distilled on the most recent day of the training split and on all of it; gain "
               "= plain − distilled test MAE on the same days, paired by seed (positive = distillation helps)."),
    "ensemble": ("A student from the best teacher and from the ensemble",
                 "One student plain, from the teacher of lowest validation MAE and from the ensemble of all; gain "
                 "over the plain student, paired by seed; the teacher column is the teacher's validation MAE."),
}


def _by_setting(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["setting"], {})[r["seed"]] = r
    return by


def _pm(values: list[float], sign: str = "") -> str:
    return fmt_pm(*mean_spread(values), digits=4, sign=sign)


def screen_table(report: dict[str, Any]) -> list[str]:
    """Per setting and seed: the validation MAE, the test MAE per horizon (the keys of its ``metrics.json``), the
    best baseline over the horizon and the margin."""
    rows = report["rows"]
    horizons = [h for h in rows[0]["test_mae"] if h != "avg"] if rows else []
    return table(["setting", "seed", "val MAE", *[f"test {h}" for h in horizons], "test avg", "best baseline avg",
                  "margin avg"],
                 [[r["setting"], r["seed"], f"{r['val_mae']:.4f}",
                   *[f"{r['test_mae'][h]:.4f}" for h in [*horizons, "avg"]],
                   f"{b.get('mae', math.nan):.4f} ({b.get('baseline', '-')})",
                   f"{100 * r['margin'].get('avg', math.nan):+.1f} %"] for r in rows
                  for b in [r["best_baseline"].get("avg", {})]], align="lrr" + "r" * len(horizons) + "rlr")


def distill_table(report: dict[str, Any]) -> list[str]:
    """Per setting: its seeds, validation MAE, test MAE per horizon (mean ± sample std over seeds), its gain over
    its plain row at the longest horizon and over the horizon (the plain row's test MAE − its own on the seeds
    both ran: paired by seed; positive = better), the student's validation MAE to the teacher's forecasts
    (fidelity) and the teacher's validation MAE."""
    by_setting = _by_setting(report["rows"])
    first = report["rows"][0] if report["rows"] else {"test_mae": {}}
    horizons = [h for h in first["test_mae"] if h != "avg"]
    last = horizons[-1] if horizons else "avg"
    lines = []
    for setting, runs in by_setting.items():
        rs = list(runs.values())
        base = by_setting.get(rs[0].get("plain") or "", {})
        gains = {h: [base[s]["test_mae"][h] - r["test_mae"][h] for s, r in runs.items() if s in base]
                 for h in (last, "avg")}
        vs = rs[0].get("plain") or ""
        if vs and len(gains["avg"]) < len(rs):  # the seeds the gain is on
            vs += f" (seeds {', '.join(str(s) for s in runs if s in base) or 'none: not run'})"
        lines.append([setting, ", ".join(map(str, runs)), _pm([r["val_mae"] for r in rs]),
                      *[_pm([r["test_mae"][h] for r in rs]) for h in [*horizons, "avg"]],
                      *[_pm(gains[h], "+") if vs else "" for h in (last, "avg")], vs,
                      *[_pm([r[k] for r in rs if r.get(k) is not None]) for k in ("val_fidelity", "teacher_val_mae")]])
    return table(["setting", "seeds", "val MAE", *[f"test {h}" for h in [*horizons, "avg"]], f"gain {last}",
                  "gain avg", "vs", "val MAE to teacher", "teacher val MAE"], lines,
                 align="llr" + "r" * len(horizons) + "rrrlrr")


def table_lines(report: dict[str, Any]) -> list[str]:
    """A screen report's table: :func:`distill_table` for a distill screen, else :func:`screen_table`."""
    return distill_table(report) if report.get("kind") == "distill" else screen_table(report)


def teacher_lines(report: dict[str, Any]) -> list[str]:
    """A distill screen's teachers, each with its validation MAE (its checkpoint's), and the best member."""
    teachers = report.get("teachers") or []
    if not teachers:
        return []
    line = "- teacher" + ("s" if len(teachers) > 1 else "") + ": " + "; ".join(
        f"`{t['path']}` ({t.get('model')}, epoch {t.get('epoch')}, val MAE "
        + (f"{t['val_mae']:.4f})" if t.get("val_mae") is not None else "unknown)") for t in teachers)
    if report.get("best_member"):
        line += f"; the best member on validation: `{report['best_member']}`"
    return [line]


def chosen(rows: list[dict[str, Any]], model: str = "") -> dict[str, dict[str, Any]]:
    """Per model family (a row without ``model``: ``model``), the setting of lowest validation MAE, never on
    test. The screen compares every setting over the seeds all of them ran (their mean; where none is shared,
    over each setting's own seeds). Where its choice was run on more seeds (confirmed), it is compared there with
    the other settings run on as many seeds, over the seeds they share, and the best of them is the choice; a
    setting that lost the screen is never chosen for having more seeds alone. Each: ``setting``, ``val_mae``,
    ``seeds``, ``common`` (whether the seeds are shared), ``confirmed`` and the ``rows`` it was chosen on."""
    families: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for r in rows:
        families.setdefault(r.get("model", model), {}).setdefault(r["setting"], {})[r["seed"]] = r
    out = {}
    for family, settings in families.items():
        val, label, seeds = _best(settings)
        confirmed = bool(seeds) and len(settings[label]) > len(seeds)
        if confirmed:
            val, label, seeds = _best({k: v for k, v in settings.items() if len(v) >= len(settings[label])})
        common, seeds = bool(seeds), seeds or sorted(settings[label])
        out[family] = {"setting": label, "val_mae": val, "seeds": seeds, "common": common, "confirmed": confirmed,
                       "rows": [settings[label][s] for s in seeds]}
    return out


def _best(settings: dict[str, dict[int, dict[str, Any]]]) -> tuple[float, str, list[int]]:
    """``(mean validation MAE, setting, seeds)`` of the best setting over the seeds they all share (none shared:
    each over its own, and ``[]`` for the seeds)."""
    common = sorted(set.intersection(*(set(by_seed) for by_seed in settings.values())))
    val, label = min(((statistics.fmean(by_seed[s]["val_mae"] for s in common or sorted(by_seed)), label)
                      for label, by_seed in settings.items()), key=lambda x: x[0])
    return val, label, common


def chosen_lines(report: dict[str, Any]) -> list[str]:
    """One line per model family of ``report``: the setting chosen on validation, on which seeds, and its best
    epoch of the epochs run (a best epoch near the last says the budget was short of a plateau)."""
    lines = []
    for family, c in chosen(report["rows"], report.get("model", "")).items():
        shared = ("confirmed: the seeds it shares with the settings run on as many" if c["confirmed"]
                  else "the seeds every setting of the family ran")
        on = (f"seed{'s' if len(c['seeds']) > 1 else ''} {', '.join(map(str, c['seeds']))}"
              + (f", {shared}" if c["common"] else ", its own: no seed is shared"))
        epochs = ", ".join(f"{r['best_epoch']} of {r['epochs_run']}" for r in c["rows"])
        lines.append(f"- chosen for `{family}` on validation: {c['setting']} (val MAE {c['val_mae']:.4f}"
                     f"{' on average' if len(c['seeds']) > 1 else ''}, {on}; best epoch {epochs})")
    return lines


def _seed_means(report: dict[str, Any]) -> list[str]:
    lines = []
    for setting, runs in _by_setting(report["rows"]).items():
        if len(runs) > 1:
            margins = [100 * r["margin"]["avg"] for r in runs.values()]
            lines.append(f"- {setting}, seeds {', '.join(map(str, runs))}: test MAE over the horizon "
                         f"{_pm([r['test_mae']['avg'] for r in runs.values()])}, margin against the best baseline "
                         f"{statistics.fmean(margins):+.1f} % on average, {max(margins):+.1f} % on the worst seed")
    return lines


def screen_sections(results_dir: Path) -> str:
    """A section per plan of :data:`SECTIONS` with a record (``PLAN-*.json``, a report with ``rows``; one without
    ``plan`` is a counts record), each record newest last; empty when there is none."""
    lines = []
    for plan, (heading, intro) in SECTIONS.items():
        reports = [(path, report) for path in sorted(Path(results_dir).glob(f"{plan}-*.json"))
                   for report in [json.loads(path.read_text())]  # distill-*.json: not the retired ablations
                   if isinstance(report, dict) and isinstance(report.get("rows"), list) and report["rows"]
                   and report.get("plan", "counts") == plan]
        if reports:
            lines += ["", f"## {heading}", "", f"From `python -m benchmarks.screen {plan}` (accuracy only; each row "
                      "is one `stgkd` command, named in the record; the best baseline is chosen per horizon on "
                      "validation). " + intro, ""]
        for path, report in reports:
            lines += [f"### `{path.name}`: {report['dataset']}, `{report['model']}`", "",
                      f"{report['date']}, {report['machine']}, load average {report['load_average_start']} at "
                      f"start; `{report['command']}`", ""]
            lines += teacher_lines(report) + ([""] if report.get("teachers") else [])
            lines += table_lines(report) + [""] + chosen_lines(report)
            lines += _seed_means(report) if report.get("kind") != "distill" else []
            lines += [""] + [f"Note: {n}" for n in report.get("notes", [])] if report.get("notes") else []
            lines.append("")
    return "\n".join(lines)
