"""The distillation ablations (``benchmarks.distill_ablation``) and regime studies
(``benchmarks.distill_regime``), both retired (``benchmarks.screen``'s ``distill`` and ``regime`` plans run
them now): their committed records' rows and their sections of RESULTS.md.

An ablation group is one teacher, student family, width, epochs and seeds; :func:`ablation_rows` gives one
row per setting with the paired difference to the plain student and what distillation adds over the same
student trained without a distillation loss. :func:`regime_section` renders "When distillation pays".
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.table.baselines import baseline_row, mae_cells
from benchmarks.table.records import GOAL_GAP_CLOSED, HORIZONS, _fmt_count, fmt_pm, maes_15_30_60, mean_spread

__all__ = ["REGIME_RECIPES", "ablation_rows", "paired", "regime_section"]

#: the recipes the records of the retired ``benchmarks.distill_regime`` name: recipe -> its student, the
#: student's hyperparameters and, for a distilled one, the plain recipe it is paired with (``baseline``)
REGIME_RECIPES: dict[str, dict[str, Any]] = {
    "gcn-gru w32 plain": {"student": "gcn-gru", "hparams": {"hidden": 32}},
    "gcn-gru w32 KD": {"student": "gcn-gru", "hparams": {"hidden": 32}, "baseline": "gcn-gru w32 plain"},
    "dcgru w32 plain": {"student": "dcgru", "hparams": {"hidden": 32}},
    "dcgru w32 KD": {"student": "dcgru", "hparams": {"hidden": 32}, "baseline": "dcgru w32 plain"},
    "stgru w32 plain": {"student": "stgru", "hparams": {"hidden": 32}},
    "stgru w32 inherited": {"student": "stgru", "hparams": {"hidden": 32}, "baseline": "stgru w32 plain"},
    "stgru w32 output KD": {"student": "stgru", "hparams": {"hidden": 32}, "baseline": "stgru w32 plain"},
    "stgru w32 hints": {"student": "stgru", "hparams": {"hidden": 32}, "baseline": "stgru w32 plain"},
    "stgru w32 KD": {"student": "stgru", "hparams": {"hidden": 32}, "baseline": "stgru w32 plain"},
}


def _is_distilled(setting: dict[str, Any]) -> bool:
    """Whether an ablation setting trains with a distillation loss (its ``distill`` fields override
    :class:`~stgkd.distill.DistillConfig`'s defaults; a weight left out keeps its default)."""
    from stgkd.distill import DistillConfig

    kd = setting.get("distill") or {}
    default = DistillConfig()
    return any(float(kd.get(k, getattr(default, k))) > 0 for k in ("w_out", "w_feat", "w_rel"))


def _ablation_groups(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Ablation records of one teacher, student family, width, epochs and seeds, together (their settings
    form one table, paired with the one plain setting among them)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        if rec.get("protocol") != "distill-ablation":
            continue
        t = rec["teacher"]
        key = (t.get("path"), t.get("best_epoch"), t.get("parameters"), rec["student"], rec.get("width"),
               rec.get("student_epochs"), tuple(rec["seeds"]))
        groups.setdefault(key, []).append(rec)
    # the file holding the plain setting first, then by name
    return [sorted(g, key=lambda r: ("plain" not in r["settings"], r["_file"])) for g in groups.values()]


def ablation_rows(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting of an ablation group: MAE per horizon ``(mean, std, n)`` over seeds, the paired
    60-minute difference to the plain setting (``d60``, same seeds; ``(mean, std, n)``), the share of the
    plain student's 60-minute gap to the teacher it closes (``closed``); for a distilled setting also its
    ``baseline`` (the setting of the same student trained without a distillation loss, with the same
    inherited adjacency where there is one), the paired difference to it (``kd_d60``) and whether
    distillation pays (``pays``: better than the baseline by more than twice the baseline's seed spread)."""
    teacher60 = group[0]["teacher"]["test"]["60min"]["mae"]
    plain = next((r["settings"]["plain"] for r in group if "plain" in r["settings"]), None)
    plain_by_seed = {r["seed"]: r["test"]["60min"]["mae"] for r in (plain or {}).get("runs", [])}
    p60 = mean_spread(plain_by_seed.values())
    rows = []
    for rec in group:
        for name, st in rec["settings"].items():
            runs = st.get("runs", [])
            row: dict[str, Any] = {"name": name, "file": rec["_file"], "distilled": _is_distilled(st),
                                   "parameters": st.get("parameters"), "n": len(runs)}
            for h in HORIZONS:
                row[f"{h}/mae"] = mean_spread(r["test"][h]["mae"] for r in runs)
            row["60min/rmse"] = mean_spread(r["test"]["60min"]["rmse"] for r in runs)
            row["60min/mape"] = mean_spread(r["test"]["60min"]["mape"] for r in runs)
            diffs = [r["test"]["60min"]["mae"] - plain_by_seed[r["seed"]] for r in runs if r["seed"] in plain_by_seed]
            row["d60"] = mean_spread(diffs) if diffs and name != "plain" else None
            gap = p60[0] - teacher60 if p60[2] else math.nan
            row["closed"] = (p60[0] - row["60min/mae"][0]) / gap if gap > 0 and row["60min/mae"][2] else None
            row["hparams"] = st.get("student_hparams") or {}
            row["inherit"] = bool((st.get("distill") or {}).get("inherit_adjacency"))
            row["by_seed"] = {r["seed"]: r["test"]["60min"]["mae"] for r in runs}
            rows.append(row)
    for row in rows:
        row["baseline"], row["kd_d60"], row["pays"] = None, None, False
        if not row["distilled"]:
            continue
        same = [b for b in rows if not b["distilled"] and b["hparams"] == row["hparams"]]
        base = next((b for b in same if b["inherit"] == row["inherit"]), same[0] if same else None)
        if base is None:
            continue
        diffs = [v - base["by_seed"][s] for s, v in row["by_seed"].items() if s in base["by_seed"]]
        spread = mean_spread(base["by_seed"].values())
        row["baseline"], row["kd_d60"] = base["name"], mean_spread(diffs)
        row["pays"] = bool(len(diffs) > 1 and spread[2] > 1 and -row["kd_d60"][0] > 2 * spread[1])
    return rows


def _ablation_section(group: list[dict[str, Any]]) -> list[str]:
    first = group[0]
    t = first["teacher"]
    rows = ablation_rows(group)
    base = next((r["baselines"] for r in group if r.get("baselines")), None)  # one teacher, data and split
    teacher_mae = mae_cells(base, {h: (t["test"][h]["mae"], 0.0, 1) for h in HORIZONS}, HORIZONS, digits=3)
    partial = [r["_file"] for r in group if r.get("complete") is False]
    out = [f"## {first['title']} — {first['student']} width {first.get('width')} — "
           f"{first['environment']['device'].upper()} — {first['date']}", "",
           f"Teacher: {t['model']} {json.dumps(t.get('hparams', {}))}, {t['parameters']:,} parameters, trained "
           f"{t['epochs']} epochs (best {t['best_epoch']}"
           + (f", {t['seconds'] / 60:.0f} min" if math.isfinite(float(t.get("seconds") or math.nan)) else "")
           + ") on the whole training slice; one "
           f"teacher for every student seed. Students: `{first['student']}` width {first.get('width')}, "
           f"{first['student_epochs']} epochs each, seeds {first['seeds']}; the best-validation epoch is scored once "
           "on the test split (DCRNN protocol, masked metrics).", "",
           f"Data: {first.get('data')}.", ""]
    out += ["Runs:", ""] + [f"- `{r['_file']}` ({r['machine']}): `{r['command']}`" for r in group] + [""]
    if partial:
        out += [f"> **Partial**: {', '.join(partial)} did not finish every requested setting; what finished is shown.",
                ""]
    out += ["Test masked MAE (mean ± sample std over seeds); Δ60 vs plain is the paired difference to the plain "
            "student at 60 minutes (same seeds, negative = better); gap closed is the share of the plain student's "
            "60-minute gap to the teacher; for a distilled setting, Δ60 of distillation is the paired difference to "
            "the same student trained without a distillation loss (named), which is what distillation adds:", "",
            "| setting | params | 15 min | 30 min | 60 min | avg 12 | 60 min RMSE | 60 min MAPE % | "
            "Δ60 vs plain | 60-min gap closed | Δ60 of distillation (vs) | seeds |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
            f"| teacher | {t['parameters']:,} | " + " | ".join(teacher_mae[h] for h in HORIZONS)
            + f" | {t['test']['60min']['rmse']:.3f} | {100 * t['test']['60min']['mape']:.1f} | | | | 1 |"]
    for r in rows:
        d60 = fmt_pm(*r["d60"], digits=3) if r["d60"] else ""
        closed = f"{100 * r['closed']:.0f} %" if r["closed"] is not None else ""
        kd = (f"{fmt_pm(*r['kd_d60'], digits=3)} (vs {r['baseline']})" if r["kd_d60"] else
              "no plain run of this student" if r["distilled"] else "")
        mae = mae_cells(base, {h: r[f"{h}/mae"] for h in HORIZONS}, HORIZONS, digits=3)
        out.append(f"| {r['name']} | {_fmt_count(r['parameters'])} | " + " | ".join(mae[h] for h in HORIZONS)
                   + f" | {fmt_pm(*r['60min/rmse'], digits=3)} | {fmt_pm(*r['60min/mape'], digits=1, scale=100.0)} | "
                   f"{d60} | {closed} | {kd} | {r['n']} |")
    out += baseline_row(base, "| best baseline | – | ", HORIZONS, " | – | – | | | | – |", digits=3)
    out.append("")
    findings = _ablation_findings(rows)
    if findings:
        out += ["**What it shows:**", ""] + findings + [""]
    return out


def _ablation_findings(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    scored = [r for r in rows if r["closed"] is not None and r["name"] != "plain"]
    if scored:
        best = max(scored, key=lambda r: r["closed"])
        out.append(f"- Closest to the teacher at 60 minutes: **{best['name']}**, {100 * best['closed']:.0f} % of the "
                   f"plain student's gap closed (goal {100 * GOAL_GAP_CLOSED:.0f} %: "
                   f"{'met' if best['closed'] >= GOAL_GAP_CLOSED else 'not met'}).")
    kd = [r for r in rows if r["distilled"] and r["kd_d60"]]
    if kd:
        pays = [r["name"] for r in kd if r["pays"]]
        lo, hi = min(r["kd_d60"][0] for r in kd), max(r["kd_d60"][0] for r in kd)
        out.append(f"- Distillation: {len(pays)} of {len(kd)} distilled settings beat the same student trained "
                   "without a distillation loss at 60 minutes by more than twice its seed spread"
                   + (f" ({', '.join(pays)})" if pays else "") + f"; what distillation adds at 60 minutes ranges "
                   f"{lo:+.3f} to {hi:+.3f}.")
    return out


def _ablation_headline(group: list[dict[str, Any]]) -> list[str]:
    first, t = group[0], group[0]["teacher"]
    rows = ablation_rows(group)
    plain = next((r for r in rows if r["name"] == "plain"), None)
    if plain is None:
        return []
    files = ", ".join(f"`{r['_file']}`" for r in group)
    line = (f"- **{first['title']}** ({first['environment']['device'].upper()}, {len(first['seeds'])} seeds; teacher "
            f"{t['parameters'] / 1e3:.0f} k parameters trained {t['epochs']} epochs, students {first['student_epochs']} "
            f"epochs; {files}): test MAE at 15 / 30 / 60 min — teacher "
            + " / ".join(f"{t['test'][h]['mae']:.2f}" for h in ("15min", "30min", "60min"))
            + f"; `{first['student']}` width {first.get('width')} plain {maes_15_30_60(plain)}")
    kd = [r for r in rows if r["distilled"] and r["60min/mae"][2]]
    if kd:
        best_kd = min(kd, key=lambda r: r["60min/mae"][0])
        line += f"; best distilled ({best_kd['name']}) {maes_15_30_60(best_kd)}"
    scored = [r for r in rows if r["closed"] is not None and r["name"] != "plain"]
    if scored:
        best = max(scored, key=lambda r: r["closed"])
        line += f"; best share of the 60-min gap closed: {100 * best['closed']:.0f} % ({best['name']})"
    return [line + "."]


# ============================================================================ distillation regimes



def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def paired(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Distilled − plain per (recipe, days) of a regime record, over the seeds both have finished (runs keyed
    ``"recipe | days | seed"``), with whether it pays (better by more than twice the seed spread of the plain
    student, which needs two seeds)."""
    runs = report["runs"]

    def key(recipe: str, days: str, seed: int) -> str:
        return f"{recipe} | {days} | {seed}"

    rows = []
    for recipe in report["recipes"]:
        base = REGIME_RECIPES.get(recipe, {}).get("baseline")
        if base is None:
            continue
        for days in report["days"]:
            seeds = [s for s in report["seeds"] if key(recipe, days, s) in runs and key(base, days, s) in runs]
            if not seeds:
                continue
            row: dict[str, Any] = {"recipe": recipe, "baseline": base, "days": days, "seeds": seeds}
            for h in ("60min", "avg"):
                diffs = [runs[key(recipe, days, s)]["test"][h]["mae"] - runs[key(base, days, s)]["test"][h]["mae"]
                         for s in seeds]
                plain_sd = _stats([runs[key(base, days, s)]["test"][h]["mae"] for s in seeds])[1]
                mean, sd = _stats(diffs)
                row[h] = {"delta": mean, "delta_sd": sd, "plain_sd": plain_sd,
                          "pays": bool(len(seeds) > 1 and mean < 0 and -mean > 2 * plain_sd)}
            rows.append(row)
    return rows


def regime_section(results_dir: Path) -> str:
    """"When distillation pays": the paired distilled − plain rows of every ``distill-regime-*.json``
    (``python -m benchmarks.distill_regime``), by student and training days, with the verdict against
    twice the plain student's seed spread. Empty when there is none."""
    paths = sorted(Path(results_dir).glob("distill-regime-*.json"))
    if not paths:
        return ""
    lines = ["", "## When distillation pays (distilled − plain, paired by seed)", "",
             "From `python -m benchmarks.distill_regime` (retired; `python -m benchmarks.screen regime` runs the "
             "study now; each file states its command, teacher and budget; "
             "negative = distillation helps; it pays where it is better by more than twice the plain "
             "student's seed spread, which needs two seeds or more).", "",
             "| file | recipe | days | seeds | plain 60 min | Δ60 | Δavg | pays at 60 / avg |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for path in paths:
        report = json.loads(path.read_text())
        if not isinstance(report, dict) or "recipes" not in report:
            continue  # not a regime study (a screen record named distill-regime-...)
        for row in paired(report):
            plain = statistics.fmean(report["runs"][f"{row['baseline']} | {row['days']} | {s}"]["test"]["60min"]["mae"]
                                     for s in row["seeds"])
            cells = []
            for h in ("60min", "avg"):
                d, sd = row[h]["delta"], row[h]["delta_sd"]
                cells.append(f"{d:+.3f}" + (f" ± {sd:.3f}" if sd == sd else ""))
            verdict = " / ".join("yes" if row[h]["pays"] else "no" for h in ("60min", "avg"))
            lines.append(f"| `{path.name}` | {row['recipe']} | {row['days']} | {len(row['seeds'])} | {plain:.3f} | "
                         + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines) + "\n"


