"""What every page of RESULTS.md shares: the records, the rule of the main body, numbers and headings.

:func:`load_records` reads every ``stgkd-bench`` record (and every distillation ablation) from a results
folder; :func:`appendix_reason` is the one rule of what the main body shows and what goes to the appendix
("Appendix: reduced and smoke runs"): a smoke or ``--tiny`` run, a file name marked reduced (``-24steps``,
``-reduced``, ``-smoke``, ``-tiny``), a training run in which some model saw fewer than :data:`MIN_PASSES`
passes over the training windows, or a cost study timing fewer than :data:`MIN_TIMED_CALLS` calls per
figure. A latency figure timed on a busy machine (``"busy": true``, :func:`stgkd.latency.is_busy`) is never
shown as a number: its cell says :data:`BUSY`.
"""

from __future__ import annotations

import json
import math
import statistics
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["SCHEMA", "MIN_PASSES", "MIN_TIMED_CALLS", "BUSY", "GOALS", "mean_spread", "fmt_pm", "power_law",
           "load_records", "appendix_reason"]

#: the schema of every benchmark record (``benchmarks.run``, ``benchmarks.latency``, ``benchmarks.gpu``)
SCHEMA = "stgkd-bench/1"
HORIZONS = ("15min", "30min", "60min", "avg")
SUITE_ORDER = ("environment", "latency", "model-timing", "synthetic", "metr-la-week", "distill-ablation", "los-loop",
               "metr-la", "pems-bay", "pems04", "pems08", "scaling", "tuning")
#: protocols of the accuracy suites (records with models trained over seeds)
SUITE_PROTOCOLS = ("dcrnn", "los-loop")
#: the latency goals of the study (README): a width-32 student under 0.1 ms at batch 1 as a CUDA graph, at
#: least 10x faster than Graph WaveNet at batch 1 and 5x at batch 64, 100x faster than PGT's recurrent peers
GOALS = {"b1_graph_ms": 0.1, "speedup_b1": 10.0, "speedup_b64": 5.0, "speedup_peers": 100.0}
#: torch-geometric-temporal's recurrent peers in the latency table
RECURRENT_PEERS = ("pgt-a3tgcn2", "pgt-tgcn2-stepped", "pgt-batched-dcrnn")
KIND_ORDER = {"teacher": 0, "student": 1, "student+kd": 2, "peer": 3}
#: a training run belongs in the main body only when each of its models saw at least this many passes over
#: the training windows (epochs x batches run per epoch / batches in a full epoch); fewer is a smoke test of
#: the pipeline, not a result (the 24- and 72-step CPU runs saw 0.3 and 0.8)
MIN_PASSES = 10
#: a cost study (latency, model timing, scaling) belongs in the main body only with at least this many timed
#: calls per figure
MIN_TIMED_CALLS = 10
#: file-name markers of runs reduced on purpose
REDUCED_MARKER = re.compile(r"-(\d+steps|reduced|smoke|tiny)(?=[-.])")
#: what a cell says instead of a latency timed on a busy machine
BUSY = "busy, not a figure"
#: the accuracy goal of the study (README): a student closes at least half of its plain version's 60-minute
#: gap to the teacher
GOAL_GAP_CLOSED = 0.5
#: seeds an accuracy figure needs before its spread means something
GOAL_SEEDS = 3
#: the full datasets (a week of METR-LA is not METR-LA)
FULL_DATASETS = ("metr-la", "pems-bay", "pems04", "pems08")


# ============================================================================ numbers


def mean_spread(values: Iterable[float | None]) -> tuple[float, float, int]:
    """``(mean, sample std, n)`` of the finite values (std 0 for one value; NaN mean for none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return math.nan, math.nan, 0
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)


def maes_15_30_60(row: dict[str, Any]) -> str:
    """A row's test MAE at 15 / 30 / 60 minutes (``"3.16 ± 0.07 / 3.80 ± 0.05 / 4.96 ± 0.13"``)."""
    return " / ".join(fmt_pm(*row[f"{h}/mae"]) for h in ("15min", "30min", "60min"))


def fmt_pm(mean: float, spread: float, n: int, *, digits: int = 2, scale: float = 1.0) -> str:
    """``"3.12 ± 0.04"`` (``n`` > 1), ``"3.12"`` (``n`` = 1), ``"–"`` (no value)."""
    if n == 0 or not math.isfinite(mean):
        return "–"
    if n == 1:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {spread * scale:.{digits}f}"


def _fmt_count(x: float | int | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    x = float(x)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f} {unit}"
    return f"{x:.0f}"


def _fmt_ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def power_law(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares fit of ``y = a * x^k`` in log-log space -> ``(a, k)`` (``None`` with < 2 points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    k = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return math.exp(my - k * mx), k


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
    """Every ``*.json`` record in ``results_dir`` with this schema, and every distillation ablation
    (``distill-ablation-*.json``, :func:`_as_ablation`), in suite order, newest first."""
    records = []
    for path, rec in read_json_files(results_dir):
        if isinstance(rec, dict) and str(rec.get("schema", "")).startswith("stgkd-bench/"):
            rec["_file"] = path.name
            records.append(rec)
        elif isinstance(rec, dict) and path.name.startswith("distill-ablation-"):
            ablation = _as_ablation(rec, path.name)
            if ablation is not None:
                records.append(ablation)
    order = {name: i for i, name in enumerate(SUITE_ORDER)}
    records.sort(key=lambda r: r.get("started", ""), reverse=True)
    records.sort(key=lambda r: order.get(r["suite"], len(order)))
    return records


def _as_ablation(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A ``benchmarks.distill_ablation`` report as a record of protocol ``distill-ablation`` (suite,
    device, date and start filled in from its own fields); ``None`` when it is not one."""
    if not {"teacher", "settings", "student", "seeds"} <= set(report):
        return None
    machine = str(report.get("machine", ""))
    device = machine.split(":", 1)[0].strip().lower() if ":" in machine else "cpu"
    return dict(report, _file=name, schema="stgkd-bench/1", suite="distill-ablation", protocol="distill-ablation",
                title="METR-LA week: students against a converged teacher", started=str(report.get("date", "")),
                date=str(report.get("date", ""))[:10],
                environment={"device": device, "device_name": machine.split(":", 1)[-1].strip()})


# ============================================================================ what the main body shows


def _passes(rec: dict[str, Any]) -> tuple[float, str] | None:
    """``(passes, model)``: the fewest passes over the training windows any model of a training run saw
    (mean over its seeds), and that model; ``None`` for records that train nothing."""
    if rec.get("protocol") == "distill-ablation":
        t, s = rec["teacher"].get("epochs"), rec.get("student_epochs")
        if t is None or s is None:
            return None
        return (float(t), "the teacher") if t <= s else (float(s), "each student")
    if not _is_suite(rec):
        return None
    least: tuple[float, str] | None = None
    for m in rec["models"]:
        per_seed = [s["epochs_run"] * s["batches_per_epoch"] / s["batches_per_full_epoch"] for s in m["seeds"]
                    if s.get("epochs_run") is not None and s.get("batches_per_epoch") and s.get("batches_per_full_epoch")]
        if per_seed and (least is None or statistics.fmean(per_seed) < least[0]):
            least = (statistics.fmean(per_seed), m["label"])
    return least


def _timed_calls(rec: dict[str, Any]) -> int | None:
    """Timed calls per figure of a cost study (latency, model timing, scaling); ``None`` for others."""
    proto = rec.get("protocol")
    if proto == "latency":
        return (rec.get("settings") or {}).get("iters")
    if proto == "model-timing":
        return rec.get("iters")
    if proto == "scaling":
        return (rec.get("budget") or {}).get("latency_iters")
    return None


def appendix_reason(rec: dict[str, Any]) -> str | None:
    """Why a record goes to "Appendix: reduced and smoke runs" (``None``: it belongs in the main body).

    In order: a smoke run (``--smoke``) or a ``--tiny`` one; a file name marked reduced (``-24steps``,
    ``-reduced``, ``-smoke``, ``-tiny``); a training run in which some model saw fewer than
    :data:`MIN_PASSES` passes over the training windows; a cost study with fewer than
    :data:`MIN_TIMED_CALLS` timed calls per figure."""
    if (rec.get("run") or {}).get("smoke"):
        return "a smoke run (`--smoke`): toy sizes, checking that the code runs; its figures mean nothing"
    if (rec.get("budget") or {}).get("tiny"):
        return "a `--tiny` run: tiny data and teacher, checking that the code runs"
    marker = REDUCED_MARKER.search(rec.get("_file", ""))
    if marker:
        return f"its file name marks it reduced (`{marker.group(0)}`)"
    passes = _passes(rec)
    if passes is not None and passes[0] < MIN_PASSES:
        return (f"{passes[1]} saw {passes[0]:.1f} passes over the training windows (the main body needs "
                f"{MIN_PASSES}): far from convergence")
    calls = _timed_calls(rec)
    if calls is not None and calls < MIN_TIMED_CALLS:
        return f"{calls} timed calls per figure (the main body needs {MIN_TIMED_CALLS})"
    return None


# ============================================================================ how a record ended, and its heading


#: the key holding what a record measured, per protocol (a part cut short before its first unit has none)
PAYLOAD = {"environment": "details", "latency": "results", "model-timing": "models", "tuning": "report",
           "scaling": "points", "dcrnn": "models", "los-loop": "models"}


def _has_payload(rec: dict[str, Any]) -> bool:
    return PAYLOAD.get(rec.get("protocol", ""), "") in rec or rec.get("protocol") not in PAYLOAD


def _is_suite(rec: dict[str, Any]) -> bool:
    return rec.get("protocol") in SUITE_PROTOCOLS and "models" in rec and not (rec.get("run") or {}).get("error")


def _part_lines(rec: dict[str, Any]) -> list[str]:
    """Notes on how a part of a GPU run ended (cut short by its time budget), and smoke runs."""
    run = rec.get("run") or {}
    out = []
    if run.get("smoke"):
        out += ["> **Smoke run** (`--smoke`): toy sizes on the CPU, checking that the part runs end to end; its "
                "figures mean nothing.", ""]
    if rec.get("completed") is False and rec.get("reached"):
        budget = f" of {run['budget_s']:g} s" if run.get("budget_s") is not None else ""
        out += [f"> **Cut short** by its time budget{budget}: stopped before {rec['reached']}; everything before it "
                "is reported.", ""]
    if run.get("error"):
        out += [f"> **Failed** after {run.get('wall_s', 0):.0f} s: `{run['error']}`; what it measured before is "
                "shown.", ""]
    if rec.get("reduced_by_design"):
        out += [f"> **Reduced by design**: {rec['reduced_by_design']}.", ""]
    return out


def _title(rec: dict[str, Any]) -> str:
    """A record's heading: its title, device, date and file."""
    return (f"{rec.get('title', rec['suite'])} — {rec['environment']['device'].upper()} — {rec['date']} "
            f"(`{rec['_file']}`)")


def _failed_section(rec: dict[str, Any]) -> list[str]:
    run = rec.get("run") or {}
    measured = PAYLOAD.get(rec.get("protocol", ""), "") in rec
    out = [f"## {_title(rec)}", "", f"Command: `{rec['command']}`", "",
           f"**Failed** after {run.get('wall_s', 0):.0f} s: `{run.get('error')}`; "
           + ("what it measured before is in the JSON file." if measured else "no figures.")]
    tail = [line for line in str(run.get("stderr_tail") or "").splitlines() if line.strip()][-8:]
    if tail:
        out += ["", f"Its process ended with {run.get('exit_code')}; the last lines it wrote:", "", "```"] + tail + ["```"]
    return out



def _section_head(rec: dict[str, Any]) -> list[str]:
    return [f"## {_title(rec)}", "", f"Command: `{rec['command']}`", ""] + _part_lines(rec)



def _run_line(rec: dict[str, Any]) -> str:
    """The run's file, title, device and date (its command is in its section)."""
    return (f"- `{rec['_file']}` — {rec.get('title', rec['suite'])}, {rec['environment']['device'].upper()} "
            f"({rec['environment']['device_name']}), {rec['date']}")

