"""The student frontier's section of RESULTS.md: the chart (PNG), the table, "which student to use" and
what is not on the chart, all from :func:`benchmarks.table.frontier.gather`, with the Pareto fronts of the
week's tuning studies (:func:`study_fronts`, the ``python -m tuning.search`` reports ``tuning-*.json``).

:func:`frontier_section` draws ``frontier-metr-la-week-cpu.png`` into the results folder (matplotlib, Agg,
written atomically) and returns the section's lines with a link to it relative to RESULTS.md. Nothing
here measures anything.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmarks.table.baselines import WORSE, best_baseline, mae_cells
from benchmarks.table.frontier import DATASET, Frontier, Point, gather, pareto, which_student
from benchmarks.table.records import _fmt_count, _fmt_ms

__all__ = ["CHART", "StudyFront", "study_fronts", "frontier_section", "figure", "draw", "table", "text_box"]

#: the chart's file name in the results folder
CHART = f"frontier-{DATASET}-cpu.png"
#: a label on the chart: its text, the points it names (data units; it sits by the first) and its colour
Label = tuple[str, list[tuple[float, float]], Any]
MARKERS = {("teacher", "plain"): "*", ("student", "plain"): "o", ("student", "distilled"): "^", ("peer", "plain"): "s"}
#: the chart's resolution (the labels are laid out at it)
DPI = 110
#: how far (MAE) the chart's axis reaches above the worst baseline; a model worse than that sits on the top edge
ABOVE_BASELINES = 0.3
LABEL_FONT = 7.5
#: the least room (pixels) between a label and anything else
LABEL_GAP = 2.0
#: the markers' size (points) of students and peers (teachers': twice as large)
MARKER_SIZE = 7
#: points of one model at one x closer than this (MAE) share a label (their markers touch)
SAME_PLACE_MAE = 0.06
#: the ``gid`` of a point's label and of a baseline's (the tests find them by it)
LABEL_GID = "frontier-label"
BASELINE_GID = "frontier-baseline"
#: how many label layouts to try, each with the labels the one before left off first
LAYOUT_TRIES = 4
#: where a baseline's name may go along its line (axes fraction, alignment), first choice first
BASELINE_LABEL_AT = [(0.99, "right"), (0.75, "center"), (0.5, "center"), (0.01, "left")]
#: where a label may go, in points from its point, nearest first: right, left, the diagonals, above and
#: below, then between, then further out (with a leader line)
LABEL_OFFSETS = [(round(r * math.cos(math.radians(a))), round(r * math.sin(math.radians(a))))
                 for r in (6, 12, 20, 30, 42, 56, 72, 90, 110, 130, 160, 200)
                 for a in (0, 180, -30, 30, -150, 150, 90, -90, -15, 15, -165, 165, -60, 60, -120, 120, -45, 45,
                           -135, 135, -75, 75, -105, 105)]


@dataclass(frozen=True)
class StudyFront:
    """The Pareto front of one tuning study of the week (``tuning-*.json``, a ``python -m tuning.search``
    report): per trial ``(trial number, family, width, one-thread CPU latency at batch 1 in ms as the study
    measured it, test MAE at 60 min)``, in order of latency."""

    source: str
    trials: list[tuple[int, str, int | None, float, float]]
    epochs: int | None = None


def study_fronts(results_dir: Path) -> tuple[list[StudyFront], list[tuple[str, str]]]:
    """The tuning studies whose fronts belong on the chart, and ``(record, why not)`` for the others: a
    study of the week that timed its students at batch 1 in eager fp32 on one CPU thread of a machine idle
    at its start and end (``settings.load_average``), and scored its front on the test split."""
    from stgkd.latency import is_busy

    fronts, skipped = [], []
    for path in sorted(Path(results_dir).glob("tuning-*.json")):
        try:
            rec: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        st, name = rec.get("settings") or {}, f"`{path.name}`"
        lat = st.get("latency") or {}
        load = st.get("load_average") or {}
        why = ("not on the week" if not str(st.get("dataset", "")).rstrip("/").endswith(DATASET) else
               "not timed on one CPU thread at batch 1 in eager fp32"
               if (lat.get("device_kind"), lat.get("batch"), lat.get("mode"), lat.get("dtype")) != ("cpu", 1, "eager", "fp32")
               or "(1 threads)" not in str(lat.get("device_name")) else
               "no load average recorded, so no timing of it is a figure" if not (load.get("start") and load.get("end")) else
               "timed on a busy machine" if is_busy(load["start"]) or is_busy(load["end"]) else
               "its front was not scored on the test split"
               if not all((t.get("test") or {}).get("60min") for t in rec.get("pareto_front") or [{}]) else None)
        if why:
            skipped.append((name, why))
            continue
        trials = [(int(t["number"]), str(t["params"].get("family")), t["params"].get("hidden"), float(t["latency_ms"]),
                   float(t["test"]["60min"]["mae"])) for t in rec["pareto_front"]]
        fronts.append(StudyFront(path.name, sorted(trials, key=lambda t: t[3]), st.get("epochs")))
    return fronts, skipped


def _speedups(p: Point) -> str:
    t = p.timing
    if t is None:
        return "–"
    return " / ".join(f"{x:.1f}×" if x else "–" for x in (t.speedup_b1, t.speedup_b64))


def _row(front: Frontier, p: Point) -> str:
    t = p.timing
    mae = mae_cells(front.baselines_block, p.score.mae, ("60min", "avg"))
    return (f"| {p.label} | {mae['60min']} | {mae['avg']} | {_fmt_count(p.score.parameters)} | "
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


def _touching(ax: Any) -> Callable[[tuple[float, float], tuple[float, float]], bool]:
    """Whether two points (data units) of ``ax`` are so close that their markers (students' and peers') touch."""
    reach = MARKER_SIZE * DPI / 72

    def near(a: tuple[float, float], b: tuple[float, float]) -> bool:
        (x1, y1), (x2, y2) = ax.transData.transform([a, b])
        return abs(x1 - x2) < reach and abs(y1 - y2) < reach

    return near


def _point_labels(points: list[tuple[Point, float]], top: float, colours: dict[str, Any],
                  near: Callable[[tuple[float, float], tuple[float, float]], bool] | None = None
                  ) -> list[Label]:
    """The labels of ``points`` (each with its x on the panel; in order of importance). Points share one
    label where their markers touch or nearly: those of one model at one x, each within
    :data:`SAME_PLACE_MAE` of another (a student plain and distilled, one model from two records: "gru w16,
    plain & KD"); the points above ``top`` at one x, drawn together on the top edge, each name with its MAE
    after an arrow ("pgt-tgcn w32 ↑ 6.79, 6.85"); and any points whose markers touch (``near``, of two points
    in data units): "gru w16, plain & KD; gcn-gru w16, plain & KD"."""
    groups: list[tuple[float, float, list[Point], list[float]]] = []
    for p, x in points:
        y = min(p.mae60, top)
        for g in groups:
            ys = [min(q.mae60, top) for q in g[2]]
            if ((g[0] == x and ((y == top and g[1] == top) or (_base(g[2][0]) == _base(p) and any(
                    abs(v - y) <= SAME_PLACE_MAE for v in ys))))
                    or (near is not None and any(near((xq, v), (x, y)) for xq, v in zip(g[3], ys)))):
                g[2].append(p)
                g[3].append(x)
                break
        else:
            groups.append((x, y, [p], [x]))
    out = []
    for x, y, members, xs in groups:
        names: dict[str, list[Point]] = {}
        for p in members:
            names.setdefault(_base(p), []).append(p)
        parts = []
        for name, same in names.items():
            if len(same) == 1:
                text = _short(same[0])
            elif {p.score.training for p in same} == {"plain", "distilled"}:
                text = f"{name}, plain & KD"
            else:
                text = name
            above = sorted(p.mae60 for p in same if p.mae60 > top)
            parts.append(text + (" ↑ " + ", ".join(f"{m:.2f}" for m in above) if above else ""))
        colour = colours[members[0].score.family] if y == top and len(names) == 1 else "0.15"
        out.append(("; ".join(parts), [(xq, min(p.mae60, top)) for p, xq in zip(members, xs)], colour))
    return out


def _base(p: Point) -> str:
    """A point's name on the chart without its training ("gru w16 KD" and "gru w16" are one model)."""
    return _short(p).replace(" KD", "", 1) if p.score.training == "distilled" else _short(p)


def text_box(text: Any, renderer: Any) -> Any:
    """The display box of a text's glyphs (for an annotation, without its leader line)."""
    from matplotlib.text import Text

    if hasattr(text, "update_positions"):
        text.update_positions(renderer)
    return Text.get_window_extent(text, renderer)


def _leader(ann: Any, box: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """``ann``'s leader line in display units, from its point to the nearest corner or edge middle of its
    text ``box``; ``None`` without one."""
    if ann.arrow_patch is None:
        return None
    x0, y0 = ann.axes.transData.transform(ann.xy)  # leader lines start at a point in data units
    ends = [(x, y) for x in (box.x0, (box.x0 + box.x1) / 2, box.x1) for y in (box.y0, (box.y0 + box.y1) / 2, box.y1)]
    return (x0, y0), min(ends, key=lambda e: math.hypot(e[0] - x0, e[1] - y0))


def _cross(a: tuple, b: tuple, c: tuple, d: tuple) -> bool:
    """Whether segments ab and cd cross (touching counts)."""
    def side(p: tuple, q: tuple, r: tuple) -> int:
        v = float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))
        return (v > 1e-9) - (v < -1e-9)

    d1, d2, d3, d4 = side(c, d, a), side(c, d, b), side(a, b, c), side(a, b, d)
    return d1 * d2 <= 0 and d3 * d4 <= 0 and not (d1 == d2 == d3 == d4 == 0)


def _box_hit(box: Any, a: tuple, b: tuple) -> bool:
    """Whether segment ab passes through ``box``."""
    if box.contains(*a) or box.contains(*b):
        return True
    corners = [(box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1)]
    return any(_cross(a, b, corners[i], corners[(i + 1) % 4]) for i in range(4))


def _leader_free(ann: Any, box: Any, obstacles: list[Any], leaders: list[tuple], own: list[tuple[float, float]],
                 *, may_cross: bool = False) -> bool:
    """Whether ``ann``'s text ``box`` lies clear of the earlier leader lines ``leaders``, and its own leader
    line (if any) crosses none of them (unless ``may_cross``) and no box of ``obstacles`` but its own points'
    markers (those that contain a point of ``own``, display units)."""
    if any(_box_hit(box.padded(LABEL_GAP), *seg) for seg in leaders):
        return False
    seg = _leader(ann, box)
    if seg is None:
        return True
    return ((may_cross or not any(_cross(*seg, *other) for other in leaders))
            and not any(_box_hit(o, *seg) for o in obstacles if not any(o.contains(*q) for q in own)))


def _first_free(ax: Any, candidates: list[dict[str, Any]], renderer: Any, obstacles: list[Any],
                own: list[tuple[float, float]] = (), leaders: list[tuple] | None = None, *,
                may_cross: bool = False) -> Any:
    """The first of ``candidates`` (keyword arguments of ``ax.annotate``) whose text box stays inside ``ax``
    and keeps :data:`LABEL_GAP` pixels from every box in ``obstacles`` and from the leader lines ``leaders``,
    and whose own leader line (if any) crosses neither (but the markers at ``own``, display units: the points
    it labels; another leader line too when ``may_cross``), drawn, its text box appended to ``obstacles`` and
    its leader line to ``leaders``; ``None`` (nothing drawn) when none fits."""
    frame = ax.get_window_extent(renderer)
    leaders = [] if leaders is None else leaders
    for kwargs in candidates:
        ann = ax.annotate(**kwargs)
        box = text_box(ann, renderer)
        inside = box.x0 >= frame.x0 + 1 and box.x1 <= frame.x1 - 1 and box.y0 >= frame.y0 + 1 and box.y1 <= frame.y1 - 1
        padded = box.padded(LABEL_GAP)
        if (inside and not any(padded.overlaps(o) for o in obstacles)
                and _leader_free(ann, box, obstacles, leaders, own, may_cross=may_cross)):
            obstacles.append(box)
            seg = _leader(ann, box)
            if seg is not None:
                leaders.append(seg)
            return ann
        ann.remove()
    return None


def _label_points(ax: Any, labels: list[Label], renderer: Any, obstacles: list[Any]) -> list[Any]:
    """Label each of ``labels`` (in order of importance) at the nearest of :data:`LABEL_OFFSETS` around its
    first point where it is free (:func:`_first_free`), with a leader line when it sits away from the point;
    the labels that found no place then again, their leader lines now free to cross others. When some still
    find none, the layout is tried again with those first (at most :data:`LAYOUT_TRIES` layouts; the one
    that leaves the fewest off is kept). A label left off leaves its point with its colour and marker.
    Returns the placed annotations; their text boxes are appended to ``obstacles``."""
    base = list(obstacles)
    order = list(labels)
    best: tuple[list[Any], list[Any]] | None = None
    for _ in range(LAYOUT_TRIES):
        placed, boxes, dropped = _layout(ax, order, renderer, list(base))
        if best is None or len(placed) > len(best[0]):
            if best is not None:
                for ann in best[0]:
                    ann.remove()
            best = (placed, boxes)
        else:
            for ann in placed:
                ann.remove()
        if not dropped:
            break
        order = dropped + [label for label in order if label not in dropped]
    obstacles[:] = best[1]
    return best[0]


def _layout(ax: Any, labels: list[Label], renderer: Any, obstacles: list[Any]
            ) -> tuple[list[Any], list[Any], list[Label]]:
    """One layout of :func:`_label_points`: (the placed annotations, ``obstacles`` with their boxes, the
    labels left off)."""
    placed: list[Any] = []
    leaders: list[tuple] = []
    left: list[Label] = []
    dropped: list[Label] = []
    for may_cross, todo in ((False, labels), (True, left)):
        for label in todo:
            ann = _label_point(ax, label, renderer, obstacles, leaders, may_cross)
            if ann is not None:
                placed.append(ann)
            elif not may_cross:
                left.append(label)
            else:
                dropped.append(label)
    return placed, obstacles, dropped


def _label_point(ax: Any, label: Label, renderer: Any, obstacles: list[Any], leaders: list[tuple],
                 may_cross: bool) -> Any:
    """One label of :func:`_label_points`, or ``None``."""
    text, points, colour = label
    own = [tuple(ax.transData.transform(xy)) for xy in points]
    candidates = [dict(text=text, xy=points[0], xytext=(dx, dy), textcoords="offset points", fontsize=LABEL_FONT,
                       color=colour, ha="left" if dx > 0 else "right" if dx < 0 else "center",
                       va="bottom" if dy > 0 else "top" if dy < 0 else "center", annotation_clip=False, gid=LABEL_GID,
                       arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5, "shrinkA": 0, "shrinkB": 3}
                       if math.hypot(dx, dy) > 10 else None)
                  for dx, dy in LABEL_OFFSETS]
    return _first_free(ax, candidates, renderer, obstacles, own, leaders, may_cross=may_cross)


def _label_baselines(ax: Any, baselines: list[tuple[str, float]], renderer: Any, obstacles: list[Any]) -> None:
    """Name each baseline's line just above it, at the right end when that is free of markers and other
    labels, else further left (:data:`BASELINE_LABEL_AT`), else just below it."""
    for text, y in baselines:
        candidates = [dict(text=text, xy=(fx, y), xycoords=("axes fraction", "data"), xytext=(0, dy),
                           textcoords="offset points", fontsize=7, color="0.35", ha=ha, va=va, gid=BASELINE_GID)
                      for dy, va in ((2, "bottom"), (-2, "top")) for fx, ha in BASELINE_LABEL_AT]
        _first_free(ax, candidates, renderer, obstacles)


def _marker_boxes(ax: Any, points: list[tuple[float, float, float]], dpi: float) -> list[Any]:
    """The display boxes of markers at ``(x, y, size in points)`` in ``ax``."""
    from matplotlib.transforms import Bbox

    boxes = []
    for x, y, size in points:
        cx, cy = ax.transData.transform((x, y))
        r = size * dpi / 72 / 2
        boxes.append(Bbox.from_extents(cx - r, cy - r, cx + r, cy + r))
    return boxes


def _line_boxes(ax: Any, ys: list[float]) -> list[Any]:
    """The display boxes of horizontal lines across ``ax`` at ``ys`` (data units)."""
    from matplotlib.transforms import Bbox

    frame = ax.get_window_extent()
    return [Bbox.from_extents(frame.x0, y - 0.5, frame.x1, y + 0.5)
            for y in (ax.transData.transform((1.0, v))[1] for v in ys)]


def figure(front: Frontier, fronts: list[StudyFront] | None = None) -> Any:
    """Two panels: MAE at 60 min against one-thread CPU latency at batch 1 (log) and against FLOPs at batch 1
    (log); the baselines as horizontal lines, the students' front as a step line, and on the latency panel
    the Pareto fronts of the tuning studies ``fronts`` (:func:`study_fronts`, read from the ``tuning-*.json`` records).
    Colour is the model family and the marker its role, both in the legend below the panels; points are
    labelled where a label fits without touching another label or a marker (:func:`_label_points`). The
    MAE axis ends :data:`ABOVE_BASELINES` above the worst baseline: a model worse than that sits on the top
    edge, its label giving its MAE. Returns the matplotlib figure (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    families = sorted({p.score.family for p in front.points})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(1, 2, figsize=(15, 7.5), dpi=DPI)
    panels = [(axes[0], [p for p in front.points if p.timing], lambda p: p.timing.b1_ms,
               "CPU latency at batch 1, one thread (ms, log scale)"),
              (axes[1], [p for p in front.points if p.flops], lambda p: p.flops / 1e6,
               "FLOPs at batch 1 (millions, log scale)")]
    baseline_60 = [m["60min"] for m in front.baselines.values() if "60min" in m]
    everything = [p.mae60 for p in front.points] + [t[4] for s in fronts or [] for t in s.trials]
    top = max(baseline_60 or everything or [1.0]) + ABOVE_BASELINES
    bottom = min(everything + baseline_60 or [0.0]) - 0.15
    front_pts = pareto([p for p in front.points if p.score.role == "student"])
    markers: dict[Any, list[tuple[float, float, float]]] = {ax: [] for ax, *_ in panels}
    points: dict[Any, list[tuple[Point, float]]] = {ax: [] for ax, *_ in panels}
    labels: dict[Any, list[Label]] = {ax: [] for ax, *_ in panels}
    rank = {("teacher", "plain"): 1, ("peer", "plain"): 2, ("student", "plain"): 3, ("student", "distilled"): 4}
    for ax, pts, x, xlabel in panels:
        for p in sorted(pts, key=lambda p: (p not in front_pts, rank.get((p.score.role, p.score.training), 5),
                                            p.mae60)):
            m, sd, n = p.score.mae["60min"]
            size = 13 if p.score.role == "teacher" else MARKER_SIZE
            colour = colours[p.score.family]
            fmt = MARKERS.get((p.score.role, p.score.training), "D")
            if m > top:  # off the scale: on the top edge, its MAE in its label
                ax.plot([x(p)], [top], fmt, color=colour, markersize=size, clip_on=False)
                markers[ax].append((x(p), top, size))
            else:
                ax.errorbar([x(p)], [m], yerr=[sd] if n > 1 else None, fmt=fmt, color=colour, markersize=size,
                            capsize=3)
                markers[ax].append((x(p), m, size))
            points[ax].append((p, x(p)))
        xs = [x(p) for p in pts]
        if xs:
            ax.set_xlim(min(xs) / 1.8, max(xs) * 2.5)
        ax.set_ylim(bottom, top)
        for i, (label, maes) in enumerate(front.baselines.items()):
            if "60min" in maes:
                ax.axhline(maes["60min"], linestyle=(0, (5, 2 + i)), linewidth=0.9, color="0.5")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test masked MAE at 60 min")
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], marker=mk, linestyle="", color="0.3", label=name) for (role, training), mk, name in
               ((k, v, f"{k[0]}" + (f" ({k[1]})" if k[0] == "student" else "")) for k, v in MARKERS.items())
               if any((p.score.role, p.score.training) == (role, training) for p in front.points)]
    legend_rows = max(len(handles), 3)  # a column of markers, then the families' colours, then the lines
    handles += [Line2D([], [], marker="o", linestyle="", color=colours[f], label=f) for f in families]
    if len(front_pts) > 1:
        axes[0].step([p.timing.b1_ms for p in front_pts], [p.mae60 for p in front_pts], where="post", color="0.2",
                     linewidth=0.8, alpha=0.6)
        handles.append(Line2D([], [], color="0.2", linewidth=0.8, label="students no other beats on both"))
    for k, study in enumerate(fronts or []):
        colour = f"C{(k + 6) % 10}"
        xs, ys = [t[3] for t in study.trials], [t[4] for t in study.trials]
        axes[0].plot(xs, ys, marker="x", linestyle=":", color=colour, linewidth=1.0, markersize=8)
        markers[axes[0]] += [(ms, mae, 8) for *_, ms, mae in study.trials]
        labels[axes[0]] += [(f"#{number} {family}" + (f" w{width}" if width else ""), [(ms, mae)], colour)
                            for number, family, width, ms, mae in study.trials]
        handles.append(Line2D([], [], marker="x", linestyle=":", color=colour,
                              label=f"tuning study front ({study.source.removesuffix('.json')}; "
                                    f"{study.epochs}-epoch trials)"))
    columns = math.ceil(len(handles) / legend_rows)
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.025))
    axes[0].set_title(f"{DATASET}: test MAE at 60 min against one-thread CPU latency", fontsize=10)
    axes[1].set_title("against FLOPs at batch 1 (where a record counted them)", fontsize=10)
    fig.text(0.01, 0.008, "Error bars: sample std over seeds. Dashed lines: baselines fitted on the training split "
             "(no latency). ↑: worse than the axis shows, at the MAE given. Every figure from benchmarks/results; "
             "see RESULTS.md for the records and flags.", fontsize=7)
    fig.tight_layout(rect=(0, 0.04 + 0.028 * min(legend_rows, len(handles)), 1, 1))
    # labels last: their boxes are measured where the final layout puts them
    renderer = fig.canvas.get_renderer()
    baselines = [(f"{label} {maes['60min']:.2f}", maes["60min"]) for label, maes in front.baselines.items()
                 if "60min" in maes]
    for ax, *_ in panels:
        obstacles = _marker_boxes(ax, markers[ax], fig.dpi)
        _label_baselines(ax, baselines, renderer, obstacles)
        obstacles += _line_boxes(ax, [y for _, y in baselines])  # a point's label crosses no baseline
        _label_points(ax, _point_labels(points[ax], top, colours, _touching(ax)) + labels[ax], renderer, obstacles)
    return fig


def draw(front: Frontier, path: Path, fronts: list[StudyFront] | None = None) -> Path:
    """:func:`figure` written to ``path`` as a PNG, atomically."""
    import matplotlib.pyplot as plt

    fig = figure(front, fronts)
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=DPI, metadata={"Software": None})
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
                      "from the newest idle latency record that timed the same model (same family, parameter count, "
                      "width and input channels; a record or row timed on a busy machine is never used), the speed-up "
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
