"""The student frontier's chart and section: :func:`frontier_section` draws ``frontier-metr-la-week-cpu.png``
into the results folder (matplotlib, Agg, written atomically) from :func:`benchmarks.table.frontier.gather`,
with the Pareto fronts of the week's tuning studies, and returns the section's lines
(:func:`~benchmarks.table.frontier.frontier_lines`) with a link to it relative to RESULTS.md.

Every point is named where its name fits without touching another name, a marker, a baseline or a leader
line (:func:`_place`); points whose markers touch share one name (:func:`point_labels`). Nothing here
measures anything.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

from benchmarks.table.frontier import (DATASET, Frontier, Point, StudyFront, frontier_lines, gather, pareto,
                                       study_fronts)

__all__ = ["CHART", "LABEL_GID", "figure", "draw", "frontier_section", "point_labels", "short", "text_box"]

#: the chart's file name in the results folder
CHART = f"frontier-{DATASET}-cpu.png"
#: a label on the chart: its text, the points it names (data units; it sits by the first) and its colour
Label = tuple[str, list[tuple[float, float]], Any]
MARKERS = {("teacher", "plain"): "*", ("student", "plain"): "o", ("student", "distilled"): "^", ("peer", "plain"): "s"}
DPI = 110
#: how far (MAE) the axis reaches above the worst baseline; a model worse than that sits on the top edge
ABOVE_BASELINES = 0.3
#: the markers' size (points) of students and peers (teachers': about twice as large)
MARKER_SIZE = 7
#: points of one model at one x closer than this (MAE) share a label (their markers touch)
SAME_PLACE_MAE = 0.06
#: the least room (pixels) between a label and anything else
LABEL_GAP = 2.0
#: the ``gid`` of a point's label (the tests find them by it)
LABEL_GID = "frontier-label"
#: where a label may go, in points from its point, nearest first (beyond 10 points, with a leader line)
LABEL_OFFSETS = [(round(r * math.cos(math.radians(a))), round(r * math.sin(math.radians(a))))
                 for r in (6, 12, 20, 30, 42, 56, 72, 90, 110, 130, 160, 200)
                 for a in (0, 180, -30, 30, -150, 150, 90, -90, -15, 15, -165, 165, -60, 60, -120, 120, -45, 45,
                           -135, 135, -75, 75, -105, 105)]


def short(p: Point) -> str:
    """A point's name on the chart (the table has the full one)."""
    s = p.score
    if s.role == "teacher":
        return f"Graph WaveNet, {s.epochs} epochs" if s.family == "graph-wavenet" and s.epochs else p.label
    width = s.width or (p.timing.width if p.timing else None)
    return (s.family + (f" w{width}" if width else "") + (" KD" if s.training == "distilled" else "")
            + (" + " + s.inputs if s.inputs else ""))


def _base(p: Point) -> str:
    """A point's name without its training ("gru w16 KD" and "gru w16" are one model)."""
    return short(p).replace(" KD", "", 1) if p.score.training == "distilled" else short(p)


def point_labels(points: list[tuple[Point, float]], top: float, colours: dict[str, Any],
                 near: Callable[[tuple[float, float], tuple[float, float]], bool] | None = None) -> list[Label]:
    """The labels of ``points`` (each with its x; in order of importance). Points share one label where their
    markers touch or nearly: those of one model at one x within :data:`SAME_PLACE_MAE` of each other ("gru w16,
    plain & KD"); those above ``top`` at one x, drawn together on the top edge, each name with its MAE after an
    arrow ("pgt-tgcn w32 ↑ 6.79, 6.85"); and any whose markers touch (``near``, two points in data units)."""
    groups: list[tuple[float, float, list[tuple[Point, float]]]] = []
    for p, x in points:
        y = min(p.mae60, top)
        group = next((g for g in groups if any(
            (xq == x and ((y == top and g[1] == top) or (_base(q) == _base(p) and abs(min(q.mae60, top) - y)
                                                          <= SAME_PLACE_MAE)))
            or (near is not None and near((xq, min(q.mae60, top)), (x, y))) for q, xq in g[2])), None)
        if group is None:
            groups.append((x, y, [(p, x)]))
        else:
            group[2].append((p, x))
    out = []
    for x, y, members in groups:
        names: dict[str, list[Point]] = {}
        for p, _ in members:
            names.setdefault(_base(p), []).append(p)
        parts = [(short(same[0]) if len(same) == 1 else f"{name}, plain & KD"
                  if {p.score.training for p in same} == {"plain", "distilled"} else name)
                 + (" ↑ " + ", ".join(f"{m:.2f}" for m in sorted(p.mae60 for p in same if p.mae60 > top))
                    if any(p.mae60 > top for p in same) else "") for name, same in names.items()]
        colour = colours[members[0][0].score.family] if y == top and len(names) == 1 else "0.15"
        out.append(("; ".join(parts), [(xq, min(p.mae60, top)) for p, xq in members], colour))
    return out


def text_box(text: Any, renderer: Any) -> Any:
    """The display box of a text's glyphs (for an annotation, without its leader line)."""
    from matplotlib.text import Text

    if hasattr(text, "update_positions"):
        text.update_positions(renderer)
    return Text.get_window_extent(text, renderer)


def _hits(box: Any, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether segment ab passes through ``box`` (Liang–Barsky clipping)."""
    lo, hi = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - box.x0), (dx, box.x1 - a[0]), (-dy, a[1] - box.y0), (dy, box.y1 - a[1])):
        if p == 0 and q < 0:
            return False
        if p != 0:
            lo, hi = (max(lo, q / p), hi) if p < 0 else (lo, min(hi, q / p))
    return lo <= hi


def _place(ax: Any, label: Label, renderer: Any, obstacles: list[Any], leaders: list[tuple]) -> Any:
    """Draw ``label`` at the first of :data:`LABEL_OFFSETS` where its text stays inside ``ax``, keeps
    :data:`LABEL_GAP` pixels from every box of ``obstacles`` and from every leader line of ``leaders``, and
    its own leader line (if any) passes through no box but its own points' markers; record its box and
    leader line there. ``None`` (nothing drawn) where none fits."""
    text, points, colour = label
    frame = ax.get_window_extent(renderer)
    own = [ax.transData.transform(xy) for xy in points]
    for dx, dy in LABEL_OFFSETS:
        far = math.hypot(dx, dy) > 10
        ann = ax.annotate(text, xy=points[0], xytext=(dx, dy), textcoords="offset points", fontsize=7.5, color=colour,
                          ha="left" if dx > 0 else "right" if dx < 0 else "center",
                          va="bottom" if dy > 0 else "top" if dy < 0 else "center", annotation_clip=False,
                          gid=LABEL_GID, arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5, "shrinkA": 0,
                                                     "shrinkB": 3} if far else None)
        box = text_box(ann, renderer)
        pad = box.padded(LABEL_GAP)
        ends = [(x, y) for x in (box.x0, (box.x0 + box.x1) / 2, box.x1) for y in (box.y0, (box.y0 + box.y1) / 2, box.y1)]
        leader = (tuple(own[0]), min(ends, key=lambda e: math.hypot(e[0] - own[0][0], e[1] - own[0][1])))
        if (frame.x0 + 1 <= box.x0 and box.x1 <= frame.x1 - 1 and frame.y0 + 1 <= box.y0 and box.y1 <= frame.y1 - 1
                and not any(pad.overlaps(o) for o in obstacles) and not any(_hits(pad, *seg) for seg in leaders)
                and not (far and any(_hits(o, *leader) for o in obstacles
                                     if not any(o.contains(*q) for q in own)))):
            obstacles.append(box)
            leaders += [leader] if far else []
            return ann
        ann.remove()
    return None


def _label(ax: Any, labels: list[Label], renderer: Any, obstacles: list[Any], tries: int = 4) -> None:
    """Place ``labels`` in order (:func:`_place`); when some find no place, lay out again with those first (at
    most ``tries`` layouts; the one that places the most is kept)."""
    best: tuple[list[Any], list[Any]] | None = None
    for _ in range(tries):
        boxes, leaders = list(obstacles), []
        placed = [_place(ax, label, renderer, boxes, leaders) for label in labels]
        drawn = [a for a in placed if a is not None]
        if best is None or len(drawn) > len(best[0]):
            for ann in best[0] if best else []:
                ann.remove()
            best = (drawn, boxes)
        else:
            for ann in drawn:
                ann.remove()
        dropped = [label for label, ann in zip(labels, placed) if ann is None]
        if not dropped:
            break
        labels = dropped + [label for label in labels if label not in dropped]
    obstacles[:] = best[1]


def figure(front: Frontier, fronts: list[StudyFront] | None = None) -> Any:
    """Two panels: MAE at 60 min against one-thread CPU latency at batch 1 (log) and against FLOPs at batch 1
    (log); the baselines as horizontal lines, the students' front as a step line, and on the latency panel the
    Pareto fronts of the tuning studies ``fronts``. Colour is the model family and the marker its role, both
    in the legend below the panels. The MAE axis ends :data:`ABOVE_BASELINES` above the worst baseline: a model
    worse than that sits on the top edge, its label giving its MAE. Returns the matplotlib figure (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import Bbox

    families = sorted({p.score.family for p in front.points})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(1, 2, figsize=(15, 7.5), dpi=DPI)
    panels = [(axes[0], [p for p in front.points if p.timing], lambda p: p.timing.b1_ms,
               "CPU latency at batch 1, one thread (ms, log scale)"),
              (axes[1], [p for p in front.points if p.flops], lambda p: p.flops / 1e6,
               "FLOPs at batch 1 (millions, log scale)")]
    baselines = [(f"{label} {m['60min']:.2f}", m["60min"]) for label, m in front.baselines.items() if "60min" in m]
    everything = [p.mae60 for p in front.points] + [t[4] for s in fronts or [] for t in s.trials]
    top = max([y for _, y in baselines] or everything or [1.0]) + ABOVE_BASELINES
    bottom = min(everything + [y for _, y in baselines] or [0.0]) - 0.15
    students = pareto([p for p in front.points if p.score.role == "student"])
    rank = {("teacher", "plain"): 1, ("peer", "plain"): 2, ("student", "plain"): 3, ("student", "distilled"): 4}
    markers: dict[Any, list[tuple[float, float, float]]] = {ax: [] for ax, *_ in panels}
    labels: dict[Any, list[tuple[Point, float]]] = {ax: [] for ax, *_ in panels}
    for ax, pts, x, xlabel in panels:
        for p in sorted(pts, key=lambda p: (p not in students, rank.get((p.score.role, p.score.training), 5), p.mae60)):
            m, sd, n = p.score.mae["60min"]
            size, fmt = 13 if p.score.role == "teacher" else MARKER_SIZE, MARKERS.get((p.score.role, p.score.training), "D")
            ax.errorbar([x(p)], [min(m, top)], yerr=[sd] if n > 1 and m <= top else None, fmt=fmt, capsize=3,
                        color=colours[p.score.family], markersize=size, clip_on=m <= top)
            markers[ax].append((x(p), min(m, top), size))
            labels[ax].append((p, x(p)))
        if pts:
            ax.set_xlim(min(map(x, pts)) / 1.8, max(map(x, pts)) * 2.5)
        ax.set_ylim(bottom, top)
        for i, (_, y) in enumerate(baselines):
            ax.axhline(y, linestyle=(0, (5, 2 + i)), linewidth=0.9, color="0.5")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.set(xlabel=xlabel, ylabel="test masked MAE at 60 min")
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], marker=mk, linestyle="", color="0.3", label=k[0] + (f" ({k[1]})" if k[0] == "student" else ""))
               for k, mk in MARKERS.items() if any((p.score.role, p.score.training) == k for p in front.points)]
    rows = max(len(handles), 3)  # a column of markers, then the families' colours, then the lines
    handles += [Line2D([], [], marker="o", linestyle="", color=colours[f], label=f) for f in families]
    if len(students) > 1:
        axes[0].step([p.timing.b1_ms for p in students], [p.mae60 for p in students], where="post", color="0.2",
                     linewidth=0.8, alpha=0.6)
        handles.append(Line2D([], [], color="0.2", linewidth=0.8, label="students no other beats on both"))
    studies = []
    for k, study in enumerate(fronts or []):
        colour = f"C{(k + 6) % 10}"
        axes[0].plot([t[3] for t in study.trials], [t[4] for t in study.trials], marker="x", linestyle=":",
                     color=colour, linewidth=1.0, markersize=8)
        markers[axes[0]] += [(t[3], t[4], 8) for t in study.trials]
        studies += [(f"#{n} {fam}" + (f" w{w}" if w else ""), [(ms, mae)], colour) for n, fam, w, ms, mae in study.trials]
        handles.append(Line2D([], [], marker="x", linestyle=":", color=colour, label=f"tuning study front "
                              f"({study.source.removesuffix('.json')}; {study.epochs}-epoch trials)"))
    fig.legend(handles=handles, loc="lower center", ncol=math.ceil(len(handles) / rows), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.025))
    axes[0].set_title(f"{DATASET}: test MAE at 60 min against one-thread CPU latency", fontsize=10)
    axes[1].set_title("against FLOPs at batch 1 (where a record counted them)", fontsize=10)
    fig.text(0.01, 0.008, "Error bars: sample std over seeds. Dashed lines: baselines fitted on the training split "
             "(no latency). ↑: worse than the axis shows, at the MAE given. Every figure from benchmarks/results; "
             "see RESULTS.md for the records and flags.", fontsize=7)
    fig.tight_layout(rect=(0, 0.04 + 0.028 * min(rows, len(handles)), 1, 1))
    renderer = fig.canvas.get_renderer()  # labels last: measured where the final layout puts them
    for ax, *_ in panels:
        boxes = []
        for x, y, size in markers[ax]:
            (cx, cy), r = ax.transData.transform((x, y)), size * fig.dpi / 72 / 2
            boxes.append(Bbox.from_extents(cx - r, cy - r, cx + r, cy + r))
        for text, y in baselines:  # each baseline named above its line, the right end first, else below it
            _place_baseline(ax, text, y, renderer, boxes)
        frame = ax.get_window_extent(renderer)
        boxes += [Bbox.from_extents(frame.x0, v - 0.5, frame.x1, v + 0.5)
                  for v in (ax.transData.transform((1.0, y))[1] for _, y in baselines)]

        def near(a: tuple[float, float], b: tuple[float, float], ax: Any = ax) -> bool:
            (x1, y1), (x2, y2) = ax.transData.transform([a, b])
            return abs(x1 - x2) < MARKER_SIZE * DPI / 72 and abs(y1 - y2) < MARKER_SIZE * DPI / 72

        _label(ax, point_labels(labels[ax], top, colours, near) + (studies if ax is axes[0] else []), renderer, boxes)
    return fig


def _place_baseline(ax: Any, text: str, y: float, renderer: Any, obstacles: list[Any]) -> None:
    """Name a baseline's line just above it where that is free, from the right end leftwards, else below it."""
    frame = ax.get_window_extent(renderer)
    for dy, va in ((2, "bottom"), (-2, "top")):
        for fx, ha in ((0.99, "right"), (0.75, "center"), (0.5, "center"), (0.01, "left")):
            ann = ax.annotate(text, xy=(fx, y), xycoords=("axes fraction", "data"), xytext=(0, dy), fontsize=7,
                              textcoords="offset points", color="0.35", ha=ha, va=va)
            box = text_box(ann, renderer)
            if (frame.y0 + 1 <= box.y0 and box.y1 <= frame.y1 - 1
                    and not any(box.padded(LABEL_GAP).overlaps(o) for o in obstacles)):
                obstacles.append(box)
                return
            ann.remove()


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
