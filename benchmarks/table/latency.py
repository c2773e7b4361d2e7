"""The cost studies: the latency grid and its goals (:data:`GOALS`, :func:`latency_section`), model timing
(:func:`timing_section`) and scaling with the network size and its power laws (:func:`scaling_section`)."""

from __future__ import annotations

from typing import Any

from benchmarks.table.records import BUSY, GOALS, fmt_count, fmt_ms, head, part_lines, power_law, table

#: torch-geometric-temporal's recurrent peers in the latency table
RECURRENT_PEERS = ("pgt-a3tgcn2", "pgt-tgcn2-stepped", "pgt-batched-dcrnn")


def _precision_note(rows: list[dict[str, Any]]) -> str:
    """How the low precisions ran: autocast, except the models listed, which were cast whole."""
    cast = list(dict.fromkeys(r["model"] for r in rows if r.get("precision") == "cast"))
    return "bf16 = autocast" + (f", except {', '.join(cast)}: models with recurrent layers, cast whole to bf16 "
                                "(cuDNN's RNN under autocast computes in fp16 whatever is asked)" if cast else "")


def _cell(row: dict[str, Any] | None) -> str:
    return ("–" if row is None else f"skipped: {str(row['skipped'])[:40]}" if "skipped" in row else
            BUSY if row.get("busy") else f"{row['median_ms']:.3f}")


def _grid(rows: list[dict[str, Any]]) -> list[str]:
    """One line per model, one column per (batch, mode, precision, CPU threads) setting measured; the threads
    only where a run timed several counts."""
    if not rows:
        return []
    threads = sorted({r.get("threads") for r in rows if r.get("threads") is not None})
    threads = threads if len(threads) > 1 else [None]
    by = {(r["model"], r.get("batch"), r.get("mode"), r.get("dtype"), r.get("threads") if threads[0] else None): r
          for r in rows}
    combos = [(b, m, d, t) for b in sorted({r["batch"] for r in rows if r.get("batch") is not None})
              for m in ("eager", "cuda-graph", "compile") for d in ("fp32", "bf16", "fp16") for t in threads
              if any(k[1:] == (b, m, d, t) for k in by)]
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        built = next((r for r in rows if r["model"] == model and "batch" not in r), None)
        params = next((r.get("parameters") for r in rows if r["model"] == model and "parameters" in r), None)
        lines.append([model, "", f"skipped: {str(built['skipped'])[:60]}", *[""] * (len(combos) - 1)] if built else
                     [model, fmt_count(params), *[_cell(by.get((model, *c))) for c in combos]])
    return table(["model", "params", *[f"b{b} {'graph' if m == 'cuda-graph' else m} {d}"
                                       + (f", {t} thread{'s' if t > 1 else ''}" if t else "") for b, m, d, t in combos]],
                 lines) + [""]


def goal_figures(rec: dict[str, Any]) -> tuple[int, dict[str, dict[str, Any]]]:
    """What the latency goals (:data:`GOALS`) judge in a ``benchmarks.latency`` record, from its idle fp32 rows
    (of several CPU thread counts, the fewest: the deployment the goals are about runs one request per core):
    ``(the largest batch timed, {width-32 student: figures})``, the figures its CUDA-graph ms at batch 1 and at
    the largest batch (``g1``, ``gb``), Graph WaveNet's (``t1``, ``tb``), its eager ms at batch 1 (``e1``) and
    the recurrent peers' eager ms at batch 1 (``peers``); ``None`` where not measured."""
    rows = sorted((r for r in rec.get("results", []) if "median_ms" in r and not r.get("busy") and r.get("dtype") == "fp32"),
                  key=lambda r: r.get("threads") or 0)

    def get(model: str, batch: int, mode: str) -> float | None:
        return next((r["median_ms"] for r in rows if (r["model"], r["batch"], r["mode"]) == (model, batch, mode)), None)

    big = max((r["batch"] for r in rows if r.get("section") == "main"), default=64)
    peers = {p: v for p in RECURRENT_PEERS if (v := get(p, 1, "eager"))}
    return big, {f"{s}-h32": {"g1": get(f"{s}-h32", 1, "cuda-graph"), "gb": get(f"{s}-h32", big, "cuda-graph"),
                              "t1": get("graph-wavenet", 1, "cuda-graph"), "tb": get("graph-wavenet", big, "cuda-graph"),
                              "e1": get(f"{s}-h32", 1, "eager"), "peers": peers} for s in rec.get("students", [])}


def meets_goal(key: str, value: float) -> bool:
    """Whether ``value`` meets the latency goal ``key`` of :data:`GOALS`: below it for the milliseconds at batch 1,
    at least it for a speed-up."""
    return value < GOALS[key] if key == "b1_graph_ms" else value >= GOALS[key]


def goal_values(f: dict[str, Any]) -> dict[str, float | None]:
    """One width-32 student's value for each latency goal of :data:`GOALS`, from its :func:`goal_figures`: its
    CUDA-graph ms at batch 1, its CUDA-graph speed-up on Graph WaveNet at batch 1 and at the largest batch, and on
    the fastest recurrent peer (eager) at batch 1; ``None`` where a figure it needs was not measured."""
    g1, peers = f["g1"], f["peers"]
    return {"b1_graph_ms": g1,
            "speedup_b1": f["t1"] / g1 if g1 and f["t1"] else None,
            "speedup_b64": f["tb"] / f["gb"] if f["gb"] and f["tb"] else None,
            "speedup_peers": min(peers.values()) / g1 if g1 and peers else None}


def _latency_goals(rec: dict[str, Any]) -> list[str]:
    """One line per width-32 student against the latency goals (:func:`goal_values`), and one against the
    recurrent peers (eager to eager where the student has no CUDA graph)."""
    def verdict(key: str, value: float) -> str:
        return "**met**" if meets_goal(key, value) else "**not met**"

    skipped = next((r["skipped"] for r in rec.get("results", []) if r.get("mode") == "cuda-graph" and "skipped" in r),
                   None)
    big, figures = goal_figures(rec)
    out = []
    for label, f in figures.items():
        g1, e1, peers = f["g1"], f["e1"], f["peers"]
        v = goal_values(f)
        if g1 is None:
            out.append(f"- {label}: CUDA-graph latency {f'skipped: {skipped}' if skipped else 'not measured'}; the "
                       f"goals (< {GOALS['b1_graph_ms']} ms at batch 1, ≥ {GOALS['speedup_b1']:.0f}× / "
                       f"{GOALS['speedup_b64']:.0f}× faster than Graph WaveNet at batch 1 / {big}) are not assessed.")
        else:
            parts = [f"{g1:.3f} ms at batch 1 as a CUDA graph (goal < {GOALS['b1_graph_ms']} ms: "
                     f"{verdict('b1_graph_ms', g1)})"]
            if v["speedup_b1"] is not None:
                parts.append(f"{v['speedup_b1']:.1f}× faster than Graph WaveNet's CUDA graph at batch 1 (goal ≥ "
                             f"{GOALS['speedup_b1']:.0f}×: {verdict('speedup_b1', v['speedup_b1'])})")
            if v["speedup_b64"] is not None:
                parts.append(f"{v['speedup_b64']:.1f}× at batch {big} (goal ≥ {GOALS['speedup_b64']:.0f}×: "
                             f"{verdict('speedup_b64', v['speedup_b64'])})")
            out.append(f"- {label}: " + "; ".join(parts) + ".")
        if peers and (g1 or e1):
            best = g1 or e1
            ratios = ", ".join(f"{p.removeprefix('pgt-')} {x / best:.0f}×" + (f" ({x / e1:.0f}× eager to eager)"
                                                                               if g1 and e1 else "")
                               for p, x in peers.items())
            worst = v["speedup_peers"] if g1 else min(peers.values()) / e1
            out.append(f"- {label} against torch-geometric-temporal's recurrent peers at batch 1 (they run eager, "
                       f"{label} as {'its CUDA graph' if g1 else 'eager (no CUDA graph measured)'}): {ratios}; goal ≥ "
                       f"{GOALS['speedup_peers']:.0f}× against each: {verdict('speedup_peers', worst)}.")
    return out


def latency_section(rec: dict[str, Any]) -> list[str]:
    """A ``benchmarks.latency`` record: its grid, what could not be captured or was timed busy, and the goals."""
    rows, st = rec.get("results", []), rec.get("settings", {})
    out = head(rec) + [f"Median ms per call ({st.get('iters')} timed calls after {st.get('warmup')} warm-up, "
                       f"`stgkd.latency.measure`; inputs already on the device; {_precision_note(rows)}); untrained "
                       "models of the right shape on a seeded random graph (8 neighbours per sensor).", ""]
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
    out += _grid([r for r in rows if r.get("section") in ("main", "peers")])
    peers = list(dict.fromkeys(r["model"] for r in rows if r.get("section") == "peers"))
    if peers:
        out += [f"torch-geometric-temporal's models: {', '.join(peers)} (PGT's recurrent cells at their batch size, "
                "hidden size of `--peer-hidden`).", ""]
    goals = _latency_goals(rec)
    return out + (["**Against the goals** (computed from the table):", "", *goals] if goals else [])


def models_table(models: list[dict[str, Any]]) -> list[str]:
    """One Markdown row per (model, batch, precision) of a ``benchmarks.model_timing`` record: forward and
    forward+backward median ms."""
    from stgkd.precision import precision_label

    keyed: dict[tuple, dict[str, Any]] = {}
    for r in models:
        keyed.setdefault((r["model"], r["batch"], r["dtype"]), {})[r["passes"]] = r
    lines = []
    for by in keyed.values():
        r = list(by.values())[-1]
        lines.append([r["model"], r["role"], r["batch"], "", "", "", f"build failed: {r['error'][:80]}", ""]
                     if r["error"] and r["dtype"] == "-" else
                     [r["model"], r["role"], r["batch"], f"{r['parameters']:,}", f"{r['gflops']:.3f}",
                      precision_label(r["dtype"], r.get("precision")),
                      *[f"{by[k]['median_ms']:.2f}" if k in by and by[k]["median_ms"] == by[k]["median_ms"] else "n/a"
                        for k in ("forward", "forward+backward")]])
    return table(["model", "role", "batch", "params", "GFLOPs (fwd)", "dtype", "forward ms", "forward+backward ms"],
                 lines)


def timing_section(rec: dict[str, Any]) -> list[str]:
    """A model-timing record: forward and forward+backward time per model, batch and precision."""
    out = head(rec) + [f"Median ms per call ({rec.get('iters')} timed after {rec.get('warmup')} warm-up) on input "
                       f"(B, 12, {rec.get('nodes')}, 2), graph: {rec.get('graph')}; forward in eval mode without "
                       "gradients, forward+backward in train mode with the forecast's mean as the loss; "
                       f"{_precision_note(rec.get('models', []))}.", ""]
    return out + (models_table(rec["models"]) if rec.get("models") else [])


def scaling_section(rec: dict[str, Any]) -> list[str]:
    """The scaling study: training time, latency and memory per model and network size, and the power laws."""
    pts, b, env = rec["points"], rec["budget"], rec["environment"]
    kind = "CUDA graph" if env["device"] == "cuda" else "**CPU** eager"
    batches = list(b.get("latency_batches", [1, 64]))
    out = ["## Scaling with the network size", "", *part_lines(rec),
           f"### Scaling — {env['device'].upper()} — {rec['date']}", "", rec.get("description", ""), "",
           f"Command: `{rec['command']}`", "",
           f"{b['batches']} timed training batches of {b['batch_size']} windows per model and size (after "
           f"{b['warmup_batches']} untimed), latency {b['latency_iters']} calls; device {env['device'].upper()} — "
           f"{env['device_name']}, torch {env['torch']}, {env['threads']} thread(s).", ""]
    out += table(["model", "N", "edges", "params", "train s/epoch (est., full epoch)", "s/batch",
                  *[f"{kind} latency b{n} ms" for n in batches], "peak GPU MiB (train)"],
                 [[p["model"], f"{p['nodes']:,}", f"{p['edges']:,}", fmt_count(p["parameters"]),
                   f"{p['full_epoch_seconds_est']:.1f}", f"{p['seconds_per_batch']:.3f}",
                   *[BUSY if p.get("busy") else fmt_ms(p.get(f"latency_b{n}_ms")) for n in batches],
                   "n/a (CPU)" if p.get("peak_gpu_mem_mb") is None else f"{p['peak_gpu_mem_mb']:.0f}"] for p in pts])
    out += ["", "Power-law fits `cost = a · N^k` over the sizes measured (log-log least squares):", ""]
    what = [("seconds_per_batch", "training time per batch"),
            *[(f"latency_b{n}_ms", f"latency at batch {n}") for n in batches], ("peak_gpu_mem_mb", "peak GPU memory")]
    for model in sorted({p["model"] for p in pts}):
        mp = [p for p in pts if p["model"] == model and not p.get("busy")]
        ns = [p["nodes"] for p in mp]
        for key, name in what:
            fit = power_law(ns, [p.get(key) or 0 for p in mp])
            if fit:
                out.append(f"- {model}: {name} grows as N^{fit[1]:.2f} (over N = {', '.join(map(str, ns))}).")
    return out + [f"- Note: {note}" for note in rec.get("notes", [])]
