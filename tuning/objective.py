"""One trial of the search: sample, measure the student's latency, distil it if it fits the budget.

Order of a trial (:class:`Objective`):

1. record the worker (``user_attrs["worker"]``) and, on journal storages, start the heartbeat;
2. sample a configuration from the :class:`~tuning.space.SearchSpace`;
3. build the student and **measure** its latency with :func:`stgkd.latency.measure` at the requested
   batch, mode and precision (cached per architecture: in this process, and across processes through
   the study itself -- a trial stores ``latency_key`` and the measurement, and a later trial of the same
   architecture on the same device reuses it);
4. ``trial.set_constraint("latency", latency_ms - budget_ms)`` (Optuna 5's per-trial constraint; the
   ``constraints_func`` argument of the samplers is deprecated in 5.0). Over budget: the trial is
   recorded as *infeasible* and ends as ``PRUNED`` without training -- TPE reads the constraint of
   pruned trials, ranks infeasible trials by how far over budget they are, and steers away; costs
   seconds;
5. distil the student from the shared :class:`~stgkd.distill.TeacherCache` (built once per process,
   never per trial) with a pruning callback that reports the validation masked MAE every epoch
   (``trial.report`` / ``trial.should_prune``; single-objective only, Optuna does not prune
   multi-objective studies);
6. save the student's checkpoint as ``OUT/trials/<number>/best.pt`` and return the best
   validation MAE (or ``(MAE, latency_ms)`` with ``--multi-objective``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import optuna
import torch

from stgkd.errors import ConfigError, StgkdError
from stgkd.settings import flag_fields, typed
from tuning.space import ALIASES, STUDENT_PREFIX, TRAIN_FIELDS, SearchSpace
from tuning.storage import Heartbeat, mark_worker

__all__ = [
    "LatencySettings",
    "LatencyCache",
    "PruningCallback",
    "SearchContext",
    "Objective",
    "TrialFailed",
    "architecture_key",
    "student_hparams",
    "distill_config",
]

LATENCY_CONSTRAINT = "latency"
#: timed calls of the quick first timing, and its warm-up
QUICK_ITERS, QUICK_WARMUP = 10, 3
#: an architecture whose quick timing exceeds the budget this many times is infeasible without more timing
CLEAR_MISS = 5.0


class TrialFailed(RuntimeError):
    """A trial could not be evaluated (e.g. its training diverged); the study records it as ``FAIL``
    and goes on (``study.optimize(catch=(TrialFailed, ...))``)."""


@dataclass
class LatencySettings:
    """How latency is measured for the budget.

    ``mode``/``device`` are what is actually used; ``requested_*`` what the user asked for. Without a GPU
    the measurement runs on the CPU (``cuda-graph`` becomes ``eager``, which the CPU supports) and
    ``note`` says so; the budget is applied to that CPU figure.
    """

    budget_ms: float
    batch: int
    mode: str
    dtype: str
    device: str
    warmup: int = 10
    iters: int = 100
    requested_mode: str = ""
    requested_device: str = ""
    device_kind: str = ""
    device_name: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.device_kind.upper()} {self.mode} {self.dtype}, batch {self.batch}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}

    @classmethod
    def resolve(
        cls,
        *,
        budget_ms: float,
        batch: int,
        mode: str,
        dtype: str,
        device: str | None = None,
        warmup: int = 10,
        iters: int = 100,
    ) -> "LatencySettings":
        from stgkd.latency import DTYPES, MODES, device_name

        if not (budget_ms > 0 and math.isfinite(budget_ms)):
            raise ConfigError(f"--latency-budget-ms must be a positive number, got {budget_ms}")
        if batch < 1:
            raise ConfigError(f"--latency-batch must be >= 1, got {batch}")
        if mode not in MODES:
            raise ConfigError(f"--latency-mode {mode!r}: choose one of {', '.join(MODES)}")
        if dtype not in DTYPES:
            raise ConfigError(f"--latency-dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
        requested = device or "cuda"
        notes = []
        dev = requested
        if torch.device(requested).type == "cuda" and not torch.cuda.is_available():
            dev = "cpu"
            notes.append("no CUDA device: latency measured on the CPU and the budget applied to that figure")
        used_mode = mode
        if mode == "cuda-graph" and torch.device(dev).type != "cuda":
            used_mode = "eager"
            notes.append("cuda-graph needs a GPU, measured in eager mode")
        if dtype != "fp32" and torch.device(dev).type == "cpu" and dtype == "fp16":
            notes.append("fp16 autocast on the CPU is slow and unrepresentative")
        return cls(
            budget_ms=float(budget_ms),
            batch=int(batch),
            mode=used_mode,
            dtype=dtype,
            device=dev,
            warmup=int(warmup),
            iters=int(iters),
            requested_mode=mode,
            requested_device=requested,
            device_kind=torch.device(dev).type,
            device_name=device_name(dev),
            note="; ".join(notes),
        )


def architecture_key(model: torch.nn.Module, settings: LatencySettings) -> str:
    """A short stable id of (architecture, measurement conditions): equal ids mean equal latency."""
    payload = {
        "model": model.config(),  # name, sizes and every hyperparameter
        "batch": settings.batch,
        "mode": settings.mode,
        "dtype": settings.dtype,
        "device": settings.device_name,
        "iters": settings.iters,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class LatencyCache:
    """Measured latency per architecture: this process's dict first, then earlier trials of the study
    (any worker, any earlier run), then a measurement.

    A measurement starts with a quick timing (:data:`QUICK_ITERS` calls); an architecture more than
    :data:`CLEAR_MISS` times over the budget is infeasible from it alone, so such a trial costs a few
    calls. Otherwise the full timing (``settings.iters`` calls) decides. A timing over the threshold is
    repeated (``remeasure``) and the smallest median kept.

    Args:
        settings: measurement conditions.
        measure: ``measure(model, settings) -> dict`` (default: :func:`stgkd.latency.measure`).
        remeasure: how many more times a result over the budget is measured (the smallest median is
            kept; contention only adds time) (default: ``2``).
    """

    def __init__(
        self,
        settings: LatencySettings,
        measure: Callable[[torch.nn.Module, LatencySettings], dict[str, Any]] | None = None,
        *,
        remeasure: int = 2,
    ) -> None:
        self.settings = settings
        self.remeasure = int(remeasure)
        self._measure = measure or _measure_with_stgkd
        self._cache: dict[str, dict[str, Any]] = {}
        self.measured = 0

    def get(self, model: torch.nn.Module, study: optuna.Study | None = None) -> tuple[str, dict[str, Any], str]:
        """``(key, result, source)`` with ``source`` one of ``"process"``, ``"study"``, ``"measured"``."""
        key = architecture_key(model, self.settings)
        if key in self._cache:
            return key, self._cache[key], "process"
        if study is not None:
            for t in study.get_trials(deepcopy=False):
                if t.user_attrs.get("latency_key") == key and isinstance(t.user_attrs.get("latency"), dict):
                    self._cache[key] = t.user_attrs["latency"]
                    return key, self._cache[key], "study"
        result = self._time(model)
        self._cache[key] = result
        return key, result, "measured"

    def _time_best_of(self, model: torch.nn.Module, settings: LatencySettings, threshold: float) -> dict[str, Any]:
        """Time up to ``1 + remeasure`` times while the smallest median stays above ``threshold``;
        return the fastest result with every median in ``medians_ms``. Contention from other processes
        only ever adds time, so the smallest median is the best estimate of the model's own latency."""
        best: dict[str, Any] | None = None
        medians: list[float] = []
        for _ in range(1 + self.remeasure):
            result = self._measure(model, settings)
            self.measured += 1
            medians.append(float(result["median_ms"]))
            if best is None or float(result["median_ms"]) < float(best["median_ms"]):
                best = result
            if float(best["median_ms"]) <= threshold:
                break
        assert best is not None
        return {**best, "medians_ms": medians}

    def _time(self, model: torch.nn.Module) -> dict[str, Any]:
        s = self.settings
        if s.iters > QUICK_ITERS:
            # a short timing first: an architecture far over the budget is infeasible after a few calls
            quick = replace(s, iters=QUICK_ITERS, warmup=min(s.warmup, QUICK_WARMUP))
            probe = self._time_best_of(model, quick, s.budget_ms * CLEAR_MISS)
            if float(probe["median_ms"]) > s.budget_ms * CLEAR_MISS:
                return {**probe, "quick": True}
        return self._time_best_of(model, s, s.budget_ms)


def _measure_with_stgkd(model: torch.nn.Module, settings: LatencySettings) -> dict[str, Any]:
    from stgkd.latency import measure

    r = measure(
        model,
        batch_size=settings.batch,
        device=settings.device,
        mode=settings.mode,
        dtype=settings.dtype,
        warmup=settings.warmup,
        iters=settings.iters,
    )
    return {
        "median_ms": float(r.median_ms),
        "p90_ms": float(r.p90_ms),
        "device_kind": r.device_kind,
        "device_name": r.device_name,
        "mode": r.mode,
        "dtype": r.dtype,
        "batch": int(r.batch),
        "parameters": int(r.parameters),
    }


class PruningCallback:
    """Trainer callback: report the epoch's validation masked MAE to the trial, prune when told.

    Steps are epochs (1-based). In multi-objective studies Optuna supports neither ``report`` nor
    pruning, so the callback only records the curve in ``user_attrs["curve"]`` at the end.
    """

    def __init__(self, trial: optuna.Trial, *, prune: bool = True) -> None:
        self.trial = trial
        self.prune = prune
        self.curve: list[float] = []

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        value = float(logs["val_mae"])
        self.curve.append(value)
        if not self.prune:
            return
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"validation MAE is {value} at epoch {epoch}")
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (val MAE {value:.4f})")


@dataclass
class SearchContext:
    """Everything the trials share, set up once per process before ``study.optimize``.

    Attributes:
        prepared: the :class:`~stgkd.data.PreparedData` (train/val windows and scaler).
        teacher: the frozen teacher model (on ``device``).
        teacher_path: its checkpoint; ``teacher_sha256`` the file's hash.
        cache: the :class:`~stgkd.distill.TeacherCache` of the training split, or a function building
            it: then it is built at the first trial that trains (once), so a run whose trials are all
            over budget never runs the teacher.
        device: training device.
        epochs: epochs per trial; ``limit_batches`` caps batches per epoch (tests).
        out_dir: the study directory (trial checkpoints go to ``out_dir/trials``).
        seed: base seed; trial ``n`` trains with ``seed + n``.
        multi_objective: minimise (MAE, latency) instead of MAE.
        heartbeat: run :class:`~tuning.storage.Heartbeat` during trials (journal storages).
    """

    prepared: Any
    teacher: torch.nn.Module
    teacher_path: Path
    teacher_sha256: str
    cache: Any
    device: str
    epochs: int
    out_dir: Path
    seed: int = 0
    multi_objective: bool = False
    heartbeat: bool = True
    limit_batches: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def teacher_cache(self) -> Any:
        """The shared teacher cache (built on first use when ``cache`` is a function)."""
        if callable(self.cache):
            self.cache = self.cache()
        return self.cache


#: checkpoint entries only resuming reads, left out of a finished trial's
RESUME_ONLY = ("optimizer", "scheduler", "rng", "callbacks")

#: student hyperparameters the space names directly (the others are ``student.<name>``)
TOP_LEVEL_HPARAMS = ("hidden", "layers", "graph_op", "adaptive")


def student_hparams(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(model name, hyperparameters)`` of the student a sampled configuration describes."""
    hparams: dict[str, Any] = {"hidden": int(params["hidden"])}
    if "layers" in params:  # the GRU families' depth; dcgru has one recurrent layer
        hparams["layers"] = int(params["layers"])
    for key in TOP_LEVEL_HPARAMS[2:]:
        if key in params:
            hparams[key] = params[key]
    for key, value in params.items():
        if key.startswith(STUDENT_PREFIX):
            hparams[key[len(STUDENT_PREFIX):]] = value
    return str(params["family"]), hparams


def distill_config(params: dict[str, Any]):
    """The :class:`~stgkd.distill.DistillConfig` of a sampled configuration: its entries named after
    the config's fields (``tau``, ``relation_tau``, ``w_sup`` ...) are those fields (numbers written as text
    read as numbers; ``stages`` and ``augment`` ``"none"`` are ``None``). A configuration
    sampled from a space of the earlier names (:data:`tuning.space.ALIASES`) means what it meant then:
    ``temperature`` set both temperatures.
    """
    from stgkd.distill import DistillConfig

    if "temperature" in params and "relation_tau" not in params:
        params = {**params, "relation_tau": params["temperature"]}
    params = {ALIASES.get(k, k): v for k, v in params.items()}
    names = {f.name for f in dataclasses.fields(DistillConfig)}
    kwargs = typed(DistillConfig, {k: v for k, v in params.items() if k in names})
    for name in ("stages", "augment"):  # a space's spelling of "not set"
        if kwargs.get(name) in ("", "none"):
            kwargs[name] = None
    return DistillConfig.from_dict(kwargs)


def default_point(num_nodes: int) -> dict[str, Any]:
    """The configuration ``stgkd distill``'s defaults train on ``num_nodes`` sensors, in the space's names:
    the default student (:data:`stgkd.nn.DEFAULT_STUDENT`) at its family's hyperparameters
    (``hidden``, ``student.<name>``; :meth:`~stgkd.nn.base.ForecastModel.default_hparams`) and learning
    rate, and :class:`~stgkd.distill.DistillConfig`'s weights and temperatures. A study enqueues the part
    of it that its space holds as its first trial (:meth:`tuning.space.SearchSpace.starting_point`)."""
    from stgkd.distill import DistillConfig
    from stgkd.nn.registry import DEFAULT_STUDENT, MODELS

    family = DEFAULT_STUDENT
    model = MODELS.get(family)
    hparams = model.default_hparams(num_nodes)
    point: dict[str, Any] = {"family": family, "lr": float(model.default_lr)}
    for name, value in hparams.items():
        point[name if name in TOP_LEVEL_HPARAMS else STUDENT_PREFIX + name] = value
    config = DistillConfig()
    for f in flag_fields(DistillConfig):
        if getattr(config, f.name) is not None:
            point[f.name] = getattr(config, f.name)
    return point


def build_student(ctx: SearchContext, params: dict[str, Any]) -> torch.nn.Module:
    from stgkd.nn import build_for

    name, hparams = student_hparams(params)
    try:
        return build_for(name, ctx.prepared, **hparams)
    except TypeError as exc:
        raise ConfigError(f"search space: student {name!r} does not take {sorted(hparams)} ({exc})") from None
    except ConfigError as exc:  # a value this network cannot take (stgru's rank above its sensors): this trial fails
        raise TrialFailed(f"student {name!r} with {hparams}: {exc}") from None


class Objective:
    """The callable handed to ``study.optimize``.

    Args:
        ctx: the shared :class:`SearchContext`.
        space: the search space.
        latency: the :class:`LatencyCache`.
        train: ``train(ctx, trial, params, callback, checkpoint_path) -> dict`` training one
            student (default: :func:`train_student`); returns at least ``{"val_mae", "epochs_run"}``.
    """

    def __init__(
        self,
        ctx: SearchContext,
        space: SearchSpace,
        latency: LatencyCache,
        *,
        train: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        self.ctx = ctx
        self.space = space
        self.latency = latency
        self.train = train or train_student
        self.running_trial: int | None = None
        self.trials_run = 0

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self.running_trial = trial.number
        self.trials_run += 1
        mark_worker(trial)
        beat = Heartbeat(trial) if self.ctx.heartbeat else contextlib.nullcontext()
        with beat:
            return self._run(trial)

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        ctx = self.ctx
        budget = self.latency.settings.budget_ms
        params = self.space.sample(trial)
        trial.set_user_attr("config", {k: v for k, v in params.items()})

        t0 = time.perf_counter()
        torch.manual_seed(ctx.seed + trial.number)
        probe = build_student(ctx, params)
        try:
            key, lat, source = self.latency.get(probe, trial.study)
        except StgkdError as exc:
            trial.set_user_attr("note", f"latency measurement failed: {exc}")
            raise TrialFailed(f"trial {trial.number}: latency measurement failed: {exc}") from exc
        del probe
        latency_ms = float(lat["median_ms"])
        trial.set_user_attr("latency_key", key)
        trial.set_user_attr("latency", lat)
        trial.set_user_attr("latency_ms", latency_ms)
        trial.set_user_attr("latency_device", f"{lat['device_kind']}: {lat['device_name']}")
        trial.set_user_attr("latency_source", source)
        trial.set_user_attr("latency_seconds", round(time.perf_counter() - t0, 3))
        trial.set_constraint(LATENCY_CONSTRAINT, latency_ms - budget)
        if latency_ms > budget:
            trial.set_user_attr("status", "infeasible")
            trial.set_user_attr("note", f"latency {latency_ms:.4g} ms > budget {budget:g} ms; not trained")
            raise optuna.TrialPruned(f"infeasible: latency {latency_ms:.4g} ms > budget {budget:g} ms")

        callback = PruningCallback(trial, prune=not ctx.multi_objective)
        ckpt = ctx.out_dir / "trials" / f"{trial.number:05d}" / "best.pt"
        try:
            result = self.train(ctx, trial, params, callback, ckpt)
        except optuna.TrialPruned:
            trial.set_user_attr("status", "pruned")
            trial.set_user_attr("epochs_run", len(callback.curve))
            raise
        except StgkdError as exc:  # e.g. a diverging loss at this learning rate
            trial.set_user_attr("note", f"training failed: {exc}")
            raise TrialFailed(f"trial {trial.number}: training failed: {exc}") from exc
        val_mae = float(result["val_mae"])
        trial.set_user_attr("status", "complete")
        trial.set_user_attr("val_mae", val_mae)
        trial.set_user_attr("epochs_run", int(result.get("epochs_run", len(callback.curve))))
        trial.set_user_attr("checkpoint", str(ckpt))
        if ctx.multi_objective:
            trial.set_user_attr("curve", callback.curve)
        if not math.isfinite(val_mae):
            raise FloatingPointError(f"trial {trial.number}: validation MAE is {val_mae}")
        return (val_mae, latency_ms) if ctx.multi_objective else val_mae


def train_student(
    ctx: SearchContext,
    trial: optuna.Trial | None,
    params: dict[str, Any],
    callback: Any,
    checkpoint_path: Path,
) -> dict[str, Any]:
    """Distil the sampled student (the run builds it from the trial's seed, as the one whose latency was
    measured) from the shared teacher for ``ctx.epochs`` epochs through
    :func:`stgkd.engine.run`, its best validation weights written to ``checkpoint_path`` (a ``best.pt`` of a
    run directory; the trial's record in its ``tuning`` entry); return ``{"val_mae", "epochs_run",
    "best_epoch"}``.

    The run spec is the trial's: the student family and hyperparameters, :func:`distill_config` of the sampled
    parameters, and the study's budget. What a search must not repeat per trial is handed to the run once
    made: the prepared windows, the frozen teacher and its :class:`~stgkd.distill.TeacherCache` (``ctx``);
    the fidelity and gradient-share diagnostics are left out. With all distillation weights 0 the student
    trains with the plain supervised step, as ``stgkd distill`` does.
    """
    from stgkd.engine import RunSpec, TrainConfig, run
    from stgkd.engine.checkpoint import load_checkpoint, save_checkpoint

    seed = ctx.seed + (trial.number if trial is not None else 0)
    optimiser = typed(TrainConfig, {name: params[name] for name in TRAIN_FIELDS if name in params})  # no lr: the family's
    cfg = TrainConfig(epochs=ctx.epochs, patience=0,  # the pruner decides when a trial stops early
                      seed=seed, device=ctx.device, limit_batches=ctx.limit_batches, **optimiser)
    name, hparams = student_hparams(params)
    spec = RunSpec(name, hparams, train=cfg, teachers=(ctx.teacher_path,), distill=distill_config(params))
    record = {"tuning": {"study": trial.study.study_name, "trial": trial.number, "params": dict(params)}} if trial else {}
    trial_dir = checkpoint_path.parent
    try:
        result = run(spec, trial_dir, overwrite=True, callbacks=[callback], progress=False, log=False,
                     prepared=ctx.prepared, teacher=ctx.teacher, diagnostics=False,
                     cache=ctx.teacher_cache if ctx.cache is not None else None,  # None: the run builds it
                     record=record)
    except BaseException:  # pruned or failed: nothing of it is read again
        shutil.rmtree(trial_dir, ignore_errors=True)
        raise
    (trial_dir / "last.pt").unlink(missing_ok=True)  # a finished trial is never resumed: keep it small
    payload = load_checkpoint(checkpoint_path)
    save_checkpoint(checkpoint_path, {k: v for k, v in payload.items() if k not in RESUME_ONLY})
    return {"val_mae": float(result.best_val_mae), "epochs_run": int(result.epochs_run),
            "best_epoch": int(result.best_epoch)}
