"""``python -m tuning.search``: latency-constrained search over distilled students.

Example::

    python -m tuning.search --dataset metr-la --teacher runs/gwn/best.pt \\
        --latency-budget-ms 0.1 --latency-batch 1 --latency-mode cuda-graph \\
        --n-trials 50 --study-name metr-la-0.1ms --out runs/study

Every trial samples a student and distillation settings (:mod:`tuning.space`), measures the student's
latency first and trains only students within the budget (:mod:`tuning.objective`). At the end the
command writes ``OUT/report.md``, ``OUT/report.json`` and plots (:mod:`tuning.report`) and exports the
best feasible student to ``OUT/best_student.pt`` with :func:`stgkd.export.export_student`
(:mod:`tuning.export`). The flags are :mod:`tuning.cli`'s, the teacher :mod:`tuning.teacher`'s, the
sampler and pruner :mod:`tuning.samplers`'s, the log lines and progress bar :mod:`tuning.progress`'s; this
module opens the study and runs one worker of it.

Workers and resuming (:mod:`tuning.storage`): run the same command in several shells or on several
machines (same ``--study-name`` and ``--storage``) and they share one study. ``--n-trials`` is the
target for the *whole study*: finished trials (complete, pruned or infeasible) already in the storage
count, so running the same command again after a crash only runs what is missing, and a study that
reached its target only rewrites the report. Several workers stop together once the study reaches the
target (it can overshoot by at most one trial per extra worker, the trials in flight at that moment).

Teacher cache: each process loads the teacher once and builds one :class:`~stgkd.distill.TeacherCache`
(its forecasts and distillation feature for every training window), at the first trial that trains,
shared by all later trials of that process; it is never recomputed per trial. Each worker process builds
its own (one teacher pass over the training split, seconds to a minute, small next to a study) rather than
reading one from disk: lookups stay on the training device, and no file can go stale or be half-written
when a worker dies. The study records the teacher checkpoint's SHA-256; workers or resumed runs with
another teacher are refused.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from stgkd.errors import ConfigError, StgkdError
from tuning.cli import build_parser
from tuning.progress import StudyProgress, log
from tuning.samplers import make_pruner, make_sampler
from tuning.teacher import resolve_teacher

__all__ = ["build_parser", "main"]


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _settings_conflicts(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = ("dataset", "data_args", "missing", "teacher_sha256", "budget_ms", "latency_batch", "latency_mode", "latency_dtype",
            "latency_device_kind", "epochs", "multi_objective")
    return [f"{k}: study has {old.get(k)!r}, this run {new.get(k)!r}" for k in keys if k in old and old.get(k) != new.get(k)]


# ---------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """One worker of a study: check the settings, load the data and the teacher, open (or join) the
    study, run trials until the study reaches ``--n-trials`` (or a timeout or a signal), then export
    the best feasible student and write the report. Returns the exit status (130 when interrupted, 1
    when no trial met the latency budget)."""
    import optuna

    from stgkd.latency import load_average
    from tuning.objective import LatencyCache, LatencySettings, Objective, default_point
    from tuning.space import load_space
    from tuning.storage import open_storage, recover_stale_trials

    _require(args)
    start_load = load_average()
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_space(args.space)
    device = _device(args)
    latency = LatencySettings.resolve(
        budget_ms=args.latency_budget_ms, batch=args.latency_batch, mode=args.latency_mode, dtype=args.latency_dtype,
        device=args.latency_device, warmup=args.latency_warmup, iters=args.latency_iters,
    )
    if latency.note:
        log(latency.note)
    data = _dataset(args)
    teacher_path, teacher_sha, teacher_info = resolve_teacher(args, data, out, device)

    storage = open_storage(args.storage, out)
    settings = _study_settings(args, data, teacher_path, teacher_sha, latency, space)
    start = None if args.no_default_trial else space.starting_point(default_point(data.num_nodes))
    study, study_name = _open_study(args, storage, latency, settings, start)
    for number, reason in recover_stale_trials(study):
        log(f"trial {number} was left running ({reason}); marked failed and queued again")
    done = StudyProgress.finished(study)
    log(f"study {study_name!r} in {storage.masked_url}: {done} finished trial(s), target {args.n_trials}; "
        f"latency on {latency.label}" + (f" ({latency.device_name})" if latency.device_name else ""))
    report_settings = {
        **{k: v for k, v in settings.items() if k != "space"},
        "study": study_name,
        "storage": storage.masked_url,
        "dashboard": storage.dashboard_command,
        "sampler": args.sampler,
        "pruner": args.pruner if not args.multi_objective else "none (multi-objective)",
        "n_trials": args.n_trials,
        "seed": args.seed,
        "space": space.to_dict(),
        "latency": latency.to_dict(),
        "teacher_training": teacher_info,
        # how busy the machine was (1/5/15-minute load averages) when this worker started and ended: its
        # latency figures count only where neither exceeds one runnable process per core
        "load_average": {"start": start_load},
    }

    interrupted, objective, prepared = False, None, None
    if done < args.n_trials:
        ctx = _search_context(args, data, teacher_path, teacher_sha, device, out, heartbeat=not storage.has_heartbeat,
                              families=space.families())
        prepared = ctx.prepared
        objective = Objective(ctx, space, LatencyCache(latency))
        interrupted = _optimize(study, objective, args)
    return _conclude(study, args, out, prepared, device, latency, report_settings, objective, interrupted)


def _require(args: argparse.Namespace) -> None:
    if not args.dataset:
        raise ConfigError("--dataset is required")
    if args.latency_budget_ms is None:
        raise ConfigError("--latency-budget-ms is required")


def _device(args: argparse.Namespace) -> str:
    """``--device``, else CUDA when present; CUDA asked for where there is none is an error."""
    import torch

    device = args.device or _default_device()
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available")
    return device


def _dataset(args: argparse.Namespace) -> Any:
    """The series ``--dataset`` names, read with ``--data-arg`` options and the ``--missing`` convention."""
    from stgkd.data.rebuild import load_data

    data_args = dict(args.data_arg)
    if data_args:
        from stgkd.data.datasets import load_dataset

        return load_dataset(args.dataset, root=args.data_dir, missing=args.missing, **data_args)
    return load_data(args.dataset, data_dir=args.data_dir, missing=args.missing)


def _study_settings(args: argparse.Namespace, data: Any, teacher_path: Path, teacher_sha: str, latency: Any,
                    space: Any) -> dict[str, Any]:
    """What every worker of one study must share (stored with the study; :func:`_settings_conflicts`)."""
    return {
        "dataset": str(args.dataset),
        "data_args": {k: v for k, v in sorted(dict(args.data_arg).items())},
        "missing": data.missing,
        "teacher": str(teacher_path),
        "teacher_sha256": teacher_sha,
        "budget_ms": latency.budget_ms,
        "latency_batch": latency.batch,
        "latency_mode": latency.mode,
        "latency_dtype": latency.dtype,
        "latency_device_kind": latency.device_kind,
        "epochs": args.epochs,
        "multi_objective": bool(args.multi_objective),
        "space": space.to_dict(),
    }


def _open_study(args: argparse.Namespace, storage: Any, latency: Any, settings: dict[str, Any],
                start: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(study, name)``: the study ``--study-name`` (or one named after the dataset and the budget)
    in ``storage``, created with ``settings`` or checked against the ones it was created with. A study
    created here gets ``start`` (parameters) enqueued as its first trial."""
    import optuna

    study_name = args.study_name or (
        f"{Path(str(args.dataset)).stem}-{latency.budget_ms:g}ms-b{latency.batch}-{latency.requested_mode}"
        + ("-mo" if args.multi_objective else "")
    )
    directions = ["minimize", "minimize"] if args.multi_objective else ["minimize"]
    try:
        study = optuna.create_study(
            study_name=study_name, storage=storage.storage, load_if_exists=True, directions=directions,
            sampler=make_sampler(args.sampler, args.seed, args.multi_objective, args.n_trials),
            pruner=make_pruner(args.pruner, args.epochs),
        )
    except ValueError as exc:  # e.g. directions differ from the stored study's
        raise ConfigError(f"--study-name {study_name}: {exc}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(
            f"--study-name {study_name}: the stored study optimises {len(study.directions)} objective(s); "
            f"{'drop' if not args.multi_objective else 'add'} --multi-objective or use another --study-name"
        )
    stored = study.user_attrs.get("stgkd")
    if stored is None:
        study.set_user_attr("stgkd", settings)
        if start is not None and start:  # a new study: its first trial is stgkd distill's defaults
            study.enqueue_trial(start, user_attrs={"start": "stgkd distill's defaults"}, skip_if_exists=True)
            log("first trial: stgkd distill's defaults, " + ", ".join(f"{k}={v}" for k, v in start.items()))
    else:
        conflicts = _settings_conflicts(stored, settings)
        if conflicts:
            raise ConfigError(
                f"--study-name {study_name} in {storage.masked_url} was created with other settings ({'; '.join(conflicts)}); "
                "run with the same settings or choose another --study-name"
            )
        if stored.get("space") != settings["space"]:
            log("note: the search space differs from the one the study started with; trials will mix both")
    return study, study_name


def _search_context(args: argparse.Namespace, data: Any, teacher_path: Path, teacher_sha: str, device: str,
                    out: Path, *, heartbeat: bool, families: Sequence[str] = ()) -> Any:
    """What every trial of this worker shares: the teacher's data rebuilt on ``data``, with the seasonal-lag
    channels that the space's student ``families`` read by default where the series allows them (every
    student of the study reads the same inputs; the teacher only its own), the frozen teacher, and its
    cache (built on the first trial that distills)."""
    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.distill import TeacherCache
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.engine.teachers import check_teacher_statistics
    from stgkd.nn import MODELS
    from stgkd.nn.base import SelectInputs
    from tuning.objective import SearchContext

    payload = load_checkpoint(teacher_path)
    seasons = [s for name in families if name in MODELS for s in MODELS.get(name).default_seasons]
    prepared = prepare_from_meta(payload["data"], dataset=data, device=device,
                                 seasons_by_default=list(dict.fromkeys(seasons)))
    check_teacher_statistics(prepared.scaler, payload["scaler"], where=f"--dataset {args.dataset}")
    teacher = model_from_checkpoint(payload, device=device)
    for prm in teacher.parameters():
        prm.requires_grad_(False)
    teacher = SelectInputs.for_features(teacher, prepared.input_features, list(payload["data"]["input_features"]),
                                        where=f"--teacher {teacher_path}")
    feature = getattr(teacher, "distill_feature", "")

    def build_cache() -> Any:
        t0 = time.perf_counter()
        cache = TeacherCache.build(teacher, prepared.train, [feature] if feature else [], device)
        log(f"teacher cache: {len(cache)} training windows, features {cache.feature_names}, built once in "
            f"{time.perf_counter() - t0:.1f} s")
        return cache

    return SearchContext(
        prepared=prepared, teacher=teacher, teacher_path=teacher_path, teacher_sha256=teacher_sha, cache=build_cache,
        device=device, epochs=args.epochs, out_dir=out, seed=args.seed, multi_objective=args.multi_objective,
        heartbeat=heartbeat, limit_batches=args.limit_batches,
    )


def _optimize(study: Any, objective: Any, args: argparse.Namespace) -> bool:
    """Run trials until the study has ``--n-trials`` finished ones (or ``--timeout``); SIGTERM and
    Ctrl-C stop it, the running trial queued again. Returns whether it was interrupted."""
    import torch

    from tuning.objective import TrialFailed
    from tuning.storage import retry_trial

    progress = StudyProgress(study, args.n_trials, enabled=not args.no_progress)
    catch: tuple[type[BaseException], ...] = (TrialFailed, FloatingPointError)
    if hasattr(torch, "OutOfMemoryError"):
        catch = catch + (torch.OutOfMemoryError,)
    previous = signal.getsignal(signal.SIGTERM)

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    interrupted = False
    in_main = _in_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        study.optimize(objective, n_trials=None, timeout=args.timeout, callbacks=[progress], catch=catch,
                       gc_after_trial=False, show_progress_bar=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    if interrupted and objective.running_trial is not None:
        frozen = study.get_trials(deepcopy=False)[objective.running_trial]
        if frozen.state.name == "FAIL":
            retry_trial(study, frozen)
            log(f"interrupted: trial {frozen.number} is queued again; run the same command to resume")
    return interrupted


def _conclude(study: Any, args: argparse.Namespace, out: Path, prepared: Any, device: str, latency: Any,
              report_settings: dict[str, Any], objective: Any, interrupted: bool) -> int:
    """Export the best feasible student, write the report, say what this worker did; the exit status."""
    from stgkd.latency import load_average
    from tuning.export import export_best, front_test
    from tuning.report import best_feasible, write_report
    from tuning.storage import file_lock

    report_settings["load_average"] = {**report_settings.get("load_average", {}), "end": load_average()}
    with file_lock(out / ".report.lock"):
        export = export_best(study, out, prepared, device)
        report = write_report(study, out, settings=report_settings, export=export, plots=not args.no_plots,
                              front_test=front_test(study, out, prepared, device))
    c = report["counts"]
    ran = objective.trials_run if objective is not None else 0
    log(f"this worker ran {ran} trial(s); the study has {c['total']}: {c['complete']} complete, {c['pruned']} pruned, "
        f"{c['infeasible']} infeasible, {c['failed']} failed; report: {out / 'report.md'}")
    if interrupted:
        return 130
    best = best_feasible(study)
    if best is None:
        print(f"tuning.search: no trial met the latency budget of {latency.budget_ms:g} ms ({latency.label}); "
              "nothing exported", file=sys.stderr)
        return 1
    if export and export.get("path"):
        print(f"best trial {best.number}: val MAE {best.user_attrs.get('val_mae'):.4f}, latency "
              f"{best.user_attrs.get('latency_ms'):.4g} ms -> {export['path']}")
    return 0


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: list[str] | None = None) -> int:
    """Run the search with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and usage errors
        return int(exc.code or 0)
    if args.print_space:
        from tuning.space import DEFAULT_SPACE

        print(DEFAULT_SPACE, end="")
        return 0
    from stgkd.cli import one_line_warnings

    try:
        with one_line_warnings():
            return run(args)
    except (StgkdError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"tuning.search: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuning.search: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    sys.exit(main())
