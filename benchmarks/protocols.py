"""How a benchmark suite trains and times its models, and what it has produced so far (:class:`SuiteState`).

:func:`train_suite` runs every model through :func:`stgkd.engine.run`. For every seed the teacher trains first,
then each student twice (plainly, and distilled from that seed's teacher with the default
:class:`~stgkd.distill.DistillConfig`); the peers run after every seed's students, so that a time budget spent
on a slow peer never costs the models the study is about. What finished stays in the :class:`SuiteState`,
which then times the last trained model of each label (:func:`model_profile`).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.budget import Deadline, TimeShares
from benchmarks.record import log

__all__ = ["TEACHER_WEIGHT", "SuiteState", "train_suite", "model_profile", "seed_record"]

#: share of a time budget a teacher's training gets against one student's (a Graph WaveNet epoch costs several
#: student epochs); peers and students count 1
TEACHER_WEIGHT = 3.0


def seed_record(result: Any, *, seed: int, batches_run: int, batches_full: int, peak: float | None, wall: float,
                time_limited: bool = False) -> dict[str, Any]:
    """One training run of a model: test and best-validation metrics, epochs, seconds per epoch (and the
    full epoch's, extrapolated from the batches run), peak GPU memory and wall time."""
    train_s = [float(h.get("train_seconds", h["seconds"])) for h in result.history]
    mean_train = sum(train_s) / len(train_s) if train_s else math.nan
    return {
        "seed": seed,
        "test": {k: v for k, v in (result.test or {}).items() if k != "per_step"},
        "val": {k: v for k, v in (result.best_val or {}).items() if k != "per_step"},
        "best_epoch": int(result.best_epoch), "epochs_run": int(result.epochs_run),
        "stopped_early": bool(result.stopped_early), "time_limited": bool(time_limited),
        "train_seconds_per_epoch": mean_train, "epoch_seconds": result.epoch_seconds,
        "batches_per_epoch": batches_run, "batches_per_full_epoch": batches_full,
        "full_epoch_seconds_est": mean_train * batches_full / max(1, batches_run),
        "peak_gpu_mem_mb": peak, "wall_seconds": wall,
    }


def model_profile(model: torch.nn.Module, *, device: str, args: argparse.Namespace, label: str,
                  verdicts: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Parameters, FLOPs (batch 1) and latency at ``args.latency_batches`` of a trained model: eagerly and, on
    CUDA, as a CUDA graph where the capture probe (``verdicts``) captured it (:func:`benchmarks.capture.timed`)."""
    from benchmarks.capture import setting_key, timed
    from stgkd.nn import count_flops

    model = model.eval()
    x1 = torch.randn(1, model.in_steps, model.num_nodes, model.in_channels)
    try:
        with torch.no_grad():
            flops = int(count_flops(model.to("cpu"), x1))
    except Exception as exc:  # a counter failure must not lose the run; recorded instead
        flops = None
        log(f"{label}: FLOP count failed ({type(exc).__name__}: {exc})")
    latency: dict[str, Any] = {}
    for mode in ["eager", "cuda-graph"] if device == "cuda" else ["eager"]:
        for batch in args.latency_batches:
            key = f"{'cuda' if device == 'cuda' else 'cpu'}-{mode}-b{batch}"
            verdict = (verdicts or {}).get(setting_key(model.config(), batch, "fp32")) if hasattr(model, "config") else None
            r, why = timed(model, batch=batch, mode=mode, verdict=verdict, device=device, warmup=args.latency_warmup,
                           iters=args.latency_iters if batch == 1 else max(3, args.latency_iters // 4), name=label)
            latency[key] = {"error": why} if r is None else r.to_dict()
            if why:
                log(f"{label}: latency {key}: {why}")
    model.to(device)
    return {"parameters": int(sum(p.numel() for p in model.parameters())), "flops": flops, "latency": latency}


@dataclass
class SuiteState:
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

    def entry(self, label: str, name: str, kind: str, hp: dict[str, Any]) -> dict[str, Any]:
        return self.models.setdefault(label, {"label": label, "model": name, "kind": kind, "hparams": hp, "seeds": []})

    def profile(self, *, device: str, args: argparse.Namespace, deadline: Deadline) -> None:
        """Parameters, FLOPs and latency of the last trained model of each label not yet timed (those the deadline
        leaves untimed are listed in ``unprofiled``). On CUDA a child process is asked first whether each
        captures as a CUDA graph (:func:`benchmarks.capture.probe_missing`; settings known are not asked again)."""
        from benchmarks.capture import CaptureJob, probe_missing, setting_key

        todo = {label: m for label, m in self.last_models.items() if label not in self.profiled}
        if device == "cuda" and todo and not deadline.expired():
            jobs = [CaptureJob(setting_key(m.config(), b, "fp32"), m.config(), self.graph, b, "fp32")
                    for m in todo.values() if hasattr(m, "config") for b in args.latency_batches]
            known = {**(getattr(args, "capture_verdicts", None) or {}), **self.capture}
            self.capture.update(probe_missing(jobs, known, device=device, deadline=deadline, log=log))
        self.unprofiled = []
        for label, model in todo.items():
            if deadline.expired():
                self.unprofiled.append(label)
                continue
            log(f"profiling {label}")
            self.models[label].update(model_profile(model, device=device, args=args, label=label,
                                                    verdicts=self.capture))
            self.profiled.add(label)


def train_suite(suite: Any, data: Any, *, args: argparse.Namespace, device: str, work: Path,
                teacher_hp: dict[str, Any], students, peers, state: SuiteState | None = None,
                deadline: Deadline | None = None, shares: TimeShares | None = None) -> SuiteState:
    """Train and time every model of ``suite`` on ``data`` under its protocol; results accumulate in ``state``
    (returned), so a caller that catches :class:`~benchmarks.budget.OutOfTime` keeps them."""
    from stgkd.engine import DataSpec, RunSpec, TrainConfig, run

    state = state if state is not None else SuiteState()
    deadline, shares = deadline or Deadline(), shares or TimeShares(None, 0)
    state.graph = data.adj
    windows = {"run": 0, "full": 0}

    def one(seed: int, label: str, name: str, kind: str, hp: dict[str, Any], weight: float, out: Path,
            teacher: Any = None) -> Any:
        """Train one model as ``kind`` (distilled from ``teacher``, a :class:`TrainResult`, for ``student+kd``)."""
        deadline.check(f"seed {seed}: {label}")
        log(f"seed {seed}: {'peer ' if kind == 'peer' else 'teacher ' if kind == 'teacher' else ''}"
            + (name if kind == "teacher" else label))
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0, cbs = time.perf_counter(), shares.callbacks(weight)
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
                          lr=args.lr, patience=args.patience, seed=seed, device=device,
                          limit_batches=args.limit_batches, amp=device == "cuda")
        teachers = () if teacher is None else (teacher.best_path or teacher.last_path,)  # default DistillConfig
        spec = RunSpec(name, hp, DataSpec(data), cfg, teachers=teachers)
        res = run(spec, out, overwrite=True, callbacks=cbs, progress=False, log=False, evaluate_test=True,
                  baselines=state.baselines is None)  # scored once, on the test targets every model is scored on
        p = res.data
        if not windows["full"]:
            windows["full"] = math.ceil(len(p.train) / args.batch_size)
            windows["run"] = min(windows["full"], args.limit_batches) if args.limit_batches else windows["full"]
        if not state.dataset_info:
            state.dataset_info = {"windows": [len(p.train), len(p.val), len(p.test)],
                                  "scaler": [p.scaler.mean, p.scaler.std], "input_features": list(p.input_features)}
        if state.baselines is None:
            state.baselines = res.baselines.to_dict()
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
        rec = seed_record(res, seed=seed, batches_run=windows["run"], batches_full=windows["full"], peak=peak,
                          wall=time.perf_counter() - t0, time_limited=any(getattr(cb, "fired", False) for cb in cbs))
        entry = state.entry(label, name, kind, hp)
        entry["seeds"].append(rec)
        if res.distill is not None:
            entry["distill"] = res.distill
        state.last_models[label] = res.model
        state.runs_done += 1
        log(f"seed {seed}: {label} test MAE {res.test['avg']['mae']:.3f} ({time.perf_counter() - t0:.0f}s)")
        return res

    teacher_name = suite.teacher[0]
    for seed in args.seed_list:
        tres = one(seed, f"{teacher_name} (teacher)", teacher_name, "teacher", teacher_hp, TEACHER_WEIGHT,
                   work / f"s{seed}" / "teacher")
        for p in tres.model.parameters():
            p.requires_grad_(False)
        for s_label, s_name, s_hp in students:
            for kind, label in (("student", s_label), ("student+kd", f"{s_label} + KD")):
                one(seed, label, s_name, kind, s_hp, 1.0, work / f"s{seed}" / label.replace(" ", "_").replace("+", "kd"),
                    teacher=tres if kind == "student+kd" else None)
    for seed in args.seed_list:  # peers, after every seed's students
        for p_label, p_name, p_hp in peers:
            one(seed, p_label, p_name, "peer", p_hp, 1.0, work / f"s{seed}" / p_name)
    state.profile(device=device, args=args, deadline=deadline)
    return state
