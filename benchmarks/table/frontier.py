"""The student frontier on the METR-LA week: test MAE against one-thread CPU latency, gathered from the records.

:func:`gather` reads every accuracy record of the week in a results folder (the ``stgru`` screen
``student-frontier-screen-*.json``, the regime studies ``distill-regime-*.json``, the distillation ablations
``distill-ablation-*.json`` and the ``benchmarks.run`` suites), one :class:`Score` per model and recipe (mean ±
sample std over its seeds), and joins each with the newest idle latency record (``benchmarks.latency``, one
CPU thread, eager fp32, 207 sensors; a record or row timed on a busy machine is never used) that timed the
same family with the same parameter count, width and input channels (each where both records state it).
FLOPs at batch 1 come from the accuracy record where it counted them, else from a ``benchmarks.model_timing``
record's batch-1 row of the same model. Nothing is filled in: a score without a timing, a timing without a
score and a record the main body's rule (:func:`~benchmarks.table.records.appendix_reason`) sends to the
appendix are listed in :attr:`Frontier.missing` with the reason.

One point per model (family, width, plain or distilled, inputs) is charted; where several recipes of one
model are on record, the one trained longest is kept, then the one with more seeds, then the lower
validation MAE, then the newer record (the rest are :attr:`Frontier.others`). The baselines (last value,
seasonal naive, historical average and median) come from the ``baselines`` block of a record, or of the
``metrics.json`` of a run a record names with ``--out``.

Nothing here measures anything; :mod:`benchmarks.table.frontier_chart` draws and renders it.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from benchmarks.table.records import HORIZONS, MIN_TIMED_CALLS, appendix_reason, mean_spread, read_json_files

__all__ = ["DATASET", "Score", "Timing", "Point", "Frontier", "gather", "pareto", "which_student"]

#: the data every figure of the frontier is on
DATASET = "metr-la-week"
NODES = 207
#: the baselines drawn as horizontal lines, by registered name (labels come from the record)
BASELINE_MODELS = ("last-value", "seasonal-naive", "historical-average", "historical-median")
_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_WIDTH = re.compile(r"^(?P<family>.+)-h(?P<width>\d+)$")


@dataclass(frozen=True)
class Score:
    """One model's test masked MAE on the week, from one record (mean, sample std and seeds per horizon).

    Attributes:
        family: the registered model (``"stgru"``, ``"graph-wavenet"``, ``"pgt-tgcn"``).
        role: ``"teacher"``, ``"student"`` or ``"peer"``.
        training: ``"plain"`` or ``"distilled"`` (teachers and peers: ``"plain"``).
        width: the student's hidden width where the record states it.
        parameters: parameter count (the join key with the latency records).
        channels: input channels the model read, where the record states them.
        mae: ``{"15min": (mean, std, n), ..., "avg": ...}``.
        val: mean validation MAE over the 12 steps, where recorded (chooses between recipes, never the test).
        epochs: the training budget in epochs.
        flops: FLOPs at batch 1 counted by this record (``None``: not counted here).
        source: the record's file name.
        flags: how it was trained, in the words of its command.
        design: a design variant (hyperparameters other than the width): not a point of the frontier.
        excluded: why the record cannot give a point (the appendix rule), or ``None``.
        ident: what else tells two models apart (a teacher's checkpoint).
        inputs: input channels beyond the reading and the time of day (``"seasonal day"``).
    """

    family: str
    role: str
    training: str
    width: int | None
    parameters: int | None
    channels: int | None
    mae: dict[str, tuple[float, float, int]]
    val: float | None
    epochs: int | None
    flops: float | None
    source: str
    flags: str
    date: str = ""
    design: bool = False
    excluded: str | None = None
    ident: str = ""
    inputs: str = ""

    @property
    def seeds(self) -> int:
        return self.mae.get("60min", (math.nan, math.nan, 0))[2]

    @property
    def label(self) -> str:
        if self.role == "teacher":
            return f"{self.family} ({self.ident})" if self.ident else self.family
        width = f" w{self.width}" if self.width else " (default width)" if self.role == "student" else ""
        return (f"{self.family}{width}" + (f" {self.training}" if self.role == "student" else "")
                + (f", {self.inputs} input" if self.inputs else ""))

    def key(self) -> tuple:
        """The model this score is of: recipes of one key compete for one point of the chart (the parameter
        count tells input channels apart too)."""
        return (self.role, self.family, self.width, self.training, self.parameters, self.inputs, self.ident)


@dataclass(frozen=True)
class Timing:
    """One model's one-thread CPU latency at batch 1 (and 64) from one idle latency record, with Graph
    WaveNet's from the same record (speed-ups only ever compare figures of one record)."""

    model: str
    family: str
    width: int | None
    role: str
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
    """A score, its timing (``None``: not timed) and its FLOPs at batch 1 with their source."""

    score: Score
    timing: Timing | None
    flops: float | None
    flops_source: str | None

    @property
    def label(self) -> str:
        width = self.score.width or (self.timing.width if self.timing else None)
        return replace(self.score, width=width).label

    @property
    def mae60(self) -> float:
        return self.score.mae["60min"][0]


@dataclass
class Frontier:
    """What :func:`gather` found: the charted points, the other recipes, what is missing and why, the
    baselines (``{label: {horizon: mae}}``) and where they came from."""

    points: list[Point] = field(default_factory=list)
    others: list[Point] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    baselines_block: dict[str, Any] | None = None
    baselines_source: str | None = None
    sources: list[str] = field(default_factory=list)

    @property
    def charted(self) -> list[Point]:
        return [p for p in self.points if p.timing is not None]


# ============================================================================ reading the accuracy records


def _date(name: str, fallback: str = "") -> str:
    m = _DATE.search(name)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else fallback


def _spread(runs: Iterable[dict[str, Any]], get: Callable[[dict[str, Any], str], float | None]) -> dict:
    runs = list(runs)
    return {h: mean_spread(get(r, h) for r in runs) for h in HORIZONS}


def _seeds_text(n: int) -> str:
    return "1 seed" if n == 1 else f"{n} seeds mean ± std"


def _option(tokens: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` in a command's tokens (``None`` when absent)."""
    for i, tok in enumerate(tokens[:-1]):
        if tok == name:
            return tokens[i + 1]
    return None


def _screen_scores(name: str, rows: list[dict[str, Any]]) -> list[Score]:
    """``student-frontier-screen-*.json`` rows (one per run, each with its command): runs of one command but the
    seed are one recipe; a ``stgkd distill`` command's student is distilled, of ``--student`` (default ``stgru``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        tokens = shlex.split(row.get("command", ""))
        if DATASET not in row.get("command", ""):
            continue
        recipe = [t for i, t in enumerate(tokens) if not (t in ("--seed", "--out") or tokens[i - 1] in ("--seed", "--out"))]
        groups.setdefault(shlex.join(recipe), []).append(row)
    out = []
    for recipe, runs in groups.items():
        tokens = shlex.split(recipe)
        hparams = json.loads(_option(tokens, "--hparams") or "{}")
        model = _option(tokens, "--model") or "?"
        lr = _option(tokens, "--lr")
        seasonal = _option(tokens, "--seasonal")
        epochs = _option(tokens, "--epochs")
        n = len(runs)
        first = runs[0]
        features = list(first.get("input_features") or [])
        extra = [f.replace("_", " ") for f in features if f not in ("value", "time_of_day") and not f.endswith("_observed")]
        teacher = _option(tokens, "--teacher")
        flags = ", ".join(x for x in (
            f"`stgkd {tokens[1] if len(tokens) > 1 else 'train'}`",
            f"teacher `{teacher}`" if teacher else "",
            f"--lr {lr}" if lr else "no --lr (the command's default when it ran)",
            f"--seasonal {seasonal}" if seasonal else "",
            f"--hparams {json.dumps(hparams)}" if hparams else "",
            f"--epochs {epochs}" if epochs else "",
            f"inputs: {', '.join(features)}" if features else "", _seeds_text(n)) if x)
        distilled = len(tokens) > 1 and tokens[1] == "distill"
        out.append(Score(
            family=(_option(tokens, "--student") or "stgru") if distilled else model,
            role="peer" if not distilled and model in _peer_models() else "student",
            training="distilled" if distilled else "plain", width=hparams.get("hidden"),
            parameters=first.get("params"), channels=len(first["input_features"]) if first.get("input_features") else None,
            mae=_spread(runs, lambda r, h: r["test"].get(h)), val=mean_spread(r.get("val_mae") for r in runs)[0],
            epochs=int(epochs) if epochs else None, flops=first.get("flops_b1"), source=name, flags=flags,
            date=_date(name), design=bool(set(hparams) - {"hidden"}), inputs=" + ".join(extra)))
    return out


def _peer_models() -> set[str]:
    """Registry names of the suites' peers (models from torch-geometric-temporal, :data:`benchmarks.suites.PEERS_ALL`)."""
    from benchmarks.suites import PEERS_ALL

    return {model for _, model, _ in PEERS_ALL}


def _regime_scores(name: str, report: dict[str, Any]) -> list[Score]:
    """``benchmarks.distill_regime`` studies: each recipe on the whole training slice, and the teacher."""
    from benchmarks.table.ablations import REGIME_RECIPES as RECIPES

    if report.get("sources") or DATASET not in str(report.get("data", "")):
        return []  # a combination of other studies (they are read themselves), or other data
    features = re.search(r"features=\[([^\]]*)\]", str(report.get("data", "")))
    channels = len([f for f in features.group(1).split(",") if f.strip()]) if features else None
    out = [_teacher_score(name, report["teacher"], epochs=report["teacher"].get("epoch"), channels=channels)]
    for recipe in report.get("recipes", []):
        runs = [r for r in report["runs"].values() if r["recipe"] == recipe and str(r.get("days")) == "all"]
        spec = RECIPES.get(recipe)
        if not runs or spec is None:
            continue
        hparams = spec.get("hparams") or {}
        distilled = "baseline" in spec
        n = len(runs)
        flags = (f"`benchmarks.distill_regime` recipe '{recipe}', lr {report.get('lr')}, {report.get('epochs')} epochs "
                 f"(patience {report.get('patience')}), whole training slice, {_seeds_text(n)}"
                 + (f", teacher `{report['teacher'].get('path')}`" if distilled else ""))
        out.append(Score(
            family=spec["student"], role="student", training="distilled" if distilled else "plain",
            width=hparams.get("hidden"), parameters=runs[0].get("parameters"), channels=channels,
            mae=_spread(runs, lambda r, h: r["test"][h]["mae"]), val=mean_spread(r.get("val_mae") for r in runs)[0],
            epochs=report.get("epochs"), flops=None, source=name, flags=flags, date=_date(name, report.get("date", "")),
            design=bool(set(hparams) - {"hidden"})))
    return out


def _teacher_score(name: str, teacher: dict[str, Any], *, epochs: int | None, channels: int | None) -> Score:
    path = str(teacher.get("path", "?"))
    ident = f"`{path}`" + (f", {epochs} epochs" if epochs else "")
    return Score(
        family=teacher.get("model", "graph-wavenet"), role="teacher", training="plain", width=None,
        parameters=teacher.get("parameters"), channels=channels,
        mae={h: (teacher["test"][h]["mae"], 0.0, 1) for h in HORIZONS}, val=None, epochs=epochs, flops=None,
        source=name, flags=f"checkpoint `{path}`" + (f" ({epochs} epochs)" if epochs else "") + ", 1 seed",
        date=_date(name), ident=ident)


def _ablation_scores(name: str, report: dict[str, Any]) -> list[Score]:
    """``benchmarks.distill_ablation`` studies: every setting of one student family and width, and the teacher."""
    from benchmarks.table.ablations import _is_distilled
    from benchmarks.table.records import _as_ablation

    if DATASET not in str(report.get("data", "")) and DATASET not in str(report.get("command", "")):
        return []
    excluded = appendix_reason(_as_ablation(report, name) or {"_file": name})
    teacher = report["teacher"]
    tokens = shlex.split(report.get("command", ""))
    lr = _option(tokens, "--lr")
    out = [replace(_teacher_score(name, teacher, epochs=teacher.get("epochs"), channels=None), excluded=excluded)]
    for setting, st in report["settings"].items():
        runs = st.get("runs") or []
        if not runs:
            continue
        hparams = st.get("student_hparams") or {}
        distilled = _is_distilled(st)
        flags = (f"`benchmarks.distill_ablation` setting '{setting}', "
                 + (f"lr {lr}" if lr else "the script's default lr")
                 + f", {report.get('student_epochs')} epochs, {_seeds_text(len(runs))}"
                 + (f", teacher `{teacher.get('path')}`" if distilled else ""))
        out.append(Score(
            family=report["student"], role="student", training="distilled" if distilled else "plain",
            width=report.get("width"), parameters=runs[0].get("parameters"), channels=None,
            mae=_spread(runs, lambda r, h: r["test"][h]["mae"]), val=None, epochs=report.get("student_epochs"),
            flops=None, source=name, flags=flags, date=_date(name, report.get("date", "")),
            design=bool(set(hparams) - {"hidden"}), excluded=excluded))
    return out


def _suite_scores(name: str, record: dict[str, Any]) -> list[Score]:
    """``benchmarks.run`` suites on the week: the teacher, each student plain and distilled, the peers."""
    if record.get("protocol") != "dcrnn" or (record.get("dataset") or {}).get("name") != DATASET:
        return []
    rec = dict(record, _file=name)
    excluded = appendix_reason(rec)
    budget = record.get("budget") or {}
    features = (record.get("dataset") or {}).get("input_features")
    roles = {"teacher": ("teacher", "plain"), "student": ("student", "plain"), "student+kd": ("student", "distilled"),
             "peer": ("peer", "plain")}
    out = []
    for m in record.get("models", []):
        role, training = roles.get(m.get("kind"), ("peer", "plain"))
        seeds = m.get("seeds") or []
        hp = m.get("hparams") or {}
        flags = (f"`benchmarks.run --suite {DATASET}`, lr {budget.get('lr')}, {budget.get('epochs')} epochs"
                 + (f" of at most {budget['limit_batches']} batches" if budget.get("limit_batches") else "")
                 + f", {_seeds_text(len(seeds))}")
        out.append(Score(
            family=m["model"], role=role, training=training, width=hp.get("hidden") if role == "student" else None,
            parameters=m.get("parameters"), channels=len(features) if features else None,
            mae=_spread(seeds, lambda s, h: (s.get("test") or {}).get(h, {}).get("mae")),
            val=mean_spread((s.get("val") or {}).get("avg", {}).get("mae") for s in seeds)[0],
            epochs=budget.get("epochs"), flops=m.get("flops"), source=name, flags=flags,
            date=record.get("date", _date(name)), design=role == "student" and bool(set(hp) - {"hidden"}),
            excluded=excluded, ident=f"`{name}`" if role == "teacher" else ""))
    return out


def _kind(name: str, obj: Any) -> str | None:
    """Which reader a results file needs (``None``: not an accuracy record)."""
    if isinstance(obj, list) and obj and isinstance(obj[0], dict) and "flops_b1" in obj[0] and "command" in obj[0]:
        return "screen"
    if not isinstance(obj, dict):
        return None
    if {"recipes", "runs", "teacher"} <= set(obj) and isinstance(obj.get("runs"), dict):
        return "regime"
    if {"teacher", "settings", "student", "seeds"} <= set(obj):
        return "ablation"
    if str(obj.get("schema", "")).startswith("stgkd-bench/") and "models" in obj:
        return "suite"
    return None


#: accuracy readers, by the kind of record :func:`_kind` names
READERS: dict[str, Callable[[str, Any], list[Score]]] = {
    "screen": _screen_scores,
    "regime": _regime_scores,
    "ablation": _ablation_scores,
    "suite": _suite_scores,
}


# ============================================================================ timings and FLOPs


def _latency_rows(name: str, rec: dict[str, Any]) -> list[Timing]:
    """The one-thread eager fp32 CPU rows at 207 sensors of an idle latency record (none of a busy one)."""
    if rec.get("protocol") != "latency" or rec.get("busy") or (rec.get("environment") or {}).get("device") != "cpu":
        return []
    if appendix_reason(dict(rec, _file=name)) is not None:
        return []
    ok = [r for r in rec.get("results", []) if "median_ms" in r and not r.get("busy") and r.get("threads") == 1
          and r.get("mode") == "eager" and r.get("dtype") == "fp32" and r.get("nodes") == NODES
          and (r.get("iters") or MIN_TIMED_CALLS) >= MIN_TIMED_CALLS]
    by = {(r["model"], r["batch"]): r for r in ok}
    teacher = {b: by.get(("graph-wavenet", b)) for b in (1, 64)}
    out = []
    for (model, batch), r in by.items():
        if batch != 1:
            continue
        m = _WIDTH.match(model)
        family, width = (m.group("family"), int(m.group("width"))) if m else (model, None)
        b64 = by.get((model, 64))
        out.append(Timing(
            model=model, family=family, width=width,
            role="teacher" if model == "graph-wavenet" else "peer" if r.get("section") == "peers" else "student",
            parameters=r.get("parameters"), channels=r.get("channels"), b1_ms=float(r["median_ms"]),
            b64_ms=float(b64["median_ms"]) if b64 else None,
            teacher_b1_ms=float(teacher[1]["median_ms"]) if teacher[1] else None,
            teacher_b64_ms=float(teacher[64]["median_ms"]) if teacher[64] else None,
            source=name, started=str(rec.get("started") or rec.get("date") or "")))
    return out


def _flops_rows(name: str, rec: dict[str, Any]) -> list[tuple[str, int, float]]:
    """``(model, parameters, FLOPs)`` of the batch-1 fp32 rows of a ``benchmarks.model_timing`` record."""
    if not str(rec.get("command", "")).startswith("python -m benchmarks.model_timing") or rec.get("nodes") != NODES:
        return []
    return [(m["model"], m.get("parameters"), float(m["gflops"]) * 1e9) for m in rec.get("models", [])
            if m.get("batch") == 1 and m.get("dtype") == "fp32" and m.get("gflops")]


def _matches(score: Score, timing: Timing) -> bool:
    if timing.family != score.family:
        return False
    if score.parameters is not None and timing.parameters != score.parameters:
        return False
    if score.width is not None and timing.width is not None and timing.width != score.width:
        return False  # a record without a parameter count still names the width: never another width's timing
    return score.channels is None or timing.channels is None or timing.channels == score.channels


def _timing_for(score: Score, timings: list[Timing]) -> Timing | None:
    """The newest idle record's timing of the model ``score`` is of."""
    found = [t for t in timings if _matches(score, t)]
    return max(found, key=lambda t: t.started) if found else None


# ============================================================================ baselines


def _baselines_block(name: str, obj: Any, root: Path) -> tuple[dict[str, Any], str] | None:
    """A test-split ``baselines`` block of the week in a record, in one of its rows, or in the
    ``metrics.json`` of a run the record names with ``--out`` (relative to the repository root)."""
    items = obj if isinstance(obj, list) else [obj]
    for item in items:
        if not isinstance(item, dict):
            continue
        block = item.get("baselines")
        if isinstance(block, dict) and block.get("split") == "test" and block.get("dataset") == DATASET:
            return block, f"`{name}`"
    for item in items:
        out = _option(shlex.split(str(item.get("command", ""))) if isinstance(item, dict) else [], "--out")
        metrics = root / out / "metrics.json" if out else None
        if metrics is not None and metrics.is_file():
            try:
                block = json.loads(metrics.read_text()).get("baselines")
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(block, dict) and block.get("split") == "test" and block.get("dataset") == DATASET:
                return block, f"`{out}/metrics.json` (a run of `{name}`)"
    return None


def _baseline_lines(block: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {s["label"]: {h: m["mae"] for h, m in s["metrics"].items() if isinstance(m, dict) and "mae" in m}
            for s in block.get("scored", []) if s.get("model") in BASELINE_MODELS and s.get("metrics")}


# ============================================================================ the frontier


def _rank(score: Score) -> tuple:
    """Which recipe of one model is charted: trained longest, more seeds, lower validation MAE, newer."""
    val = score.val if score.val is not None and math.isfinite(score.val) else math.inf
    return (score.epochs or 0, score.seeds, -val, score.date, score.source)


def gather(results_dir: Path) -> Frontier:
    """The frontier of the week from every record in ``results_dir`` (see the module's docstring)."""
    results_dir = Path(results_dir)
    root = results_dir.resolve().parents[1] if len(results_dir.resolve().parents) > 1 else results_dir
    files = [(path.name, content) for path, content in read_json_files(results_dir)]
    front = Frontier()
    scores: list[Score] = []
    timings: list[Timing] = []
    flops: list[tuple[str, int, float, str]] = []
    for name, obj in files:
        kind = _kind(name, obj)
        if kind is not None:
            found = READERS[kind](name, obj)
            scores += found
            if found and name not in front.sources:
                front.sources.append(name)
            if front.baselines_block is None and found:
                block = _baselines_block(name, obj, root)
                if block is not None:
                    front.baselines_block, front.baselines_source = block
        if isinstance(obj, dict):
            timings += _latency_rows(name, obj)
            flops += [(m, p, f, name) for m, p, f in _flops_rows(name, obj)]
    if front.baselines_block is not None:
        front.baselines = _baseline_lines(front.baselines_block)
    for name in dict.fromkeys(s.source for s in scores if s.excluded):
        reason = next(s.excluded for s in scores if s.source == name and s.excluded)
        front.missing.append((f"`{name}`", f"{reason} (the main body's rule)"))
    designs = [s for s in scores if s.design and not s.excluded]
    if designs:
        files_ = ", ".join(f"`{n}`" for n in dict.fromkeys(s.source for s in designs))
        front.missing.append((f"{len(designs)} design variants", "hyperparameters other than the width (their "
                              f"ablation tables: {files_}); no latency record timed those configurations"))
    groups: dict[tuple, list[Score]] = {}
    for s in scores:
        if not s.excluded and not s.design:
            groups.setdefault(s.key(), []).append(s)
    for key, group in groups.items():
        group.sort(key=_rank, reverse=True)
        seen: set[tuple] = set()
        unique = []
        for s in group:  # the same runs reported by several records (a teacher in every study of it): once
            if tuple(s.mae.items()) not in seen:
                seen.add(tuple(s.mae.items()))
                unique.append(s)
        for i, s in enumerate(unique):
            point = _point(s, timings, flops)
            (front.points if i == 0 else front.others).append(point)
            if i == 0 and point.timing is None:
                front.missing.append((point.label, _no_timing(s)))
    unscored: dict[str, list[str]] = {}
    for model in sorted({t.model for t in timings}):
        ts = [t for t in timings if t.model == model]
        if not any(_matches(p.score, t) for p in front.points + front.others for t in ts):
            unscored.setdefault(max(ts, key=lambda t: t.started).source, []).append(model)
    for source, models in unscored.items():
        front.missing.append((", ".join(models), f"timed (`{source}`) but no accuracy record on the week"))
    front.points.sort(key=lambda p: (p.timing is None, p.timing.b1_ms if p.timing else 0.0, p.mae60))
    return front


def _point(score: Score, timings: list[Timing], flops: list[tuple[str, int, float, str]]) -> Point:
    timing = _timing_for(score, timings)
    if score.flops:
        return Point(score, timing, float(score.flops), f"`{score.source}`")
    found = [(f, src) for m, p, f, src in flops if m == score.family and score.parameters is not None and p == score.parameters]
    return Point(score, timing, found[-1][0] if found else None, f"`{found[-1][1]}`" if found else None)


def _no_timing(score: Score) -> str:
    what = [f"{score.parameters:,} parameters" if score.parameters else None,
            f"{score.channels} input channels" if score.channels else None]
    return (f"no idle one-thread CPU latency record has `{score.family}` with "
            + " and ".join(w for w in what if w) + f" (accuracy: `{score.source}`)")


def pareto(points: list[Point]) -> list[Point]:
    """The charted points no other charted point beats on both latency at batch 1 and MAE at 60 minutes,
    fastest first."""
    timed = sorted((p for p in points if p.timing is not None), key=lambda p: (p.timing.b1_ms, p.mae60))
    front: list[Point] = []
    for p in timed:
        if not front or p.mae60 < front[-1].mae60:
            front.append(p)
    return front


def which_student(front: Frontier) -> list[str]:
    """"Which student to use", computed from the charted students: the students no other is both faster
    and more accurate than, the latency budget from which each is the most accurate choice, its speed-up
    against Graph WaveNet at batch 1 and 64 (one record's figures), and how it compares with the teacher
    and the best baseline at 60 minutes."""
    students = [p for p in front.charted if p.score.role == "student"]
    if not students:
        return ["No student has both an accuracy record on the week and an idle one-thread latency: nothing to "
                "recommend yet."]
    best_base = min(((label, m["60min"]) for label, m in front.baselines.items() if "60min" in m),
                    key=lambda x: x[1], default=None)
    teachers = [p for p in front.points if p.score.role == "teacher"]
    losing = [p for p in students if best_base is not None and p.mae60 >= best_base[1]]
    students = [p for p in students if p not in losing]  # a student the naive forecast beats is not advice
    lines = ["**Which student to use** (computed from the table: test MAE at 60 min against one-thread CPU latency "
             "at batch 1; each step of the list is the most accurate student within that latency, among those "
             "better than the best baseline at 60 min):", ""]
    if not students:
        lines.append(f"- none: every charted student is worse than the best baseline ({best_base[0]}, "
                     f"{best_base[1]:.2f}) at 60 min.")
    for p in pareto(students):
        t = p.timing
        speed = []
        if t.speedup_b1:
            speed.append(f"{t.speedup_b1:.1f}× faster than Graph WaveNet at batch 1")
        if t.speedup_b64:
            speed.append(f"{t.speedup_b64:.1f}× at batch 64")
        versus = []
        if best_base is not None:
            versus.append(f"{p.mae60 - best_base[1]:+.2f} against the best baseline ({best_base[0]}, {best_base[1]:.2f})")
        if teachers:
            versus.append("against the teacher " + ", ".join(
                f"{p.mae60 - tp.mae60:+.2f} ({tp.score.ident}: {tp.mae60:.2f})" for tp in teachers))
        mae = p.score.mae["60min"]
        lines.append(f"- from {t.b1_ms:.2f} ms: **{p.label}**, {mae[0]:.2f}" + (f" ± {mae[1]:.2f}" if mae[2] > 1 else "")
                     + f" at 60 min ({p.score.flags}; `{t.source}`)" + (f"; {', '.join(speed)}" if speed else "")
                     + (f"; {'; '.join(versus)}" if versus else "") + ".")
    beaten = [p for p in students if p not in pareto(students)]
    if beaten:
        lines += ["", "Every other charted student is slower or as fast and no more accurate than one above: "
                  + ", ".join(f"{p.label} ({p.mae60:.2f}, {p.timing.b1_ms:.2f} ms)" for p in beaten) + "."]
    if losing:
        lines += ["", f"Not advised, worse than the best baseline ({best_base[0]}, {best_base[1]:.2f}) at 60 min: "
                  + ", ".join(f"{p.label} ({p.mae60:.2f}, {p.timing.b1_ms:.2f} ms)" for p in losing) + "."]
    return lines
