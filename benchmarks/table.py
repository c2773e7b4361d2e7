"""Aggregate benchmark JSON files over seeds and render ``benchmarks/RESULTS.md``.

:func:`aggregate` turns one suite record into rows (mean ± sample standard deviation over seeds,
``n`` given); :func:`render` writes the whole results section from every record in
``benchmarks/results/`` (newest run of each suite and device first), the quoted published numbers
(:mod:`benchmarks.published`), the scaling study, the distillation ablations against a converged
teacher (``distill-ablation-*.json``), and the parts of a ``python -m benchmarks.gpu`` run
(environment, latency table, model timing, tuning study; a part cut short by its time budget or failed
says so). Nothing here measures anything.

What the main body shows, and what goes to the appendix ("Appendix: reduced and smoke runs"), is one
rule, :func:`appendix_reason`: a smoke or ``--tiny`` run, a file name marked reduced (``-24steps``,
``-reduced``, ``-smoke``, ``-tiny``), a training run in which some model saw fewer than
:data:`MIN_PASSES` passes over the training windows, or a cost study timing fewer than
:data:`MIN_TIMED_CALLS` calls per figure goes to the appendix. A latency figure timed on a busy machine
(``"busy": true``, :func:`stgkd.latency.is_busy`) is never shown as a number: its cell says "busy, not a
figure" and speed-ups and goals leave it out. "Where we fall short" is computed from the records
(:func:`goals`), never fixed text.
"""

from __future__ import annotations

import json
import math
import statistics
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmarks.published import CHECK_MARKS, LOS_LOOP_SOURCE, UNVERIFIED, quotes_for

__all__ = ["mean_spread", "aggregate", "load_records", "render", "write_markdown", "fmt_pm", "power_law",
           "appendix_reason", "goals", "MIN_PASSES", "MIN_TIMED_CALLS", "BUSY"]

#: the schema of every benchmark record (``benchmarks.run``, ``benchmarks.latency``, ``benchmarks.gpu``)
SCHEMA = "stgkd-bench/1"
HORIZONS = ("15min", "30min", "60min", "avg")
SUITE_ORDER = ("environment", "latency", "model-timing", "synthetic", "metr-la-week", "distill-ablation", "los-loop",
               "metr-la", "pems-bay", "pems04", "pems08", "scaling", "tuning")
#: protocols of the accuracy suites (records with models trained over seeds)
SUITE_PROTOCOLS = ("dcrnn", "los-loop")
#: the latency goals of the study (README): a width-32 student under 0.1 ms at batch 1 as a CUDA graph, at
#: least 10x faster than Graph WaveNet at batch 1 and 5x at batch 64, 100x faster than PGT's recurrent peers
GOALS = {"b1_graph_ms": 0.1, "speedup_b1": 10.0, "speedup_b64": 5.0, "speedup_peers": 100.0}
#: torch-geometric-temporal's recurrent peers in the latency table
RECURRENT_PEERS = ("pgt-a3tgcn2", "pgt-tgcn2-stepped", "pgt-batched-dcrnn")
KIND_ORDER = {"teacher": 0, "student": 1, "student+kd": 2, "peer": 3}
#: a training run belongs in the main body only when each of its models saw at least this many passes over
#: the training windows (epochs x batches run per epoch / batches in a full epoch); fewer is a smoke test of
#: the pipeline, not a result (the 24- and 72-step CPU runs saw 0.3 and 0.8)
MIN_PASSES = 10
#: a cost study (latency, model timing, scaling) belongs in the main body only with at least this many timed
#: calls per figure
MIN_TIMED_CALLS = 10
#: file-name markers of runs reduced on purpose
REDUCED_MARKER = re.compile(r"-(\d+steps|reduced|smoke|tiny)(?=[-.])")
#: what a cell says instead of a latency timed on a busy machine
BUSY = "busy, not a figure"
#: the accuracy goal of the study (README): a student closes at least half of its plain version's 60-minute
#: gap to the teacher
GOAL_GAP_CLOSED = 0.5
#: seeds an accuracy figure needs before its spread means something
GOAL_SEEDS = 3
#: the full datasets (a week of METR-LA is not METR-LA)
FULL_DATASETS = ("metr-la", "pems-bay", "pems04", "pems08")


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


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every ``*.json`` record in ``results_dir`` with this schema, and every distillation ablation
    (``distill-ablation-*.json``, :func:`_as_ablation`), in suite order, newest first."""
    records = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and str(rec.get("schema", "")).startswith("stgkd-bench/"):
            rec["_file"] = path.name
            records.append(rec)
        elif isinstance(rec, dict) and path.name.startswith("distill-ablation-"):
            ablation = _as_ablation(rec, path.name)
            if ablation is not None:
                records.append(ablation)
    order = {name: i for i, name in enumerate(SUITE_ORDER)}
    records.sort(key=lambda r: r.get("started", ""), reverse=True)
    records.sort(key=lambda r: order.get(r["suite"], len(order)))
    return records


def _as_ablation(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A ``benchmarks.distill_ablation`` report as a record of protocol ``distill-ablation`` (suite,
    device, date and start filled in from its own fields); ``None`` when it is not one."""
    if not {"teacher", "settings", "student", "seeds"} <= set(report):
        return None
    machine = str(report.get("machine", ""))
    device = machine.split(":", 1)[0].strip().lower() if ":" in machine else "cpu"
    return dict(report, _file=name, schema="stgkd-bench/1", suite="distill-ablation", protocol="distill-ablation",
                title="METR-LA week: students against a converged teacher", started=str(report.get("date", "")),
                date=str(report.get("date", ""))[:10],
                environment={"device": device, "device_name": machine.split(":", 1)[-1].strip()})


# ============================================================================ what the main body shows


def _passes(rec: dict[str, Any]) -> tuple[float, str] | None:
    """``(passes, model)``: the fewest passes over the training windows any model of a training run saw
    (mean over its seeds), and that model; ``None`` for records that train nothing."""
    if rec.get("protocol") == "distill-ablation":
        t, s = rec["teacher"].get("epochs"), rec.get("student_epochs")
        if t is None or s is None:
            return None
        return (float(t), "the teacher") if t <= s else (float(s), "each student")
    if not _is_suite(rec):
        return None
    least: tuple[float, str] | None = None
    for m in rec["models"]:
        per_seed = [s["epochs_run"] * s["batches_per_epoch"] / s["batches_per_full_epoch"] for s in m["seeds"]
                    if s.get("epochs_run") is not None and s.get("batches_per_epoch") and s.get("batches_per_full_epoch")]
        if per_seed and (least is None or statistics.fmean(per_seed) < least[0]):
            least = (statistics.fmean(per_seed), m["label"])
    return least


def _timed_calls(rec: dict[str, Any]) -> int | None:
    """Timed calls per figure of a cost study (latency, model timing, scaling); ``None`` for others."""
    proto = rec.get("protocol")
    if proto == "latency":
        return (rec.get("settings") or {}).get("iters")
    if proto == "model-timing":
        return rec.get("iters")
    if proto == "scaling":
        return (rec.get("budget") or {}).get("latency_iters")
    return None


def appendix_reason(rec: dict[str, Any]) -> str | None:
    """Why a record goes to "Appendix: reduced and smoke runs" (``None``: it belongs in the main body).

    In order: a smoke run (``--smoke``) or a ``--tiny`` one; a file name marked reduced (``-24steps``,
    ``-reduced``, ``-smoke``, ``-tiny``); a training run in which some model saw fewer than
    :data:`MIN_PASSES` passes over the training windows; a cost study with fewer than
    :data:`MIN_TIMED_CALLS` timed calls per figure."""
    if (rec.get("run") or {}).get("smoke"):
        return "a smoke run (`--smoke`): toy sizes, checking that the code runs; its figures mean nothing"
    if (rec.get("budget") or {}).get("tiny"):
        return "a `--tiny` run: tiny data and teacher, checking that the code runs"
    marker = REDUCED_MARKER.search(rec.get("_file", ""))
    if marker:
        return f"its file name marks it reduced (`{marker.group(0)}`)"
    passes = _passes(rec)
    if passes is not None and passes[0] < MIN_PASSES:
        return (f"{passes[1]} saw {passes[0]:.1f} passes over the training windows (the main body needs "
                f"{MIN_PASSES}): far from convergence")
    calls = _timed_calls(rec)
    if calls is not None and calls < MIN_TIMED_CALLS:
        return f"{calls} timed calls per figure (the main body needs {MIN_TIMED_CALLS})"
    return None


# ============================================================================ distillation ablations


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
            f"| teacher | {t['parameters']:,} | " + " | ".join(f"{t['test'][h]['mae']:.3f}" for h in HORIZONS)
            + f" | {t['test']['60min']['rmse']:.3f} | {100 * t['test']['60min']['mape']:.1f} | | | | 1 |"]
    for r in rows:
        d60 = fmt_pm(*r["d60"], digits=3) if r["d60"] else ""
        closed = f"{100 * r['closed']:.0f} %" if r["closed"] is not None else ""
        kd = (f"{fmt_pm(*r['kd_d60'], digits=3)} (vs {r['baseline']})" if r["kd_d60"] else
              "no plain run of this student" if r["distilled"] else "")
        out.append(f"| {r['name']} | {_fmt_count(r['parameters'])} | "
                   + " | ".join(fmt_pm(*r[f"{h}/mae"], digits=3) for h in HORIZONS)
                   + f" | {fmt_pm(*r['60min/rmse'], digits=3)} | {fmt_pm(*r['60min/mape'], digits=1, scale=100.0)} | "
                   f"{d60} | {closed} | {kd} | {r['n']} |")
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

    def maes(r: dict[str, Any]) -> str:
        return " / ".join(fmt_pm(*r[f"{h}/mae"]) for h in ("15min", "30min", "60min"))

    files = ", ".join(f"`{r['_file']}`" for r in group)
    line = (f"- **{first['title']}** ({first['environment']['device'].upper()}, {len(first['seeds'])} seeds; teacher "
            f"{t['parameters'] / 1e3:.0f} k parameters trained {t['epochs']} epochs, students {first['student_epochs']} "
            f"epochs; {files}): test MAE at 15 / 30 / 60 min — teacher "
            + " / ".join(f"{t['test'][h]['mae']:.2f}" for h in ("15min", "30min", "60min"))
            + f"; `{first['student']}` width {first.get('width')} plain {maes(plain)}")
    kd = [r for r in rows if r["distilled"] and r["60min/mae"][2]]
    if kd:
        best_kd = min(kd, key=lambda r: r["60min/mae"][0])
        line += f"; best distilled ({best_kd['name']}) {maes(best_kd)}"
    scored = [r for r in rows if r["closed"] is not None and r["name"] != "plain"]
    if scored:
        best = max(scored, key=lambda r: r["closed"])
        line += f"; best share of the 60-min gap closed: {100 * best['closed']:.0f} % ({best['name']})"
    return [line + "."]


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
        lat = " | ".join(BUSY if p.get("busy") else _fmt_ms(p.get(f"latency_b{b}_ms")) for b in lat_batches)
        lines.append(f"| {p['model']} | {p['nodes']:,} | {p['edges']:,} | {_fmt_count(p['parameters'])} | "
                     f"{p['full_epoch_seconds_est']:.1f} | {p['seconds_per_batch']:.3f} | {lat} | {mem} |")
    lines.append("")
    lines.append("Power-law fits `cost = a · N^k` over the sizes measured (log-log least squares):")
    lines.append("")
    for model in sorted({p["model"] for p in pts}):
        mp = [p for p in pts if p["model"] == model and not p.get("busy")]
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
    if row.get("busy"):
        return BUSY
    return f"{row['median_ms']:.3f}"


def _latency_section(rec: dict[str, Any]) -> list[str]:
    rows = rec.get("results", [])
    st = rec.get("settings", {})
    out = _section_head(rec)
    out += [f"Median ms per call ({st.get('iters')} timed calls after {st.get('warmup')} warm-up, "
            "`stgkd.latency.measure`; inputs already on the device; bf16 = autocast); untrained models of the right "
            "shape on a seeded random graph (8 neighbours per sensor).", ""]
    busy = [r for r in rows if r.get("busy")]
    if busy:
        loads = sorted({(r.get("load_average") or [0])[0] for r in busy})
        out += [f"> **{len(busy)} of {len(rows)} settings were timed on a busy machine** (1-minute load average "
                f"{loads[0]}–{loads[-1]} on {busy[0].get('cpu_count')} cores): they show \"{BUSY}\" and no goal "
                "uses them.", ""]
    out += _latency_grid([r for r in rows if r.get("section") in ("main", "peers")])
    peers = [r for r in rows if r.get("section") == "peers"]
    if peers:
        out += [f"torch-geometric-temporal's models: {', '.join(dict.fromkeys(r['model'] for r in peers))} (PGT's "
                "recurrent cells at their batch size, hidden size of `--peer-hidden`).", ""]
    goals = _latency_goals(rec)
    if goals:
        out += ["**Against the goals** (computed from the table):", ""] + goals
    return out


def _latency_grid(rows: list[dict[str, Any]]) -> list[str]:
    """One line per model (teacher, students, peers), one column per (batch, mode, precision, CPU threads)
    setting measured; the threads only where a run timed several counts."""
    if not rows:
        return []
    threads = sorted({r.get("threads") for r in rows if r.get("threads") is not None})
    by: dict[tuple, dict[str, Any]] = {}
    for r in rows:  # one thread count (or none recorded): not a column of its own
        by[(r["model"], r.get("batch"), r.get("mode"), r.get("dtype"), r.get("threads") if len(threads) > 1 else None)] = r
    if len(threads) <= 1:
        threads = []
    models = list(dict.fromkeys(r["model"] for r in rows))
    batches = sorted({r["batch"] for r in rows if r.get("batch") is not None})
    combos = [(b, m, d, t) for b in batches for m in ("eager", "cuda-graph", "compile") for d in ("fp32", "bf16", "fp16")
              for t in (threads or [None]) if any(k[1:] == (b, m, d, t) for k in by)]

    def head(b: int, m: str, d: str, t: int | None) -> str:
        return (f"b{b} {'graph' if m == 'cuda-graph' else m} {d}"
                + (f", {t} thread{'s' if t > 1 else ''}" if t is not None and len(threads) > 1 else ""))

    out = ["| model | params | " + " | ".join(head(*c) for c in combos) + " |", "|---|---:|" + "---:|" * len(combos)]
    for model in models:
        params = next((r.get("parameters") for r in rows if r["model"] == model and "parameters" in r), None)
        built = next((r for r in rows if r["model"] == model and "batch" not in r), None)
        if built is not None:
            out.append(f"| {model} | | skipped: {str(built['skipped'])[:60]} |" + " |" * (len(combos) - 1))
            continue
        out.append(f"| {model} | {_fmt_count(params)} | "
                   + " | ".join(_lat_cell(by.get((model, *c))) for c in combos) + " |")
    return out + [""]


def _latency_goals(rec: dict[str, Any]) -> list[str]:
    rows = [r for r in rec.get("results", []) if "median_ms" in r and not r.get("busy")]

    def get(model: str, batch: int, mode: str, dtype: str = "fp32") -> float | None:
        # several CPU thread counts: the fewest (the deployment the goals are about runs one request per core)
        return next((r["median_ms"] for r in sorted(rows, key=lambda r: r.get("threads") or 0)
                     if r["model"] == model and r["batch"] == batch and r["mode"] == mode and r["dtype"] == dtype), None)

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
at the same device, mode and batch. The distillation ablations (`python -m benchmarks.distill_ablation`)
train students of one family against one converged teacher, one setting (architecture, distillation
loss) per row, over the same seeds.

**What is in the main body.** Runs that meet one rule (`benchmarks/table.py: appendix_reason`): not a
smoke or `--tiny` run, no reduced marker in the file name, every model trained for at least
""" + str(MIN_PASSES) + """ passes over the training windows, and cost studies with at least """ + str(MIN_TIMED_CALLS) + """ timed
calls per figure. The rest is in the appendix with the reason. A latency figure timed while the load
average exceeded the core count (`stgkd.latency.is_busy`) is never shown: its cell says "busy, not a
figure". The goals table and "where we fall short" are computed from the records.

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
        passes = _passes(rec)
        budget = ((f"a {time_budget:.0f} s time budget shared by the training runs" if time_budget else
                   f"at most {rec['budget']['epochs']} epochs")
                  + f", teacher {_steps(rec) or '?'} optimiser steps of {rec['budget']['batch_size']} windows"
                  + (f", at least {passes[0]:.0f} passes over the training windows per model" if passes else ""))
        out.append(
            f"- **{rec.get('title', rec['suite'])}** ({device.upper()}, {teacher['n']} seed(s), {budget}): "
            f"test MAE at 15 / 30 / 60 min — teacher {maes(teacher)}; {plain['label']} {maes(plain)}; "
            f"distilled {maes(kd)}" + (f" ({', '.join(extra)})" if extra else "") + "."
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


def _run_line(rec: dict[str, Any]) -> str:
    """The run's file, title, device and date (its command is in its section)."""
    return (f"- `{rec['_file']}` — {rec.get('title', rec['suite'])}, {rec['environment']['device'].upper()} "
            f"({rec['environment']['device_name']}), {rec['date']}")


def _sections(records: list[dict[str, Any]], seen_published: set[str]) -> list[str]:
    """The section of every record (an ablation group once, at its first record)."""
    out: list[str] = []
    groups = {r["_file"]: g for g in _ablation_groups(records) for r in g}
    for rec in records:
        if rec.get("protocol") == "distill-ablation":
            group = groups[rec["_file"]]
            if group[0] is rec:
                out += _ablation_section(group)
            continue
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
        out += _suite_section(rec)
        pub = rec.get("published")
        if pub and pub not in seen_published:
            seen_published.add(pub)
            out += _published_section(pub) + [""]
    return out


def _suite_section(rec: dict[str, Any]) -> list[str]:
    device = rec["environment"]["device"]
    rows = aggregate(rec)
    out = [f"## {rec.get('title', rec['suite'])} — {device.upper()} — {rec['date']} (`{rec['_file']}`)", ""]
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


def _latency_headline(rec: dict[str, Any]) -> list[str]:
    """Teacher, width-32 students and peers at batch 1 and 64 (fewest CPU threads; CUDA graph on a GPU)."""
    rows = [r for r in rec.get("results", []) if "median_ms" in r and not r.get("busy") and r.get("dtype") == "fp32"]
    if not rows:
        return []
    device = rec["environment"]["device"]
    mode = "cuda-graph" if device == "cuda" and any(r["mode"] == "cuda-graph" for r in rows) else "eager"
    threads = min((r.get("threads") or 0) for r in rows)

    def cell(model: str) -> str | None:
        by_b = {r["batch"]: r["median_ms"] for r in rows if r["model"] == model and (r.get("threads") or 0) == threads
                and r["mode"] == (mode if r.get("section") == "main" else "eager")}
        return " / ".join(f"b{b} {_fmt_ms(v)}" for b, v in sorted(by_b.items())) if by_b else None

    models = ["graph-wavenet"] + [f"{s}-h32" for s in rec.get("students", [])]
    models += list(dict.fromkeys(r["model"] for r in rows if r.get("section") == "peers"))
    cells = [f"{m} {c}" for m in models if (c := cell(m))]
    how = ("CUDA graph" if mode == "cuda-graph" else "eager") + (f", {threads} CPU thread(s)" if device == "cpu" else "")
    return [f"- **{rec.get('title', 'Inference latency')}** ({device.upper()}, {rec['environment']['device_name']}, "
            f"{rec['date']}, {how}; `{rec['_file']}`), median ms: " + "; ".join(cells) + "."]


def _busy_figures(records: list[dict[str, Any]]) -> int:
    n = 0
    for rec in records:
        n += sum(1 for r in rec.get("results", []) if isinstance(r, dict) and r.get("busy"))
        n += sum(1 for m in rec.get("models", []) if isinstance(m, dict)
                 for e in (m.get("latency") or {}).values() if (e or {}).get("busy"))
        n += sum(1 for p in rec.get("points", []) if p.get("busy"))
    return n


def _kd_comparisons(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every student setting of the main body at 60 minutes: ``name``, ``distilled``, ``d60`` (distilled −
    the same student trained plainly; ``None`` for a plain setting), ``n`` (seeds), ``closed`` (share of the
    plain student's gap to the teacher), ``pays`` (distillation better by more than twice the seed spread)."""
    out = []
    for group in _ablation_groups(records):
        for r in ablation_rows(group):
            if r["name"] != "plain" and r["closed"] is not None:
                out.append({"name": f"{r['name']} (`{r['file']}`)", "distilled": r["distilled"],
                            "d60": r["kd_d60"][0] if r["kd_d60"] else None, "n": r["n"], "closed": r["closed"],
                            "pays": r["pays"]})
    for rec in records:
        if not _is_suite(rec):
            continue
        rows = aggregate(rec)
        teacher = next((r for r in rows if r["kind"] == "teacher"), None)
        for r in rows:
            plain = next((p for p in rows if p["label"] == r["label"].removesuffix(" + KD")), None)
            if r["kind"] != "student+kd" or plain is None or teacher is None or not r["60min/mae"][2]:
                continue
            gap = plain["60min/mae"][0] - teacher["60min/mae"][0]
            d60 = r["60min/mae"][0] - plain["60min/mae"][0]
            out.append({"name": f"{r['label']} (`{rec['_file']}`)", "distilled": True, "d60": d60, "n": r["n"],
                        "closed": -d60 / gap if gap > 0 else None,
                        "pays": r["n"] > 1 and -d60 > 2 * plain["60min/mae"][1]})
    return out


def goals(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The study's goals against what the records measured: one ``{"goal", "measured", "status"}`` per goal,
    status ``"met"``, ``"not met"`` or ``"not measured"``. Only main-body records count (smoke and reduced
    runs are evidence of nothing); the busy-figure count covers every record."""
    main = [r for r in records if appendix_reason(r) is None]
    appendix = [r for r in records if appendix_reason(r) is not None]
    out: list[dict[str, str]] = []

    def add(goal: str, measured: str, status: str) -> None:
        out.append({"goal": goal, "measured": measured, "status": status})

    cuda = [r for r in main if r["environment"]["device"] == "cuda"]
    add("GPU figures (CUDA latency, CUDA graph, peak GPU memory) measured",
        f"{len(cuda)} main-body run(s) on a GPU" + (f" ({', '.join(sorted({r['environment']['device_name'] for r in cuda}))})"
                                                   if cuda else ""),
        "met" if cuda else "not measured")
    seeds = [len(r["seeds"]) for r in main if r.get("protocol") == "distill-ablation"]
    seeds += [len(r["budget"]["seeds"]) for r in main if _is_suite(r)]
    add(f"every accuracy figure from at least {GOAL_SEEDS} seeds",
        (f"{min(seeds)}" + (f"–{max(seeds)}" if max(seeds) > min(seeds) else "")
         + f" seeds in {len(seeds)} main-body accuracy run(s)") if seeds else "no main-body accuracy run",
        ("met" if min(seeds) >= GOAL_SEEDS else "not met") if seeds else "not measured")
    full = [r for r in main if r.get("suite") in FULL_DATASETS]
    add("accuracy on a full dataset (METR-LA, PEMS-BAY, PEMS04, PEMS08)",
        ", ".join(sorted({r["suite"] for r in full})) if full else
        "only the one-week subset of METR-LA (1/17 of it)" if any(r.get("protocol") == "distill-ablation" or _is_suite(r)
                                                                  for r in main) else "no main-body accuracy run",
        "met" if full else "not measured")
    comps = _kd_comparisons(main)
    closed = [c for c in comps if c["closed"] is not None]
    if closed:
        best = max(closed, key=lambda c: c["closed"])
        add(f"a student closes at least {100 * GOAL_GAP_CLOSED:.0f} % of its plain version's 60-minute gap to the teacher",
            f"at most {100 * best['closed']:.0f} % ({best['name']})", "met" if best["closed"] >= GOAL_GAP_CLOSED else "not met")
    else:
        add(f"a student closes at least {100 * GOAL_GAP_CLOSED:.0f} % of its plain version's 60-minute gap to the teacher",
            "no main-body comparison", "not measured")
    kd = [c for c in comps if c["distilled"] and c["d60"] is not None]
    pays = [c for c in kd if c["pays"]]
    add("distillation beats the same student trained plainly, at 60 minutes, by more than twice the seed spread",
        (f"{len(pays)} of {len(kd)} distilled settings" + (f" ({'; '.join(c['name'] for c in pays)})" if pays else "")
         + f"; distilled − plain {min(c['d60'] for c in kd):+.3f} to {max(c['d60'] for c in kd):+.3f}")
        if kd else "no main-body comparison",
        ("met" if pays else "not met") if kd else "not measured")
    out += _latency_goal_rows([r for r in main if r.get("protocol") == "latency"])
    busy = _busy_figures(records)
    add("no figure timed on a busy machine (load average above the core count)",
        f"{busy} busy figure(s), shown as \"{BUSY}\"" if busy else "none", "met" if not busy else "not met")
    add("every run at its full budget (none in the appendix)",
        f"{len(main)} run(s) in the main body, {len(appendix)} in the appendix", "met" if not appendix else "not met")
    add("every quoted published number verified",
        f"{len(UNVERIFIED)} not verified: " + ", ".join(f"{m} on {d}" for m, d in UNVERIFIED) if UNVERIFIED else "all",
        "met" if not UNVERIFIED else "not met")
    return out


def _latency_goal_rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The latency goals (:data:`GOALS`) for the width-32 students, from the newest main-body latency record
    with CUDA-graph figures; CPU-only records are reported but assess nothing (the goals are GPU goals)."""
    texts = {
        "b1_graph_ms": f"a width-32 student under {GOALS['b1_graph_ms']} ms at batch 1 as a CUDA graph",
        "speedup_b1": f"width-32 students ≥ {GOALS['speedup_b1']:.0f}× faster than Graph WaveNet at batch 1",
        "speedup_b64": f"width-32 students ≥ {GOALS['speedup_b64']:.0f}× faster than Graph WaveNet at batch 64",
        "speedup_peers": f"width-32 students ≥ {GOALS['speedup_peers']:.0f}× faster than PGT's recurrent peers",
    }
    rec = next((r for r in records if any(x.get("mode") == "cuda-graph" and "median_ms" in x and not x.get("busy")
                                          for x in r.get("results", []))), None)
    cpu = next((r for r in records if r is not rec), None) if rec is None else None
    if rec is None:
        measured = "no CUDA-graph latency in a main-body run"
        if cpu is not None:
            measured += f"; CPU figures in `{cpu['_file']}` assess no GPU goal"
        return [{"goal": t, "measured": measured, "status": "not measured"} for t in texts.values()]
    rows = [r for r in rec["results"] if "median_ms" in r and not r.get("busy") and r.get("dtype") == "fp32"]

    def get(model: str, batch: int, mode: str) -> float | None:
        return next((r["median_ms"] for r in rows if r["model"] == model and r["batch"] == batch and r["mode"] == mode),
                    None)

    students = [f"{s}-h32" for s in rec.get("students", [])]
    big = max((r["batch"] for r in rows if r.get("section") == "main"), default=64)
    t1, tb = get("graph-wavenet", 1, "cuda-graph"), get("graph-wavenet", big, "cuda-graph")
    vals: dict[str, list[tuple[str, float]]] = {k: [] for k in texts}
    for s in students:
        g1, gb = get(s, 1, "cuda-graph"), get(s, big, "cuda-graph")
        if g1:
            vals["b1_graph_ms"].append((s, g1))
            if t1:
                vals["speedup_b1"].append((s, t1 / g1))
            peers = [get(p, 1, "eager") for p in RECURRENT_PEERS]
            peers = [v for v in peers if v]
            if peers:
                vals["speedup_peers"].append((s, min(peers) / g1))
        if gb and tb:
            vals["speedup_b64"].append((s, tb / gb))
    out = []
    for key, text in texts.items():
        v = vals[key]
        if not v:
            out.append({"goal": text, "measured": f"not in `{rec['_file']}`", "status": "not measured"})
            continue
        if key == "b1_graph_ms":
            ok = [s for s, x in v if x < GOALS[key]]
            measured = ", ".join(f"{s} {x:.3f} ms" for s, x in v)
        else:
            ok = [s for s, x in v if x >= GOALS[key]]
            measured = ", ".join(f"{s} {x:.1f}×" for s, x in v)
        out.append({"goal": text, "measured": f"{measured} (`{rec['_file']}`)",
                    "status": f"met by {len(ok)} of {len(v)}" if ok else "not met"})
    return out


def _goals_section(records: list[dict[str, Any]]) -> list[str]:
    rows = goals(records)
    out = ["## Goals and where we fall short", "",
           "Computed from the records above (main-body runs only; the busy count covers every record):", "",
           "| goal | measured | status |", "|---|---|---|"]
    out += [f"| {g['goal']} | {g['measured']} | {g['status']} |" for g in rows]
    short: dict[tuple[str, str], list[str]] = {}
    for g in rows:
        if not g["status"].startswith("met"):
            short.setdefault((g["status"], g["measured"]), []).append(g["goal"])
    out += ["", "**Where we fall short:**", ""]
    if short:
        for (status, measured), names in short.items():
            text = "; ".join(names)
            out.append(f"- {text[0].upper() + text[1:]}: **{status}** — {measured}.")
    else:
        out.append("- Nowhere: every goal above is met.")
    return out + [""]


def render(records: list[dict[str, Any]]) -> str:
    """The whole RESULTS.md text for ``records``: the main body (runs that meet :func:`appendix_reason`'s
    rule), the goals computed from them, then the appendix of reduced and smoke runs."""
    main = [r for r in records if appendix_reason(r) is None]
    appendix = [r for r in records if appendix_reason(r) is not None]
    out = [INTRO]
    if not records:
        out.append("- (none yet: run `python -m benchmarks.run --suite synthetic`)\n")
    out += [_run_line(rec) for rec in main]
    if appendix:
        out.append(f"- and {len(appendix)} reduced or smoke run(s), in the "
                   "[appendix](#appendix-reduced-and-smoke-runs) with the reason each is there")
    out.append("")
    headlines = [line for rec in main if _is_suite(rec) for line in _headline(rec)]
    headlines += [line for g in _ablation_groups(main) for line in _ablation_headline(g)]
    headlines += [line for rec in main if rec.get("protocol") == "latency" for line in _latency_headline(rec)]
    out += ["## Headline", ""]
    out += headlines or ["No run meets the rule of the main body yet; see the appendix."]
    out.append("")
    out += _gpu_runs(main)
    seen_published: set[str] = set()
    out += _sections(main, seen_published)
    listed = {rec.get("published") for rec in main}
    remaining = [d for d in FULL_DATASETS if d not in listed]
    if remaining:
        out += ["## Published results on the full datasets (quoted, not measured)", "",
                "No run on these full datasets is recorded in `benchmarks/results/` (they are not in the "
                "repository; `python -m benchmarks.run --suite metr-la` names the files and where to get "
                "them). The numbers below are quoted from the papers for orientation; they are not "
                "comparable with the one-week runs above.", ""]
        for d in remaining:
            out += [f"### {d}", ""] + _published_section(d) + [""]
    out += _goals_section(records)
    if appendix:
        out += ["## Appendix: reduced and smoke runs", "",
                "These runs checked that the code runs end to end, or were cut to fit a shared CPU; their figures "
                "are far from what the models reach and support no claim. A run is here when it is a smoke or "
                f"`--tiny` run, its file name marks it reduced (`-24steps`, `-reduced`, ...), some model saw fewer "
                f"than {MIN_PASSES} passes over the training windows, or a cost study timed fewer than "
                f"{MIN_TIMED_CALLS} calls per figure.", ""]
        out += [f"- `{rec['_file']}`: {appendix_reason(rec)}." for rec in appendix] + [""]
        body = _gpu_runs(appendix) + _sections(appendix, seen_published) + _budget_sensitivity(appendix)
        out += ["#" + line if line.startswith("##") else line for line in body]
    return "\n".join(out).rstrip() + "\n"


def regime_section(results_dir: Path) -> str:
    """"When distillation pays": the paired distilled − plain rows of every ``distill-regime-*.json``
    (``python -m benchmarks.distill_regime``), by student and training days, with the verdict against
    twice the plain student's seed spread. Empty when there is none."""
    from benchmarks.distill_regime import paired

    paths = sorted(Path(results_dir).glob("distill-regime-*.json"))
    if not paths:
        return ""
    lines = ["", "## When distillation pays (distilled − plain, paired by seed)", "",
             "From `python -m benchmarks.distill_regime` (each file states its command, teacher and budget; "
             "negative = distillation helps; it pays where it is better by more than twice the plain "
             "student's seed spread, which needs two seeds or more).", "",
             "| file | recipe | days | seeds | plain 60 min | Δ60 | Δavg | pays at 60 / avg |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for path in paths:
        report = json.loads(path.read_text())
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


def write_markdown(results_dir: Path, markdown: Path) -> None:
    """Regenerate ``markdown`` from every record in ``results_dir`` (atomically)."""
    text = render(load_records(results_dir)) + regime_section(Path(results_dir))
    markdown = Path(markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    tmp = markdown.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(markdown)
