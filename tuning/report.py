"""What a study found: ``report.json``, ``report.md`` and PNG plots.

The report lists every trial with its measured latency and status (``complete``, ``pruned``,
``infeasible`` = over the latency budget, never trained, ``failed``), the best feasible trial(s), the
Pareto front of validation MAE against measured latency, the parameter importances
(``optuna.importance``, skipped with the reason when there are too few completed trials) and three plots
drawn with ``optuna.visualization.matplotlib`` on the Agg backend: optimisation history, Pareto front
(for a single-objective study: the completed trials' MAE against their measured latency, drawn with
matplotlib since Optuna's Pareto plot needs two objectives) and importances.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from stgkd.files import atomic_write

__all__ = [
    "trial_status",
    "trial_summary",
    "feasible_complete",
    "pareto_front",
    "best_feasible",
    "importances",
    "make_plots",
    "build_report",
    "write_report",
]

MAE_NAME = "val MAE"
LATENCY_NAME = "latency (ms)"


def trial_status(trial: FrozenTrial) -> str:
    """``complete``, ``pruned``, ``infeasible``, ``failed``, ``running`` or ``waiting``."""
    if trial.state == TrialState.COMPLETE:
        return "complete" if _feasible(trial) else "infeasible"
    if trial.state == TrialState.PRUNED:
        return "pruned" if _feasible(trial) else "infeasible"
    return {TrialState.FAIL: "failed", TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}[trial.state]


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0.0 for v in trial.constraints.values())


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _val_mae(trial: FrozenTrial) -> float | None:
    if "val_mae" in trial.user_attrs:
        return _num(trial.user_attrs["val_mae"])
    if trial.state == TrialState.COMPLETE and trial.values:
        return _num(trial.values[0])
    return None


def trial_summary(trial: FrozenTrial) -> dict[str, Any]:
    """One trial as plain JSON."""
    ua = trial.user_attrs
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    worker = ua.get("worker") if isinstance(ua.get("worker"), dict) else {}
    return {
        "number": trial.number,
        "state": trial.state.name,
        "status": trial_status(trial),
        "val_mae": _val_mae(trial),
        "latency_ms": _num(ua.get("latency_ms")),
        "latency_device": ua.get("latency_device"),
        "params": dict(trial.params),
        "config": ua.get("config"),
        "epochs": ua.get("epochs_run", len(trial.intermediate_values) or None),
        "intermediate": {int(k): float(v) for k, v in sorted(trial.intermediate_values.items())},
        "duration_s": duration,
        "worker": f"{worker.get('host')}:{worker.get('pid')}" if worker else None,
        "retry_of": ua.get("retry_of"),
        "checkpoint": ua.get("checkpoint"),
        "note": ua.get("note") or trial.system_attrs.get("fail_reason"),
    }


def feasible_complete(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials within the latency budget (the only ones with a trained student)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(t)]


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Trials not dominated in (validation MAE, measured latency), both minimised; by latency."""
    points = [(t, _val_mae(t), _num(t.user_attrs.get("latency_ms"))) for t in trials]
    points = [(t, m, lat) for t, m, lat in points if m is not None and lat is not None]
    front = []
    for t, m, lat in points:
        dominated = any(
            (m2 <= m and l2 <= lat) and (m2 < m or l2 < lat) for _, m2, l2 in points
        )
        if not dominated:
            front.append((lat, m, t))
    return [t for _, _, t in sorted(front, key=lambda p: (p[0], p[1], p[2].number))]


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's Pareto front: optuna's for a multi-objective study, else :func:`pareto_front` of the
    completed feasible trials."""
    return study.best_trials if len(study.directions) > 1 else pareto_front(feasible_complete(study))


def best_feasible(study: optuna.Study) -> FrozenTrial | None:
    """The feasible completed trial of lowest validation MAE (in a multi-objective study: the Pareto
    trial of lowest MAE), or ``None``."""
    trials = feasible_complete(study)
    trials = [t for t in trials if _val_mae(t) is not None]
    if not trials:
        return None
    return min(trials, key=lambda t: (_val_mae(t), _num(t.user_attrs.get("latency_ms")) or 0.0, t.number))


def _mae_target(trial: FrozenTrial) -> float:
    return float(_val_mae(trial))


def importances(study: optuna.Study, *, min_trials: int = 3) -> dict[str, Any]:
    """``{"params": {name: importance}}`` for the validation MAE, or ``{"skipped": reason}``."""
    complete = feasible_complete(study)
    if len(complete) < min_trials:
        return {"skipped": f"{len(complete)} completed feasible trial(s); importances need at least {min_trials}"}
    varying = [
        name
        for name in {p for t in complete for p in t.params}
        if len({repr(t.params.get(name)) for t in complete}) > 1
    ]
    if not varying:
        return {"skipped": "no parameter took more than one value among the completed trials"}
    multi = len(study.directions) > 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optuna.importance.get_param_importances(study, target=_mae_target if multi else None)
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return {"skipped": f"optuna.importance could not evaluate the study: {exc}"}
    return {"params": {k: float(v) for k, v in result.items()}, "target": MAE_NAME}


def _save(ax_or_axes: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ax = ax_or_axes
    while hasattr(ax, "__len__") and not hasattr(ax, "figure"):
        ax = ax.flat[0] if hasattr(ax, "flat") else ax[0]
    fig = ax.figure
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(
    study: optuna.Study, out_dir: Path, *, budget_ms: float, latency_label: str, importance: dict[str, Any]
) -> dict[str, str]:
    """Write the PNG plots into ``out_dir``; returns ``{plot: file name}`` or ``{plot: "skipped: why"}``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    multi = len(study.directions) > 1
    plots: dict[str, str] = {}
    complete = feasible_complete(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
        if complete:
            ax = ovm.plot_optimization_history(
                study, target=_mae_target if multi else None, target_name=MAE_NAME
            )
            ax.set_title("Optimisation history (feasible completed trials)")
            _save(ax, out_dir / "history.png")
            plots["history"] = "history.png"
        else:
            plots["history"] = "skipped: no completed feasible trial"

        if multi and complete:
            ax = ovm.plot_pareto_front(study, target_names=[MAE_NAME, f"{LATENCY_NAME}, {latency_label}"])
            _save(ax, out_dir / "pareto_front.png")
            plots["pareto_front"] = "pareto_front.png"
        elif complete:
            fig, ax = plt.subplots()
            pts = [(t, _num(t.user_attrs.get("latency_ms")), _val_mae(t)) for t in complete]
            pts = [p for p in pts if p[1] is not None and p[2] is not None]
            front = {t.number for t in pareto_front(complete)}
            ax.scatter([p[1] for p in pts if p[0].number not in front], [p[2] for p in pts if p[0].number not in front],
                       c="tab:blue", alpha=0.6, label="trial")
            fp = sorted([p for p in pts if p[0].number in front], key=lambda p: p[1])
            ax.plot([p[1] for p in fp], [p[2] for p in fp], "o-", c="tab:red", label="Pareto front")
            for t, lat, mae in pts:
                ax.annotate(str(t.number), (lat, mae), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.axvline(budget_ms, ls="--", c="gray", label=f"budget {budget_ms:g} ms")
            ax.set_xlabel(f"{LATENCY_NAME}, {latency_label}")
            ax.set_ylabel(MAE_NAME)
            ax.set_title("Validation MAE against measured latency")
            ax.legend()
            _save(ax, out_dir / "pareto_front.png")
            plots["pareto_front"] = "pareto_front.png"
        else:
            plots["pareto_front"] = "skipped: no completed feasible trial"

        if "params" in importance:
            try:
                ax = ovm.plot_param_importances(study, target=_mae_target if multi else None, target_name=MAE_NAME)
                _save(ax, out_dir / "importances.png")
                plots["importances"] = "importances.png"
            except (RuntimeError, ValueError, ZeroDivisionError) as exc:
                plots["importances"] = f"skipped: {exc}"
        else:
            plots["importances"] = f"skipped: {importance.get('skipped')}"
    plt.close("all")
    return plots


def build_report(
    study: optuna.Study,
    *,
    settings: dict[str, Any],
    plots: dict[str, str] | None = None,
    importance: dict[str, Any] | None = None,
    export: dict[str, Any] | None = None,
    front_test: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The content of ``report.json``; ``front_test`` (trial number -> test metrics by horizon) scores the
    Pareto front's students on the test split (``pareto_front[i]["test"]``)."""
    trials = study.get_trials(deepcopy=False)
    statuses = [trial_status(t) for t in trials]
    counts = {s: statuses.count(s) for s in ("complete", "pruned", "infeasible", "failed", "running", "waiting")}
    counts["total"] = len(trials)
    best = best_feasible(study)
    front = front_trials(study)
    return {
        "study": study.study_name,
        "directions": [d.name.lower() for d in study.directions],
        "objectives": [MAE_NAME, LATENCY_NAME][: len(study.directions)],
        "settings": settings,
        "counts": counts,
        "best": trial_summary(best) if best is not None else None,
        "pareto_front": [{**trial_summary(t), "test": (front_test or {}).get(t.number)}
                         for t in sorted(front, key=lambda t: (_num(t.user_attrs.get("latency_ms")) or 0.0, t.number))],
        "importances": importance if importance is not None else importances(study),
        "plots": plots or {},
        "export": export,
        "trials": [trial_summary(t) for t in trials],
    }


def _fmt(x: Any, nd: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}g}"
    return str(x)


def _params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in p.items())


def _teacher_lines(info: dict[str, Any] | None) -> list[str]:
    """The teacher's line of the report: epochs its run trained (of those asked for) and its val MAE."""
    if not info:
        return []
    if info.get("epochs_trained") is None:
        run = f"its run's end unknown (no last.pt beside it), asked for {_fmt(info.get('epochs_requested'))} epoch(s)"
    else:
        run = f"trained {info['epochs_trained']} of {_fmt(info.get('epochs_requested'))} epoch(s)"
        if info.get("stopped_early"):
            run += " (stopped early)"
        elif info.get("finished") is False:
            run += " (**unfinished**)"
    return [f"- teacher: {_fmt(info.get('model'))}, {run}; weights of epoch {info.get('epoch')}, "
            f"val MAE **{_fmt(info.get('val_mae'))}**"]


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lat = s.get("latency", {})
    c = report["counts"]
    lines = [
        f"# Study `{report['study']}`",
        "",
        f"- objective: minimise {' and '.join(report['objectives'])}"
        + (" (multi-objective)" if len(report["objectives"]) > 1 else "")
        + f", subject to latency <= {lat.get('budget_ms')} ms",
        f"- latency: batch {lat.get('batch')}, mode {lat.get('mode')}, {lat.get('dtype')}, measured on "
        f"**{lat.get('device_kind', '?').upper()}** ({lat.get('device_name', '?')})"
        + (f" -- {lat['note']}" if lat.get("note") else ""),
        f"- dataset `{s.get('dataset')}`, teacher `{s.get('teacher')}`, {s.get('epochs')} epoch(s) per trial, "
        f"sampler {s.get('sampler')}, pruner {s.get('pruner')}",
        *_teacher_lines(s.get("teacher_training")),
        f"- storage `{s.get('storage')}` (open it with `{s.get('dashboard')}`)",
        f"- trials: {c['total']} total -- {c['complete']} complete, {c['pruned']} pruned, "
        f"{c['infeasible']} infeasible (over budget, not trained), {c['failed']} failed"
        + (f", {c['running']} running" if c["running"] else "")
        + (f", {c['waiting']} waiting" if c["waiting"] else ""),
        "",
        "## Best feasible trial",
        "",
    ]
    best = report["best"]
    if best is None:
        lines.append("No trial met the latency budget and completed; nothing was exported.")
    else:
        lines += [
            f"Trial {best['number']}: val MAE **{_fmt(best['val_mae'])}**, latency **{_fmt(best['latency_ms'])} ms**",
            "",
            f"Parameters: {_params(best['params'])}",
        ]
        exp = report.get("export")
        if exp and exp.get("path"):
            lines += ["", f"Exported to `{exp['path']}` (from `{exp.get('checkpoint')}`)."]
            test = (exp.get("test") or {}).get("avg")
            if test:
                lines += ["", f"Test split (exported student): MAE {_fmt(test.get('mae'))}, RMSE {_fmt(test.get('rmse'))}, "
                              f"MAPE {_fmt(test.get('mape'))}."]
        elif exp and exp.get("error"):
            lines += ["", f"Export failed: {exp['error']}"]
    lines += ["", "## Pareto front (val MAE vs measured latency, feasible trials)", ""]
    if report["pareto_front"]:
        horizons = list(next((t["test"] for t in report["pareto_front"] if t.get("test")), {}))
        lines += ["| trial | val MAE | latency (ms) | " + "".join(f"test MAE {h} | " for h in horizons) + "parameters |",
                  "|---:|---:|---:|" + "---:|" * len(horizons) + "---|"]
        for t in report["pareto_front"]:
            tests = "".join(f"{_fmt(((t.get('test') or {}).get(h) or {}).get('mae'))} | " for h in horizons)
            lines.append(f"| {t['number']} | {_fmt(t['val_mae'])} | {_fmt(t['latency_ms'])} | {tests}{_params(t['params'])} |")
    else:
        lines.append("Empty: no completed feasible trial.")
    lines += ["", "## Parameter importances", ""]
    imp = report["importances"]
    if "params" in imp:
        lines += ["| parameter | importance |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in imp["params"].items()]
    else:
        lines.append(f"Skipped: {imp.get('skipped')}.")
    lines += ["", "## Plots", ""]
    for name, value in report["plots"].items():
        lines.append(f"![{name}]({value})" if value.endswith(".png") else f"- {name}: {value}")
    lines += ["", "## All trials", "", "| trial | status | val MAE | latency (ms) | epochs | seconds | parameters |",
              "|---:|---|---:|---:|---:|---:|---|"]
    for t in report["trials"]:
        lines.append(
            f"| {t['number']} | {t['status']} | {_fmt(t['val_mae'])} | {_fmt(t['latency_ms'])} | {_fmt(t['epochs'])} "
            f"| {_fmt(t['duration_s'], 3)} | {_params(t['params'])} |"
        )
    return "\n".join(lines) + "\n"


def write_report(
    study: optuna.Study,
    out_dir: str | os.PathLike[str],
    *,
    settings: dict[str, Any],
    export: dict[str, Any] | None = None,
    plots: bool = True,
    front_test: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` and the plots into ``out_dir``; return the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    importance = importances(study)
    plot_files = (
        make_plots(study, out, budget_ms=settings["latency"]["budget_ms"],
                   latency_label=settings["latency"].get("label", ""), importance=importance)
        if plots else {}
    )
    report = build_report(study, settings=settings, plots=plot_files, importance=importance, export=export,
                          front_test=front_test)
    atomic_write(out / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    atomic_write(out / "report.md", render_markdown(report))
    return report
