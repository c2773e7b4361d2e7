"""Aggregate benchmark JSON files over seeds and render ``benchmarks/RESULTS.md``.

:func:`aggregate` turns one suite record into rows (mean ± sample standard deviation over seeds,
``n`` given); :func:`render` writes the whole results section from every record in
``benchmarks/results/`` (newest run of each suite and device first), the quoted published numbers
(:mod:`benchmarks.published`), the scaling study, and the parts of a ``python -m benchmarks.gpu`` run
(environment, latency table, model timing, tuning study; a part cut short by its time budget or failed
says so). Nothing here measures anything.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmarks.published import CHECK_MARKS, LOS_LOOP_SOURCE, UNVERIFIED, quotes_for

__all__ = ["mean_spread", "aggregate", "load_records", "render", "write_markdown", "fmt_pm", "power_law"]

HORIZONS = ("15min", "30min", "60min", "avg")
SUITE_ORDER = ("environment", "latency", "model-timing", "synthetic", "metr-la-week", "los-loop", "metr-la", "pems-bay",
               "pems04", "pems08", "scaling", "tuning")
#: protocols of the accuracy suites (records with models trained over seeds)
SUITE_PROTOCOLS = ("dcrnn", "los-loop")
#: the latency goals of the study (README): a width-32 student under 0.1 ms at batch 1 as a CUDA graph, at
#: least 10x faster than Graph WaveNet at batch 1 and 5x at batch 64, 100x faster than PGT's recurrent peers
GOALS = {"b1_graph_ms": 0.1, "speedup_b1": 10.0, "speedup_b64": 5.0, "speedup_peers": 100.0}
#: torch-geometric-temporal's recurrent peers in the latency table
RECURRENT_PEERS = ("pgt-a3tgcn2", "pgt-tgcn2-stepped", "pgt-batched-dcrnn")
KIND_ORDER = {"teacher": 0, "student": 1, "student+kd": 2, "peer": 3}


# ============================================================================ numbers


def mean_spread(values: Iterable[float | None]) -> tuple[float, float, int]:
    """``(mean, sample std, n)`` of the finite values (std 0 for one value; NaN mean for none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return math.nan, math.nan, 0
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)


def fmt_pm(mean: float, spread: float, n: int, *, digits: int = 2, scale: float = 1.0) -> str:
    """``"3.12 ± 0.04"`` (``n`` > 1), ``"3.12"`` (``n`` = 1), ``"–"`` (no value)."""
    if n == 0 or not math.isfinite(mean):
        return "–"
    if n == 1:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {spread * scale:.{digits}f}"


def _fmt_count(x: float | int | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    x = float(x)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f} {unit}"
    return f"{x:.0f}"


def _fmt_ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def power_law(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares fit of ``y = a * x^k`` in log-log space -> ``(a, k)`` (``None`` with < 2 points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    k = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return math.exp(my - k * mx), k


# ============================================================================ aggregation


def _metric(seed: dict[str, Any], horizon: str, metric: str, source: str = "test") -> float | None:
    return (seed.get(source) or {}).get(horizon, {}).get(metric)


def _latency(model: dict[str, Any], key: str) -> float | None:
    entry = (model.get("latency") or {}).get(key)
    if not entry or "median_ms" not in entry:
        return None
    return float(entry["median_ms"])


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


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every ``*.json`` record in ``results_dir`` with this schema, in suite order, newest first."""
    records = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and str(rec.get("schema", "")).startswith("stgkd-bench/"):
            rec["_file"] = path.name
            records.append(rec)
    order = {name: i for i, name in enumerate(SUITE_ORDER)}
    records.sort(key=lambda r: r.get("started", ""), reverse=True)
    records.sort(key=lambda r: order.get(r["suite"], len(order)))
    return records


# ============================================================================ rendering


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


def _accuracy_table(rows: list[dict[str, Any]], *, title_suffix: str = "") -> list[str]:
    head = "| model | kind | " + " | ".join(
        f"{h} MAE | {h} RMSE | {h} MAPE %" for h in ("15 min", "30 min", "60 min", "avg 12")) + " | seeds |"
    lines = [head, "|" + "---|" * (2 + 12 + 1)]
    for r in rows:
        cells = []
        for h in HORIZONS:
            cells.append(fmt_pm(*r[f"{h}/mae"]))
            cells.append(fmt_pm(*r[f"{h}/rmse"]))
            cells.append(fmt_pm(*r[f"{h}/mape"], scale=100.0, digits=1))
        lines.append(f"| {r['label']} | {r['kind']} | " + " | ".join(cells) + f" | {r['n']} |")
    return lines


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
        lat = [_fmt_ms(r.get(k)) for k in keys]
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
    by_label = {r["label"]: r for r in rows}
    teacher = next((r for r in rows if r["kind"] == "teacher"), None)
    device = rec["environment"]["device"]
    lat_key = "cuda-cuda-graph-b1" if device == "cuda" else "cpu-eager-b1"
    lat_name = "CUDA-graph latency at batch 1" if device == "cuda" else "CPU latency at batch 1"
    for r in rows:
        if r["kind"] != "student+kd":
            continue
        plain = by_label.get(r["label"].removesuffix(" + KD"))
        if not plain or not teacher:
            continue
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


def _scaling_section(rec: dict[str, Any]) -> list[str]:
    lines = [f"### Scaling — {rec['environment']['device'].upper()} — {rec['date']}", "",
             rec.get("description", ""), "", f"Command: `{rec['command']}`", "", _budget_line_scaling(rec), ""]
    pts = rec["points"]
    device = rec["environment"]["device"]
    kind = "CUDA graph" if device == "cuda" else "**CPU** eager"
    lat_batches = list(rec["budget"].get("latency_batches", [1, 64]))
    lat_head = " | ".join(f"{kind} latency b{b} ms" for b in lat_batches)
    lines += [f"| model | N | edges | params | train s/epoch (est., full epoch) | s/batch | {lat_head} | peak GPU MiB (train) |",
              "|" + "---|" * (7 + len(lat_batches))]
    for p in pts:
        mem = "n/a (CPU)" if p.get("peak_gpu_mem_mb") is None else f"{p['peak_gpu_mem_mb']:.0f}"
        lat = " | ".join(_fmt_ms(p.get(f"latency_b{b}_ms")) for b in lat_batches)
        lines.append(f"| {p['model']} | {p['nodes']:,} | {p['edges']:,} | {_fmt_count(p['parameters'])} | "
                     f"{p['full_epoch_seconds_est']:.1f} | {p['seconds_per_batch']:.3f} | {lat} | {mem} |")
    lines.append("")
    lines.append("Power-law fits `cost = a · N^k` over the sizes measured (log-log least squares):")
    lines.append("")
    for model in sorted({p["model"] for p in pts}):
        mp = [p for p in pts if p["model"] == model]
        ns = [p["nodes"] for p in mp]
        keys = [("seconds_per_batch", "training time per batch")]
        keys += [(f"latency_b{b}_ms", f"latency at batch {b}") for b in lat_batches]
        keys += [("peak_gpu_mem_mb", "peak GPU memory")]
        for key, what in keys:
            fit = power_law(ns, [p.get(key) or 0 for p in mp])
            if fit:
                lines.append(f"- {model}: {what} grows as N^{fit[1]:.2f} (over N = {', '.join(map(str, ns))}).")
    for note in rec.get("notes", []):
        lines.append(f"- Note: {note}")
    return lines


def _budget_line_scaling(rec: dict[str, Any]) -> str:
    b = rec["budget"]
    env = rec["environment"]
    return (f"{b['batches']} timed training batches of {b['batch_size']} windows per model and size (after "
            f"{b['warmup_batches']} untimed), latency {b['latency_iters']} calls; device "
            f"{env['device'].upper()} — {env['device_name']}, torch {env['torch']}, {env['threads']} thread(s).")


# ============================================================================ parts of a GPU run


#: the key holding what a record measured, per protocol (a part cut short before its first unit has none)
PAYLOAD = {"environment": "details", "latency": "results", "model-timing": "models", "tuning": "report",
           "scaling": "points", "dcrnn": "models", "los-loop": "models"}


def _has_payload(rec: dict[str, Any]) -> bool:
    return PAYLOAD.get(rec.get("protocol", ""), "") in rec or rec.get("protocol") not in PAYLOAD


def _is_suite(rec: dict[str, Any]) -> bool:
    return rec.get("protocol") in SUITE_PROTOCOLS and "models" in rec and not (rec.get("run") or {}).get("error")


def _part_lines(rec: dict[str, Any]) -> list[str]:
    """Notes on how a part of a GPU run ended (cut short by its time budget), and smoke runs."""
    run = rec.get("run") or {}
    out = []
    if run.get("smoke"):
        out += ["> **Smoke run** (`--smoke`): toy sizes on the CPU, checking that the part runs end to end; its "
                "figures mean nothing.", ""]
    if rec.get("completed") is False and rec.get("reached"):
        budget = f" of {run['budget_s']:g} s" if run.get("budget_s") is not None else ""
        out += [f"> **Cut short** by its time budget{budget}: stopped before {rec['reached']}; everything before it "
                "is reported.", ""]
    return out


def _failed_section(rec: dict[str, Any]) -> list[str]:
    run = rec.get("run") or {}
    return [f"## {rec.get('title', rec['suite'])} — {rec['environment']['device'].upper()} — {rec['date']} "
            f"(`{rec['_file']}`)", "", f"Command: `{rec['command']}`", "",
            f"**Failed** after {run.get('wall_s', 0):.0f} s: `{run.get('error')}`; no figures."]


def _gpu_runs(records: list[dict[str, Any]]) -> list[str]:
    """One table per ``python -m benchmarks.gpu`` run: its parts, budgets, wall times and how each ended."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if (rec.get("run") or {}).get("id"):
            runs.setdefault(rec["run"]["id"], []).append(rec)
    out: list[str] = []
    for run_id, recs in sorted(runs.items(), reverse=True):
        recs = sorted(recs, key=lambda r: r["run"]["index"])
        env = recs[0]["environment"]
        smoke = " (smoke run, toy sizes)" if recs[0]["run"].get("smoke") else ""
        out += [f"## GPU run `{run_id}` — {env['device'].upper()} — {env['device_name']}{smoke}", "",
                f"Command: `{recs[0]['command']}`", "",
                "| # | part | budget s | wall s | ended | file |", "|---:|---|---:|---:|---|---|"]
        for r in recs:
            run = r["run"]
            ended = ("failed: " + str(run["error"])[:80] if run.get("error") else
                     f"cut short before {run['reached']}" if run.get("reached") else "completed")
            out.append(f"| {run['index']} | {run['part']} | {run['budget_s']:g} | {run['wall_s']:.1f} | {ended} | "
                       f"`{r['_file']}` |")
        out.append("")
    return out


def _section_head(rec: dict[str, Any]) -> list[str]:
    return [f"## {rec.get('title', rec['suite'])} — {rec['environment']['device'].upper()} — {rec['date']} "
            f"(`{rec['_file']}`)", "", f"Command: `{rec['command']}`", ""] + _part_lines(rec)


def _environment_section(rec: dict[str, Any]) -> list[str]:
    env, d = rec["environment"], rec.get("details", {})
    out = _section_head(rec)
    out.append(f"- device: **{env['device'].upper()}** — {env['device_name']}; torch {env['torch']}, CUDA "
               f"{env.get('cuda')}, Python {env.get('python')}, {env.get('platform')}, {d.get('cpu_count')} CPUs")
    gpu = d.get("gpu") or {}
    if "skipped" in gpu:
        out.append(f"- GPU: skipped: {gpu['skipped']}")
    else:
        out.append(f"- GPU: {gpu.get('name')}, compute capability {gpu.get('capability')}, {gpu.get('memory_gib')} GiB, "
                   f"{gpu.get('multiprocessors')} SMs, {gpu.get('devices')} device(s); cuDNN {gpu.get('cudnn')}; TF32 "
                   f"matmul {gpu.get('tf32_matmul')}, cuDNN {gpu.get('tf32_cudnn')}; float32 matmul precision "
                   f"{d.get('float32_matmul_precision')}")
    smi = d.get("nvidia_smi") or {}
    if "skipped" in smi:
        out.append(f"- nvidia-smi: skipped: {smi['skipped']}")
    elif smi:
        out.append("- nvidia-smi: " + "; ".join(f"{k} {v}" for k, v in smi.items()))
    pk = d.get("packages") or {}
    out.append("- packages: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in pk.items()))
    for note in rec.get("notes", []):
        out += ["", f"> {note}"]
    return out


def _lat_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    if "skipped" in row:
        return f"skipped: {str(row['skipped'])[:40]}"
    return f"{row['median_ms']:.3f}"


def _latency_section(rec: dict[str, Any]) -> list[str]:
    from benchmarks.latency import rows_table

    rows = rec.get("results", [])
    st = rec.get("settings", {})
    out = _section_head(rec)
    out += [f"Median ms per call ({st.get('iters')} timed calls after {st.get('warmup')} warm-up, "
            "`stgkd.latency.measure`; inputs already on the device; bf16 = autocast); untrained models of the right "
            "shape on a seeded random graph (8 neighbours per sensor).", ""]
    main = [r for r in rows if r.get("section") == "main"]
    by: dict[tuple, dict[str, Any]] = {}
    for r in main:
        by[(r["model"], r.get("batch"), r.get("mode"), r.get("dtype"))] = r
    models = list(dict.fromkeys(r["model"] for r in main))
    batches = sorted({r["batch"] for r in main if r.get("batch") is not None})
    combos = [(b, m, d) for b in batches for m in ("eager", "cuda-graph") for d in ("fp32", "bf16")
              if any(k[1:] == (b, m, d) for k in by)]
    if main:
        out += ["| model | params | " + " | ".join(f"b{b} {'graph' if m == 'cuda-graph' else m} {d}" for b, m, d in combos)
                + " |", "|---|---:|" + "---:|" * len(combos)]
        for model in models:
            params = next((r.get("parameters") for r in main if r["model"] == model and "parameters" in r), None)
            built = next((r for r in main if r["model"] == model and "batch" not in r), None)
            if built is not None:
                out.append(f"| {model} | | skipped: {str(built['skipped'])[:60]} |" + " |" * (len(combos) - 1))
                continue
            out.append(f"| {model} | {_fmt_count(params)} | "
                       + " | ".join(_lat_cell(by.get((model, b, m, d))) for b, m, d in combos) + " |")
        out.append("")
    peers = [r for r in rows if r.get("section") == "peers"]
    if peers:
        out += ["torch-geometric-temporal's models (batch 1, eager, fp32):", ""] + rows_table(peers) + [""]
    goals = _latency_goals(rec)
    if goals:
        out += ["**Against the goals** (computed from the table):", ""] + goals
    return out


def _latency_goals(rec: dict[str, Any]) -> list[str]:
    rows = [r for r in rec.get("results", []) if "median_ms" in r]

    def get(model: str, batch: int, mode: str, dtype: str = "fp32") -> float | None:
        return next((r["median_ms"] for r in rows if r["model"] == model and r["batch"] == batch and r["mode"] == mode
                     and r["dtype"] == dtype), None)

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    skipped = next((r["skipped"] for r in rec.get("results", []) if r.get("mode") == "cuda-graph" and "skipped" in r),
                   None)
    batches = sorted({r["batch"] for r in rows if r.get("section") == "main"})
    big = max(batches) if batches else 64
    out = []
    for family in rec.get("students", []):
        label = f"{family}-h32"
        g1, g64 = get(label, 1, "cuda-graph"), get(label, big, "cuda-graph")
        t1, t64 = get("graph-wavenet", 1, "cuda-graph"), get("graph-wavenet", big, "cuda-graph")
        if g1 is None:
            why = f"skipped: {skipped}" if skipped else "not measured"
            out.append(f"- {label}: CUDA-graph latency {why}; the goals (< {GOALS['b1_graph_ms']} ms at batch 1, "
                       f"≥ {GOALS['speedup_b1']:.0f}× / {GOALS['speedup_b64']:.0f}× faster than Graph WaveNet at batch 1 / "
                       f"{big}) are not assessed.")
        else:
            parts = [f"{g1:.3f} ms at batch 1 as a CUDA graph (goal < {GOALS['b1_graph_ms']} ms: "
                     f"{verdict(g1 < GOALS['b1_graph_ms'])})"]
            if t1:
                parts.append(f"{t1 / g1:.1f}× faster than Graph WaveNet's CUDA graph at batch 1 (goal ≥ "
                             f"{GOALS['speedup_b1']:.0f}×: {verdict(t1 / g1 >= GOALS['speedup_b1'])})")
            if t64 and g64:
                parts.append(f"{t64 / g64:.1f}× at batch {big} (goal ≥ {GOALS['speedup_b64']:.0f}×: "
                             f"{verdict(t64 / g64 >= GOALS['speedup_b64'])})")
            out.append(f"- {label}: " + "; ".join(parts) + ".")
        e1 = get(label, 1, "eager")
        peer_ms = {p: get(p, 1, "eager") for p in RECURRENT_PEERS}
        peer_ms = {p: v for p, v in peer_ms.items() if v}
        if peer_ms and (g1 or e1):
            best = g1 or e1
            how = "its CUDA graph" if g1 else "eager (no CUDA graph measured)"
            ratios = ", ".join(f"{p.removeprefix('pgt-')} {v / best:.0f}×" + (f" ({v / e1:.0f}× eager to eager)" if g1 and e1 else "")
                               for p, v in peer_ms.items())
            low = min(peer_ms.values()) / best
            out.append(f"- {label} against torch-geometric-temporal's recurrent peers at batch 1 (they run eager, "
                       f"{label} as {how}): {ratios}; goal ≥ {GOALS['speedup_peers']:.0f}× against each: "
                       f"{verdict(low >= GOALS['speedup_peers'])}.")
    return out


def _timing_section(rec: dict[str, Any]) -> list[str]:
    from benchmarks.model_timing import models_table

    out = _section_head(rec)
    out += [f"Median ms per call ({rec.get('iters')} timed after {rec.get('warmup')} warm-up) on input "
            f"(B, 12, {rec.get('nodes')}, 2), graph: {rec.get('graph')}; forward in eval mode without gradients, "
            "forward+backward in train mode with the forecast's mean as the loss; bf16 = autocast.", ""]
    if rec.get("models"):
        out += models_table(rec["models"])
    return out


def _tuning_section(rec: dict[str, Any]) -> list[str]:
    report = rec.get("report") or {}
    cal = rec.get("calibration") or {}
    c = report.get("counts") or {}
    lat = (report.get("settings") or {}).get("latency") or {}
    out = _section_head(rec)
    out += [f"Study command: `{rec.get('search_command')}`", ""]
    for note in rec.get("notes", []):
        out += [f"> {note}", ""]
    if cal:
        widest = ", ".join(f"{k} {v:.3f} ms" for k, v in (cal.get("widest") or {}).items())
        out += [f"Latency budget **{cal['budget_ms']:.4g} ms** ({lat.get('label') or cal.get('mode')}): "
                f"{cal.get('rule')}; reference gcn-gru width 32, one layer {cal['reference']['median_ms']:.3f} ms; "
                f"widest: {widest}.", ""]
    if c:
        out += [f"Trials: {c.get('total')} — {c.get('complete')} complete, {c.get('pruned')} pruned, "
                f"{c.get('infeasible')} infeasible (over the budget, not trained), {c.get('failed')} failed.", ""]
    best = report.get("best")
    if best:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        out += [f"Best feasible trial {best['number']}: val MAE **{best['val_mae']:.4f}** at "
                f"**{best['latency_ms']:.4g} ms**; {params}."]
        test = ((report.get("export") or {}).get("test") or {}).get("avg")
        if test:
            out += ["", f"Its test split (exported student): MAE {test['mae']:.3f}, RMSE {test['rmse']:.3f}, "
                        f"MAPE {100 * test['mape']:.1f} %."]
        out.append("")
    elif report:
        out += ["No trial met the budget and completed.", ""]
    files = rec.get("files") or {}
    if files:
        out += ["The study's own report and plots, beside this file: "
                + ", ".join(f"[`{v}`](results/{v})" for v in files.values()) + ".", ""]
    front = report.get("pareto_front") or []
    if front:
        out += ["| trial | val MAE | latency ms | family | hidden | layers |", "|---:|---:|---:|---|---:|---:|"]
        for t in front:
            p = t.get("params", {})
            out.append(f"| {t['number']} | {t['val_mae']:.4f} | {t['latency_ms']:.4g} | {p.get('family', '')} | "
                       f"{p.get('hidden', '')} | {p.get('layers', '')} |")
    return out


PART_SECTIONS = {
    "environment": _environment_section,
    "latency": _latency_section,
    "model-timing": _timing_section,
    "tuning": _tuning_section,
}


INTRO = """\
# Benchmark results

*Generated by `python -m benchmarks.run` from the JSON files in `benchmarks/results/` (regenerate with
`python -m benchmarks.run --render`); every number below was measured by the run named beside it,
except in the sections marked **quoted**. Do not edit by hand.*

## What was run

Each suite trains, per seed, the teacher (Graph WaveNet), each student twice — plainly (supervised
masked MAE) and distilled from that seed's teacher (stgkd's default objective: supervised MAE +
trust-weighted output distillation + feature matching + relation distillation) — and peers from
torch-geometric-temporal, all on the same windows, split, scaler, optimiser (AdamW, cosine
schedule, gradient clipping 5) and budget, with the best-validation epoch kept and scored once on
the test split. Metrics are the DCRNN masked MAE / RMSE / MAPE over every test window, at 15, 30
and 60 minutes and pooled over the 12 horizons, as mean ± sample standard deviation over seeds.
Latency is `stgkd.latency.measure` (median of timed calls on random inputs of the model's shape; on
CUDA with events after synchronisation, and replaying a captured CUDA graph); FLOPs are
`stgkd.nn.count_flops` at batch 1; speed-up is the teacher's median latency divided by the model's
at the same device, mode and batch.

Runs in this file:

"""


def _headline(rec: dict[str, Any]) -> list[str]:
    """One bullet per (teacher, plain student, distilled student) trio of a suite record."""
    rows = aggregate(rec)
    teacher = next((r for r in rows if r["kind"] == "teacher"), None)
    if teacher is None:
        return []
    device = rec["environment"]["device"]
    lat_key = "cuda-cuda-graph-b1" if device == "cuda" else "cpu-eager-b1"

    def maes(r: dict[str, Any]) -> str:
        return " / ".join(fmt_pm(*r[f"{h}/mae"]) for h in ("15min", "30min", "60min"))

    out = []
    for kd in (r for r in rows if r["kind"] == "student+kd"):
        plain = next((r for r in rows if r["label"] == kd["label"].removesuffix(" + KD")), None)
        if plain is None:
            continue
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
        budget = (f"a {time_budget:.0f} s time budget shared by the training runs" if time_budget else
                  f"{_steps(rec) or '?'} optimiser steps per model")
        out.append(
            f"- **{rec.get('title', rec['suite'])}** ({device.upper()}, {teacher['n']} seed(s), {budget}): "
            f"test MAE at 15 / 30 / 60 min — teacher {maes(teacher)}; {plain['label']} {maes(plain)}; "
            f"distilled {maes(kd)}" + (f" ({', '.join(extra)})" if extra else "") + "."
        )
    return out


def _steps(rec: dict[str, Any]) -> int | None:
    """Optimiser steps per model of a run (epochs x batches per epoch of its first model's first seed)."""
    for m in rec.get("models", []):
        for s in m.get("seeds", []):
            b = s.get("batches_per_epoch")
            if b:
                return int(b) * int(rec["budget"]["epochs"])
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


def render(records: list[dict[str, Any]]) -> str:
    """The whole RESULTS.md text for ``records``."""
    out = [INTRO]
    if not records:
        out.append("- (none yet: run `python -m benchmarks.run --suite synthetic`)\n")
    for rec in records:
        out.append(f"- `{rec['_file']}` — {rec.get('title', rec['suite'])}, {rec['environment']['device'].upper()} "
                   f"({rec['environment']['device_name']}), {rec['date']}: `{rec['command']}`")
    out.append("")
    headlines = [line for rec in records if _is_suite(rec) for line in _headline(rec)]
    if headlines:
        out += ["## Headline", ""] + headlines + [""]
    out += _gpu_runs(records)
    seen_published: set[str] = set()
    for rec in records:
        if (rec.get("run") or {}).get("error"):
            out += _failed_section(rec) + [""]
            continue
        if not _has_payload(rec):
            out += _section_head(rec) + ["Nothing measured."] + [""]
            continue
        if rec["suite"] == "scaling":
            out += ["## Scaling with the network size", ""] + _part_lines(rec) + _scaling_section(rec) + [""]
            continue
        if rec.get("protocol") in PART_SECTIONS:
            out += PART_SECTIONS[rec["protocol"]](rec) + [""]
            continue
        if not _is_suite(rec):
            continue
        device = rec["environment"]["device"]
        rows = aggregate(rec)
        out += [f"## {rec.get('title', rec['suite'])} — {device.upper()} — {rec['date']} (`{rec['_file']}`)", ""]
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
        out += _accuracy_table(rows)
        out.append("")
        out.append("**Cost**" + (" — this run had no GPU: latency is **CPU** latency, the CUDA columns were not "
                                 "measured and peak GPU memory does not apply" if device != "cuda" else "") + ":")
        out.append("")
        out += _cost_table(rows, device)
        out.append("")
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
        pub = rec.get("published")
        if pub and pub not in seen_published:
            seen_published.add(pub)
            out += _published_section(pub) + [""]
    out += _budget_sensitivity(records)
    listed = {rec.get("published") for rec in records}
    remaining = [d for d in ("metr-la", "pems-bay", "pems04", "pems08") if d not in listed]
    if remaining:
        out += ["## Published results on the full datasets (quoted, not measured)", "",
                "No run on these full datasets is recorded in `benchmarks/results/` (they are not in the "
                "repository; `python -m benchmarks.run --suite metr-la` names the files and where to get "
                "them). The numbers below are quoted from the papers for orientation; they are not "
                "comparable with the one-week runs above.", ""]
        for d in remaining:
            out += [f"### {d}", ""] + _published_section(d) + [""]
    out += [SHORTFALLS]
    return "\n".join(out).rstrip() + "\n"


SHORTFALLS = """\
## Where we fall short

- **No GPU in the recorded runs.** Every real-data number here comes from a 2-core CPU shared with
  other jobs. The budgets are tiny next to the papers' (100+ epochs of the full datasets): 24 or 72
  optimiser steps of 16 windows per model, one seed, and a Graph WaveNet teacher at reduced width
  (16 residual/dilation, 64 skip, 128 end channels; 46 k instead of 301 k parameters). Teacher,
  students and peers are compared at a small, equal budget, not at convergence, and with one seed
  no spread is known. The CUDA columns (eager and CUDA-graph latency at batch 1 and 64) and peak
  GPU memory come from the same code with `--device cuda` but were not measured.
- **A week is not METR-LA.** `metr-la-week` and `los-loop` use 1/17 of METR-LA (five days of
  training data, one weekend); the test part is the last day and a half (Tuesday afternoon to
  Wednesday night). Published full-dataset numbers are quoted for orientation only.
- **Distillation is not tuned.** The distilled students use stgkd's default objective; at these
  budgets its effect on one seed is small and of either sign, so no claim about distillation is
  supported by these runs yet (see the per-run statements).
- **Lineups were trimmed on the CPU.** The real-data runs train one student (gcn-gru, hidden 32)
  and one peer (PGT TGCN). The other peers of the full-dataset suites (PGT A3TGCN and GConvGRU;
  the DCRNN / STGCN / AGCRN / MTGNN wrappers of PGT layers) and the `gru` student were not run on
  real data here.
- **CPU timings are noisy.** Other jobs shared the machine; seconds per epoch and CPU latency are
  what was observed, not a clean measurement, and the scaling study times only two steps per point.
- **Not every published number could be verified.** Those missing (STID; Graph WaveNet on
  PEMS04/08; T-GCN's Los-loop table) are listed as such rather than filled in.
"""


def write_markdown(results_dir: Path, markdown: Path) -> None:
    """Regenerate ``markdown`` from every record in ``results_dir`` (atomically)."""
    text = render(load_records(results_dir))
    markdown = Path(markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    tmp = markdown.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(markdown)
