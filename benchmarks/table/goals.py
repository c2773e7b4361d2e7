"""The study's goals, computed from the main-body records (never fixed text), and "where we fall short"."""

from __future__ import annotations

from typing import Any

from benchmarks.table.ablations import ablation_groups, ablation_rows
from benchmarks.table.latency import goal_figures, goal_values, meets_goal
from benchmarks.table.records import (BUSY, FULL_DATASETS, GOAL_GAP_CLOSED, GOAL_SEEDS, GOALS, appendix_reason,
                                      is_suite, kd_gap, quoted, table)
from benchmarks.table.suites import aggregate, trios

#: the latency goals (:data:`GOALS`) in words
LATENCY_GOALS = {
    "b1_graph_ms": f"a width-32 student under {GOALS['b1_graph_ms']} ms at batch 1 as a CUDA graph",
    "speedup_b1": f"width-32 students ≥ {GOALS['speedup_b1']:.0f}× faster than Graph WaveNet at batch 1",
    "speedup_b64": f"width-32 students ≥ {GOALS['speedup_b64']:.0f}× faster than Graph WaveNet at batch 64",
    "speedup_peers": f"width-32 students ≥ {GOALS['speedup_peers']:.0f}× faster than PGT's recurrent peers",
}


def _kd_comparisons(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every student setting of the main body at 60 minutes: ``name``, ``distilled``, ``d60`` (distilled − the
    same student trained plainly; ``None`` for a plain setting), ``closed`` (share of the plain student's gap to
    the teacher), ``pays`` (distillation better by more than twice the seed spread)."""
    out = [{"name": f"{r['name']} (`{r['file']}`)", "distilled": r["distilled"], "closed": r["closed"],
            "d60": r["kd_d60"][0] if r["kd_d60"] else None, "pays": r["pays"]}
           for group in ablation_groups(records) for r in ablation_rows(group)
           if r["name"] != "plain" and r["closed"] is not None]
    for rec in filter(is_suite, records):
        for teacher, plain, r in trios(aggregate(rec)):
            if r["60min/mae"][2]:
                d60, closed = kd_gap(teacher["60min/mae"][0], plain["60min/mae"][0], r["60min/mae"][0])
                out.append({"name": f"{r['label']} (`{rec['_file']}`)", "distilled": True, "d60": d60,
                            "closed": closed, "pays": r["n"] > 1 and -d60 > 2 * plain["60min/mae"][1]})
    return out


def _latency_goal_rows(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The latency goals for the width-32 students, from the newest main-body latency record with CUDA-graph
    figures; CPU-only records are named but assess nothing (the goals are GPU goals)."""
    rec = next((r for r in records if any(x.get("mode") == "cuda-graph" and "median_ms" in x and not x.get("busy")
                                          for x in r.get("results", []))), None)
    if rec is None:
        measured = "no CUDA-graph latency in a main-body run" + (
            f"; CPU figures in `{records[0]['_file']}` assess no GPU goal" if records else "")
        return [(text, measured, "not measured") for text in LATENCY_GOALS.values()]
    values = {s: goal_values(f) for s, f in goal_figures(rec)[1].items()}
    out = []
    for key, text in LATENCY_GOALS.items():
        v = [(s, x[key]) for s, x in values.items() if x[key] is not None]
        ms = key == "b1_graph_ms"
        ok = [s for s, x in v if meets_goal(key, x)]
        measured = ", ".join(f"{s} {x:.3f} ms" if ms else f"{s} {x:.1f}×" for s, x in v)
        out.append((text, f"{measured} (`{rec['_file']}`)", f"met by {len(ok)} of {len(v)}" if ok else "not met")
                   if v else (text, f"not in `{rec['_file']}`", "not measured"))
    return out


def goals(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The study's goals against what the records measured: one ``{"goal", "measured", "status"}`` per goal,
    status ``"met"``, ``"not met"`` or ``"not measured"``. Only main-body records count (smoke and reduced runs
    are evidence of nothing); the busy-figure count covers every record."""
    main = [r for r in records if appendix_reason(r) is None]
    appendix = len(records) - len(main)
    cuda = [r for r in main if r["environment"]["device"] == "cuda"]
    seeds = [len(r["seeds"]) for r in main if r.get("protocol") == "distill-ablation"]
    seeds += [len(r["budget"]["seeds"]) for r in main if is_suite(r)]
    full = sorted({r["suite"] for r in main if r.get("suite") in FULL_DATASETS})
    comps, unverified = _kd_comparisons(main), [(u["model"], u["dataset"]) for u in quoted()["unverified"]]
    best = max((c for c in comps if c["closed"] is not None), key=lambda c: c["closed"], default=None)
    kd = [c for c in comps if c["distilled"] and c["d60"] is not None]
    pays = [c for c in kd if c["pays"]]
    busy = sum(1 for rec in records for e in [*rec.get("results", []), *rec.get("points", []),
                                              *[e for m in rec.get("models", []) if isinstance(m, dict)
                                                for e in (m.get("latency") or {}).values()]]
               if isinstance(e, dict) and e.get("busy"))
    gap_goal = (f"a student closes at least {100 * GOAL_GAP_CLOSED:.0f} % of its plain version's 60-minute gap to "
                "the teacher")
    rows = [
        ("GPU figures (CUDA latency, CUDA graph, peak GPU memory) measured",
         f"{len(cuda)} main-body run(s) on a GPU"
         + (f" ({', '.join(sorted({r['environment']['device_name'] for r in cuda}))})" if cuda else ""),
         "met" if cuda else "not measured"),
        (f"every accuracy figure from at least {GOAL_SEEDS} seeds",
         (f"{min(seeds)}" + (f"–{max(seeds)}" if max(seeds) > min(seeds) else "")
          + f" seeds in {len(seeds)} main-body accuracy run(s)") if seeds else "no main-body accuracy run",
         ("met" if min(seeds) >= GOAL_SEEDS else "not met") if seeds else "not measured"),
        ("accuracy on a full dataset (METR-LA, PEMS-BAY, PEMS04, PEMS08)",
         ", ".join(full) if full else "only the one-week subset of METR-LA (1/17 of it)" if seeds
         else "no main-body accuracy run", "met" if full else "not measured"),
        (gap_goal, f"at most {100 * best['closed']:.0f} % ({best['name']})", "met" if best["closed"] >= GOAL_GAP_CLOSED
         else "not met") if best else (gap_goal, "no main-body comparison", "not measured"),
        ("distillation beats the same student trained plainly, at 60 minutes, by more than twice the seed spread",
         (f"{len(pays)} of {len(kd)} distilled settings" + (f" ({'; '.join(c['name'] for c in pays)})" if pays else "")
          + f"; distilled − plain {min(c['d60'] for c in kd):+.3f} to {max(c['d60'] for c in kd):+.3f}")
         if kd else "no main-body comparison", ("met" if pays else "not met") if kd else "not measured"),
        *_latency_goal_rows([r for r in main if r.get("protocol") == "latency"]),
        ("no figure timed on a busy machine (load average above the core count)",
         f"{busy} busy figure(s), shown as \"{BUSY}\"" if busy else "none", "met" if not busy else "not met"),
        ("every run at its full budget (none in the appendix)",
         f"{len(main)} run(s) in the main body, {appendix} in the appendix", "met" if not appendix else "not met"),
        ("every quoted published number verified",
         f"{len(unverified)} not verified: " + ", ".join(f"{m} on {d}" for m, d in unverified) if unverified
         else "all", "met" if not unverified else "not met"),
    ]
    return [{"goal": g, "measured": m, "status": s} for g, m, s in rows]


def goals_section(records: list[dict[str, Any]]) -> list[str]:
    """"Goals and where we fall short": the table of :func:`goals`, then each goal not met, grouped."""
    rows = goals(records)
    short: dict[tuple[str, str], list[str]] = {}
    for g in rows:
        if not g["status"].startswith("met"):
            short.setdefault((g["status"], g["measured"]), []).append(g["goal"])
    lines = [f"- {'; '.join(names)[0].upper() + '; '.join(names)[1:]}: **{status}** — {measured}."
             for (status, measured), names in short.items()] or ["- Nowhere: every goal above is met."]
    return (["## Goals and where we fall short", "",
             "Computed from the records above (main-body runs only; the busy count covers every record):", ""]
            + table(["goal", "measured", "status"], [[g["goal"], g["measured"], g["status"]] for g in rows])
            + ["", "**Where we fall short:**", "", *lines, ""])
