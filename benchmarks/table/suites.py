"""The accuracy suites (``benchmarks.run``): :func:`aggregate` (rows over seeds: mean ± sample std, cost,
speed-ups against the teacher), :func:`suite_section` (accuracy beside the best baseline, cost, T-GCN metrics,
findings) and :func:`published_section` (the quoted numbers of the papers, from their record)."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.table.records import (BUSY, HORIZONS, baseline_notes, baseline_row, fmt_count, fmt_ms, fmt_pm,
                                      kd_gap, mae_cells, mean_spread, part_lines, passes, quoted, table, title)

KIND_ORDER = {"teacher": 0, "student": 1, "student+kd": 2, "peer": 3}
HORIZON_NAMES = {"15min": "15 min", "30min": "30 min", "60min": "60 min", "avg": "avg 12"}


def _latency(model: dict[str, Any] | None, key: str) -> float | None:
    """A model's median latency at ``key``; ``None`` when not measured or timed on a busy machine."""
    entry = ((model or {}).get("latency") or {}).get(key) or {}
    return None if "median_ms" not in entry or entry.get("busy") else float(entry["median_ms"])


def aggregate(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model of a suite record: metrics as ``(mean, std, n)`` over seeds, cost columns, and the
    speed-up against the teacher (teacher median latency / model median latency, same device, mode, batch)."""
    rows = []
    cuda = record["environment"]["device"] == "cuda"
    teacher = next((m for m in record["models"] if m["kind"] == "teacher"), None)
    for m in sorted(record["models"], key=lambda m: (KIND_ORDER.get(m["kind"], 9), m["label"])):
        seeds = m["seeds"]
        row: dict[str, Any] = {"label": m["label"], "model": m["model"], "kind": m["kind"], "n": len(seeds),
                               "parameters": m.get("parameters"), "flops": m.get("flops")}
        for h in HORIZONS:
            for metric in ("mae", "rmse", "mape"):
                row[f"{h}/{metric}"] = mean_spread(((s.get("test") or {}).get(h) or {}).get(metric) for s in seeds)
        row["train_s_epoch"] = mean_spread(s.get("train_seconds_per_epoch") for s in seeds)
        row["full_epoch_s"] = mean_spread(s.get("full_epoch_seconds_est") for s in seeds)
        row["batches"] = (seeds[0].get("batches_per_epoch"), seeds[0].get("batches_per_full_epoch")) if seeds else (None, None)
        row["peak_mb"] = mean_spread(s.get("peak_gpu_mem_mb") for s in seeds) if cuda else None
        for mode in ("eager", "cuda-graph"):
            for b in (1, 64):
                key = f"{'cuda' if cuda else 'cpu'}-{mode}-b{b}"
                row[key], t = _latency(m, key), _latency(teacher, key)
                row[f"busy/{key}"] = bool(((m.get("latency") or {}).get(key) or {}).get("busy"))
                row[f"speedup/{key}"] = (t / row[key]) if (t and row[key]) else None
        if seeds and "tgcn" in seeds[0]:
            row["tgcn"] = {h: {k: mean_spread(s["tgcn"].get(h, {}).get(k) for s in seeds)
                               for k in ("rmse", "mae", "accuracy", "r2", "var")} for h in seeds[0]["tgcn"]}
        rows.append(row)
    return rows


def trios(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """``(teacher, plain, distilled)`` of every distilled student among a suite's rows that has its plain
    version (none without a teacher)."""
    teacher = next((r for r in rows if r["kind"] == "teacher"), None)
    by_label = {r["label"]: r for r in rows}
    return [(teacher, by_label[r["label"].removesuffix(" + KD")], r) for r in rows
            if teacher is not None and r["kind"] == "student+kd" and r["label"].removesuffix(" + KD") in by_label]


def _steps(rec: dict[str, Any]) -> int | None:
    """Optimiser steps the first model of a run (the teacher) took: epochs run x batches per epoch of its
    first seed (the budget's epochs where the seed does not say)."""
    return next((int(s["batches_per_epoch"]) * int(s.get("epochs_run") or rec["budget"]["epochs"])
                 for m in rec.get("models", []) for s in m.get("seeds", []) if s.get("batches_per_epoch")), None)


def _findings(rec: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Plain statements computed from the rows (no claims the numbers do not carry)."""
    out = []
    cuda = rec["environment"]["device"] == "cuda"
    lat, key = ("CUDA-graph", "cuda-cuda-graph-b1") if cuda else ("CPU", "cpu-eager-b1")
    for teacher, plain, r in trios(rows):
        t, p, k = teacher["avg/mae"], plain["avg/mae"], r["avg/mae"]
        if not all(x[2] for x in (t, p, k)):
            continue
        diff, closed = kd_gap(t[0], p[0], k[0])
        gain = -diff
        verdict = ("within the seed spread" if p[2] > 1 and abs(gain) <= max(p[1], k[1]) else
                   "from a single seed, so no spread is known" if p[2] == 1 else "beyond the seed spread")
        closes = (f"; it closes {100 * closed:.0f}% of the plain student's gap to the teacher"
                  if closed is not None and gain > 0 else "")
        sps = sorted(x for x in (r.get(f"speedup/{key}"), plain.get(f"speedup/{key}")) if x)
        speed = (f"{sps[0]:.1f}–{sps[1]:.1f}× faster than the teacher ({lat} latency at batch 1; the plain and the "
                 "distilled student share one architecture, so the range is timing noise)"
                 if len(sps) == 2 and sps[1] > 1.05 * sps[0] else
                 f"{sps[-1]:.1f}× faster than the teacher ({lat} latency at batch 1)" if sps else None)
        out.append(f"- **{r['label']}**: average masked MAE {k[0]:.3f} vs {p[0]:.3f} trained plainly "
                   f"({'better' if gain > 0 else 'worse'} by {abs(gain):.3f}, {verdict}){closes}; teacher {t[0]:.3f}. "
                   f"It has {fmt_count(r['parameters'])} parameters against the teacher's "
                   f"{fmt_count(teacher['parameters'])}" + (f" and is {speed}" if speed else "") + ".")
    peers = [r for r in rows if r["kind"] == "peer" and r["avg/mae"][2]]
    teacher = next((r for r in rows if r["kind"] == "teacher"), None)
    if peers and teacher and teacher["avg/mae"][2]:
        best = min(peers, key=lambda r: r["avg/mae"][0])
        out.append(f"- Best peer: {best['label']}, average MAE {best['avg/mae'][0]:.3f} (teacher "
                   f"{teacher['avg/mae'][0]:.3f}).")
    return out


def _accuracy_table(rows: list[dict[str, Any]], block: dict[str, Any] | None) -> list[str]:
    """Test MAE / RMSE / MAPE per model and horizon, then the best baseline per horizon as a row."""
    header = ["model", "kind", *[f"{HORIZON_NAMES[h]} {m}" for h in HORIZONS for m in ("MAE", "RMSE", "MAPE %")],
              "seeds"]
    lines = []
    for r in rows:
        mae = mae_cells(block, {h: r[f"{h}/mae"] for h in HORIZONS}, HORIZONS)
        lines.append([r["label"], r["kind"], *[c for h in HORIZONS for c in (
            mae[h], fmt_pm(*r[f"{h}/rmse"]), fmt_pm(*r[f"{h}/mape"], scale=100.0, digits=1))], r["n"]])
    best = baseline_row(block, HORIZONS)
    if best:
        lines.append(["best baseline", "baseline", *[c for cell in best for c in (cell, "–", "–")], "–"])
    return table(header, lines) + baseline_notes(block)


def _cost_table(rows: list[dict[str, Any]], cuda: bool) -> list[str]:
    """Parameters, FLOPs, latency and speed-ups against the teacher, training time and peak GPU memory."""
    keys = (["cuda-eager-b1", "cuda-eager-b64", "cuda-cuda-graph-b1", "cuda-cuda-graph-b64"] if cuda
            else ["cpu-eager-b1", "cpu-eager-b64"])
    names = (["CUDA eager b1 ms", "CUDA eager b64 ms", "CUDA graph b1 ms", "CUDA graph b64 ms",
              "speed-up b1 (graph)", "speed-up b64 (graph)"] if cuda else
             ["**CPU** eager b1 ms", "**CPU** eager b64 ms", "speed-up b1 (CPU)", "speed-up b64 (CPU)"])

    def as_run(r: dict[str, Any]) -> str:
        b_run, b_full = r["batches"]
        return fmt_pm(*r["train_s_epoch"], digits=1) + (f" ({b_run}/{b_full} batches)" if b_run and b_full and
                                                         b_run < b_full else "")

    return table(["model", "params", "FLOPs (b1)", *names, "train s/epoch (as run)", "est. s/full epoch",
                  "peak GPU MiB"],
                 [[r["label"], fmt_count(r["parameters"]), fmt_count(r["flops"]),
                   *[BUSY if r.get(f"busy/{k}") else fmt_ms(r.get(k)) for k in keys],
                   *[f"{r[f'speedup/{k}']:.1f}×" if r.get(f"speedup/{k}") else "–" for k in keys[-2:]],
                   as_run(r), fmt_pm(*r["full_epoch_s"], digits=1),
                   "n/a (CPU)" if r["peak_mb"] is None else fmt_pm(*r["peak_mb"], digits=0)] for r in rows])


def _los_loop_lines(rec: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """T-GCN's own metrics, its regions and how our protocol differs from its code's."""
    ds = rec["dataset"]

    def span(key: str) -> str:
        lo, hi = ds.get("regions", {}).get(key) or ("?", "?")
        return f"[{lo}, {hi})"

    return (["**T-GCN metrics** (mph, test part, over each forecast's first 3 / 6 / 9 / 12 steps):", ""]
            + table(["model", "horizon", "RMSE", "MAE", "Accuracy", "R²", "var", "seeds"],
                    [[r["label"], h, fmt_pm(*m["rmse"], digits=3), fmt_pm(*m["mae"], digits=3),
                      *[fmt_pm(*m[k], digits=4) for k in ("accuracy", "r2", "var")], r["n"]]
                     for r in rows for h, m in (r.get("tgcn") or {}).items()])
            + ["", f"Regions (steps, half-open): train {span('train')}, validation {span('val')} (model selection), "
                   f"test {span('test')}; scaled by the training maximum {ds.get('max_value_train', float('nan')):.1f} "
                   f"mph (whole-series maximum {ds.get('max_value_all', float('nan')):.1f}). Adjacency: "
                   f"{ds.get('adjacency')}.", "",
               "Differences from T-GCN's own protocol: its code picks the epoch with the best *test* score and "
               "reports that epoch, which selects on the test set; we select on the held-out last 10% of the training "
               "steps and score the test part once. T-GCN trains one model per horizon; we train one 12-step model "
               "and score its first 3/6/9/12 steps. T-GCN divides by the maximum of the whole series; we divide by "
               "the training maximum.", "", f"Published T-GCN Los-loop numbers: {quoted()['los_loop_source']}", ""])


def suite_section(rec: dict[str, Any]) -> list[str]:
    """A suite's section: its data, budget and command, the accuracy and cost tables, the T-GCN metrics of a
    Los-loop run, and what it shows."""
    env, b, ds = rec["environment"], rec["budget"], rec["dataset"]
    cuda, rows = env["device"] == "cuda", aggregate(rec)
    windows = ds.get("windows")
    budget = (f"{len(b['seeds'])} seed(s) {b['seeds']}, at most {b['epochs']} epochs (early-stopping patience "
              f"{b['patience']})" + (f", at most {b['limit_batches']} batches per epoch" if b.get("limit_batches") else "")
              + (f"; a time budget of {b['time_budget_s']:.0f} s shared by the training runs (each stops after the "
                 "epoch that spends its share)" if b.get("time_budget_s") else "")
              + f", batch {b['batch_size']}, AdamW lr {b['lr']}; teacher {_steps(rec) or '?'} optimiser steps"
              + (f", at least {passes(rec)[0]:.0f} passes over the training windows per model" if passes(rec) else "")
              + (f"; teacher hyperparameters {json.dumps(b['teacher_hparams'])}" if b.get("teacher_hparams")
                 else "; teacher at the paper's size") + (" (--tiny: tiny data and teacher)" if b.get("tiny") else "")
              + f". Device: {env['device'].upper()} — {env['device_name']}; torch {env['torch']}"
              + (f", CUDA {env['cuda']}" if env.get("cuda") and cuda else "")
              + f", {env['threads']} thread(s). Wall time {rec['wall_seconds'] / 60:.1f} min.")
    out = [f"## {title(rec)}", "", rec.get("description", ""), "",
           f"Data: `{ds['name']}`, {ds['nodes']} sensors, {ds['steps']} steps of {ds['interval_minutes']} min"
           + (f"; windows train/val/test {windows[0]}/{windows[1]}/{windows[2]}" if windows else "") + ".", "",
           f"Budget: {budget}", "", f"Command: `{rec['command']}`", "", *part_lines(rec)]
    out += [line for note in rec.get("notes", []) for line in (f"> {note}", "")]
    out += ["**Accuracy** (test split, masked, mean ± std over seeds):", "",
            *_accuracy_table(rows, rec.get("baselines")), "",
            "**Cost**" + ("" if cuda else " — this run had no GPU: latency is **CPU** latency, CUDA latency was not "
                          "measured and peak GPU memory does not apply") + ":", "", *_cost_table(rows, cuda), ""]
    if not any("busy" in (e or {}) for m in rec["models"] for e in (m.get("latency") or {}).values()):
        out += ["*The load average was not recorded with these timings (a run older than that record): whether the "
                "machine was idle is not known.*", ""]
    if rec["protocol"] == "los-loop":
        out += _los_loop_lines(rec, rows)
    findings = _findings(rec, rows)
    return out + (["**What it shows:**", "", *findings, ""] if findings else [])


def published_section(dataset: str) -> list[str]:
    """The numbers the papers report on ``dataset`` (quoted, not measured; :func:`quoted`), each with its source
    and check, and the models whose number could not be verified."""
    rec = quoted()
    quotes = [q for q in rec["quotes"] if q["dataset"] == dataset]
    horizons = sorted({h for q in quotes for h in q["metrics"]}, key=HORIZONS.index)
    cells = [[("not verified" if q["metrics"][h].get(k) is None else f"{q['metrics'][h][k]:.2f}")
              if q["metrics"].get(h) else "–" for h in horizons for k in ("mae", "rmse", "mape")] for q in quotes]
    marks = [f"- {m} {why}." for m, why in rec["check_marks"].items() if any(m in q["checked"] for q in quotes)]
    missing = [f"- {u['model']}: no number quoted — {u['why']}." for u in rec["unverified"] if u["dataset"] == dataset]
    return ([f"Quoted, **not measured here** ({dataset}):", ""]
            + table(["model", *[f"{h} {m}" for h in horizons for m in ("MAE", "RMSE", "MAPE %")],
                     "source (paper, table)", "checked"],
                    [[q["model"], *c, f"{q['source']}, {q['table']}" + (f" ({q['note']})" if q.get("note") else ""),
                      q["checked"]] for q, c in zip(quotes, cells)])
            + ["", *marks] + (["", *missing] if missing else []))
