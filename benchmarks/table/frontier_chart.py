"""The frontier chart (``frontier-metr-la-week-cpu.png``, matplotlib Agg, written atomically) and section
(:func:`frontier_section`): each point a marker in its family's colour, numbered by its row of the table where
the number touches no other (:func:`label_points`), with the tuning studies' Pareto fronts."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from benchmarks.table.frontier import DATASET, Frontier, StudyFront, frontier_lines, gather, pareto, study_fronts

#: the chart's file name in the results folder
CHART = f"frontier-{DATASET}-cpu.png"
DPI = 110
#: how far (MAE) the axis reaches above the worst baseline; a model worse than that sits on the top edge
ABOVE_BASELINES = 0.3
#: the margin kept around a point's number (its box scaled by this in width and height) by :func:`label_points`
LABEL_PAD = (1.1, 1.15)


def figure(front: Frontier, fronts: list[StudyFront] | None = None) -> Any:
    """Two panels: MAE at 60 min against one-thread CPU latency at batch 1 (log) and against FLOPs at batch 1
    (log). Point ``i`` of ``front.points`` is drawn as the number ``i + 1`` in its family's colour, with its seed
    spread; the baselines are horizontal lines, the students' front a step line, and on the latency panel the
    Pareto fronts of the tuning studies ``fronts``; all named in the legend below the panels. The MAE axis ends
    :data:`ABOVE_BASELINES` above the worst baseline: a model worse than that sits on the top edge (the table
    gives its MAE). Returns the matplotlib figure (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    families = sorted({p.score.family for p in front.points})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(1, 2, figsize=(15, 7.5), dpi=DPI)
    panels = [(axes[0], lambda p: p.timing.b1_ms if p.timing else None, "CPU latency at batch 1, one thread (ms, log scale)"),
              (axes[1], lambda p: p.flops / 1e6 if p.flops else None, "FLOPs at batch 1 (millions, log scale)")]
    baselines = [(label, m["60min"]) for label, m in front.baselines.items() if "60min" in m]
    everything = [p.mae60 for p in front.points] + [t[4] for s in fronts or [] for t in s.trials]
    top = max([y for _, y in baselines] or everything or [1.0]) + ABOVE_BASELINES
    bottom = min(everything + [y for _, y in baselines] or [0.0]) - 0.15
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[f], label=f) for f in families]
    for i, (label, y) in enumerate(baselines):
        handles.append(Line2D([], [], linestyle=(0, (5, 2 + i)), color="0.5", label=f"baseline: {label} {y:.2f}"))
    for ax, x, xlabel in panels:
        xs = []
        for n, p in enumerate(front.points, 1):
            if x(p) is not None:
                m, sd, k = p.score.mae["60min"]
                ax.errorbar([x(p)], [min(m, top)], yerr=[sd] if k > 1 and m <= top else None, marker="o",
                            linestyle="none", capsize=3, color=colours[p.score.family], markersize=5, gid=str(n))
                xs.append(x(p))
        if xs:
            ax.set_xlim(min(xs) / 1.8, max(xs) * 2.5)
        ax.set_ylim(bottom, top + 0.08)  # a number on the top edge shows whole
        for i, (_, y) in enumerate(baselines):
            ax.axhline(y, linestyle=(0, (5, 2 + i)), linewidth=0.9, color="0.5")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.set(xlabel=xlabel, ylabel="test masked MAE at 60 min")
        ax.grid(True, which="both", alpha=0.3)
    students = pareto([p for p in front.points if p.score.role == "student"])
    if len(students) > 1:
        axes[0].step([p.timing.b1_ms for p in students], [p.mae60 for p in students], where="post", color="0.2",
                     linewidth=0.8, alpha=0.6)
        handles.append(Line2D([], [], color="0.2", linewidth=0.8, label="students no other beats on both"))
    for k, study in enumerate(fronts or []):
        colour = f"C{(k + 6) % 10}"
        axes[0].plot([t[3] for t in study.trials], [t[4] for t in study.trials], marker="x", linestyle=":",
                     color=colour, linewidth=1.0, markersize=8)
        handles.append(Line2D([], [], marker="x", linestyle=":", color=colour, label=f"tuning study front "
                              f"({study.source.removesuffix('.json')}; {study.epochs}-epoch trials)"))
    order = sorted(range(len(front.points)), key=lambda i: (front.points[i] not in students,
                                                             front.points[i].score.role != "teacher",
                                                             front.points[i].mae60))
    for ax, x, _ in panels:
        label_points(ax, [(i + 1, x(front.points[i]), min(front.points[i].mae60, top)) for i in order
                          if x(front.points[i]) is not None])
    columns = 4
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.025))
    axes[0].set_title(f"{DATASET}: test MAE at 60 min against one-thread CPU latency", fontsize=10)
    axes[1].set_title("against FLOPs at batch 1 (where a record counted them)", fontsize=10)
    fig.text(0.01, 0.008, "A number is the row of that number in RESULTS.md's table (every point has one there). Error bars: sample std over "
             "seeds. Dashed lines: baselines fitted on the training split (no latency). Every figure from "
             "benchmarks/results.", fontsize=7)
    fig.tight_layout(rect=(0, 0.04 + 0.028 * math.ceil(len(handles) / columns), 1, 1))
    return fig


def label_points(ax: Any, points: list[tuple[int, float, float]]) -> list[Any]:
    """Write each point's number just above and right of it, in the order given, skipping a number whose box
    would touch one already written or leave the panel; returns the texts written."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    written, boxes = [], []
    for n, x, y in points:
        text = ax.annotate(str(n), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=8, gid=f"label-{n}")
        box = text.get_window_extent(renderer).expanded(*LABEL_PAD)
        inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        if not inside or any(box.overlaps(b) for b in boxes):
            text.remove()
            continue
        written.append(text)
        boxes.append(box)
    return written


def draw(front: Frontier, path: Path, fronts: list[StudyFront] | None = None) -> Path:
    """:func:`figure` written to ``path`` as a PNG, atomically."""
    import matplotlib.pyplot as plt

    fig = figure(front, fronts)
    tmp = Path(path).with_name(Path(path).stem + ".tmp.png")
    fig.savefig(tmp, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return tmp.replace(path)


def frontier_section(results_dir: Path, markdown: Path | None = None) -> list[str]:
    """The section "Accuracy against latency" for RESULTS.md, its chart drawn into ``results_dir``; empty when
    no record of the week has both an accuracy and a timing."""
    front = gather(Path(results_dir))
    if not front.charted:
        return []
    fronts, skipped = study_fronts(Path(results_dir))
    png = draw(front, Path(results_dir) / CHART, fronts)
    return frontier_lines(front, fronts, skipped, os.path.relpath(png, Path(markdown).resolve().parent)
                          if markdown else png.name)
