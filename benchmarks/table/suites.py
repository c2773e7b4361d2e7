"""The accuracy suites (``benchmarks.run``): rows aggregated over seeds, and their sections of RESULTS.md.

:func:`aggregate` turns one suite record into rows (mean ± sample standard deviation over seeds, ``n``
given, cost columns, speed-ups against the teacher); :func:`_suite_section` renders a suite's accuracy,
cost, T-GCN metrics and findings; the quoted published numbers go beside it.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.published import CHECK_MARKS, LOS_LOOP_SOURCE, UNVERIFIED, quotes_for
from benchmarks.table.baselines import baseline_row, mae_cells
from benchmarks.table.records import (BUSY, HORIZONS, KIND_ORDER, _fmt_count, _fmt_ms, _is_suite, _part_lines,
                                      _passes, _title, fmt_pm, maes_15_30_60, mean_spread)

__all__ = ["aggregate"]


def _metric(seed: dict[str, Any], horizon: str, metric: str, source: str = "test") -> float | None:
    return (seed.get(source) or {}).get(horizon, {}).get(metric)


def _latency(model: dict[str, Any], key: str) -> float | None:
    """A model's median latency at ``key``; ``None`` when not measured or timed on a busy machine."""
    entry = (model.get("latency") or {}).get(key)
    if not entry or "median_ms" not in entry or entry.get("busy"):
        return None
    return float(entry["median_ms"])


def _latency_busy(model: dict[str, Any], key: str) -> bool:
    return bool(((model.get("latency") or {}).get(key) or {}).get("busy"))


def aggregate(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model of a suite record: metrics as ``(mean, std, n)`` over seeds, cost columns,
    and the speed-up against the teacher (teacher median latency / model median latency, same
    device, mode and batch)."""
    rows = []
    device = record["environment"]["device"]
    teacher = next((m for m in record["models"] if m["kind"] == "teacher"), None)
    for m in sorted(record["models"], key=lambda m: (KIND_ORDER.get(m["kind"], 9), m["label"])):
        seeds = m["seeds"]
        row: dict[str, Any] = {"label": m["label"], "model": m["model"], "kind": m["kind"],
                               "parameters": m.get("parameters"), "flops": m.get("flops"), "n": len(seeds)}
        for h in HORIZONS:
            for metric in ("mae", "rmse", "mape"):
                row[f"{h}/{metric}"] = mean_spread(_metric(s, h, metric) for s in seeds)
        row["train_s_epoch"] = mean_spread(s.get("train_seconds_per_epoch") for s in seeds)
        row["full_epoch_s"] = mean_spread(s.get("full_epoch_seconds_est") for s in seeds)
        row["batches"] = (seeds[0].get("batches_per_epoch"), seeds[0].get("batches_per_full_epoch")) if seeds else (None, None)
        row["epochs_run"] = mean_spread(s.get("epochs_run") for s in seeds)
        peaks = [s.get("peak_gpu_mem_mb") for s in seeds]
        row["peak_mb"] = mean_spread(peaks) if device == "cuda" else None
        prefix = "cuda" if device == "cuda" else "cpu"
        for mode in ("eager", "cuda-graph"):
            for b in (1, 64):
                key = f"{prefix}-{mode}-b{b}"
                row[key] = _latency(m, key)
                row[f"busy/{key}"] = _latency_busy(m, key)
                t = _latency(teacher, key) if teacher else None
                row[f"speedup/{key}"] = (t / row[key]) if (t and row[key]) else None
        if "tgcn" in (seeds[0] if seeds else {}):
            row["tgcn"] = {
                h: {k: mean_spread(s["tgcn"].get(h, {}).get(k) for s in seeds)
                    for k in ("rmse", "mae", "accuracy", "r2", "var")}
                for h in seeds[0]["tgcn"]
            }
        rows.append(row)
    return rows


def trios(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """``(teacher, plain, distilled)`` of every distilled student among a suite's rows that has its plain
    version (none without a teacher)."""
    teacher = next((r for r in rows if r["kind"] == "teacher"), None)
    by_label = {r["label"]: r for r in rows}
    return [(teacher, by_label[r["label"].removesuffix(" + KD")], r) for r in rows
            if teacher is not None and r["kind"] == "student+kd" and r["label"].removesuffix(" + KD") in by_label]


def _budget_line(rec: dict[str, Any]) -> str:
    b = rec["budget"]
    env = rec["environment"]
    lim = f", at most {b['limit_batches']} batches per epoch" if b.get("limit_batches") else ""
    tiny = " (--tiny: tiny data and teacher)" if b.get("tiny") else ""
    if b.get("time_budget_s"):
        lim += (f"; a time budget of {b['time_budget_s']:.0f} s shared by the training runs (each stops after the "
                "epoch that spends its share)")
    th = b.get("teacher_hparams") or {}
    teacher = f"; teacher hyperparameters {json.dumps(th)}" if th else "; teacher at the paper's size"
    return (
        f"{len(b['seeds'])} seed(s) {b['seeds']}, at most {b['epochs']} epochs (early-stopping patience "
        f"{b['patience']}){lim}, batch {b['batch_size']}, AdamW lr {b['lr']}{teacher}{tiny}. "
        f"Device: {env['device'].upper()} — {env['device_name']}; torch {env['torch']}"
        + (f", CUDA {env['cuda']}" if env.get("cuda") and env["device"] == "cuda" else "")
        + f", {env['threads']} thread(s). Wall time {rec['wall_seconds'] / 60:.1f} min."
    )


def _accuracy_table(rows: list[dict[str, Any]], *, baselines: dict[str, Any] | None = None) -> list[str]:
    """Test MAE / RMSE / MAPE per model; with a ``baselines`` block, the best baseline per horizon as a row
    and a mark on every MAE worse than it (:mod:`benchmarks.table.baselines`)."""
    head = "| model | kind | " + " | ".join(
        f"{h} MAE | {h} RMSE | {h} MAPE %" for h in ("15 min", "30 min", "60 min", "avg 12")) + " | seeds |"
    lines = [head, "|" + "---|" * (2 + 12 + 1)]
    for r in rows:
        mae = mae_cells(baselines, {h: r[f"{h}/mae"] for h in HORIZONS}, HORIZONS)
        cells = [c for h in HORIZONS
                 for c in (mae[h], fmt_pm(*r[f"{h}/rmse"]), fmt_pm(*r[f"{h}/mape"], scale=100.0, digits=1))]
        lines.append(f"| {r['label']} | {r['kind']} | " + " | ".join(cells) + f" | {r['n']} |")
    return lines + baseline_row(baselines, "| best baseline | baseline | ", HORIZONS, " | – |",
                                per_horizon=3)


def _cost_table(rows: list[dict[str, Any]], device: str) -> list[str]:
    if device == "cuda":
        lat_head = "CUDA eager b1 ms | CUDA eager b64 ms | CUDA graph b1 ms | CUDA graph b64 ms | speed-up b1 (graph) | speed-up b64 (graph)"
        keys = ["cuda-eager-b1", "cuda-eager-b64", "cuda-cuda-graph-b1", "cuda-cuda-graph-b64"]
        sp = ["speedup/cuda-cuda-graph-b1", "speedup/cuda-cuda-graph-b64"]
    else:
        lat_head = ("**CPU** eager b1 ms | **CPU** eager b64 ms | CUDA eager b1 | CUDA eager b64 | CUDA graph b1 | "
                    "CUDA graph b64 | speed-up b1 (CPU) | speed-up b64 (CPU)")
        keys = ["cpu-eager-b1", "cpu-eager-b64"]
        sp = ["speedup/cpu-eager-b1", "speedup/cpu-eager-b64"]
    head = f"| model | params | FLOPs (b1) | {lat_head} | train s/epoch (as run) | est. s/full epoch | peak GPU MiB |"
    ncols = 3 + len(lat_head.split("|")) + 3
    lines = [head, "|" + "---|" * ncols]
    for r in rows:
        lat = [BUSY if r.get(f"busy/{k}") else _fmt_ms(r.get(k)) for k in keys]
        if device != "cuda":
            lat += ["not measured"] * 4
        lat += [f"{r[k]:.1f}×" if r.get(k) else "–" for k in sp]
        b_run, b_full = r["batches"]
        as_run = fmt_pm(*r["train_s_epoch"], digits=1)
        if b_run and b_full and b_run < b_full:
            as_run += f" ({b_run}/{b_full} batches)"
        peak = "n/a (CPU)" if r["peak_mb"] is None else fmt_pm(*r["peak_mb"], digits=0)
        lines.append(f"| {r['label']} | {_fmt_count(r['parameters'])} | {_fmt_count(r['flops'])} | " + " | ".join(lat)
                     + f" | {as_run} | {fmt_pm(*r['full_epoch_s'], digits=1)} | {peak} |")
    return lines


def _findings(rec: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Plain statements computed from the rows (no claims the numbers do not carry)."""
    out = []
    device = rec["environment"]["device"]
    lat_key = "cuda-cuda-graph-b1" if device == "cuda" else "cpu-eager-b1"
    lat_name = "CUDA-graph latency at batch 1" if device == "cuda" else "CPU latency at batch 1"
    for teacher, plain, r in trios(rows):
        t, p, k = teacher["avg/mae"], plain["avg/mae"], r["avg/mae"]
        if not all(x[2] for x in (t, p, k)):
            continue
        gain = p[0] - k[0]
        spread = max(p[1], k[1])
        verdict = ("within the seed spread" if p[2] > 1 and abs(gain) <= spread else
                   "from a single seed, so no spread is known" if p[2] == 1 else "beyond the seed spread")
        gap = p[0] - t[0]
        rec_txt = (f"; it closes {100 * gain / gap:.0f}% of the plain student's gap to the teacher"
                   if gap > 0 and gain > 0 else "")
        sps = sorted(x for x in (r.get(f"speedup/{lat_key}"), plain.get(f"speedup/{lat_key}")) if x)
        if len(sps) == 2 and sps[1] > 1.05 * sps[0]:
            sp_txt = (f" and is {sps[0]:.1f}–{sps[1]:.1f}× faster than the teacher ({lat_name}; the plain and the "
                      "distilled student share one architecture, so the range is timing noise)")
        else:
            sp_txt = f" and is {sps[-1]:.1f}× faster than the teacher ({lat_name})" if sps else ""
        out.append(
            f"- **{r['label']}**: average masked MAE {k[0]:.3f} vs {p[0]:.3f} trained plainly "
            f"({'better' if gain > 0 else 'worse'} by {abs(gain):.3f}, {verdict}){rec_txt}; teacher {t[0]:.3f}. "
            f"It has {_fmt_count(r['parameters'])} parameters against the teacher's "
            f"{_fmt_count(teacher['parameters'])}{sp_txt}."
        )
    peers = [r for r in rows if r["kind"] == "peer" and r["avg/mae"][2]]
    teacher = next((r for r in rows if r["kind"] == "teacher"), None)
    if peers and teacher and teacher["avg/mae"][2]:
        best = min(peers, key=lambda r: r["avg/mae"][0])
        out.append(f"- Best peer: {best['label']}, average MAE {best['avg/mae'][0]:.3f} (teacher "
                   f"{teacher['avg/mae'][0]:.3f}).")
    return out


def _tgcn_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | horizon | RMSE | MAE | Accuracy | R² | var | seeds |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for h, m in (r.get("tgcn") or {}).items():
            lines.append(
                f"| {r['label']} | {h} | {fmt_pm(*m['rmse'], digits=3)} | {fmt_pm(*m['mae'], digits=3)} | "
                f"{fmt_pm(*m['accuracy'], digits=4)} | {fmt_pm(*m['r2'], digits=4)} | {fmt_pm(*m['var'], digits=4)} | "
                f"{r['n']} |"
            )
    return lines


def _published_section(dataset: str) -> list[str]:
    quotes = quotes_for(dataset)
    lines = [f"Quoted, **not measured here** ({dataset}):", ""]
    horizons = sorted({h for q in quotes for h in q.metrics}, key=lambda h: HORIZONS.index(h))
    head = "| model | " + " | ".join(f"{h} MAE | {h} RMSE | {h} MAPE %" for h in horizons) + " | source (paper, table) | checked |"
    lines += [head, "|" + "---|" * (1 + 3 * len(horizons) + 2)]

    def cell(v: float | None) -> str:
        return "not verified" if v is None else f"{v:.2f}"

    for q in quotes:
        cells = []
        for h in horizons:
            m = q.metrics.get(h)
            cells += [cell(m.get(k)) if m else "–" for k in ("mae", "rmse", "mape")]
        note = f" ({q.note})" if q.note else ""
        lines.append(f"| {q.model} | " + " | ".join(cells) + f" | {q.source}, {q.table}{note} | {q.checked} |")
    marks = sorted({mark for q in quotes for mark in CHECK_MARKS if mark in q.checked})
    lines.append("")
    lines += [f"- {mark} {CHECK_MARKS[mark]}." for mark in marks]
    missing = [(m, why) for (m, d), why in UNVERIFIED.items() if d == dataset]
    if missing:
        lines.append("")
        lines += [f"- {m}: no number quoted — {why}." for m, why in missing]
    return lines


def _headline(rec: dict[str, Any]) -> list[str]:
    """One bullet per (teacher, plain student, distilled student) trio of a suite record."""
    device = rec["environment"]["device"]
    lat_key = "cuda-cuda-graph-b1" if device == "cuda" else "cpu-eager-b1"
    out = []
    for teacher, plain, kd in trios(aggregate(rec)):
        sps = sorted(x for x in (plain.get(f"speedup/{lat_key}"), kd.get(f"speedup/{lat_key}")) if x)
        ratio = (teacher["parameters"] / kd["parameters"]) if teacher.get("parameters") and kd.get("parameters") else None
        extra = []
        if ratio:
            extra.append(f"{ratio:.0f}× fewer parameters")
        where = "CUDA graph" if device == "cuda" else "CPU"
        if len(sps) == 2 and sps[1] > 1.05 * sps[0]:
            extra.append(f"{sps[0]:.1f}–{sps[1]:.1f}× faster at batch 1 ({where}; the same architecture timed "
                         "twice, the range is timing noise)")
        elif sps:
            extra.append(f"{sps[-1]:.1f}× faster at batch 1 ({where})")
        time_budget = rec["budget"].get("time_budget_s")
        passes = _passes(rec)
        budget = ((f"a {time_budget:.0f} s time budget shared by the training runs" if time_budget else
                   f"at most {rec['budget']['epochs']} epochs")
                  + f", teacher {_steps(rec) or '?'} optimiser steps of {rec['budget']['batch_size']} windows"
                  + (f", at least {passes[0]:.0f} passes over the training windows per model" if passes else ""))
        out.append(
            f"- **{rec.get('title', rec['suite'])}** ({device.upper()}, {teacher['n']} seed(s), {budget}): "
            f"test MAE at 15 / 30 / 60 min — teacher {maes_15_30_60(teacher)}; {plain['label']} "
            f"{maes_15_30_60(plain)}; distilled {maes_15_30_60(kd)}" + (f" ({', '.join(extra)})" if extra else "") + "."
        )
    return out


def _steps(rec: dict[str, Any]) -> int | None:
    """Optimiser steps the first model of a run (the teacher) took: epochs run x batches per epoch of its
    first seed (the budget's epochs where the seed does not say)."""
    for m in rec.get("models", []):
        for s in m.get("seeds", []):
            b = s.get("batches_per_epoch")
            if b:
                return int(b) * int(s.get("epochs_run") or rec["budget"]["epochs"])
    return None


def _budget_sensitivity(records: list[dict[str, Any]]) -> list[str]:
    """Where one suite was run at several budgets on one device: average test MAE per budget."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        if _is_suite(rec):
            groups.setdefault((rec["suite"], rec["environment"]["device"]), []).append(rec)
    out: list[str] = []
    for (suite, device), recs in groups.items():
        if len(recs) < 2:
            continue
        recs = sorted(recs, key=lambda r: _steps(r) or 0)
        labels = []
        for rec in recs:
            for r in aggregate(rec):
                if r["label"] not in labels:
                    labels.append(r["label"])
        out += [f"### {suite} on {device.upper()}: the same models at different budgets", "",
                "| run | optimiser steps per model | lr | " + " | ".join(f"{l} avg MAE" for l in labels) + " |",
                "|" + "---|" * (3 + len(labels))]
        for rec in recs:
            rows = {r["label"]: r for r in aggregate(rec)}
            cells = [fmt_pm(*rows[l]["avg/mae"]) if l in rows else "–" for l in labels]
            out.append(f"| `{rec['_file']}` | {_steps(rec) or '–'} | {rec['budget']['lr']} | " + " | ".join(cells) + " |")
        out += [""]
    if out:
        out = ["## Budget sensitivity", "",
               "Every model in these runs is far from convergence; how much the numbers move with the budget "
               "is part of the result:", ""] + out
    return out


def _suite_section(rec: dict[str, Any]) -> list[str]:
    device = rec["environment"]["device"]
    rows = aggregate(rec)
    out = [f"## {_title(rec)}", ""]
    out += [rec.get("description", ""), ""]
    ds = rec["dataset"]
    windows = ds.get("windows")
    out.append(f"Data: `{ds['name']}`, {ds['nodes']} sensors, {ds['steps']} steps of {ds['interval_minutes']} min"
               + (f"; windows train/val/test {windows[0]}/{windows[1]}/{windows[2]}" if windows else "") + ".")
    out.append("")
    out.append(f"Budget: {_budget_line(rec)}")
    out.append("")
    out.append(f"Command: `{rec['command']}`")
    out.append("")
    out += _part_lines(rec)
    for note in rec.get("notes", []):
        out.append(f"> {note}")
        out.append("")
    out.append("**Accuracy** (test split, masked, mean ± std over seeds):")
    out.append("")
    out += _accuracy_table(rows, baselines=rec.get("baselines"))
    out.append("")
    out.append("**Cost**" + (" — this run had no GPU: latency is **CPU** latency, the CUDA columns were not "
                             "measured and peak GPU memory does not apply" if device != "cuda" else "") + ":")
    out.append("")
    out += _cost_table(rows, device)
    out.append("")
    if not any("busy" in (e or {}) for m in rec["models"] for e in (m.get("latency") or {}).values()):
        out += ["*The load average was not recorded with these timings (a run older than that record): whether "
                "the machine was idle is not known.*", ""]
    if rec["protocol"] == "los-loop":
        ds_regions = ds.get("regions", {})
        out += ["**T-GCN metrics** (mph, test part, over each forecast's first 3 / 6 / 9 / 12 steps):", ""]
        out += _tgcn_table(rows)

        def span(key: str) -> str:
            lo_hi = ds_regions.get(key) or ("?", "?")
            return f"[{lo_hi[0]}, {lo_hi[1]})"

        out += ["", f"Regions (steps, half-open): train {span('train')}, validation {span('val')} "
                    f"(model selection), test {span('test')}; scaled by the training maximum "
                    f"{ds.get('max_value_train', float('nan')):.1f} mph (whole-series maximum "
                    f"{ds.get('max_value_all', float('nan')):.1f}). Adjacency: {ds.get('adjacency')}.", "",
                "Differences from T-GCN's own protocol: its code picks the epoch with the best *test* "
                "score and reports that epoch, which selects on the test set; we select on the held-out "
                "last 10% of the training steps and score the test part once. T-GCN trains one model per "
                "horizon; we train one 12-step model and score its first 3/6/9/12 steps. T-GCN divides by "
                "the maximum of the whole series; we divide by the training maximum.", "",
                f"Published T-GCN Los-loop numbers: {LOS_LOOP_SOURCE}", ""]
    findings = _findings(rec, rows)
    if findings:
        out += ["**What it shows:**", ""] + findings + [""]
    return out


