"""The student frontier on the METR-LA week: test MAE against one-thread CPU latency, gathered from the records.

:func:`gather` joins each model's score on the week (:func:`_scores`; mean ± sample std over seeds) with the
newest idle one-thread eager fp32 latency record at 207 sensors that timed the same model; FLOPs come from the
accuracy record, else from a model-timing record. Nothing is filled in: what lacks a timing or a score, or is in
the appendix, is listed in :attr:`Frontier.missing`.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from benchmarks.table.records import (HORIZONS, MIN_TIMED_CALLS, WORSE, appendix_reason, best_baseline,
                                      fmt_count, fmt_ms, fmt_pm, mae_cells, mean_spread, read_json_files, table)

#: the data every figure of the frontier is on
DATASET = "metr-la-week"
NODES = 207
#: the baselines drawn as horizontal lines, by registered name (labels come from the record)
BASELINE_MODELS = ("last-value", "seasonal-naive", "historical-average", "historical-median")
_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_WIDTH = re.compile(r"^(?P<family>.+)-h(?P<width>\d+)$")


@dataclass(frozen=True)
class Score:
    """One model's test MAE on the week from one record (``mae``: ``{horizon: (mean, std, n)}``); ``val``
    chooses between recipes (never the test), ``design`` marks a variant beyond the width (not a point)."""

    family: str
    role: str
    training: str
    mae: dict[str, tuple[float, float, int]]
    source: str
    flags: str
    width: int | None = None
    parameters: int | None = None
    channels: int | None = None
    val: float | None = None
    epochs: int | None = None
    flops: float | None = None
    date: str = ""
    design: bool = False
    excluded: str | None = None
    ident: str = ""
    inputs: str = ""

    @property
    def seeds(self) -> int:
        return self.mae.get("60min", (math.nan, math.nan, 0))[2]

    @property
    def validation(self) -> float | None:
        """The validation MAE, where the record holds a finite one."""
        return self.val if self.val is not None and math.isfinite(self.val) else None

    @property
    def label(self) -> str:
        if self.role == "teacher":
            return f"{self.family} ({self.ident})" if self.ident else self.family
        width = f" w{self.width}" if self.width else " (default width)" if self.role == "student" else ""
        return (f"{self.family}{width}" + (f" {self.training}" if self.role == "student" else "")
                + (f", {self.inputs} input" if self.inputs else ""))

    def key(self) -> tuple:
        """The model this score is of: recipes of one key compete for one point of the chart."""
        return (self.role, self.family, self.width, self.training, self.parameters, self.inputs, self.ident)


@dataclass(frozen=True)
class Timing:
    """One model's one-thread CPU latency at batch 1 (and 64) from one idle latency record, with Graph
    WaveNet's from the same record (speed-ups only ever compare figures of one record)."""

    model: str
    family: str
    width: int | None
    parameters: int | None
    channels: int | None
    b1_ms: float
    b64_ms: float | None
    teacher_b1_ms: float | None
    teacher_b64_ms: float | None
    source: str
    started: str

    @property
    def speedup_b1(self) -> float | None:
        return self.teacher_b1_ms / self.b1_ms if self.teacher_b1_ms and self.b1_ms else None

    @property
    def speedup_b64(self) -> float | None:
        return self.teacher_b64_ms / self.b64_ms if self.teacher_b64_ms and self.b64_ms else None


@dataclass(frozen=True)
class Point:
    """A score, its timing (``None``: not timed) and its FLOPs at batch 1."""

    score: Score
    timing: Timing | None
    flops: float | None

    @property
    def label(self) -> str:
        return replace(self.score, width=self.score.width or (self.timing.width if self.timing else None)).label

    @property
    def mae60(self) -> float:
        return self.score.mae["60min"][0]


@dataclass
class Frontier:
    """What :func:`gather` found: the charted points, the other recipes, what is missing and why, and the
    baselines (``{label: {horizon: mae}}``) with their block and source."""

    points: list[Point] = field(default_factory=list)
    others: list[Point] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    baselines_block: dict[str, Any] | None = None
    baselines_source: str | None = None

    @property
    def charted(self) -> list[Point]:
        return [p for p in self.points if p.timing is not None]


@dataclass(frozen=True)
class StudyFront:
    """The Pareto front of one tuning study of the week (a ``python -m tuning.search`` report): per trial
    ``(number, family, width, one-thread CPU ms at batch 1 as the study timed it, test MAE at 60 min)``."""

    source: str
    trials: list[tuple[int, str, int | None, float, float]]
    epochs: int | None = None


# ============================================================================ the accuracy records


def _date(name: str, fallback: str = "") -> str:
    m = _DATE.search(name)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else fallback


def _spread(runs: Iterable[dict[str, Any]], get: Callable[[dict[str, Any], str], float | None]) -> dict:
    runs = list(runs)
    return {h: mean_spread(get(r, h) for r in runs) for h in HORIZONS}


def _seeds(n: int) -> str:
    return "1 seed" if n == 1 else f"{n} seeds mean ± std"


def _option(tokens: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` in a command's tokens (``None`` when absent)."""
    return next((tokens[i + 1] for i, tok in enumerate(tokens[:-1]) if tok == name), None)


def _screen_scores(name: str, rec: dict[str, Any]) -> list[Score]:
    """A frontier screen's rows (one per run, each with its command): runs of one command but the seed are one
    recipe; a ``stgkd distill`` command's student is distilled, of ``--student`` (default ``stgru``)."""
    from benchmarks.suites import PEERS_ALL

    rows = rec["rows"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        tokens = shlex.split(row.get("command", ""))
        if DATASET in row.get("command", ""):
            recipe = [t for i, t in enumerate(tokens)
                      if "--seed" not in (t, tokens[i - 1]) and "--out" not in (t, tokens[i - 1])]
            groups.setdefault(shlex.join(recipe), []).append(row)
    out = []
    for recipe, runs in groups.items():
        tokens = shlex.split(recipe)
        hparams = json.loads(_option(tokens, "--hparams") or "{}")
        model, lr, seasonal, epochs, teacher = (_option(tokens, f"--{k}") for k in
                                                ("model", "lr", "seasonal", "epochs", "teacher"))
        features = list(runs[0].get("input_features") or [])
        extra = [f.replace("_", " ") for f in features if f not in ("value", "time_of_day") and not f.endswith("_observed")]
        flags = ", ".join(x for x in (
            f"`stgkd {tokens[1] if len(tokens) > 1 else 'train'}`", f"teacher `{teacher}`" if teacher else "",
            f"--lr {lr}" if lr else "no --lr (the command's default when it ran)",
            f"--seasonal {seasonal}" if seasonal else "", f"--hparams {json.dumps(hparams)}" if hparams else "",
            f"--epochs {epochs}" if epochs else "", f"inputs: {', '.join(features)}" if features else "",
            _seeds(len(runs))) if x)
        distilled = len(tokens) > 1 and tokens[1] == "distill"
        out.append(Score(
            family=(_option(tokens, "--student") or "stgru") if distilled else model or "?",
            role="peer" if not distilled and model in {m for _, m, _ in PEERS_ALL} else "student",
            training="distilled" if distilled else "plain", width=hparams.get("hidden"),
            parameters=runs[0].get("params"), channels=len(features) or None,
            mae=_spread(runs, lambda r, h: r["test"].get(h)), val=mean_spread(r.get("val_mae") for r in runs)[0],
            epochs=int(epochs) if epochs else None, flops=runs[0].get("flops_b1"), source=name, flags=flags,
            date=_date(name), design=bool(set(hparams) - {"hidden"}), inputs=" + ".join(extra)))
    return out


def _teacher_score(name: str, teacher: dict[str, Any], epochs: int | None, channels: int | None) -> Score:
    path = str(teacher.get("path", "?"))
    return Score(family=teacher.get("model", "graph-wavenet"), role="teacher", training="plain",
                 parameters=teacher.get("parameters"), channels=channels,
                 mae={h: (teacher["test"][h]["mae"], 0.0, 1) for h in HORIZONS}, epochs=epochs, source=name,
                 flags=f"checkpoint `{path}`" + (f" ({epochs} epochs)" if epochs else "") + ", 1 seed",
                 date=_date(name), ident=f"`{path}`" + (f", {epochs} epochs" if epochs else ""))


def _regime_scores(name: str, report: dict[str, Any]) -> list[Score]:
    """Regime studies: each recipe on the whole training slice, and the teacher (not a combination of others)."""
    from benchmarks.table.ablations import REGIME_RECIPES

    if report.get("sources") or DATASET not in str(report.get("data", "")):
        return []
    features = re.search(r"features=\[([^\]]*)\]", str(report.get("data", "")))
    channels = len([f for f in features.group(1).split(",") if f.strip()]) if features else None
    out = [_teacher_score(name, report["teacher"], report["teacher"].get("epoch"), channels)]
    for recipe in report.get("recipes", []):
        runs = [r for r in report["runs"].values() if r["recipe"] == recipe and str(r.get("days")) == "all"]
        spec = REGIME_RECIPES.get(recipe)
        if runs and spec:
            distilled = "baseline" in spec
            flags = (f"`benchmarks.distill_regime` recipe '{recipe}', lr {report.get('lr')}, {report.get('epochs')} "
                     f"epochs (patience {report.get('patience')}), whole training slice, {_seeds(len(runs))}"
                     + (f", teacher `{report['teacher'].get('path')}`" if distilled else ""))
            out.append(Score(
                family=spec["student"], role="student", training="distilled" if distilled else "plain",
                width=spec["hparams"].get("hidden"), parameters=runs[0].get("parameters"), channels=channels,
                mae=_spread(runs, lambda r, h: r["test"][h]["mae"]), val=mean_spread(r.get("val_mae") for r in runs)[0],
                epochs=report.get("epochs"), source=name, flags=flags,
                date=_date(name, report.get("date", "")), design=bool(set(spec["hparams"]) - {"hidden"})))
    return out


def _ablation_scores(name: str, report: dict[str, Any]) -> list[Score]:
    """Distillation ablations: every setting of one student family and width, and the teacher."""
    from benchmarks.table.ablations import is_distilled

    if DATASET not in str(report.get("data", "")) + str(report.get("command", "")):
        return []
    excluded = appendix_reason(dict(report, _file=name))
    teacher, lr = report["teacher"], _option(shlex.split(report.get("command", "")), "--lr")
    out = [replace(_teacher_score(name, teacher, teacher.get("epochs"), None), excluded=excluded)]
    for setting, st in report["settings"].items():
        runs, distilled = st.get("runs") or [], is_distilled(st)
        if runs:
            flags = (f"`benchmarks.distill_ablation` setting '{setting}', " + (f"lr {lr}" if lr else "the script's "
                     "default lr") + f", {report.get('student_epochs')} epochs, {_seeds(len(runs))}"
                     + (f", teacher `{teacher.get('path')}`" if distilled else ""))
            out.append(Score(
                family=report["student"], role="student", training="distilled" if distilled else "plain",
                width=report.get("width"), parameters=runs[0].get("parameters"),
                mae=_spread(runs, lambda r, h: r["test"][h]["mae"]), epochs=report.get("student_epochs"),
                source=name, flags=flags, date=_date(name, report.get("date", "")),
                design=bool(set(st.get("student_hparams") or {}) - {"hidden"}), excluded=excluded))
    return out


def _suite_scores(name: str, record: dict[str, Any]) -> list[Score]:
    """``benchmarks.run`` suites on the week: the teacher, each student plain and distilled, the peers."""
    if (record.get("dataset") or {}).get("name") != DATASET:
        return []
    excluded, budget = appendix_reason(dict(record, _file=name)), record.get("budget") or {}
    features = (record.get("dataset") or {}).get("input_features")
    roles = {"teacher": ("teacher", "plain"), "student": ("student", "plain"), "student+kd": ("student", "distilled")}
    out = []
    for m in record.get("models", []):
        role, training = roles.get(m.get("kind"), ("peer", "plain"))
        seeds, hp = m.get("seeds") or [], m.get("hparams") or {}
        flags = (f"`benchmarks.run --suite {DATASET}`, lr {budget.get('lr')}, {budget.get('epochs')} epochs"
                 + (f" of at most {budget['limit_batches']} batches" if budget.get("limit_batches") else "")
                 + f", {_seeds(len(seeds))}")
        out.append(Score(
            family=m["model"], role=role, training=training, width=hp.get("hidden") if role == "student" else None,
            parameters=m.get("parameters"), channels=len(features) if features else None,
            mae=_spread(seeds, lambda s, h: (s.get("test") or {}).get(h, {}).get("mae")),
            val=mean_spread((s.get("val") or {}).get("avg", {}).get("mae") for s in seeds)[0],
            epochs=budget.get("epochs"), flops=m.get("flops"), source=name, flags=flags,
            date=record.get("date", _date(name)), design=role == "student" and bool(set(hp) - {"hidden"}),
            excluded=excluded, ident=f"`{name}`" if role == "teacher" else ""))
    return out


def _scores(name: str, obj: Any) -> list[Score]:
    """The scores of a results file: a frontier screen, a regime study (no protocol), an ablation or a suite."""
    if isinstance(obj, dict) and {"recipes", "runs", "teacher"} <= set(obj) and isinstance(obj["runs"], dict):
        return _regime_scores(name, obj)
    reader = {"frontier-screen": _screen_scores, "distill-ablation": _ablation_scores, "dcrnn": _suite_scores}
    return reader[obj["protocol"]](name, obj) if isinstance(obj, dict) and obj.get("protocol") in reader else []


# ============================================================================ timings, FLOPs, baselines


def _latency_rows(name: str, rec: dict[str, Any]) -> list[Timing]:
    """The one-thread eager fp32 CPU rows at 207 sensors of an idle latency record (none of a busy one)."""
    if (rec.get("protocol") != "latency" or rec.get("busy") or (rec.get("environment") or {}).get("device") != "cpu"
            or appendix_reason(dict(rec, _file=name)) is not None):
        return []
    by = {(r["model"], r["batch"]): r for r in rec.get("results", [])
          if "median_ms" in r and not r.get("busy") and r.get("threads") == 1 and r.get("mode") == "eager"
          and r.get("dtype") == "fp32" and r.get("nodes") == NODES and (r.get("iters") or MIN_TIMED_CALLS) >= MIN_TIMED_CALLS}

    def ms(model: str, batch: int) -> float | None:
        return float(by[(model, batch)]["median_ms"]) if (model, batch) in by else None

    out = []
    for (model, batch), r in by.items():
        m = _WIDTH.match(model)
        if batch == 1:
            out.append(Timing(model=model, family=m.group("family") if m else model,
                              width=int(m.group("width")) if m else None, parameters=r.get("parameters"),
                              channels=r.get("channels"), b1_ms=float(r["median_ms"]), b64_ms=ms(model, 64),
                              teacher_b1_ms=ms("graph-wavenet", 1), teacher_b64_ms=ms("graph-wavenet", 64),
                              source=name, started=str(rec.get("started") or rec.get("date") or "")))
    return out


def _flops_rows(name: str, rec: dict[str, Any]) -> list[tuple[str, int, float, str]]:
    """``(model, parameters, FLOPs, file)`` of the batch-1 fp32 rows of a model-timing record."""
    if rec.get("protocol") != "model-timing" or rec.get("nodes") != NODES:
        return []
    return [(m["model"], m.get("parameters"), float(m["gflops"]) * 1e9, name) for m in rec.get("models", [])
            if m.get("batch") == 1 and m.get("dtype") == "fp32" and m.get("gflops")]


def _matches(score: Score, timing: Timing) -> bool:
    """Whether ``timing`` is of the model ``score`` is of (a record without a parameter count still names the
    width: never another width's timing)."""
    return (timing.family == score.family and (score.parameters is None or timing.parameters == score.parameters)
            and (score.width is None or timing.width is None or timing.width == score.width)
            and (score.channels is None or timing.channels is None or timing.channels == score.channels))


def _timing_for(score: Score, timings: list[Timing]) -> Timing | None:
    """The newest idle record's timing of the model ``score`` is of."""
    return max((t for t in timings if _matches(score, t)), key=lambda t: t.started, default=None)


def _baselines_block(obj: Any) -> dict[str, Any] | None:
    """A test-split ``baselines`` block of the week in a record or in one of its rows."""
    return next((item["baselines"] for item in [obj, *(obj.get("rows") or [] if isinstance(obj, dict) else [])]
                 if isinstance(item, dict) and isinstance(item.get("baselines"), dict)
                 and item["baselines"].get("split") == "test" and item["baselines"].get("dataset") == DATASET), None)


# ============================================================================ the frontier


def _rank(score: Score) -> tuple:
    """Which recipe of one model is charted: trained longest, more seeds, lower validation MAE, newer."""
    val = score.validation
    return (score.epochs or 0, score.seeds, -(math.inf if val is None else val), score.date, score.source)


def gather(results_dir: Path) -> Frontier:
    """The frontier of the week from every record in ``results_dir`` (see the module's docstring)."""
    front, scores, timings, flops = Frontier(), [], [], []
    for path, obj in read_json_files(Path(results_dir)):
        found = _scores(path.name, obj)
        scores += found
        if found and front.baselines_block is None and _baselines_block(obj) is not None:
            front.baselines_block, front.baselines_source = _baselines_block(obj), f"`{path.name}`"
        if isinstance(obj, dict):
            timings += _latency_rows(path.name, obj)
            flops += _flops_rows(path.name, obj)
    front.baselines = {s["label"]: {h: m["mae"] for h, m in s["metrics"].items() if isinstance(m, dict) and "mae" in m}
                       for s in (front.baselines_block or {}).get("scored", [])
                       if s.get("model") in BASELINE_MODELS and s.get("metrics")}
    for name in dict.fromkeys(s.source for s in scores if s.excluded):
        reason = next(s.excluded for s in scores if s.source == name and s.excluded)
        front.missing.append((f"`{name}`", f"{reason} (the main body's rule)"))
    designs = [s for s in scores if s.design and not s.excluded]
    if designs:
        files = ", ".join(f"`{n}`" for n in dict.fromkeys(s.source for s in designs))
        front.missing.append((f"{len(designs)} design variants", "hyperparameters other than the width (their "
                              f"ablation tables: {files}); no latency record timed those configurations"))
    groups: dict[tuple, list[Score]] = {}
    for s in scores:
        if not s.excluded and not s.design:
            groups.setdefault(s.key(), []).append(s)
    for group in groups.values():
        seen: set[tuple] = set()  # the same runs reported by several records (a teacher in each study): once
        unique = [s for s in sorted(group, key=_rank, reverse=True)
                  if tuple(s.mae.items()) not in seen and not seen.add(tuple(s.mae.items()))]
        for i, s in enumerate(unique):
            found = [(f, src) for m, p, f, src in flops if m == s.family and s.parameters is not None and p == s.parameters]
            point = Point(s, _timing_for(s, timings), float(s.flops) if s.flops else found[-1][0] if found else None)
            (front.others if i else front.points).append(point)
            if not i and point.timing is None:
                what = " and ".join(w for w in (f"{s.parameters:,} parameters" if s.parameters else "",
                                                f"{s.channels} input channels" if s.channels else "") if w)
                front.missing.append((point.label, f"no idle one-thread CPU latency record has `{s.family}` with "
                                                   f"{what} (accuracy: `{s.source}`)"))
    unscored: dict[str, list[str]] = {}
    for model in sorted({t.model for t in timings}):
        ts = [t for t in timings if t.model == model]
        if not any(_matches(p.score, t) for p in front.points + front.others for t in ts):
            unscored.setdefault(max(ts, key=lambda t: t.started).source, []).append(model)
    front.missing += [(", ".join(models), f"timed (`{source}`) but no accuracy record on the week")
                      for source, models in unscored.items()]
    front.points.sort(key=lambda p: (p.timing is None, p.timing.b1_ms if p.timing else 0.0, p.mae60))
    return front


def pareto(points: list[Point], error: Callable[[Point], float] = lambda p: p.mae60) -> list[Point]:
    """The charted points no other charted point beats on both latency at batch 1 and ``error`` (default: test
    MAE at 60 minutes, what the chart shows), fastest first."""
    front: list[Point] = []
    for p in sorted((p for p in points if p.timing is not None), key=lambda p: (p.timing.b1_ms, error(p))):
        if not front or error(p) < error(front[-1]):
            front.append(p)
    return front


def which_student(front: Frontier) -> list[str]:
    """"Which student to use", computed from the charted students better than the best baseline at 60 minutes:
    those no other is both faster and more accurate than, the latency from which each is the most accurate
    choice, its speed-up against Graph WaveNet at batch 1 and 64 (one record's figures), and how it compares
    with the best baseline and the teachers at 60 minutes."""
    students = [p for p in front.charted if p.score.role == "student"]
    if not students:
        return ["No student has both an accuracy record on the week and an idle one-thread latency: nothing to "
                "recommend yet."]
    base = min(((label, m["60min"]) for label, m in front.baselines.items() if "60min" in m), key=lambda x: x[1],
               default=None)
    teachers = [p for p in front.points if p.score.role == "teacher"]
    losing = [p for p in students if base is not None and p.mae60 >= base[1]]
    students = [p for p in students if p not in losing]  # a student the naive forecast beats is not advice
    unranked = [p for p in students if p.score.validation is None]
    steps = pareto([p for p in students if p.score.validation is not None], error=lambda p: p.score.validation)
    lines = ["**Which student to use** (chosen on validation: each step of the list is the student with the lowest "
             "validation MAE over the 12 steps within that one-thread CPU latency at batch 1; test MAE at 60 min "
             "only leaves out the students worse than the best baseline there, a finding rather than advice, and "
             "is shown beside each step):", ""]
    if not students:
        lines.append(f"- none: every charted student is worse than the best baseline ({base[0]}, {base[1]:.2f}) at "
                     "60 min.")
    elif not steps:
        lines.append("- none ranked: no charted student better than the best baseline has a validation MAE on record.")
    for p in steps:
        t = p.timing
        notes = [", ".join(x for x in (f"{t.speedup_b1:.1f}× faster than Graph WaveNet at batch 1" if t.speedup_b1
                                       else "", f"{t.speedup_b64:.1f}× at batch 64" if t.speedup_b64 else "") if x),
                 f"{p.mae60 - base[1]:+.2f} against the best baseline ({base[0]}, {base[1]:.2f})" if base else "",
                 "against the teacher " + ", ".join(f"{p.mae60 - tp.mae60:+.2f} ({tp.score.ident}: {tp.mae60:.2f})"
                                                    for tp in teachers) if teachers else ""]
        lines.append(f"- from {t.b1_ms:.2f} ms: **{p.label}**, validation {p.score.val:.3f}, test "
                     f"{fmt_pm(*p.score.mae['60min'])} at 60 min ({p.score.flags}; `{t.source}`)"
                     + "".join(f"; {n}" for n in notes if n) + ".")

    def listed(points: list[Point]) -> str:
        return ", ".join(f"{p.label} ({p.mae60:.2f}, {p.timing.b1_ms:.2f} ms)" for p in points) + "."

    beaten = [p for p in students if p not in steps and p not in unranked]
    if beaten:
        lines += ["", "Every other charted student is slower or as fast and no better on validation than one above: "
                  + listed(beaten)]
    if unranked:
        lines += ["", "Not ranked, no validation MAE in its record: " + listed(unranked)]
    if losing:
        lines += ["", f"Not advised, worse than the best baseline ({base[0]}, {base[1]:.2f}) at 60 min: " + listed(losing)]
    return lines


def study_fronts(results_dir: Path) -> tuple[list[StudyFront], list[tuple[str, str]]]:
    """The tuning studies (``tuning-*.json``) whose fronts belong on the chart, and ``(record, why not)`` for the
    others: a study of the week that timed its students at batch 1 in eager fp32 on one CPU thread of a machine
    idle at its start and end (``settings.load_average``), and scored its front on the test split."""
    from stgkd.latency import is_busy

    fronts, skipped = [], []
    for path, rec in read_json_files(Path(results_dir)):
        if not path.name.startswith("tuning-") or not isinstance(rec, dict):
            continue
        st = rec.get("settings") or {}
        lat, load = st.get("latency") or {}, st.get("load_average") or {}
        why = ("not on the week" if not str(st.get("dataset", "")).rstrip("/").endswith(DATASET) else
               "not timed on one CPU thread at batch 1 in eager fp32"
               if (lat.get("device_kind"), lat.get("batch"), lat.get("mode"), lat.get("dtype")) != ("cpu", 1, "eager", "fp32")
               or "(1 threads)" not in str(lat.get("device_name")) else
               "no load average recorded, so no timing of it is a figure" if not (load.get("start") and load.get("end")) else
               "timed on a busy machine" if is_busy(load["start"]) or is_busy(load["end"]) else
               "its front was not scored on the test split"
               if not all((t.get("test") or {}).get("60min") for t in rec.get("pareto_front") or [{}]) else None)
        if why:
            skipped.append((f"`{path.name}`", why))
            continue
        trials = [(int(t["number"]), str(t["params"].get("family")), t["params"].get("hidden"), float(t["latency_ms"]),
                   float(t["test"]["60min"]["mae"])) for t in rec["pareto_front"]]
        fronts.append(StudyFront(path.name, sorted(trials, key=lambda t: t[3]), st.get("epochs")))
    return fronts, skipped


def frontier_lines(front: Frontier, fronts: list[StudyFront], skipped: list[tuple[str, str]], chart: str) -> list[str]:
    """The section "Accuracy against latency": how it is computed, the chart (``chart``, a link), the table of
    the points and baselines, "which student to use", what is not on the chart, and the tuning studies."""
    best = best_baseline(front.baselines_block)

    def row(n: int, p: Point) -> list[Any]:
        t, mae = p.timing, mae_cells(front.baselines_block, p.score.mae, ("60min", "avg"))
        return [n, p.label, mae["60min"], mae["avg"], fmt_count(p.score.parameters), fmt_count(p.flops),
                fmt_ms(t.b1_ms) if t else "not timed", fmt_ms(t.b64_ms) if t and t.b64_ms else "–",
                " / ".join(f"{x:.1f}×" if x else "–" for x in (t.speedup_b1, t.speedup_b64)) if t else "–",
                p.score.flags, f"`{p.score.source}`", f"`{t.source}`" if t else "–"]

    out = [f"## Accuracy against latency: the student frontier ({DATASET}, one CPU thread)", "",
           "*Computed by `benchmarks/table/frontier.py` from the records named in each row: test masked MAE from the "
           "accuracy records (mean ± std over seeds), one-thread CPU latency at batch 1 and 64 from the newest idle "
           "latency record that timed the same model (same family, parameter count, width and input channels; a "
           "record or row timed on a busy machine is never used), the speed-up against Graph WaveNet timed in that "
           "same record. One point per model: where several recipes are on record, the one trained longest, then "
           f"with more seeds, then with the lower validation MAE. {WORSE} = worse than the best baseline at that "
           "horizon. On the chart each point is its number in the `#` column.*", "",
           f"![MAE at 60 min against CPU latency and FLOPs]({chart})", ""]
    out += table(["#", "model", "MAE 60 min", "MAE avg 12", "params", "FLOPs b1", "CPU ms b1 (1 thread)", "CPU ms b64",
                  "× Graph WaveNet b1 / b64", "how it was trained", "accuracy from", "latency from"],
                 [row(n, p) for n, p in enumerate(front.points, 1)] + [
                     ["–", f"baseline: {label}" + (" (best at 60 min)" if best.get("60min", ("",))[0] == label else ""),
                      f"{m.get('60min', math.nan):.2f}", f"{m.get('avg', math.nan):.2f}", "–", "–",
                      "no latency (a line on the chart)", "–", "–", "fitted on the training split",
                      front.baselines_source, "–"] for label, m in front.baselines.items()])
    out += ["", *which_student(front), ""]
    if front.missing:
        out += ["**Not on the latency panel**: " + "; ".join(f"{w}: {why}" for w, why in front.missing) + ".", ""]
    no_flops = [p.label for p in front.points if p.flops is None]
    if no_flops:
        out += ["**Not on the FLOPs panel** (no record counted their FLOPs at batch 1): " + ", ".join(no_flops) + ".", ""]
    if front.others:
        out += ["<details><summary>Other recipes on record (not charted: one point per model)</summary>", "",
                *[f"- {p.label}: {p.mae60:.2f} at 60 min ({p.score.flags}; `{p.score.source}`)" for p in front.others],
                "", "</details>", ""]
    drawn = [f"`{f.source}` ({len(f.trials)} trials: " + ", ".join(
        f"#{n} {fam}" + (f" w{w}" if w else "") + f" {ms:.2f} ms {mae:.2f}" for n, fam, w, ms, mae in f.trials) + ")"
        for f in fronts]
    note = " ".join(x for x in (
        "Tuning study fronts drawn on the latency panel (test MAE at 60 min of each front trial, its latency as the "
        "study timed it): " + "; ".join(drawn) + "." if drawn else "",
        "Not drawn: " + "; ".join(f"{name} ({why})" for name, why in skipped) + "." if skipped else "") if x)
    return out + [note or "No tuning study of the week is recorded: no Pareto front on the chart.", ""]
