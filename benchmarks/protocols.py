"""The two protocols a benchmark suite trains and times its models under, each filling a
:class:`~benchmarks.suite_state.SuiteState`:

* :func:`run_dcrnn`: DCRNN's windows, split and masked metrics, through the library's recipes
  (:func:`stgkd.engine.train_model`, :func:`stgkd.engine.distill_student`);
* :func:`run_los_loop`: T-GCN's Los-loop protocol (:mod:`benchmarks.los_loop`), each model a run of the
  library's :func:`stgkd.engine.run` on the protocol's hand-made windows.

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
)

__all__ = ["TEACHER_WEIGHT", "run_dcrnn", "run_los_loop", "train_config"]

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


def run_los_loop(suite, data, *, args, device: str, work: Path, teacher_hp: dict[str, Any], students, peers,
                 state: SuiteState | None = None, deadline: Deadline | None = None,
                 shares: TimeShares | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train and time every model under T-GCN's Los-loop protocol; returns ``(models, dataset info)``
    (accumulated in ``state`` as :func:`run_dcrnn` does). Every model is a run of a
    :class:`~stgkd.engine.RunSpec` on the protocol's hand-made windows (``run(..., prepared=...)``); a
    distilled student reads the seed's teacher as trained (its checkpoint in ``work``)."""
    from benchmarks.los_loop import horizon_table, prepare_los_loop
    from stgkd.distill import DistillConfig
    from stgkd.engine import RunSpec, run
    from stgkd.engine.evaluate import predict_split

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

    def fit(spec: Any, cbs: list[Any], out: Path | None = None, **kwargs: Any) -> Any:
        return run(spec, out, overwrite=True, callbacks=cbs, progress=args.progress, log=False, evaluate_test=True,
                   prepared=prepared, **kwargs)

    def finish(label: str, name: str, kind: str, hp, res, seed: int, t0: float, cbs) -> None:
        fc = predict_split(res.model, prepared.test, prepared.scaler, batch_size=eval_batch, device=device)
        rec = seed_record(res, seed=seed, device=device, batches_run=run_b, batches_full=full_b,
                          peak=peak_mb(device), wall=time.perf_counter() - t0, time_limited=stopped_by_share(cbs))
        rec["tgcn"] = horizon_table(fc.true, fc.pred)
        entry = state.entry(label, name, kind, hp)
        entry["seeds"].append(rec)
        if res.distill is not None:
            entry["distill"] = res.distill
        state.last_models[label] = res.model
        state.runs_done += 1
        log(f"seed {seed}: {label} test MAE {res.test['avg']['mae']:.3f}, T-GCN 60 min RMSE "
            f"{rec['tgcn']['60min']['rmse']:.3f} ({time.perf_counter() - t0:.0f}s)")

    for seed in args.seed_list:
        cfg = train_config(args, seed, device)
        teacher_name = suite.teacher[0]
        label = f"{teacher_name} (teacher)"
        deadline.check(f"seed {seed}: {label}")
        log(f"seed {seed}: teacher {teacher_name}")
        reset_peak(device)
        t0 = time.perf_counter()
        cbs = shares.callbacks(TEACHER_WEIGHT)
        tres = fit(RunSpec(teacher_name, teacher_hp, train=cfg), cbs, work / f"s{seed}" / "teacher")
        finish(label, teacher_name, "teacher", teacher_hp, tres, seed, t0, cbs)
        teacher = tres.model
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
                if kind == "student":
                    res = fit(RunSpec(s_name, s_hp, train=cfg), cbs)
                else:
                    spec = RunSpec(s_name, s_hp, train=cfg, teachers=(tres.best_path or tres.last_path,),
                                   distill=DistillConfig())
                    res = fit(spec, cbs, teacher=teacher, diagnostics=False)
                finish(label, s_name, kind, s_hp, res, seed, t0, cbs)
    for seed in args.seed_list:  # peers, after every seed's students
        cfg = train_config(args, seed, device)
        for p_label, p_name, p_hp in peers:
            deadline.check(f"seed {seed}: {p_label}")
            log(f"seed {seed}: peer {p_label}")
            reset_peak(device)
            t0 = time.perf_counter()
            cbs = shares.callbacks(1.0)
            finish(p_label, p_name, "peer", p_hp, fit(RunSpec(p_name, p_hp, train=cfg), cbs), seed, t0, cbs)
    state.profile(device=device, args=args, deadline=deadline)
    return state.result()
