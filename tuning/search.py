"""``python -m tuning.search``: latency-constrained search over distilled students.

Example::

    python -m tuning.search --dataset metr-la --teacher runs/gwn/best.pt \\
        --latency-budget-ms 0.1 --latency-batch 1 --latency-mode cuda-graph \\
        --n-trials 50 --study-name metr-la-0.1ms --out runs/study

Every trial samples a student and distillation settings (:mod:`tuning.space`), measures the student's
latency first and trains only students within the budget (:mod:`tuning.objective`). At the end the
command writes ``OUT/report.md``, ``OUT/report.json`` and plots (:mod:`tuning.report`) and exports the
best feasible student to ``OUT/best_student.pt`` with :func:`stgkd.export.export_student`.

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
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from stgkd.errors import CheckpointError, ConfigError, StgkdError
from stgkd.missing import add_missing_argument

__all__ = ["build_parser", "main"]

DEFAULT_OUT = "runs/study"
#: a small Graph WaveNet for the teacher trained when --teacher is omitted
SMALL_TEACHER = {
    "residual_channels": 16,
    "dilation_channels": 16,
    "skip_channels": 64,
    "end_channels": 128,
    "blocks": 2,
    "layers": 2,
}
FINISHED = ("COMPLETE", "PRUNED")
MAX_CONSECUTIVE_FAILURES = 5


def _key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` read as ``stgkd train --hparams`` reads its pairs: the value as JSON where it is
    JSON (``8``, ``0.5``, ``1e-3``, ``true``, ``null``, ``[1, 2]``, ``"x"``), else the string itself."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    from stgkd.commands.train import parse_value

    key, value = text.split("=", 1)
    return key.strip(), parse_value(value)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: X)`` only where there is a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS) or "(default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tuning.search",
        description=(
            "Search distillation settings and student architectures (temperatures tau and relation_tau, loss weights, student "
            "family, width, depth, learning rate) that minimise the validation masked MAE subject to a "
            "measured inference-latency budget. Students over the budget are recorded as infeasible "
            "without being trained."
        ),
        epilog=(
            "Workers: run the same command (same --study-name and --storage) in several processes or on "
            "several machines to share one study. Resume: run the same command again after a crash; "
            "finished trials are kept, an interrupted one is re-queued. Dashboard: optuna-dashboard "
            "OUT/study.journal (or the --storage URL)."
        ),
        formatter_class=_HelpFormatter,
    )
    data = p.add_argument_group("data and teacher")
    data.add_argument("--dataset", required=False, help="registered dataset name (metr-la, pems-bay, synthetic, ...) or a path in a supported layout (required)")
    data.add_argument("--data-dir", default=None, help="root of registered datasets (default: $STGKD_DATA, else <repo>/datasets)")
    data.add_argument("--data-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                      help="extra argument for the dataset loader, repeatable (e.g. num_nodes=8 for synthetic)")
    add_missing_argument(data, default="the dataset's convention, zero for a path; a --teacher must have been "
                                       "trained with the same")
    data.add_argument("--teacher", default=None,
                      help="teacher checkpoint (best.pt). Omitted: a small Graph WaveNet is trained once into OUT/teacher and reused by later runs and other workers")
    data.add_argument("--teacher-model", default="graph-wavenet", help="model trained when --teacher is omitted")
    data.add_argument("--teacher-epochs", type=_positive_int, default=20, help="epochs of the teacher trained when --teacher is omitted")
    data.add_argument("--teacher-hparam", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                      help=f"hyperparameter of the teacher trained when --teacher is omitted, repeatable (default: {SMALL_TEACHER})")

    lat = p.add_argument_group("latency constraint")
    lat.add_argument("--latency-budget-ms", type=_positive_float, required=False,
                     help="largest median latency (ms per call) a student may have; students above it are not trained (required)")
    lat.add_argument("--latency-batch", type=_positive_int, default=1, help="batch size (windows per call) the latency is measured at")
    lat.add_argument("--latency-mode", default="cuda-graph", choices=["eager", "cuda-graph", "compile"],
                     help="how the student runs when timed; without a GPU cuda-graph falls back to eager (reported)")
    lat.add_argument("--latency-dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="precision of the timed forward (autocast)")
    lat.add_argument("--latency-device", default="cuda",
                     help="device the latency is measured on; without CUDA the CPU is used and the report says so")
    lat.add_argument("--latency-iters", type=_positive_int, default=100, help="timed calls per measurement (median taken)")
    lat.add_argument("--latency-warmup", type=_positive_int, default=10, help="untimed warm-up calls per measurement")

    st = p.add_argument_group("study")
    st.add_argument("--n-trials", type=_positive_int, default=50,
                    help="target number of finished trials (complete + pruned + infeasible) for the whole study, counting those already in the storage")
    st.add_argument("--timeout", type=_positive_float, default=None, help="stop starting new trials after this many seconds (this process)")
    st.add_argument("--storage", default=None,
                    help="Optuna storage: a journal file path, sqlite:///file.db, postgresql://..., redis://... "
                         "(default: the journal file OUT/study.journal). A password in the URL is shown and stored "
                         "masked; PGPASSWORD or ~/.pgpass keep it out of the command line too")
    st.add_argument("--study-name", default=None, help="study name shared by all workers (default: derived from dataset and latency settings)")
    st.add_argument("--out", default=DEFAULT_OUT, help="study directory: journal, teacher, trial checkpoints, report, best_student.pt")
    st.add_argument("--seed", type=int, default=0, help="seed of the sampler (per trial number, so workers never repeat each other) and of each trial's training (seed + trial number)")
    st.add_argument("--space", default=None, help="YAML or JSON file overriding entries of the default search space (see --print-space)")
    st.add_argument("--no-default-trial", action="store_true",
                    help="do not start a new study from stgkd distill's defaults (by default its first trial is the "
                         "default student with the default loss, as far as the space holds them)")
    st.add_argument("--print-space", action="store_true", help="print the default search space (YAML) and exit")
    st.add_argument("--multi-objective", action="store_true",
                    help="minimise (validation MAE, latency) and report the Pareto front, instead of the MAE alone")
    st.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2"],
                    help="TPE (with constraints; multi-objective TPE with --multi-objective) or NSGA-II (multi-objective only)")
    st.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"],
                    help="stops unpromising trials from their per-epoch validation MAE (single-objective only)")

    tr = p.add_argument_group("training per trial")
    tr.add_argument("--epochs", type=_positive_int, default=30,
                    help="epochs per trial (default: 30, where students converge on the METR-LA week; the pruner "
                         "may stop a trial earlier)")
    tr.add_argument("--limit-batches", type=_positive_int, default=None, help="at most this many training batches per epoch (quick runs)")
    tr.add_argument("--device", default=None, help="training device (default: cuda when available, else cpu)")

    out = p.add_argument_group("output")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--no-plots", action="store_true", help="skip the PNG plots of the report")
    out.add_argument("--verbose", action="store_true", help="Optuna's per-trial log lines")
    out.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    return p


# ----------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``path`` (released by the kernel if the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _log(msg: str) -> None:
    print(f"[tuning] {msg}", file=sys.stderr, flush=True)


def ensure_teacher(args: argparse.Namespace, data: Any, out: Path, device: str) -> Path:
    """``--teacher``, or ``OUT/teacher/best.pt`` trained once (under a lock, so concurrent workers train
    it once).

    A teacher run that was killed (its ``last.pt`` records fewer epochs than the run was asked for, and
    early stopping did not end it) is finished from that ``last.pt`` before any trial starts: trials never
    distil from a half-trained teacher.
    """
    if args.teacher:
        path = Path(args.teacher)
        if not path.is_file():
            raise CheckpointError(f"--teacher {path}: no such file")
        return path
    from stgkd.engine.checkpoint import load_checkpoint, run_progress

    teacher_dir = out / "teacher"
    best, last = teacher_dir / "best.pt", teacher_dir / "last.pt"
    with file_lock(out / ".teacher.lock"):
        progress = run_progress(load_checkpoint(last)) if last.is_file() else None
        if best.is_file() and (progress is None or progress.finished):
            _log(f"reusing the teacher {best}"
                 + (f" ({_describe_run(progress)})" if progress is not None else f" (no {last.name} beside it)"))
            return best
        from stgkd.engine import TrainConfig, train_model

        if progress is not None:
            epochs = progress.requested
            _log(f"the teacher run in {teacher_dir} stopped after epoch {progress.epochs} of {epochs}; "
                 f"finishing it from {last} before any trial starts")
            if args.teacher_epochs != epochs:
                _log(f"note: --teacher-epochs {args.teacher_epochs} ignored: that run was asked for {epochs}")
        else:
            epochs = args.teacher_epochs
        hparams = {**SMALL_TEACHER, **dict(args.teacher_hparam)} if args.teacher_model == "graph-wavenet" else dict(args.teacher_hparam)
        if progress is None:
            _log(f"no --teacher: training {args.teacher_model} {hparams} for {epochs} epoch(s) into {teacher_dir}")
        result = train_model(
            data,
            args.teacher_model,
            teacher_dir,
            hparams=hparams,
            config=TrainConfig(epochs=epochs, device=device, seed=args.seed, limit_batches=args.limit_batches),
            resume=True,
            progress=not args.no_progress,
        )
        if result.best_path is None or not best.is_file():
            raise CheckpointError(f"training the teacher did not produce {best}")
        _log(f"teacher {best}: {_describe_run(run_progress(load_checkpoint(last)))}")
        return best


def _describe_run(progress: Any) -> str:
    """``"20 of 20 epochs, best val MAE 2.31 at epoch 18"`` for a :class:`~stgkd.engine.checkpoint.RunProgress`."""
    stop = f", stopped early after {progress.epochs}" if progress.stopped_early else ""
    return (f"{progress.epochs} of {progress.requested} epochs{stop}, best val MAE {progress.best_val_mae:.4g} "
            f"at epoch {progress.best_epoch}")


def teacher_summary(path: Path) -> dict[str, Any]:
    """What the report says about the teacher: its checkpoint, the epoch and validation masked MAE of
    its weights, and the epochs its run trained and was asked for (read from the ``last.pt`` beside
    it; ``None`` where there is none, since a ``best.pt`` alone does not tell how its run ended)."""
    from stgkd.engine.checkpoint import load_checkpoint, run_progress

    payload = load_checkpoint(path)
    last = path.with_name("last.pt")
    progress = run_progress(payload if path.name == "last.pt" else load_checkpoint(last)) if last.is_file() else None
    val_mae = ((payload.get("metrics") or {}).get("avg") or {}).get("mae")
    return {
        "path": str(path),
        "model": (payload.get("model") or {}).get("name"),
        "epoch": int(payload.get("epoch", 0)),
        "val_mae": float(val_mae) if val_mae is not None else None,
        "epochs_trained": progress.epochs if progress else None,
        "epochs_requested": int((payload.get("train_config") or {}).get("epochs", 0)) or None,
        "stopped_early": progress.stopped_early if progress else None,
        "finished": progress.finished if progress else None,
    }


def _settings_conflicts(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = ("dataset", "data_args", "missing", "teacher_sha256", "budget_ms", "latency_batch", "latency_mode", "latency_dtype",
            "latency_device_kind", "epochs", "multi_objective")
    return [f"{k}: study has {old.get(k)!r}, this run {new.get(k)!r}" for k in keys if k in old and old.get(k) != new.get(k)]


def make_sampler(name: str, seed: int, multi: bool, n_trials: int):
    import optuna
    from optuna.samplers._lazy_random_state import LazyRandomState

    from tuning.storage import worker_identity

    class _PerTrialSeed:
        """Reseed the sampler from (seed, trial number) before every trial: one worker reproduces a
        run exactly, and workers sharing a study never draw the same random start-up points."""

        _base_seed = seed

        def before_trial(self, study, trial):  # noqa: D401 - Optuna hook
            # record the worker at once (the objective does it too): a process killed between creating
            # the trial and starting the objective still leaves a trial that is recognised as its own
            study._storage.set_trial_user_attr(trial._trial_id, "worker", worker_identity())
            s = (self._base_seed * 1_000_003 + trial.number) % (2**32)
            for obj in (self, getattr(self, "_random_sampler", None)):
                rng = getattr(obj, "_rng", None)
                if isinstance(rng, LazyRandomState):
                    rng.rng.seed(s)
            super().before_trial(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate TPE is marked experimental
        if name == "nsga2":
            if not multi:
                raise ConfigError("--sampler nsga2 is for --multi-objective; use tpe for a single objective")

            class SeededNSGAII(_PerTrialSeed, optuna.samplers.NSGAIISampler):
                pass

            return SeededNSGAII(seed=seed, population_size=max(4, min(50, n_trials // 4)))

        class SeededTPE(_PerTrialSeed, optuna.samplers.TPESampler):
            pass

        return SeededTPE(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=min(10, max(5, n_trials // 5)))


def make_pruner(name: str, epochs: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min(2, epochs))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


class _Progress:
    """Study-wide progress (trials of every worker) on a tqdm bar, plus stopping at the target."""

    def __init__(self, study: Any, target: int, *, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.target = target
        self.failures = 0
        done = self.finished(study)
        self.bar = tqdm(total=target, initial=min(done, target), desc=f"study {study.study_name}", unit="trial",
                        disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    @staticmethod
    def finished(study: Any) -> int:
        return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED)

    def __call__(self, study: Any, trial: Any) -> None:
        from tuning.report import trial_status
        from tuning.storage import recover_stale_trials

        recovered = recover_stale_trials(study)
        for number, reason in recovered:
            _log(f"trial {number} failed ({reason}); its parameters are queued again")
        trials = study.get_trials(deepcopy=False)
        done = sum(1 for t in trials if t.state.name in FINISHED)
        statuses = [trial_status(t) for t in trials]
        best = [t.user_attrs.get("val_mae") for t in trials if trial_status(t) == "complete"]
        self.bar.n = min(done, self.target)
        self.bar.set_postfix(best_mae=f"{min(best):.4g}" if best else "-", infeasible=statuses.count("infeasible"),
                             pruned=statuses.count("pruned"), refresh=False)
        self.bar.refresh()
        self.failures = self.failures + 1 if trial.state.name == "FAIL" else 0
        if done >= self.target:
            study.stop()
        elif self.failures >= MAX_CONSECUTIVE_FAILURES:
            _log(f"{self.failures} trials failed in a row in this worker; stopping it (see the report)")
            study.stop()

    def close(self) -> None:
        self.bar.close()


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
        _log(latency.note)
    data = _dataset(args)
    teacher_path, teacher_sha, teacher_info = _teacher(args, data, out, device)

    storage = open_storage(args.storage, out)
    settings = _study_settings(args, data, teacher_path, teacher_sha, latency, space)
    start = None if args.no_default_trial else space.starting_point(default_point(data.num_nodes))
    study, study_name = _open_study(args, storage, latency, settings, start)
    for number, reason in recover_stale_trials(study):
        _log(f"trial {number} was left running ({reason}); marked failed and queued again")
    done = _Progress.finished(study)
    _log(f"study {study_name!r} in {storage.masked_url}: {done} finished trial(s), target {args.n_trials}; "
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


def _teacher(args: argparse.Namespace, data: Any, out: Path, device: str) -> tuple[Path, str, dict[str, Any]]:
    """``(path, SHA-256, training summary)`` of the teacher: ``--teacher``, or the one trained (or
    finished) in ``OUT/teacher``."""
    teacher_path = ensure_teacher(args, data, out, device).resolve()
    teacher_sha = sha256_file(teacher_path)
    teacher_info = teacher_summary(teacher_path)
    if teacher_info["finished"] is False:  # a --teacher whose run is unfinished: the user's choice, said once
        _log(f"note: the run of --teacher {teacher_path} trained {teacher_info['epochs_trained']} of its "
             f"{teacher_info['epochs_requested']} epochs; its weights are used as they are")
    return teacher_path, teacher_sha, teacher_info


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
            _log("first trial: stgkd distill's defaults, " + ", ".join(f"{k}={v}" for k, v in start.items()))
    else:
        conflicts = _settings_conflicts(stored, settings)
        if conflicts:
            raise ConfigError(
                f"--study-name {study_name} in {storage.masked_url} was created with other settings ({'; '.join(conflicts)}); "
                "run with the same settings or choose another --study-name"
            )
        if stored.get("space") != settings["space"]:
            _log("note: the search space differs from the one the study started with; trials will mix both")
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
        _log(f"teacher cache: {len(cache)} training windows, features {cache.feature_names}, built once in "
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

    progress = _Progress(study, args.n_trials, enabled=not args.no_progress)
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
            _log(f"interrupted: trial {frozen.number} is queued again; run the same command to resume")
    return interrupted


def _conclude(study: Any, args: argparse.Namespace, out: Path, prepared: Any, device: str, latency: Any,
              report_settings: dict[str, Any], objective: Any, interrupted: bool) -> int:
    """Export the best feasible student, write the report, say what this worker did; the exit status."""
    from stgkd.latency import load_average
    from tuning.report import best_feasible, write_report

    report_settings["load_average"] = {**report_settings.get("load_average", {}), "end": load_average()}
    with file_lock(out / ".report.lock"):
        export = _export_best(study, out, prepared, device)
        report = write_report(study, out, settings=report_settings, export=export, plots=not args.no_plots,
                              front_test=_front_test(study, out, prepared, device))
    c = report["counts"]
    ran = objective.trials_run if objective is not None else 0
    _log(f"this worker ran {ran} trial(s); the study has {c['total']}: {c['complete']} complete, {c['pruned']} pruned, "
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


def _test_metrics(ckpt: Path, prepared: Any, device: str) -> dict[str, Any]:
    """Test-split metrics by horizon of the student in checkpoint ``ckpt`` on the study's data."""
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.engine.evaluate import evaluate_split

    model = model_from_checkpoint(load_checkpoint(ckpt), device=device)
    test = evaluate_split(model, prepared.test, prepared.scaler, batch_size=64, device=device,
                          interval_minutes=int(prepared.data.interval_minutes))
    return {k: v for k, v in test.items() if k != "per_step"}


def _front_test(study: Any, out: Path, prepared: Any, device: str) -> dict[int, dict[str, Any]]:
    """The Pareto front's students scored on the test split (trial number -> metrics by horizon): those
    the previous ``report.json`` in ``out`` scored, the others whose checkpoints are on this machine when
    the data are at hand (a worker that ran no trial has not loaded them)."""
    from tuning.report import front_trials

    try:
        previous = json.loads((out / "report.json").read_text()).get("pareto_front") or []
    except (OSError, ValueError):
        previous = []
    known = {int(t["number"]): t["test"] for t in previous if isinstance(t, dict) and t.get("test")}
    scores = {}
    for trial in front_trials(study):
        ckpt = Path(trial.user_attrs.get("checkpoint", ""))
        if trial.number in known:
            scores[trial.number] = known[trial.number]
        elif prepared is not None and ckpt.is_file():
            scores[trial.number] = _test_metrics(ckpt, prepared, device)
    return scores


def _export_best(study: Any, out: Path, prepared: Any, device: str) -> dict[str, Any] | None:
    """Export the best feasible trial's student to ``OUT/best_student.pt`` (and evaluate it on the
    test split when the data are at hand)."""
    from stgkd.export import export_student

    from tuning.report import best_feasible

    best = best_feasible(study)
    if best is None:
        return None
    ckpt = Path(best.user_attrs.get("checkpoint", ""))
    info: dict[str, Any] = {"trial": best.number, "checkpoint": str(ckpt)}
    if not ckpt.is_file():
        info["error"] = (
            f"the checkpoint of trial {best.number} ({ckpt}) is not on this machine (it ran on "
            f"{(best.user_attrs.get('worker') or {}).get('host')}); run this command there, or share OUT"
        )
        return info
    target = out / "best_student.pt"
    sidecar = out / "best_student.json"
    if target.is_file() and sidecar.is_file():  # already exported by an earlier run or another worker
        try:
            previous = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            previous = {}
        if previous.get("trial") == best.number and previous.get("study") == study.study_name:
            return {k: v for k, v in previous.items() if k != "study"}
    try:
        export_student(ckpt, target)
    except StgkdError as exc:
        info["error"] = str(exc)
        return info
    info["path"] = str(target)
    if prepared is not None:
        info["test"] = _test_metrics(ckpt, prepared, device)
    sidecar.write_text(json.dumps({**info, "study": study.study_name}, indent=1, default=str) + "\n")
    return info


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
