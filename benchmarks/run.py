"""Run a benchmark suite: teachers, students with and without distillation, peers, latency.

Usage::

    python -m benchmarks.run --suite synthetic                    # anywhere, minutes
    python -m benchmarks.run --suite metr-la-week --device cuda --seeds 3
    python -m benchmarks.run --suite los-loop --seeds 3           # T-GCN's protocol, same week
    python -m benchmarks.run --suite metr-la --device cuda        # full datasets, when present
    python -m benchmarks.run --suite scaling                      # cost vs. network size
    python -m benchmarks.run --render                             # only regenerate RESULTS.md

A run refuses to start on a busy machine (1-minute load average above the core count; exit code 2,
:mod:`benchmarks.idle`); ``--allow-busy`` runs anyway and latency timed while the machine was busy is
labelled ``"busy"`` (RESULTS.md shows no figure for it).

Each run writes ``benchmarks/results/<suite>-<device>-<date>.json`` and regenerates
``benchmarks/RESULTS.md`` from every JSON file in ``benchmarks/results/``. The JSON records the
command, the device, versions, the training budget and, per model and seed, the test metrics,
epochs and seconds; per model the parameters, FLOPs and latency; and the baselines (last value, seasonal
naive, historical average and median) scored on the same test targets
(:func:`stgkd.engine.baselines.score_baselines`), which RESULTS.md shows beside the models.

For every seed the suite trains the teacher (Graph WaveNet), then each student twice (plainly, and
distilled from that seed's teacher with stgkd's default :class:`~stgkd.distill.DistillConfig`); then,
for every seed, the peers: all with the same windows, split, scaler, optimiser settings and budget, in
order of value, so that a time budget spent on a slow peer never costs the models the study is about.

Under a time budget every run gets its share (:class:`~benchmarks.budget.TimeShares`) but trains at least
``--min-passes`` epochs first (default: the main body's rule, :data:`benchmarks.table.records.MIN_PASSES`),
so every run that starts reaches the passes a result needs; the runs the budget leaves no time for are
not started, and the record says which. Latency of the trained models is timed eagerly and, on CUDA, as
a CUDA graph where a probe in a child process captured the model (:mod:`benchmarks.capture`): a model
that cannot be captured (PGT's TGCN copies a CPU tensor to the device in its forward) is recorded as
"not capturable: <reason>" and costs no other model its figures.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from benchmarks import suites as _suites
from benchmarks.budget import Deadline, OutOfTime, TimeShares
from benchmarks.idle import EXIT_BUSY, add_allow_busy, refuse_busy
from benchmarks.record import environment, log
from benchmarks.table.records import MIN_PASSES, SCHEMA  # SCHEMA re-exported; its home is the module that reads it
from stgkd.errors import ConfigError, DataError, StgkdError

__all__ = ["main", "run_suite", "RESULTS_DIR", "RESULTS_MD", "SCHEMA"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
#: share of a time budget a teacher's training gets against one student's (a Graph WaveNet epoch
#: costs several student epochs); peers and students count 1
TEACHER_WEIGHT = 3.0
#: share of a suite's time budget kept back for timing the trained models at the end
PROFILE_RESERVE = 0.1


# ============================================================================ helpers


def _train_config(args: argparse.Namespace, seed: int, device: str):
    from stgkd.engine import TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, lr=args.lr,
        patience=args.patience, seed=seed, device=device, limit_batches=args.limit_batches, amp=device == "cuda",
    )


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device: str) -> float | None:
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def _strip(metrics: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metrics or {}).items() if k != "per_step"}


def _seed_record(result, *, seed: int, device: str, batches_run: int, batches_full: int, peak: float | None,
                 wall: float, time_limited: bool = False) -> dict[str, Any]:
    hist = result.history
    train_s = [float(h.get("train_seconds", h["seconds"])) for h in hist]
    mean_train = sum(train_s) / len(train_s) if train_s else math.nan
    return {
        "seed": seed,
        "test": _strip(result.test),
        "val": _strip(result.best_val),
        "best_epoch": int(result.best_epoch),
        "epochs_run": int(result.epochs_run),
        "stopped_early": bool(result.stopped_early),
        "time_limited": bool(time_limited),
        "train_seconds_per_epoch": mean_train,
        "epoch_seconds": [float(h["seconds"]) for h in hist],
        "batches_per_epoch": batches_run,
        "batches_per_full_epoch": batches_full,
        "full_epoch_seconds_est": mean_train * batches_full / max(1, batches_run),
        "peak_gpu_mem_mb": peak,
        "wall_seconds": wall,
    }


def _batches(n_train: int, args: argparse.Namespace) -> tuple[int, int]:
    full = math.ceil(n_train / args.batch_size)
    run = min(full, args.limit_batches) if args.limit_batches else full
    return run, full


def _model_profile(model: torch.nn.Module, *, device: str, args: argparse.Namespace, label: str,
                   verdicts: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Parameters, FLOPs (batch 1) and latency at batch 1 and 64 of a trained model; on CUDA eagerly and as a
    CUDA graph, the latter only where the capture probe (``verdicts``, by
    :func:`~benchmarks.capture.setting_key`) captured it."""
    from benchmarks.capture import not_capturable, setting_key
    from stgkd.latency import CaptureError, measure, release_cached_memory
    from stgkd.nn import count_flops

    model = model.eval()
    params = sum(p.numel() for p in model.parameters())  # all of them: a frozen teacher's count too
    x1 = torch.randn(1, model.in_steps, model.num_nodes, model.in_channels)
    flops: int | None
    try:
        with torch.no_grad():
            flops = int(count_flops(model.to("cpu"), x1))
    except Exception as exc:  # a counter failure must not lose the run; recorded instead
        flops = None
        log(f"{label}: FLOP count failed ({type(exc).__name__}: {exc})")
    latency: dict[str, Any] = {}
    modes = ["eager", "cuda-graph"] if device == "cuda" else ["eager"]
    for mode in modes:
        for batch in args.latency_batches:
            iters = args.latency_iters if batch == 1 else max(3, args.latency_iters // 4)
            key = f"{'cuda' if device == 'cuda' else 'cpu'}-{mode}-b{batch}"
            verdict = None
            if mode == "cuda-graph" and hasattr(model, "config"):
                verdict = (verdicts or {}).get(setting_key(model.config(), batch, "fp32"))
            if verdict is not None:
                latency[key] = {"error": not_capturable(verdict)}
                log(f"{label}: latency {key}: {not_capturable(verdict)}")
                continue
            try:
                r = measure(model, batch_size=batch, device=device, mode=mode, warmup=args.latency_warmup,
                            iters=iters, name=label)
                latency[key] = r.to_dict()
            except Exception as exc:  # out of memory; a capture the probe passed that fails here
                why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
                latency[key] = {"error": not_capturable(why) if isinstance(exc, CaptureError) else why}
                log(f"{label}: latency {key} failed ({why})")
                release_cached_memory()  # does nothing once a capture failed in this process
    model.to(device)
    return {"parameters": int(params), "flops": flops, "latency": latency}


def _selected(items: list[tuple[str, str, dict[str, Any]]], wanted: Sequence[str] | None) -> list:
    if wanted is None:
        return items
    if list(wanted) == ["none"]:
        return []
    known = {label for label, _, _ in items} | {name for _, name, _ in items}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown} for this suite; choose from {sorted(known)}")
    return [it for it in items if it[0] in wanted or it[1] in wanted]


# ============================================================================ DCRNN protocol


@dataclass
class _SuiteState:
    """What a suite has produced so far: kept when a time budget cuts it short."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_models: dict[str, torch.nn.Module] = field(default_factory=dict)
    dataset_info: dict[str, Any] = field(default_factory=dict)
    runs_done: int = 0
    profiled: set[str] = field(default_factory=set)
    unprofiled: list[str] = field(default_factory=list)
    graph: Any = None
    capture: dict[str, str | None] = field(default_factory=dict)
    baselines: dict[str, Any] | None = None

    def score_baselines(self, prepared: Any) -> None:
        """The baselines on the test split of the windows every model is scored on, once per suite
        (:func:`stgkd.engine.baselines.score_baselines`; a baseline the data cannot support is left out with
        the reason)."""
        from stgkd.engine.baselines import score_baselines

        if self.baselines is None:
            log("baselines on the test split")
            self.baselines = score_baselines(prepared, "test").to_dict()

    def entry(self, label: str, name: str, kind: str, hp: dict[str, Any]) -> dict[str, Any]:
        return self.models.setdefault(label, {"label": label, "model": name, "kind": kind, "hparams": hp, "seeds": []})

    def probe(self, *, device: str, args: argparse.Namespace, deadline: Deadline) -> None:
        """On CUDA, whether each trained model not yet timed captures as a CUDA graph, asked of a child
        process (:func:`benchmarks.capture.probe`; settings another part probed are not asked again)."""
        from benchmarks.capture import CaptureJob, probe_missing, setting_key

        if device != "cuda":
            return
        jobs = [CaptureJob(setting_key(m.config(), b, "fp32"), m.config(), self.graph, b, "fp32")
                for label, m in self.last_models.items() if label not in self.profiled and hasattr(m, "config")
                for b in args.latency_batches]
        jobs = list({job.key: job for job in jobs}.values())  # a plain and a distilled student share a setting
        known = {**(getattr(args, "capture_verdicts", None) or {}), **self.capture}
        self.capture.update(probe_missing(jobs, known, device=device, deadline=deadline, log=log))

    def profile(self, *, device: str, args: argparse.Namespace, deadline: Deadline) -> None:
        """Parameters, FLOPs and latency of the last trained model of each label not yet timed
        (those left when the deadline has passed are listed in ``unprofiled``)."""
        self.unprofiled = []
        if not deadline.expired() and any(label not in self.profiled for label in self.last_models):
            self.probe(device=device, args=args, deadline=deadline)
        for label, model in self.last_models.items():
            if label in self.profiled:
                continue
            if deadline.expired():
                self.unprofiled.append(label)
                continue
            log(f"profiling {label}")
            self.models[label].update(_model_profile(model, device=device, args=args, label=label,
                                                     verdicts=self.capture))
            self.profiled.add(label)

    def result(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return list(self.models.values()), self.dataset_info


def _run_weights(seeds: int, students, peers) -> float:
    return seeds * (TEACHER_WEIGHT + 2 * len(students) + len(peers))


def _limited(callbacks: list) -> bool:
    return any(getattr(cb, "fired", False) for cb in callbacks)


def _run_dcrnn(suite, data, *, args, device: str, work: Path, teacher_hp: dict[str, Any], students, peers,
               state: _SuiteState | None = None, deadline: Deadline | None = None,
               shares: TimeShares | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train and time every model of a DCRNN-protocol suite; returns ``(models, dataset info)``.

    Results accumulate in ``state``, so a caller that catches :class:`OutOfTime` keeps them."""
    from stgkd.engine import distill_student, train_model

    state = state if state is not None else _SuiteState()
    deadline = deadline or Deadline()
    shares = shares or TimeShares(None, 0)

    teacher_name = suite.teacher[0]
    state.graph = data.adj
    for seed in args.seed_list:
        cfg = _train_config(args, seed, device)
        common = dict(config=cfg, progress=args.progress, log=False, evaluate_test=True, overwrite=True)
        # ---------------------------------------------------------------- teacher
        label = f"{teacher_name} (teacher)"
        deadline.check(f"seed {seed}: {label}")
        log(f"seed {seed}: teacher {teacher_name}")
        _reset_peak(device)
        t0 = time.perf_counter()
        cbs = shares.callbacks(TEACHER_WEIGHT)
        tres = train_model(data, teacher_name, work / f"s{seed}" / "teacher", hparams=teacher_hp, callbacks=cbs,
                           **common)
        run_b, full_b = _batches(len(tres.data.train), args)
        if not state.dataset_info:
            p = tres.data
            state.dataset_info = {"windows": [len(p.train), len(p.val), len(p.test)],
                                  "scaler": [p.scaler.mean, p.scaler.std], "input_features": list(p.input_features)}
        state.score_baselines(tres.data)
        state.entry(label, teacher_name, "teacher", teacher_hp)["seeds"].append(
            _seed_record(tres, seed=seed, device=device, batches_run=run_b, batches_full=full_b,
                         peak=_peak_mb(device), wall=time.perf_counter() - t0, time_limited=_limited(cbs)))
        state.last_models[label] = tres.model
        state.runs_done += 1
        teacher_ckpt = tres.best_path
        log(f"seed {seed}: teacher test MAE {tres.test['avg']['mae']:.3f} ({time.perf_counter() - t0:.0f}s)")
        # ---------------------------------------------------------------- students
        for s_label, s_name, s_hp in students:
            for kind in ("student", "student+kd"):
                label = s_label if kind == "student" else f"{s_label} + KD"
                deadline.check(f"seed {seed}: {label}")
                log(f"seed {seed}: {label}")
                _reset_peak(device)
                t0 = time.perf_counter()
                cbs = shares.callbacks(1.0)
                out = work / f"s{seed}" / label.replace(" ", "_").replace("+", "kd")
                if kind == "student":
                    res = train_model(data, s_name, out, hparams=s_hp, callbacks=cbs, **common)
                else:
                    res = distill_student(teacher_ckpt, s_name, out, hparams=s_hp, dataset=data, callbacks=cbs,
                                          **common)
                e = state.entry(label, s_name, kind, s_hp)
                if kind == "student+kd":
                    e["distill"] = res.distill
                e["seeds"].append(_seed_record(res, seed=seed, device=device, batches_run=run_b, batches_full=full_b,
                                               peak=_peak_mb(device), wall=time.perf_counter() - t0,
                                               time_limited=_limited(cbs)))
                state.last_models[label] = res.model
                state.runs_done += 1
                log(f"seed {seed}: {label} test MAE {res.test['avg']['mae']:.3f} ({time.perf_counter() - t0:.0f}s)")
    # -------------------------------------------------------------------- peers, after every seed's students
    for seed in args.seed_list:
        cfg = _train_config(args, seed, device)
        common = dict(config=cfg, progress=args.progress, log=False, evaluate_test=True, overwrite=True)
        for p_label, p_name, p_hp in peers:
            deadline.check(f"seed {seed}: {p_label}")
            log(f"seed {seed}: peer {p_label}")
            _reset_peak(device)
            t0 = time.perf_counter()
            cbs = shares.callbacks(1.0)
            res = train_model(data, p_name, work / f"s{seed}" / p_name, hparams=p_hp, callbacks=cbs, **common)
            state.entry(p_label, p_name, "peer", p_hp)["seeds"].append(
                _seed_record(res, seed=seed, device=device, batches_run=run_b, batches_full=full_b,
                             peak=_peak_mb(device), wall=time.perf_counter() - t0, time_limited=_limited(cbs)))
            state.last_models[p_label] = res.model
            state.runs_done += 1
            log(f"seed {seed}: {p_label} test MAE {res.test['avg']['mae']:.3f} ({time.perf_counter() - t0:.0f}s)")
    state.profile(device=device, args=args, deadline=deadline)
    return state.result()


# ============================================================================ Los-loop protocol


def _fit_prepared(model, prepared, cfg, *, step=None, callbacks=()):
    """Train on a hand-made :class:`PreparedData` (the recipes rebuild DCRNN windows, so the
    Los-loop protocol drives the :class:`Trainer` itself, with the same callbacks' early stopping)."""
    from stgkd.engine import EarlyStopping, Trainer

    callbacks = ([EarlyStopping(cfg.patience)] if cfg.patience > 0 else []) + list(callbacks)
    trainer = Trainer(model, prepared, config=cfg, step=step, callbacks=callbacks)
    fit = trainer.fit()
    trainer.load_best()
    model.eval()
    return trainer, fit


class _FitResult:
    """The fields of :class:`~stgkd.engine.TrainResult` that :func:`_seed_record` reads."""

    def __init__(self, trainer, fit, test) -> None:
        self.history = trainer.history
        self.test = test
        self.best_val = trainer.best.get("metrics", {})
        self.best_epoch = trainer.best["epoch"]
        self.epochs_run = trainer.epoch
        self.stopped_early = fit.stopped_early


def _run_los_loop(suite, data, *, args, device: str, teacher_hp: dict[str, Any], students, peers,
                  state: _SuiteState | None = None, deadline: Deadline | None = None,
                  shares: TimeShares | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train and time every model under T-GCN's Los-loop protocol; returns ``(models, dataset info)``
    (accumulated in ``state`` as :func:`_run_dcrnn` does)."""
    from benchmarks.los_loop import horizon_table, prepare_los_loop
    from stgkd.distill import DistillConfig
    from stgkd.engine import seed_everything
    from stgkd.engine.evaluate import evaluate_split, predict_split
    from stgkd.engine.steps import make_distill_step
    from stgkd.nn import build_for

    state = state if state is not None else _SuiteState()
    deadline = deadline or Deadline()
    shares = shares or TimeShares(None, 0)
    prepared, info = prepare_los_loop(data, device=device)
    state.graph = prepared.adj
    run_b, full_b = _batches(len(prepared.train), args)
    state.dataset_info = {
        "windows": [len(prepared.train), len(prepared.val), len(prepared.test)],
        "regions": {"train": info.train, "val": info.val, "test": info.test},
        "max_value_train": info.max_value,
        "max_value_all": info.max_value_all,
        "input_features": list(prepared.input_features),
        "adjacency": "DCRNN adj_mx.pkl (Gaussian kernel of road distance, threshold 0.1); no los_adj.csv in the shared folder",
    }
    state.score_baselines(prepared)

    def make(name: str, hp: dict[str, Any]):
        return build_for(name, prepared, **hp).to(device)

    def finish(label: str, name: str, kind: str, hp, model, trainer, fit, seed: int, t0: float, cbs) -> None:
        test = _strip(evaluate_split(model, prepared.test, prepared.scaler, batch_size=args.eval_batch_size or 64,
                                     device=device))
        fc = predict_split(model, prepared.test, prepared.scaler, batch_size=args.eval_batch_size or 64, device=device)
        rec = _seed_record(_FitResult(trainer, fit, test), seed=seed, device=device, batches_run=run_b,
                           batches_full=full_b, peak=_peak_mb(device), wall=time.perf_counter() - t0,
                           time_limited=_limited(cbs))
        rec["tgcn"] = horizon_table(fc.true, fc.pred)
        state.entry(label, name, kind, hp)["seeds"].append(rec)
        state.last_models[label] = model
        state.runs_done += 1
        log(f"seed {seed}: {label} test MAE {test['avg']['mae']:.3f}, T-GCN 60 min RMSE "
             f"{rec['tgcn']['60min']['rmse']:.3f} ({time.perf_counter() - t0:.0f}s)")

    for seed in args.seed_list:
        cfg = _train_config(args, seed, device)
        teacher_name = suite.teacher[0]
        label = f"{teacher_name} (teacher)"
        deadline.check(f"seed {seed}: {label}")
        log(f"seed {seed}: teacher {teacher_name}")
        _reset_peak(device)
        t0 = time.perf_counter()
        seed_everything(seed)
        teacher = make(teacher_name, teacher_hp)
        cbs = shares.callbacks(TEACHER_WEIGHT)
        trainer, fit = _fit_prepared(teacher, prepared, cfg, callbacks=cbs)
        finish(label, teacher_name, "teacher", teacher_hp, teacher, trainer, fit, seed, t0, cbs)
        for p in teacher.parameters():
            p.requires_grad_(False)
        for s_label, s_name, s_hp in students:
            for kind in ("student", "student+kd"):
                label = s_label if kind == "student" else f"{s_label} + KD"
                deadline.check(f"seed {seed}: {label}")
                log(f"seed {seed}: {label}")
                _reset_peak(device)
                t0 = time.perf_counter()
                cbs = shares.callbacks(1.0)
                seed_everything(seed)
                student = make(s_name, s_hp)
                step = None
                if kind == "student+kd":
                    step, resolved = make_distill_step(student, teacher, prepared, DistillConfig(), device=device,
                                                       amp=cfg.amp, cache_batch_size=args.eval_batch_size or 64)
                trainer, fit = _fit_prepared(student, prepared, cfg, step=step, callbacks=cbs)
                finish(label, s_name, kind, s_hp, student, trainer, fit, seed, t0, cbs)
                if kind == "student+kd":
                    state.models[label]["distill"] = resolved.to_dict()
    for seed in args.seed_list:  # peers, after every seed's students
        cfg = _train_config(args, seed, device)
        for p_label, p_name, p_hp in peers:
            deadline.check(f"seed {seed}: {p_label}")
            log(f"seed {seed}: peer {p_label}")
            _reset_peak(device)
            t0 = time.perf_counter()
            cbs = shares.callbacks(1.0)
            seed_everything(seed)
            peer = make(p_name, p_hp)
            trainer, fit = _fit_prepared(peer, prepared, cfg, callbacks=cbs)
            finish(p_label, p_name, "peer", p_hp, peer, trainer, fit, seed, t0, cbs)
    state.profile(device=device, args=args, deadline=deadline)
    return state.result()


# ============================================================================ a suite


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.suite`` and return its JSON record (also written to ``args.results_dir``).

    With a time budget (``args.deadline``, a :class:`~benchmarks.budget.Deadline`, or
    ``args.time_budget`` seconds) every training run gets its share of the time left
    (:class:`~benchmarks.budget.TimeShares`; a teacher :data:`TEACHER_WEIGHT` shares, :data:`PROFILE_RESERVE`
    of the budget kept for timing the models) and stops after the epoch that passes it; past the
    deadline no further run starts, and the record keeps what finished with ``"completed": false``
    and ``"reached"`` naming the first run not started.
    """
    suite = _suites.get_suite(args.suite)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine; run with --device cpu")
    deadline = getattr(args, "deadline", None) or Deadline.after(getattr(args, "time_budget", None))
    data = suite.load(args.tiny, week=getattr(args, "week", None))  # DataError names missing files and where to get them
    teacher_hp = dict(suite.tiny_teacher if args.tiny else suite.teacher[1])
    teacher_hp.update(json.loads(args.teacher_hparams) if args.teacher_hparams else {})
    students = _selected(suite.students, args.students)
    peers = _selected(suite.peers, args.peers)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    budget_s = deadline.remaining() if deadline.end is not None else None
    min_epochs = min(args.epochs, max(0, getattr(args, "min_passes", MIN_PASSES)))
    shares = TimeShares(deadline, _run_weights(len(args.seed_list), students, peers),
                        reserve=PROFILE_RESERVE * budget_s if budget_s is not None else 0.0, min_epochs=min_epochs)
    state = _SuiteState()
    reached = None
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"stgkd-bench-{suite.name}-"))
    try:
        runner = _run_los_loop if suite.protocol == "los-loop" else _run_dcrnn
        extra = {} if suite.protocol == "los-loop" else {"work": work}
        try:
            runner(suite, data, args=args, device=device, teacher_hp=teacher_hp, students=students, peers=peers,
                   state=state, deadline=deadline, shares=shares, **extra)
        except OutOfTime as exc:
            reached = exc.what
            log(f"time budget spent: stopped before {exc.what}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    notes = list(args.note or [])
    if reached is not None:
        total = len(args.seed_list) * (1 + 2 * len(students) + len(peers))
        of = f" of {budget_s:.0f} s" if budget_s is not None else ""
        notes.append(f"Time budget{of} spent: {state.runs_done} of {total} training runs finished, "
                     f"stopped before {reached}.")
    state.profile(device=device, args=args, deadline=deadline)  # what an early stop left untimed
    unprofiled = state.unprofiled
    if unprofiled:
        notes.append(f"Not timed (time budget spent): {', '.join(unprofiled)}.")
    models, dataset_info = state.result()
    record = {
        "schema": SCHEMA,
        "suite": suite.name,
        "title": suite.title,
        "protocol": suite.protocol,
        "description": suite.description,
        "published": suite.published,
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t0,
        "command": "python -m benchmarks.run " + shlex.join(args.argv),
        "environment": environment(device),
        "dataset": {
            "name": data.name, "nodes": int(data.num_nodes), "steps": int(data.num_steps),
            "interval_minutes": int(data.interval_minutes), "split": list(data.split),
            "source": [str(s) for s in (data.source or [])], **dataset_info,
        },
        "budget": {
            "seeds": list(args.seed_list), "epochs": args.epochs, "limit_batches": args.limit_batches,
            "batch_size": args.batch_size, "lr": args.lr, "patience": args.patience, "tiny": bool(args.tiny),
            "teacher_hparams": teacher_hp, "latency_iters": args.latency_iters, "latency_warmup": args.latency_warmup,
            "time_budget_s": budget_s, "min_epochs": min_epochs if budget_s is not None else None,
        },
        "completed": reached is None and not unprofiled,
        "reached": reached,
        "notes": notes,
        "capture": state.capture,
        "models": models,
        "baselines": state.baselines,
    }
    if getattr(args, "reduced_by_design", None):
        record["reduced_by_design"] = args.reduced_by_design
    return record


def timed_busy(record: dict[str, Any]) -> bool:
    """Whether any figure of a suite or scaling record was timed on a busy machine (``"busy"`` in its
    latency results or points; :func:`stgkd.latency.is_busy`)."""
    lat = [entry for m in record.get("models", []) for entry in (m.get("latency") or {}).values()]
    return any(bool(x.get("busy")) for x in lat + list(record.get("points", [])))


def _results_path(record: dict[str, Any], results_dir: Path) -> Path:
    return results_dir / f"{record['suite']}-{record['environment']['device']}-{record['date']}.json"


def write_results(record: dict[str, Any], results_dir: Path, markdown: Path) -> Path:
    """Write the record's JSON file and regenerate ``markdown`` from every JSON file in ``results_dir``."""
    from benchmarks.table.page import write_markdown

    results_dir.mkdir(parents=True, exist_ok=True)
    path = _results_path(record, results_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=float) + "\n")
    tmp.replace(path)
    write_markdown(results_dir, markdown)
    return path


# ============================================================================ CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--suite", help=f"one of {', '.join(_suites.SUITES.names())}, or 'scaling'")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train and time (default: cpu)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default: 3)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the suite's)")
    p.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch (default: all)")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size (default: 64)")
    p.add_argument("--eval-batch-size", type=int, default=None, help="evaluation batch size (default: --batch-size)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience, 0 = off (default: 10)")
    p.add_argument("--tiny", action="store_true", help="tiny data and teacher (tests and smoke runs)")
    p.add_argument("--teacher-hparams", default=None, help="JSON overriding teacher hyperparameters")
    p.add_argument("--students", nargs="+", default=None, help="student labels or model names to run (default: all)")
    p.add_argument("--peers", nargs="+", default=None, help="peer labels or model names to run, or 'none' (default: all)")
    p.add_argument("--latency-iters", type=int, default=50, help="timed calls at batch 1 (batch 64: a quarter) (default: 50)")
    p.add_argument("--latency-warmup", type=int, default=5, help="untimed calls first (default: 5)")
    p.add_argument("--latency-batches", type=int, nargs="+", default=[1, 64], help="batch sizes timed (default: 1 64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="wall-clock seconds for the whole suite: each training run gets its share and stops after "
                        "the epoch that spends it; no run starts past it (default: none)")
    p.add_argument("--min-passes", type=int, default=MIN_PASSES,
                   help="under a time budget, epochs every run trains before its share may stop it (default: "
                        f"{MIN_PASSES}, what RESULTS.md's main body needs; capped at --epochs)")
    p.add_argument("--week", default=None,
                   help="folder of the real METR-LA week (default: $STGKD_WEEK, else ../shared/data/metr-la-week, "
                        "else .gpu/data/metr-la-week)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where the JSON goes (default: benchmarks/results)")
    p.add_argument("--markdown", default=str(RESULTS_MD), help="RESULTS.md to regenerate (default: benchmarks/RESULTS.md)")
    p.add_argument("--workdir", default=None, help="keep checkpoints here (default: a temporary directory, removed)")
    p.add_argument("--note", action="append", help="a note recorded in the JSON and RESULTS.md (repeatable)")
    p.add_argument("--progress", action="store_true", help="show per-epoch progress")
    p.add_argument("--render", action="store_true", help="only regenerate RESULTS.md from the JSON files")
    add_allow_busy(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    # scaling suite
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="scaling: network sizes (default: 207 883 2000 8600)")
    p.add_argument("--scaling-batches", type=int, default=3, help="scaling: timed training steps per point (default: 3)")
    p.add_argument("--scaling-warmup", type=int, default=1, help="scaling: untimed training steps first (default: 1)")
    p.add_argument("--scaling-student", default=None,
                   help="scaling: the student family scaled beside the teacher (default: stgru)")
    p.add_argument("--scaling-width", type=int, default=32, help="scaling: the student's width (default: 32)")
    p.add_argument("--teacher-max-nodes", type=int, default=None,
                   help="scaling: skip the teacher above this many sensors (default: none)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.render:
            from benchmarks.table.page import write_markdown

            write_markdown(Path(args.results_dir), Path(args.markdown))
            print(f"wrote {args.markdown}")
            return 0
        if not args.suite:
            parser.error("--suite is required (or --render)")
        if refuse_busy("benchmarks.run", args.allow_busy):
            return EXIT_BUSY
        if args.seeds < 1:
            raise ConfigError("--seeds must be >= 1")
        args.seed_list = list(range(args.seeds))
        if args.suite == "scaling":
            from benchmarks.scaling import run_scaling

            record = run_scaling(args)
        else:
            suite = _suites.get_suite(args.suite)
            if args.epochs is None:
                args.epochs = 1 if args.tiny else suite.epochs
            if args.limit_batches is None:
                args.limit_batches = suite.limit_batches
            record = run_suite(args)
        record["busy"] = timed_busy(record)
        path = write_results(record, Path(args.results_dir), Path(args.markdown))
        print(f"wrote {path} and {args.markdown}")
        return 0
    except (StgkdError, DataError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
