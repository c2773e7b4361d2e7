"""The two protocols a benchmark suite trains and times its models under, each filling a
:class:`~benchmarks.suite_state.SuiteState`:

* :func:`run_dcrnn`: DCRNN's windows, split and masked metrics, through the library's recipes
  (:func:`stgkd.engine.train_model`, :func:`stgkd.engine.distill_student`);
* :func:`run_los_loop`: T-GCN's Los-loop protocol (:mod:`benchmarks.los_loop`), whose hand-made windows
  the :class:`~stgkd.engine.Trainer` is driven over directly (:func:`fit_prepared`).

For every seed the teacher trains first, then each student twice (plainly, and distilled from that seed's
teacher with stgkd's default :class:`~stgkd.distill.DistillConfig`); the peers run after every seed's
students, so that a time budget spent on a slow peer never costs the models the study is about. Each run
gets its share of a time budget (a teacher :data:`TEACHER_WEIGHT` shares); past the deadline no run starts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.budget import Deadline, TimeShares
from benchmarks.record import log
from benchmarks.suite_state import (
    SuiteState,
    epoch_batches,
    peak_mb,
    reset_peak,
    seed_record,
    stopped_by_share,
    without_per_step,
)

__all__ = ["TEACHER_WEIGHT", "fit_prepared", "run_dcrnn", "run_los_loop", "train_config"]

#: share of a time budget a teacher's training gets against one student's (a Graph WaveNet epoch
#: costs several student epochs); peers and students count 1
TEACHER_WEIGHT = 3.0


def train_config(args: argparse.Namespace, seed: int, device: str):
    from stgkd.engine import TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, lr=args.lr,
        patience=args.patience, seed=seed, device=device, limit_batches=args.limit_batches, amp=device == "cuda",
    )


def run_dcrnn(suite, data, *, args, device: str, work: Path, teacher_hp: dict[str, Any], students, peers,
              state: SuiteState | None = None, deadline: Deadline | None = None,
              shares: TimeShares | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train and time every model of a DCRNN-protocol suite; returns ``(models, dataset info)``.

    Results accumulate in ``state``, so a caller that catches :class:`OutOfTime` keeps them."""
    from stgkd.engine import distill_student, train_model

    state = state if state is not None else SuiteState()
    deadline = deadline or Deadline()
    shares = shares or TimeShares(None, 0)

    teacher_name = suite.teacher[0]
    state.graph = data.adj
    for seed in args.seed_list:
        cfg = train_config(args, seed, device)
        common = dict(config=cfg, progress=args.progress, log=False, evaluate_test=True, overwrite=True)
        # ---------------------------------------------------------------- teacher
        label = f"{teacher_name} (teacher)"
        deadline.check(f"seed {seed}: {label}")
        log(f"seed {seed}: teacher {teacher_name}")
        reset_peak(device)
        t0 = time.perf_counter()
        cbs = shares.callbacks(TEACHER_WEIGHT)
        tres = train_model(data, teacher_name, work / f"s{seed}" / "teacher", hparams=teacher_hp, callbacks=cbs,
                           **common)
        run_b, full_b = epoch_batches(len(tres.data.train), args)
        if not state.dataset_info:
            p = tres.data
            state.dataset_info = {"windows": [len(p.train), len(p.val), len(p.test)],
                                  "scaler": [p.scaler.mean, p.scaler.std], "input_features": list(p.input_features)}
        state.score_baselines(tres.data)
        state.entry(label, teacher_name, "teacher", teacher_hp)["seeds"].append(
            seed_record(tres, seed=seed, device=device, batches_run=run_b, batches_full=full_b,
                        peak=peak_mb(device), wall=time.perf_counter() - t0, time_limited=stopped_by_share(cbs)))
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
                reset_peak(device)
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
                e["seeds"].append(seed_record(res, seed=seed, device=device, batches_run=run_b, batches_full=full_b,
                                              peak=peak_mb(device), wall=time.perf_counter() - t0,
                                              time_limited=stopped_by_share(cbs)))
                state.last_models[label] = res.model
                state.runs_done += 1
                log(f"seed {seed}: {label} test MAE {res.test['avg']['mae']:.3f} ({time.perf_counter() - t0:.0f}s)")
    # -------------------------------------------------------------------- peers, after every seed's students
    for seed in args.seed_list:
        cfg = train_config(args, seed, device)
        common = dict(config=cfg, progress=args.progress, log=False, evaluate_test=True, overwrite=True)
        for p_label, p_name, p_hp in peers:
            deadline.check(f"seed {seed}: {p_label}")
            log(f"seed {seed}: peer {p_label}")
            reset_peak(device)
            t0 = time.perf_counter()
            cbs = shares.callbacks(1.0)
            res = train_model(data, p_name, work / f"s{seed}" / p_name, hparams=p_hp, callbacks=cbs, **common)
            state.entry(p_label, p_name, "peer", p_hp)["seeds"].append(
                seed_record(res, seed=seed, device=device, batches_run=run_b, batches_full=full_b,
                            peak=peak_mb(device), wall=time.perf_counter() - t0, time_limited=stopped_by_share(cbs)))
            state.last_models[p_label] = res.model
            state.runs_done += 1
            log(f"seed {seed}: {p_label} test MAE {res.test['avg']['mae']:.3f} ({time.perf_counter() - t0:.0f}s)")
    state.profile(device=device, args=args, deadline=deadline)
    return state.result()


def fit_prepared(model, prepared, cfg, *, step=None, callbacks=()):
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
    """The fields of :class:`~stgkd.engine.TrainResult` that :func:`seed_record` reads."""

    def __init__(self, trainer, fit, test) -> None:
        self.history = trainer.history
        self.test = test
        self.best_val = trainer.best.get("metrics", {})
        self.best_epoch = trainer.best["epoch"]
        self.epochs_run = trainer.epoch
        self.stopped_early = fit.stopped_early


def run_los_loop(suite, data, *, args, device: str, teacher_hp: dict[str, Any], students, peers,
                 state: SuiteState | None = None, deadline: Deadline | None = None,
                 shares: TimeShares | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train and time every model under T-GCN's Los-loop protocol; returns ``(models, dataset info)``
    (accumulated in ``state`` as :func:`run_dcrnn` does)."""
    from benchmarks.los_loop import horizon_table, prepare_los_loop
    from stgkd.distill import DistillConfig
    from stgkd.engine import seed_everything
    from stgkd.engine.evaluate import evaluate_split, predict_split
    from stgkd.engine.steps import make_distill_step
    from stgkd.nn import build_for

    state = state if state is not None else SuiteState()
    deadline = deadline or Deadline()
    shares = shares or TimeShares(None, 0)
    prepared, info = prepare_los_loop(data, device=device)
    state.graph = prepared.adj
    run_b, full_b = epoch_batches(len(prepared.train), args)
    state.dataset_info = {
        "windows": [len(prepared.train), len(prepared.val), len(prepared.test)],
        "regions": {"train": info.train, "val": info.val, "test": info.test},
        "max_value_train": info.max_value,
        "max_value_all": info.max_value_all,
        "input_features": list(prepared.input_features),
        "adjacency": "DCRNN adj_mx.pkl (Gaussian kernel of road distance, threshold 0.1); no los_adj.csv in the shared folder",
    }
    state.score_baselines(prepared)
    eval_batch = train_config(args, 0, device).eval_batch

    def make(name: str, hp: dict[str, Any]):
        return build_for(name, prepared, **hp).to(device)

    def finish(label: str, name: str, kind: str, hp, model, trainer, fit, seed: int, t0: float, cbs) -> None:
        test = without_per_step(evaluate_split(model, prepared.test, prepared.scaler,
                                               batch_size=eval_batch, device=device))
        fc = predict_split(model, prepared.test, prepared.scaler, batch_size=eval_batch, device=device)
        rec = seed_record(_FitResult(trainer, fit, test), seed=seed, device=device, batches_run=run_b,
                          batches_full=full_b, peak=peak_mb(device), wall=time.perf_counter() - t0,
                          time_limited=stopped_by_share(cbs))
        rec["tgcn"] = horizon_table(fc.true, fc.pred)
        state.entry(label, name, kind, hp)["seeds"].append(rec)
        state.last_models[label] = model
        state.runs_done += 1
        log(f"seed {seed}: {label} test MAE {test['avg']['mae']:.3f}, T-GCN 60 min RMSE "
             f"{rec['tgcn']['60min']['rmse']:.3f} ({time.perf_counter() - t0:.0f}s)")

    for seed in args.seed_list:
        cfg = train_config(args, seed, device)
        teacher_name = suite.teacher[0]
        label = f"{teacher_name} (teacher)"
        deadline.check(f"seed {seed}: {label}")
        log(f"seed {seed}: teacher {teacher_name}")
        reset_peak(device)
        t0 = time.perf_counter()
        seed_everything(seed)
        teacher = make(teacher_name, teacher_hp)
        cbs = shares.callbacks(TEACHER_WEIGHT)
        trainer, fit = fit_prepared(teacher, prepared, cfg, callbacks=cbs)
        finish(label, teacher_name, "teacher", teacher_hp, teacher, trainer, fit, seed, t0, cbs)
        for p in teacher.parameters():
            p.requires_grad_(False)
        for s_label, s_name, s_hp in students:
            for kind in ("student", "student+kd"):
                label = s_label if kind == "student" else f"{s_label} + KD"
                deadline.check(f"seed {seed}: {label}")
                log(f"seed {seed}: {label}")
                reset_peak(device)
                t0 = time.perf_counter()
                cbs = shares.callbacks(1.0)
                seed_everything(seed)
                student = make(s_name, s_hp)
                step = None
                if kind == "student+kd":
                    step, resolved = make_distill_step(student, teacher, prepared, DistillConfig(), device=device,
                                                       amp=cfg.amp, cache_batch_size=eval_batch)
                trainer, fit = fit_prepared(student, prepared, cfg, step=step, callbacks=cbs)
                finish(label, s_name, kind, s_hp, student, trainer, fit, seed, t0, cbs)
                if kind == "student+kd":
                    state.models[label]["distill"] = resolved.to_dict()
    for seed in args.seed_list:  # peers, after every seed's students
        cfg = train_config(args, seed, device)
        for p_label, p_name, p_hp in peers:
            deadline.check(f"seed {seed}: {p_label}")
            log(f"seed {seed}: peer {p_label}")
            reset_peak(device)
            t0 = time.perf_counter()
            cbs = shares.callbacks(1.0)
            seed_everything(seed)
            peer = make(p_name, p_hp)
            trainer, fit = fit_prepared(peer, prepared, cfg, callbacks=cbs)
            finish(p_label, p_name, "peer", p_hp, peer, trainer, fit, seed, t0, cbs)
    state.profile(device=device, args=args, deadline=deadline)
    return state.result()
