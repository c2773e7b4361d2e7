"""The parts of a ``python -m benchmarks.gpu`` run in RESULTS.md: the run table, the environment, the CUDA tests and
the tuning study (its latency and timing parts are cost studies, :mod:`benchmarks.table.latency`)."""

from __future__ import annotations

from typing import Any

from benchmarks.table.records import head, table


def gpu_runs(records: list[dict[str, Any]]) -> list[str]:
    """One table per ``python -m benchmarks.gpu`` run: its parts, budgets, wall times and how each ended."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if (rec.get("run") or {}).get("id"):
            runs.setdefault(rec["run"]["id"], []).append(rec)
    out: list[str] = []
    for run_id, recs in sorted(runs.items(), reverse=True):
        recs = sorted(recs, key=lambda r: r["run"]["index"])
        env, smoke = recs[0]["environment"], " (smoke run, toy sizes)" if recs[0]["run"].get("smoke") else ""
        out += [f"## GPU run `{run_id}` — {env['device'].upper()} — {env['device_name']}{smoke}", "",
                f"Command: `{recs[0]['command']}`", ""]
        out += table(["#", "part", "budget s", "wall s", "ended", "file"], [
            [r["run"]["index"], r["run"]["part"], f"{r['run']['budget_s']:g}", f"{r['run']['wall_s']:.1f}",
             "failed: " + str(r["run"]["error"])[:80] if r["run"].get("error") else
             f"cut short before {r['run']['reached']}" if r["run"].get("reached") else "completed", f"`{r['_file']}`"]
            for r in recs]) + [""]
    return out


def environment_section(rec: dict[str, Any]) -> list[str]:
    """The device, GPU, driver and package versions a GPU run measured on."""
    env, d = rec["environment"], rec.get("details", {})
    gpu, smi, pk = d.get("gpu") or {}, d.get("nvidia_smi") or {}, d.get("packages") or {}
    out = head(rec) + [
        f"- device: **{env['device'].upper()}** — {env['device_name']}; torch {env['torch']}, CUDA {env.get('cuda')}, "
        f"Python {env.get('python')}, {env.get('platform')}, {d.get('cpu_count')} CPUs",
        f"- GPU: skipped: {gpu['skipped']}" if "skipped" in gpu else
        f"- GPU: {gpu.get('name')}, compute capability {gpu.get('capability')}, {gpu.get('memory_gib')} GiB, "
        f"{gpu.get('multiprocessors')} SMs, {gpu.get('devices')} device(s); cuDNN {gpu.get('cudnn')}; TF32 matmul "
        f"{gpu.get('tf32_matmul')}, cuDNN {gpu.get('tf32_cudnn')}; float32 matmul precision "
        f"{d.get('float32_matmul_precision')}"]
    if smi:
        out.append(f"- nvidia-smi: skipped: {smi['skipped']}" if "skipped" in smi else
                   "- nvidia-smi: " + "; ".join(f"{k} {v}" for k, v in smi.items()))
    out.append("- packages: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in pk.items()))
    return out + [line for note in rec.get("notes", []) for line in ("", f"> {note}")]


def tuning_section(rec: dict[str, Any]) -> list[str]:
    """A tuning study against a latency budget: its budget, trials, best trial and Pareto front."""
    report, cal = rec.get("report") or {}, rec.get("calibration") or {}
    c, best = report.get("counts") or {}, report.get("best")
    lat = (report.get("settings") or {}).get("latency") or {}
    out = head(rec) + [f"Study command: `{rec.get('search_command')}`", ""]
    out += [line for note in rec.get("notes", []) for line in (f"> {note}", "")]
    if cal:
        widest = ", ".join(f"{k} {v:.3f} ms" for k, v in (cal.get("widest") or {}).items())
        out += [f"Latency budget **{cal['budget_ms']:.4g} ms** ({lat.get('label') or cal.get('mode')}): "
                f"{cal.get('rule')}; reference gcn-gru width 32, one layer {cal['reference']['median_ms']:.3f} ms; "
                f"widest: {widest}.", ""]
    if c:
        out += [f"Trials: {c.get('total')} — {c.get('complete')} complete, {c.get('pruned')} pruned, "
                f"{c.get('infeasible')} infeasible (over the budget, not trained), {c.get('failed')} failed.", ""]
    if best:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        test = ((report.get("export") or {}).get("test") or {}).get("avg")
        out += [f"Best feasible trial {best['number']}: val MAE **{best['val_mae']:.4f}** at "
                f"**{best['latency_ms']:.4g} ms**; {params}."]
        out += ["", f"Its test split (exported student): MAE {test['mae']:.3f}, RMSE {test['rmse']:.3f}, MAPE "
                    f"{100 * test['mape']:.1f} %."] if test else []
        out.append("")
    elif report:
        out += ["No trial met the budget and completed.", ""]
    if rec.get("files"):
        out += ["The study's own report and plots, beside this file: "
                + ", ".join(f"[`{v}`](results/{v})" for v in rec["files"].values()) + ".", ""]
    return out + table(["trial", "val MAE", "latency ms", "family", "hidden", "layers"], [
        [t["number"], f"{t['val_mae']:.4f}", f"{t['latency_ms']:.4g}",
         *[t.get("params", {}).get(k, "") for k in ("family", "hidden", "layers")]]
        for t in report.get("pareto_front") or []]) if report.get("pareto_front") else out


def cuda_tests_section(rec: dict[str, Any]) -> list[str]:
    """The test suite's CUDA tests as a GPU run ran them: how many passed, and each test's outcome."""
    tests = rec.get("tests") or []
    counts = {o: sum(t["outcome"] == o for t in tests) for o in ("passed", "failed", "error", "skipped")}
    out = head(rec) + [f"`{rec.get('pytest')}` (exit code {rec.get('exit_code')}, {rec.get('ended')}): "
                       + ", ".join(f"{n} {o}" for o, n in counts.items() if n), ""]
    return out + table(["test", "outcome", "s", "message"], [
        [f"`{t['test']}`", t["outcome"], f"{t['seconds']:.1f}", t["message"][:120].replace("|", "\\|")]
        for t in tests])
