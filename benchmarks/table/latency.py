"""The cost studies in RESULTS.md: the latency table and its goals, model timing, scaling with the network.

:func:`_latency_section` renders ``benchmarks.latency`` records (one line per model, one column per
batch / mode / precision / CPU threads measured) and checks the latency goals (:data:`GOALS`) from them;
:func:`_timing_section` renders ``benchmarks.model_timing`` parts, :func:`_scaling_section` the scaling study
with its power-law fits.
"""

from __future__ import annotations

from typing import Any

from benchmarks.table.records import (BUSY, GOALS, RECURRENT_PEERS, _fmt_count, _fmt_ms, _section_head, power_law)

__all__: list[str] = []


def _lat_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    if "skipped" in row:
        return f"skipped: {str(row['skipped'])[:40]}"
    if row.get("busy"):
        return BUSY
    return f"{row['median_ms']:.3f}"


def _precision_note(rows: list[dict[str, Any]]) -> str:
    """How the low precisions ran: autocast, except the models listed, which were cast whole."""
    cast = list(dict.fromkeys(r["model"] for r in rows if r.get("precision") == "cast"))
    if not cast:
        return "bf16 = autocast"
    return (f"bf16 = autocast, except {', '.join(cast)}: models with recurrent layers, cast whole to bf16 "
            "(cuDNN's RNN under autocast computes in fp16 whatever is asked)")


def _latency_section(rec: dict[str, Any]) -> list[str]:
    rows = rec.get("results", [])
    st = rec.get("settings", {})
    out = _section_head(rec)
    out += [f"Median ms per call ({st.get('iters')} timed calls after {st.get('warmup')} warm-up, "
            f"`stgkd.latency.measure`; inputs already on the device; {_precision_note(rows)}); untrained models of "
            "the right shape on a seeded random graph (8 neighbours per sensor).", ""]
    capture = {k: v for k, v in (rec.get("capture") or {}).items() if v}
    if capture:
        out += [f"> **Not capturable as CUDA graphs** (probed in a child process; these settings were timed eagerly "
                f"only): {'; '.join(f'{k}: {v}' for k, v in capture.items())}.", ""]
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


def goal_figures(rec: dict[str, Any]) -> tuple[int, dict[str, dict[str, Any]]]:
    """What the latency goals (:data:`GOALS`) judge in a ``benchmarks.latency`` record, from its idle fp32 rows
    (several CPU thread counts: the fewest, as the deployment the goals are about runs one request per core):
    ``(the largest batch timed, {width-32 student: figures})``, the figures its CUDA-graph ms at batch 1 and at
    the largest batch (``g1``, ``gb``), Graph WaveNet's (``t1``, ``tb``), its eager ms at batch 1 (``e1``) and
    the recurrent peers' eager ms at batch 1 (``peers``); ``None`` where not measured."""
    rows = sorted((r for r in rec.get("results", []) if "median_ms" in r and not r.get("busy") and r.get("dtype") == "fp32"),
                  key=lambda r: r.get("threads") or 0)

    def get(model: str, batch: int, mode: str) -> float | None:
        return next((r["median_ms"] for r in rows if r["model"] == model and r["batch"] == batch and r["mode"] == mode),
                    None)

    big = max((r["batch"] for r in rows if r.get("section") == "main"), default=64)
    peers = {p: v for p in RECURRENT_PEERS if (v := get(p, 1, "eager"))}
    return big, {f"{s}-h32": {"g1": get(f"{s}-h32", 1, "cuda-graph"), "gb": get(f"{s}-h32", big, "cuda-graph"),
                              "t1": get("graph-wavenet", 1, "cuda-graph"), "tb": get("graph-wavenet", big, "cuda-graph"),
                              "e1": get(f"{s}-h32", 1, "eager"), "peers": peers} for s in rec.get("students", [])}


def _latency_goals(rec: dict[str, Any]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    skipped = next((r["skipped"] for r in rec.get("results", []) if r.get("mode") == "cuda-graph" and "skipped" in r),
                   None)
    big, figures = goal_figures(rec)
    out = []
    for label, f in figures.items():
        g1, g64, t1, t64, e1, peer_ms = f["g1"], f["gb"], f["t1"], f["tb"], f["e1"], f["peers"]
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


def _fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:.2f}"


def models_table(models: list[dict[str, Any]]) -> list[str]:
    """One markdown row per (model, batch, precision) of a ``benchmarks.model_timing`` record: forward and
    forward+backward median ms."""
    from stgkd.precision import precision_label

    lines = ["| model | role | batch | params | GFLOPs (fwd) | dtype | forward ms | forward+backward ms |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    keyed: dict[tuple, dict[str, float]] = {}
    meta: dict[tuple, dict[str, Any]] = {}
    for r in models:
        key = (r["model"], r["batch"], r["dtype"])
        keyed.setdefault(key, {})[r["passes"]] = r["median_ms"]
        meta[key] = r
    for key, by_pass in keyed.items():
        r = meta[key]
        if r["error"] and r["dtype"] == "-":
            lines.append(f"| {r['model']} | {r['role']} | {r['batch']} | | | | build failed: {r['error'][:80]} | |")
            continue
        lines.append(
            f"| {r['model']} | {r['role']} | {r['batch']} | {r['parameters']:,} | {r['gflops']:.3f} | {precision_label(r['dtype'], r.get('precision'))} | "
            f"{_fmt(by_pass.get('forward', float('nan')))} | {_fmt(by_pass.get('forward+backward', float('nan')))} |"
        )
    return lines


def _timing_section(rec: dict[str, Any]) -> list[str]:
    out = _section_head(rec)
    out += [f"Median ms per call ({rec.get('iters')} timed after {rec.get('warmup')} warm-up) on input "
            f"(B, 12, {rec.get('nodes')}, 2), graph: {rec.get('graph')}; forward in eval mode without gradients, "
            f"forward+backward in train mode with the forecast's mean as the loss; {_precision_note(rec.get('models', []))}.",
            ""]
    if rec.get("models"):
        out += models_table(rec["models"])
    return out


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


# ============================================================================ the headline



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


