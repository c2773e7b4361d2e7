"""The distillation ablations (``benchmarks.distill_ablation``) and regime studies (``benchmarks.distill_regime``),
both retired (``benchmarks.screen``'s ``distill`` and ``regime`` plans run them now): their committed records'
rows and their sections of RESULTS.md (a regime study's from the tables its script wrote beside its record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.table.records import (GOAL_GAP_CLOSED, HORIZONS, baseline_notes, baseline_row, fmt_count, fmt_pm,
                                      kd_gap, mae_cells, mean_spread, table)

#: the recipes the records of the retired ``benchmarks.distill_regime`` name: recipe -> its student, the
#: student's hyperparameters and, for a distilled one, the plain recipe it is paired with (``baseline``)
REGIME_RECIPES: dict[str, dict[str, Any]] = {
    f"{s} w32 {r}": {"student": s, "hparams": {"hidden": 32}, **({} if r == "plain" else {"baseline": f"{s} w32 plain"})}
    for s, recipes in (("gcn-gru", ("plain", "KD")), ("dcgru", ("plain", "KD")),
                       ("stgru", ("plain", "inherited", "output KD", "hints", "KD")))
    for r in recipes}


def is_distilled(setting: dict[str, Any]) -> bool:
    """Whether an ablation setting trains with a distillation loss (its ``distill`` fields override
    :class:`~stgkd.distill.DistillConfig`'s defaults; a weight left out keeps its default)."""
    from stgkd.distill import DistillConfig

    kd, default = setting.get("distill") or {}, DistillConfig()
    return any(float(kd.get(k, getattr(default, k))) > 0 for k in ("w_out", "w_feat", "w_rel"))


def ablation_groups(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Ablation records of one teacher, student family, width, epochs and seeds, together (their settings form
    one table), the file holding the plain setting first, then by name."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        if rec.get("protocol") == "distill-ablation":
            t = rec["teacher"]
            groups.setdefault((t.get("path"), t.get("best_epoch"), t.get("parameters"), rec["student"],
                               rec.get("width"), rec.get("student_epochs"), tuple(rec["seeds"])), []).append(rec)
    return [sorted(g, key=lambda r: ("plain" not in r["settings"], r["_file"])) for g in groups.values()]


def ablation_rows(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting of an ablation group: MAE per horizon ``(mean, std, n)`` over seeds, the paired
    60-minute difference to the plain setting (``d60``), the share of the plain student's 60-minute gap to the
    teacher it closes (``closed``); for a distilled setting also its ``baseline`` (the same student trained
    without a distillation loss, with the same inherited adjacency where there is one), the paired difference to
    it (``kd_d60``) and whether distillation pays (``pays``: better by more than twice the baseline's seed spread)."""
    teacher60 = group[0]["teacher"]["test"]["60min"]["mae"]
    plain = next((r["settings"]["plain"] for r in group if "plain" in r["settings"]), None)
    plain_by_seed = {r["seed"]: r["test"]["60min"]["mae"] for r in (plain or {}).get("runs", [])}
    p60 = mean_spread(plain_by_seed.values())
    rows = []
    for rec in group:
        for name, st in rec["settings"].items():
            runs = st.get("runs", [])
            row: dict[str, Any] = {"name": name, "file": rec["_file"], "distilled": is_distilled(st), "n": len(runs),
                                   "parameters": st.get("parameters"), "hparams": st.get("student_hparams") or {},
                                   "inherit": bool((st.get("distill") or {}).get("inherit_adjacency")),
                                   "by_seed": {r["seed"]: r["test"]["60min"]["mae"] for r in runs}}
            for h in HORIZONS:
                row[f"{h}/mae"] = mean_spread(r["test"][h]["mae"] for r in runs)
            for m in ("rmse", "mape"):
                row[f"60min/{m}"] = mean_spread(r["test"]["60min"][m] for r in runs)
            diffs = [r["test"]["60min"]["mae"] - plain_by_seed[r["seed"]] for r in runs if r["seed"] in plain_by_seed]
            row["d60"] = mean_spread(diffs) if diffs and name != "plain" else None
            measured = p60[2] and row["60min/mae"][2]
            row["closed"] = kd_gap(teacher60, p60[0], row["60min/mae"][0])[1] if measured else None
            rows.append(row)
    for row in rows:
        row["baseline"], row["kd_d60"], row["pays"] = None, None, False
        same = [b for b in rows if not b["distilled"] and b["hparams"] == row["hparams"]]
        base = next((b for b in same if b["inherit"] == row["inherit"]), same[0] if same else None)
        if not row["distilled"] or base is None:
            continue
        diffs = [v - base["by_seed"][s] for s, v in row["by_seed"].items() if s in base["by_seed"]]
        spread = mean_spread(base["by_seed"].values())
        row["baseline"], row["kd_d60"] = base["name"], mean_spread(diffs)
        row["pays"] = bool(len(diffs) > 1 and spread[2] > 1 and -row["kd_d60"][0] > 2 * spread[1])
    return rows


def ablation_section(group: list[dict[str, Any]]) -> list[str]:
    """One group's section: the teacher, the runs, one row per setting, the best baseline and what it shows."""
    first, t = group[0], group[0]["teacher"]
    rows = ablation_rows(group)
    block = next((r["baselines"] for r in group if r.get("baselines")), None)  # one teacher, data and split
    partial = [r["_file"] for r in group if r.get("complete") is False]
    out = [f"## {first['title']} — {first['student']} width {first.get('width')} — "
           f"{first['environment']['device'].upper()} — {first['date']}", "",
           f"Teacher: {t['model']} {json.dumps(t.get('hparams', {}))}, {t['parameters']:,} parameters, trained "
           f"{t['epochs']} epochs (best {t['best_epoch']}) on the whole training slice; one teacher for every "
           f"student seed. Students: `{first['student']}` width {first.get('width')}, {first['student_epochs']} "
           f"epochs each, seeds {first['seeds']}; the best-validation epoch is scored once on the test split (DCRNN "
           "protocol, masked metrics).", "", f"Data: {first.get('data')}.", "", "Runs:", "",
           *[f"- `{r['_file']}` ({r['machine']}): `{r['command']}`" for r in group], ""]
    if partial:
        out += [f"> **Partial**: {', '.join(partial)} did not finish every requested setting; what finished is "
                "shown.", ""]
    teacher = mae_cells(block, {h: (t["test"][h]["mae"], 0.0, 1) for h in HORIZONS}, HORIZONS, digits=3)
    lines = [["teacher", f"{t['parameters']:,}", *teacher.values(), f"{t['test']['60min']['rmse']:.3f}",
              f"{100 * t['test']['60min']['mape']:.1f}", "", "", "", 1]]
    for r in rows:
        mae = mae_cells(block, {h: r[f"{h}/mae"] for h in HORIZONS}, HORIZONS, digits=3)
        kd = (f"{fmt_pm(*r['kd_d60'], digits=3)} (vs {r['baseline']})" if r["kd_d60"] else
              "no plain run of this student" if r["distilled"] else "")
        lines.append([r["name"], fmt_count(r["parameters"]), *mae.values(), fmt_pm(*r["60min/rmse"], digits=3),
                      fmt_pm(*r["60min/mape"], digits=1, scale=100.0), fmt_pm(*r["d60"], digits=3) if r["d60"] else "",
                      f"{100 * r['closed']:.0f} %" if r["closed"] is not None else "", kd, r["n"]])
    best = baseline_row(block, HORIZONS, digits=3)
    if best:
        lines.append(["best baseline", "–", *best, "–", "–", "", "", "", "–"])
    out += ["Test masked MAE (mean ± sample std over seeds); Δ60 vs plain is the paired difference to the plain "
            "student at 60 minutes (same seeds, negative = better); gap closed is the share of the plain student's "
            "60-minute gap to the teacher; for a distilled setting, Δ60 of distillation is the paired difference to "
            "the same student trained without a distillation loss (named), which is what distillation adds:", ""]
    out += table(["setting", "params", "15 min", "30 min", "60 min", "avg 12", "60 min RMSE", "60 min MAPE %",
                  "Δ60 vs plain", "60-min gap closed", "Δ60 of distillation (vs)", "seeds"], lines)
    out += baseline_notes(block) + [""]
    findings = []
    best_row = max((r for r in rows if r["closed"] is not None and r["name"] != "plain"), key=lambda r: r["closed"],
                   default=None)
    if best_row:
        findings.append(f"- Closest to the teacher at 60 minutes: **{best_row['name']}**, {100 * best_row['closed']:.0f} "
                        f"% of the plain student's gap closed (goal {100 * GOAL_GAP_CLOSED:.0f} %: "
                        f"{'met' if best_row['closed'] >= GOAL_GAP_CLOSED else 'not met'}).")
    kd_rows = [r for r in rows if r["distilled"] and r["kd_d60"]]
    if kd_rows:
        pays = [r["name"] for r in kd_rows if r["pays"]]
        findings.append(f"- Distillation: {len(pays)} of {len(kd_rows)} distilled settings beat the same student "
                        "trained without a distillation loss at 60 minutes by more than twice its seed spread"
                        + (f" ({', '.join(pays)})" if pays else "") + "; what distillation adds at 60 minutes ranges "
                        f"{min(r['kd_d60'][0] for r in kd_rows):+.3f} to {max(r['kd_d60'][0] for r in kd_rows):+.3f}.")
    return out + (["**What it shows:**", "", *findings, ""] if findings else [])


def md_sections(text: str, headings: tuple[str, ...]) -> list[str]:
    """The ``## `` sections of Markdown ``text`` whose heading starts with one of ``headings``, in the file's
    order, each heading demoted to ``####``."""
    parts = [part for part in ("\n" + text).split("\n## ")[1:] if part.startswith(tuple(h[3:] for h in headings))]
    return [line for part in parts for line in [*("#### " + part.rstrip()).splitlines(), ""]]


def regime_section(results_dir: Path) -> str:
    """"When distillation pays": for each regime study (``distill-regime-*.json`` with its recipes), the test MAE
    table and the distilled − plain table paired by seed of the Markdown its script wrote beside it ("" for
    none)."""
    lines = []
    for path in sorted(Path(results_dir).glob("distill-regime-*.json")):
        report, md = json.loads(path.read_text()), path.with_suffix(".md")
        if isinstance(report, dict) and "recipes" in report and md.exists():  # else a screen record
            lines += [f"### `{path.name}` ({report.get('date')})", "", f"Command: `{report.get('command')}`", "",
                      *md_sections(md.read_text(), ("## Test masked MAE", "## Distilled − plain"))]
    if not lines:
        return ""
    return "\n".join(["", "## When distillation pays (distilled − plain, paired by seed)", "",
                      "From `python -m benchmarks.distill_regime` (retired; `python -m benchmarks.screen regime` runs "
                      "the study now): each study's tables as its script wrote them beside its record, which states "
                      "its teacher and budget (negative = distillation helps; it pays where it is better by more than "
                      "twice the plain student's seed spread, which needs two seeds or more).", "", *lines]) + "\n"
