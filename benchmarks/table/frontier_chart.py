"""The student frontier's section of RESULTS.md: the chart (PNG), the table, "which student to use" and
what is not on the chart, all from :func:`benchmarks.table.frontier.gather`.

:func:`frontier_section` draws ``frontier-metr-la-week-cpu.png`` into the results folder (matplotlib, Agg,
written atomically) and returns the section's lines with a link to it relative to RESULTS.md. Nothing
here measures anything.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from benchmarks.table.baselines import WORSE, best_baseline, worse_horizons
from benchmarks.table.frontier import DATASET, Frontier, Point, gather, pareto, which_student
from benchmarks.table.studies import StudyFront, study_fronts
from benchmarks.table.records import _fmt_count, _fmt_ms

__all__ = ["CHART", "frontier_section", "draw", "table"]

#: the chart's file name in the results folder
CHART = f"frontier-{DATASET}-cpu.png"
MARKERS = {("teacher", "plain"): "*", ("student", "plain"): "o", ("student", "distilled"): "^", ("peer", "plain"): "s"}


def _shortfalls(front: Frontier, p: Point) -> set[str]:
    """The horizons at which ``p``'s mean MAE is above the best baseline's."""
    return worse_horizons(front.baselines_block, {h: m[0] for h, m in p.score.mae.items() if m[2]})


def _mae(p: Point, h: str, worse: set[str]) -> str:
    m, sd, n = p.score.mae[h]
    if not n:
        return "–"
    return f"{m:.2f}" + (f" ± {sd:.2f}" if n > 1 else "") + (f" {WORSE}" if h in worse else "")


def _speedups(p: Point) -> str:
    t = p.timing
    if t is None:
        return "–"
    return " / ".join(f"{x:.1f}×" if x else "–" for x in (t.speedup_b1, t.speedup_b64))


def _row(front: Frontier, p: Point) -> str:
    t = p.timing
    worse = _shortfalls(front, p)
    return (f"| {p.label} | {_mae(p, '60min', worse)} | {_mae(p, 'avg', worse)} | {_fmt_count(p.score.parameters)} | "
            f"{_fmt_count(p.flops)} | {_fmt_ms(t.b1_ms) if t else 'not timed'} | "
            f"{_fmt_ms(t.b64_ms) if t and t.b64_ms else '–'} | {_speedups(p)} | {p.score.flags} | "
            f"`{p.score.source}` | {f'`{t.source}`' if t else '–'} |")


def table(front: Frontier) -> list[str]:
    """The charted points (then those not timed), the baselines, and the marks against the best baseline."""
    lines = ["| model | MAE 60 min | MAE avg 12 | params | FLOPs b1 | CPU ms b1 (1 thread) | CPU ms b64 | "
             "× Graph WaveNet b1 / b64 | how it was trained | accuracy from | latency from |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    lines += [_row(front, p) for p in front.points]
    best = best_baseline(front.baselines_block)
    for label, maes in front.baselines.items():
        mark = " (best at 60 min)" if best.get("60min", ("",))[0] == label else ""
        lines.append(f"| baseline: {label}{mark} | {maes.get('60min', float('nan')):.2f} | "
                     f"{maes.get('avg', float('nan')):.2f} | – | – | no latency (a line on the chart) | – | – | "
                     f"fitted on the training split | {front.baselines_source} | – |")
    return lines


def _short(p: Point) -> str:
    """A point's name on the chart (the table has the full one)."""
    s = p.score
    if s.role == "teacher":
        return f"Graph WaveNet, {s.epochs} epochs" if s.family == "graph-wavenet" and s.epochs else p.label
    width = s.width or (p.timing.width if p.timing else None)
    return (s.family + (f" w{width}" if width else "") + (" KD" if s.training == "distilled" else "")
            + (" + " + s.inputs if s.inputs else ""))


def draw(front: Frontier, path: Path, fronts: list[StudyFront] | None = None) -> Path:
    """Two panels: MAE at 60 min against one-thread CPU latency at batch 1 (log) and against FLOPs at batch 1
    (log); the baselines as horizontal lines, the students' front as a step line, and on the latency panel
    the Pareto fronts of the tuning studies ``fronts`` (:func:`~benchmarks.table.studies.study_fronts`).
    Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    families = sorted({p.score.family for p in front.points})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5))
    panels = [(axes[0], [p for p in front.points if p.timing], lambda p: p.timing.b1_ms,
               "CPU latency at batch 1, one thread (ms, log scale)"),
              (axes[1], [p for p in front.points if p.flops], lambda p: p.flops / 1e6,
               "FLOPs at batch 1 (millions, log scale)")]
    for ax, pts, x, xlabel in panels:
        placed: list[tuple[float, float]] = []
        for p in sorted(pts, key=lambda p: (x(p), -p.mae60)):
            m, sd, n = p.score.mae["60min"]
            ax.errorbar([x(p)], [m], yerr=[sd] if n > 1 else None, fmt=MARKERS.get((p.score.role, p.score.training), "D"),
                        color=colours[p.score.family], markersize=13 if p.score.role == "teacher" else 7, capsize=3)
            # the labels of nearby points stack downwards instead of overlapping
            k = sum(1 for lx, lm in placed if abs(lx - math.log10(x(p))) < 0.15 and abs(lm - m) < 0.06)
            placed.append((math.log10(x(p)), m))
            ax.annotate(_short(p), (x(p), m), textcoords="offset points", xytext=(6, 3 - 10 * k), fontsize=7.5)
        xs = [x(p) for p in pts]
        if xs:
            ax.set_xlim(min(xs) / 1.6, max(xs) * 4)
        for i, (label, maes) in enumerate(front.baselines.items()):
            if "60min" in maes:
                ax.axhline(maes["60min"], linestyle=(0, (5, 2 + i)), linewidth=0.9, color="0.5")
                ax.annotate(f"{label} {maes['60min']:.2f}", (0.99, maes["60min"]), xycoords=("axes fraction", "data"),
                            xytext=(0, 2), textcoords="offset points", fontsize=7, color="0.35", ha="right")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test masked MAE at 60 min")
        ax.grid(True, which="both", alpha=0.3)
    front_pts = pareto([p for p in front.points if p.score.role == "student"])
    handles = [Line2D([], [], marker=mk, linestyle="", color="0.3", label=name) for (role, training), mk, name in
               ((k, v, f"{k[0]}" + (f" ({k[1]})" if k[0] == "student" else "")) for k, v in MARKERS.items())
               if any((p.score.role, p.score.training) == (role, training) for p in front.points)]
    if len(front_pts) > 1:
        axes[0].step([p.timing.b1_ms for p in front_pts], [p.mae60 for p in front_pts], where="post", color="0.2",
                     linewidth=0.8, alpha=0.6)
        handles.append(Line2D([], [], color="0.2", linewidth=0.8, label="students no other beats on both"))
    for k, study in enumerate(fronts or []):
        xs, ys = [t[3] for t in study.trials], [t[4] for t in study.trials]
        axes[0].plot(xs, ys, marker="x", linestyle=":", color=f"C{(k + 6) % 10}", linewidth=1.0, markersize=8)
        for number, family, width, ms, mae in study.trials:
            axes[0].annotate(f"#{number} {family}" + (f" w{width}" if width else ""), (ms, mae),
                             textcoords="offset points", xytext=(5, -9), fontsize=6.5, color=f"C{(k + 6) % 10}")
        handles.append(Line2D([], [], marker="x", linestyle=":", color=f"C{(k + 6) % 10}",
                              label=f"tuning study front\n({study.source.removesuffix('.json')};\n"
                                    f"{study.epochs}-epoch trials)"))
    axes[0].legend(handles=handles, loc="upper left", fontsize=7)
    axes[0].set_title(f"{DATASET}: test MAE at 60 min against one-thread CPU latency", fontsize=10)
    axes[1].set_title("against FLOPs at batch 1 (where a record counted them)", fontsize=10)
    fig.text(0.01, 0.005, "Error bars: sample std over seeds. Dashed lines: baselines fitted on the training split "
             "(no latency). Every figure from benchmarks/results; see RESULTS.md for the records and flags.", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
    return path


def frontier_section(results_dir: Path, markdown: Path | None = None) -> list[str]:
    """The section "Accuracy against latency" for RESULTS.md, its chart drawn into ``results_dir``; empty
    when no record of the week has both an accuracy and a timing."""
    front = gather(Path(results_dir))
    if not front.charted:
        return []
    fronts, skipped = study_fronts(Path(results_dir))
    png = draw(front, Path(results_dir) / CHART, fronts)
    link = os.path.relpath(png, Path(markdown).resolve().parent) if markdown else png.name
    out: list[str] = [f"## Accuracy against latency: the student frontier ({DATASET}, one CPU thread)", "",
                      "*Computed by `benchmarks/table/frontier.py` from the records named in each row: test masked "
                      "MAE from the accuracy records (mean ± std over seeds), one-thread CPU latency at batch 1 and 64 "
                      "from the newest idle latency record that timed the same model (same family, parameter count "
                      "and input channels; a record or row timed on a busy machine is never used), the speed-up "
                      "against Graph WaveNet timed in that same record. One point per model: where several recipes "
                      "are on record, the one trained longest, then with more seeds, then with the lower validation "
                      "MAE. " + f"{WORSE} = worse than the best baseline at that horizon.*", "",
                      f"![MAE at 60 min against CPU latency and FLOPs]({link})", ""]
    out += table(front) + [""]
    out += which_student(front) + [""]
    if front.missing:
        out += ["**Not on the latency panel**: " + "; ".join(f"{what}: {why}" for what, why in front.missing) + ".",
                ""]
    no_flops = [p.label for p in front.points if p.flops is None]
    if no_flops:
        out += ["**Not on the FLOPs panel** (no record counted their FLOPs at batch 1): " + ", ".join(no_flops) + ".",
                ""]
    if front.others:
        out += ["<details><summary>Other recipes on record (not charted: one point per model)</summary>", ""]
        out += [f"- {p.label}: {p.mae60:.2f} at 60 min ({p.score.flags}; `{p.score.source}`)" for p in front.others]
        out += ["", "</details>", ""]
    out += [_tuning_note(fronts, skipped), ""]
    return out


def _tuning_note(fronts: list[StudyFront], skipped: list[tuple[str, str]]) -> str:
    """What the chart says of the tuning studies: the fronts drawn, and why the others are not."""
    if not fronts and not skipped:
        return "No tuning study of the week is recorded: no Pareto front on the chart."
    drawn = [f"`{f.source}` ({len(f.trials)} trials: " + ", ".join(
        f"#{n} {fam}" + (f" w{w}" if w else "") + f" {ms:.2f} ms {mae:.2f}" for n, fam, w, ms, mae in f.trials) + ")"
        for f in fronts]
    parts = []
    if drawn:
        parts.append("Tuning study fronts drawn on the latency panel (test MAE at 60 min of each front trial, its "
                     "latency as the study timed it): " + "; ".join(drawn) + ".")
    if skipped:
        parts.append("Not drawn: " + "; ".join(f"{name} ({why})" for name, why in skipped) + ".")
    return " ".join(parts)
