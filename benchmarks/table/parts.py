"""The parts of a ``python -m benchmarks.gpu`` run in RESULTS.md: the run table, the environment and the
tuning study (the latency and timing parts render as cost studies, :mod:`benchmarks.table.latency`).
"""

from __future__ import annotations

from typing import Any

from benchmarks.table.records import _section_head

__all__: list[str] = []


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


