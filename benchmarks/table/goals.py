"""The study's goals, computed from the main-body records (never fixed text), and "where we fall short"."""

from __future__ import annotations

from typing import Any

from benchmarks.published import UNVERIFIED
from benchmarks.table.ablations import _ablation_groups, ablation_rows
from benchmarks.table.latency import goal_figures
from benchmarks.table.records import BUSY, FULL_DATASETS, GOAL_GAP_CLOSED, GOAL_SEEDS, GOALS, _is_suite, appendix_reason
from benchmarks.table.suites import aggregate, trios

__all__ = ["goals"]


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
        for teacher, plain, r in trios(aggregate(rec)):
            if not r["60min/mae"][2]:
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
    vals: dict[str, list[tuple[str, float]]] = {k: [] for k in texts}
    for s, f in goal_figures(rec)[1].items():
        if f["g1"]:
            vals["b1_graph_ms"].append((s, f["g1"]))
            if f["t1"]:
                vals["speedup_b1"].append((s, f["t1"] / f["g1"]))
            if f["peers"]:
                vals["speedup_peers"].append((s, min(f["peers"].values()) / f["g1"]))
        if f["gb"] and f["tb"]:
            vals["speedup_b64"].append((s, f["tb"] / f["gb"]))
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


