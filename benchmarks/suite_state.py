"""What a benchmark suite has produced so far (:class:`SuiteState`) and how one training run and one
trained model are recorded in it: a seed's record (:func:`seed_record`: test and validation metrics,
epochs, seconds, peak GPU memory) and a model's profile (:func:`model_profile`: parameters, FLOPs and
latency, eagerly and, where the capture probe allows, as a CUDA graph).

The protocols of :mod:`benchmarks.protocols` fill a :class:`SuiteState`; :func:`benchmarks.run.run_suite`
turns it into the suite's JSON record, keeping what finished when a time budget cuts the suite short.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.budget import Deadline
from benchmarks.record import log

__all__ = ["SuiteState", "epoch_batches", "model_profile", "peak_mb", "reset_peak", "seed_record",
           "stopped_by_share", "without_per_step"]


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: str) -> float | None:
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def without_per_step(metrics: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metrics or {}).items() if k != "per_step"}


def seed_record(result, *, seed: int, device: str, batches_run: int, batches_full: int, peak: float | None,
                wall: float, time_limited: bool = False) -> dict[str, Any]:
    hist = result.history
    train_s = [float(h.get("train_seconds", h["seconds"])) for h in hist]
    mean_train = sum(train_s) / len(train_s) if train_s else math.nan
    return {
        "seed": seed,
        "test": without_per_step(result.test),
        "val": without_per_step(result.best_val),
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


def epoch_batches(n_train: int, args: argparse.Namespace) -> tuple[int, int]:
    full = math.ceil(n_train / args.batch_size)
    run = min(full, args.limit_batches) if args.limit_batches else full
    return run, full


def model_profile(model: torch.nn.Module, *, device: str, args: argparse.Namespace, label: str,
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


def stopped_by_share(callbacks: list) -> bool:
    """Whether a run's time share stopped it (one of its callbacks fired)."""
    return any(getattr(cb, "fired", False) for cb in callbacks)


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
            self.models[label].update(model_profile(model, device=device, args=args, label=label,
                                                    verdicts=self.capture))
            self.profiled.add(label)

    def result(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return list(self.models.values()), self.dataset_info
