"""The ``stgkd-bench/1`` records in ``benchmarks/results/``, the one rule of the main body (:func:`appendix_reason`)
and the pieces every section of RESULTS.md is made of: cells, :func:`table`, :func:`head`, the best baseline."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

#: the schema of every benchmark record (``benchmarks.run``, ``benchmarks.latency``, ``benchmarks.gpu``)
SCHEMA = "stgkd-bench/1"
HORIZONS = ("15min", "30min", "60min", "avg")
SUITE_ORDER = ("environment", "latency", "model-timing", "synthetic", "metr-la-week", "distill-ablation", "los-loop",
               "metr-la", "pems-bay", "pems04", "pems08", "scaling", "tuning")
#: the latency goals of the study (README): a width-32 student under 0.1 ms at batch 1 as a CUDA graph, at
#: least 10x faster than Graph WaveNet at batch 1 and 5x at batch 64, 100x faster than PGT's recurrent peers
GOALS = {"b1_graph_ms": 0.1, "speedup_b1": 10.0, "speedup_b64": 5.0, "speedup_peers": 100.0}
#: a training run belongs in the main body only when each of its models saw at least this many passes over
#: the training windows (epochs x batches run per epoch / batches in a full epoch); fewer is a smoke test
MIN_PASSES = 10
#: a cost study (latency, model timing, scaling) belongs in the main body only with at least this many timed
#: calls per figure
MIN_TIMED_CALLS = 10
REDUCED_MARKER = re.compile(r"-(\d+steps|reduced|smoke|tiny)(?=[-.])")
#: what a cell says instead of a latency timed on a busy machine
BUSY = "busy, not a figure"
#: the accuracy goal (README): a student closes at least half of its plain version's 60-minute gap to the teacher
GOAL_GAP_CLOSED = 0.5
#: seeds an accuracy figure needs before its spread means something
GOAL_SEEDS = 3
#: the full datasets (a week of METR-LA is not METR-LA)
FULL_DATASETS = ("metr-la", "pems-bay", "pems04", "pems08")
#: records that are not runs: read by their own section, never listed as a run
NOT_RUNS = ("quoted", "frontier-screen")
#: the quoted published numbers (with their sources and checks), a record of protocol ``quoted``
QUOTED = Path(__file__).resolve().parents[1] / "results" / "published-full-datasets.json"
#: the key holding what a record measured, per protocol (a part cut short before its first unit has none)
PAYLOAD = {"environment": "details", "latency": "results", "model-timing": "models", "tuning": "report",
           "scaling": "points", "dcrnn": "models", "los-loop": "models", "cuda-tests": "tests"}
#: the mark on a test MAE worse than the best baseline at that horizon
WORSE = "†"
WORSE_NOTE = (f"{WORSE} = worse than the best baseline at that horizon (last value, seasonal naive, historical "
              "average or median by time of day or by time of day and weekday, zero for counts; fitted on the "
              "training split, chosen per horizon on validation where the record says so, and scored on the same "
              "test targets).")


# ============================================================================ numbers and cells


def mean_spread(values: Iterable[float | None]) -> tuple[float, float, int]:
    """``(mean, sample std, n)`` of the finite values (std 0 for one value; NaN mean for none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return math.nan, math.nan, 0
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)


def kd_gap(teacher: float, plain: float, distilled: float) -> tuple[float, float | None]:
    """A distilled student against the same student trained plainly, on one error: ``distilled − plain``
    (negative = distillation better) and the share of the plain student's gap to the teacher it closes,
    ``(plain − distilled) / (plain − teacher)`` (``None`` where the plain student is not behind the teacher)."""
    gap = plain - teacher
    return distilled - plain, (plain - distilled) / gap if gap > 0 else None


def fmt_pm(mean: float, spread: float, n: int, *, digits: int = 2, scale: float = 1.0, sign: str = "") -> str:
    """``"3.12 ± 0.04"`` (``n`` > 1), ``"3.12"`` (``n`` = 1), ``"–"`` (no value); ``sign="+"`` signs the mean."""
    if n == 0 or not math.isfinite(mean):
        return "–"
    return f"{mean * scale:{sign}.{digits}f}" + (f" ± {spread * scale:.{digits}f}" if n > 1 else "")


def fmt_count(x: float | None) -> str:
    """``"4.91 k"``, ``"1.33 G"``, ``"–"``."""
    if x is None or not math.isfinite(float(x)):
        return "–"
    unit = next(((u, d) for u, d in (("G", 1e9), ("M", 1e6), ("k", 1e3)) if abs(float(x)) >= d), None)
    return f"{float(x) / unit[1]:.2f} {unit[0]}" if unit else f"{float(x):.0f}"


def fmt_ms(x: float | None) -> str:
    """Milliseconds: two decimals below 100, none above; ``"–"`` for none."""
    return "–" if x is None or not math.isfinite(x) else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def power_law(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares fit of ``y = a * x^k`` in log-log space -> ``(a, k)`` (``None`` with < 2 points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx, my = statistics.fmean(p[0] for p in pts), statistics.fmean(p[1] for p in pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    k = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return math.exp(my - k * mx), k


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    """A Markdown table: ``header``, then one line per row (each cell as ``str`` gives it); ``align``, one letter
    per column, ``l`` or ``r``, spells the rule out (``| --- | ---: |``)."""
    rule = ("| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |" if align
            else "|" + "---|" * len(header))
    return ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


# ============================================================================ baselines


def _scores(block: Mapping[str, Any] | None):
    if not isinstance(block, Mapping) or not block.get("scored"):
        return None
    from stgkd.engine.baselines import BaselineScores

    return BaselineScores.from_dict(block)


def best_baseline(block: Mapping[str, Any] | None) -> dict[str, tuple[str, float]]:
    """``{horizon: (label, mae)}`` of the best baseline of a ``baselines`` block
    (:meth:`stgkd.engine.baselines.BaselineScores.to_dict`; ``{}`` without one)."""
    scores = _scores(block)
    return scores.best() if scores is not None else {}


def mae_cells(block: Mapping[str, Any] | None, maes: Mapping[str, tuple[float, float, int]],
              horizons: Sequence[str], *, digits: int = 2) -> dict[str, str]:
    """``{horizon: cell}``: each ``(mean, spread, n)`` MAE as :func:`fmt_pm` writes it, marked :data:`WORSE` where
    :func:`stgkd.engine.baselines.compare_with_baselines` finds it above the block's best baseline."""
    from stgkd.engine.baselines import compare_with_baselines

    scores = _scores(block)
    metrics = {h: {"mae": float(maes[h][0])} for h in horizons if maes[h][2] and math.isfinite(maes[h][0])}
    worse = {s.horizon for s in compare_with_baselines("model", metrics, scores)} if scores else set()
    return {h: fmt_pm(*maes[h], digits=digits) + (f" {WORSE}" if h in worse else "") for h in horizons}


def baseline_row(block: Mapping[str, Any] | None, horizons: Sequence[str], *, digits: int = 2) -> list[str]:
    """The best baseline's cell per horizon (``"4.97 (historical median)"``; ``[]`` without a block)."""
    best = best_baseline(block)
    return [f"{best[h][1]:.{digits}f} ({best[h][0]})" if h in best else "–" for h in horizons] if best else []


def baseline_notes(block: Mapping[str, Any] | None) -> list[str]:
    """The lines under a table with a best-baseline row: what :data:`WORSE` means, and each baseline the data
    could not support, with the reason (``[]`` without a block)."""
    if not best_baseline(block):
        return []
    left = [f"{s.get('label')}: {s.get('left_out')}" for s in block.get("left_out", [])]
    return ["", WORSE_NOTE + (f" Left out: {'; '.join(left)}." if left else "")]


# ============================================================================ records


def read_json_files(results_dir: Path) -> list[tuple[Path, Any]]:
    """``(path, content)`` of every ``*.json`` file in ``results_dir`` that reads as JSON, by name."""
    out = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every run record (``stgkd-bench`` schema, not of :data:`NOT_RUNS`) in ``results_dir``, in suite order,
    newest first."""
    records = [dict(rec, _file=path.name) for path, rec in read_json_files(results_dir)
               if isinstance(rec, dict) and str(rec.get("schema", "")).startswith("stgkd-bench/")
               and rec.get("protocol") not in NOT_RUNS]
    order = {name: i for i, name in enumerate(SUITE_ORDER)}
    records.sort(key=lambda r: r.get("started", ""), reverse=True)
    return sorted(records, key=lambda r: order.get(r["suite"], len(order)))


def quoted() -> dict[str, Any]:
    """The record of quoted published numbers (:data:`QUOTED`): ``quotes`` (model, dataset, ``metrics`` per
    horizon, source, table, check), ``check_marks``, ``unverified`` (model, dataset, why) and ``los_loop_source``."""
    return json.loads(QUOTED.read_text())


def is_suite(rec: dict[str, Any]) -> bool:
    """Whether ``rec`` is an accuracy suite of ``benchmarks.run`` with its models (and did not fail)."""
    return rec.get("protocol") in ("dcrnn", "los-loop") and "models" in rec and not (rec.get("run") or {}).get("error")


def has_payload(rec: dict[str, Any]) -> bool:
    """Whether ``rec`` holds what its protocol measures (:data:`PAYLOAD`; a part cut short at once does not)."""
    return PAYLOAD.get(rec.get("protocol", ""), "") in rec or rec.get("protocol") not in PAYLOAD


def passes(rec: dict[str, Any]) -> tuple[float, str] | None:
    """``(passes, model)``: the fewest passes over the training windows any model of a training run saw (mean
    over its seeds), and that model; ``None`` for records that train nothing."""
    if rec.get("protocol") == "distill-ablation":
        t, s = rec["teacher"].get("epochs"), rec.get("student_epochs")
        return None if t is None or s is None else (float(t), "the teacher") if t <= s else (float(s), "each student")
    if not is_suite(rec):
        return None
    least: tuple[float, str] | None = None
    for m in rec["models"]:
        per_seed = [s["epochs_run"] * s["batches_per_epoch"] / s["batches_per_full_epoch"] for s in m["seeds"]
                    if s.get("epochs_run") is not None and s.get("batches_per_epoch") and s.get("batches_per_full_epoch")]
        if per_seed and (least is None or statistics.fmean(per_seed) < least[0]):
            least = (statistics.fmean(per_seed), m["label"])
    return least


def appendix_reason(rec: dict[str, Any]) -> str | None:
    """Why a record goes to "Appendix: reduced and smoke runs" (``None``: it belongs in the main body): a smoke
    or ``--tiny`` run; a file name marked reduced; a training run in which some model saw fewer than
    :data:`MIN_PASSES` passes over the training windows; a cost study with fewer than :data:`MIN_TIMED_CALLS`
    timed calls per figure (in that order)."""
    if (rec.get("run") or {}).get("smoke"):
        return "a smoke run (`--smoke`): toy sizes, checking that the code runs; its figures mean nothing"
    if (rec.get("budget") or {}).get("tiny"):
        return "a `--tiny` run: tiny data and teacher, checking that the code runs"
    marker = REDUCED_MARKER.search(rec.get("_file", ""))
    if marker:
        return f"its file name marks it reduced (`{marker.group(0)}`)"
    least = passes(rec)
    if least is not None and least[0] < MIN_PASSES:
        return (f"{least[1]} saw {least[0]:.1f} passes over the training windows (the main body needs "
                f"{MIN_PASSES}): far from convergence")
    calls = {"latency": (rec.get("settings") or {}).get("iters"), "model-timing": rec.get("iters"),
             "scaling": (rec.get("budget") or {}).get("latency_iters")}.get(rec.get("protocol"))
    if calls is not None and calls < MIN_TIMED_CALLS:
        return f"{calls} timed calls per figure (the main body needs {MIN_TIMED_CALLS})"
    return None


# ============================================================================ headings


def title(rec: dict[str, Any]) -> str:
    """A record's heading: its title, device, date and file."""
    return (f"{rec.get('title', rec['suite'])} — {rec['environment']['device'].upper()} — {rec['date']} "
            f"(`{rec['_file']}`)")


def part_lines(rec: dict[str, Any]) -> list[str]:
    """Notes on how a run ended: a smoke run, cut short by its time budget, failed, reduced by design."""
    run = rec.get("run") or {}
    notes = ["**Smoke run** (`--smoke`): toy sizes on the CPU, checking that the part runs end to end; its figures "
             "mean nothing." if run.get("smoke") else "",
             "**Cut short** by its time budget" + (f" of {run['budget_s']:g} s" if run.get("budget_s") is not None
                                                   else "") + f": stopped before {rec.get('reached')}; everything "
             "before it is reported." if rec.get("completed") is False and rec.get("reached") else "",
             f"**Failed** after {run.get('wall_s', 0):.0f} s: `{run.get('error')}`; what it measured before is shown."
             if run.get("error") else "",
             f"**Reduced by design**: {rec.get('reduced_by_design')}." if rec.get("reduced_by_design") else ""]
    return [line for note in notes if note for line in (f"> {note}", "")]


def head(rec: dict[str, Any], heading: str | None = None) -> list[str]:
    """A section's first lines: its heading (default :func:`title`), its command and how it ended."""
    return [f"## {heading or title(rec)}", "", f"Command: `{rec['command']}`", ""] + part_lines(rec)


def failed_section(rec: dict[str, Any]) -> list[str]:
    """A run that failed: its error and the last lines its process wrote."""
    run = rec.get("run") or {}
    measured = PAYLOAD.get(rec.get("protocol", ""), "") in rec
    out = head(dict(rec, run={}, completed=None)) + [
        f"**Failed** after {run.get('wall_s', 0):.0f} s: `{run.get('error')}`; "
        + ("what it measured before is in the JSON file." if measured else "no figures.")]
    tail = [line for line in str(run.get("stderr_tail") or "").splitlines() if line.strip()][-8:]
    if tail:
        out += ["", f"Its process ended with {run.get('exit_code')}; the last lines it wrote:", "", "```", *tail, "```"]
    return out
