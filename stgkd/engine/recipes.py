"""The two ways to train, as functions: :func:`train_model` and :func:`distill_student`.

The ``train`` / ``distill`` commands, the demo, the tuner and the benchmarks all call these. They
compose the data layer (:mod:`stgkd.data.rebuild`: the series, its windows, or those a checkpoint was
trained on) with the training steps (:mod:`stgkd.engine.steps`) and the loop. Each
prepares the data, seeds, builds the model, assembles the callbacks (early stopping, checkpoints,
JSON-lines log, TensorBoard when installed, progress bar, plus the caller's), resumes from
``out/last.pt`` when asked, runs :class:`~stgkd.engine.trainer.Trainer` (under ``torchrun``: one
rank of a DistributedDataParallel run) and returns a :class:`TrainResult` holding the model with
its best validation weights.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from stgkd.data.core import TrafficData
from stgkd.data.features import default_seasons
from stgkd.data.rebuild import load_data, prepare_data, prepare_from_meta
from stgkd.data.windows import seasons_of
from stgkd.engine.baselines import compare_with_baselines, score_baselines
from stgkd.engine.callbacks import (
    Checkpointing,
    DistillStages,
    EarlyStopping,
    Fidelity,
    GradientShare,
    JSONLinesLogger,
    TeacherCost,
    ProgressBar,
    TensorBoard,
    tensorboard_available,
)
from stgkd.engine.checkpoint import load_checkpoint
from stgkd.engine.distributed import DistContext, init_distributed, shutdown
from stgkd.engine.steps import SupervisedStep, make_distill_step
from stgkd.engine.result import TrainResult
from stgkd.engine.trainer import TrainConfig, Trainer, recent_windows, seed_everything, with_epochs
from stgkd.errors import CheckpointError, ConfigError
from stgkd.files import to_jsonable
from stgkd.metrics import masked_mae
from stgkd.missing import MissingSpec
from stgkd.nn.base import SelectInputs
from stgkd.nn.registry import DEFAULT_STUDENT, DEFAULT_TEACHER

__all__ = [
    "TrainResult",
    "train_model",
    "distill_student",
]


# --------------------------------------------------------------------------- shared plumbing


def _run_dir(out: str | Path | None, *, resume: bool, overwrite: bool) -> tuple[Path | None, dict | None]:
    """Check the run directory; return it and the ``last.pt`` payload to resume from (or ``None``)."""
    if out is None:
        if resume:
            raise ConfigError("resume needs an output directory (--out) holding last.pt")
        return None, None
    out = Path(out)
    last = out / "last.pt"
    if resume:
        if last.exists():
            return out, load_checkpoint(last)
        print(f"note: {last} does not exist; starting a fresh run", file=sys.stderr)
        return out, None
    if last.exists() and not overwrite:
        raise ConfigError(f"{last} exists; pass --resume to continue that run or --overwrite to start again")
    if overwrite:
        for name in ("last.pt", "best.pt", "log.jsonl", "metrics.json"):
            (out / name).unlink(missing_ok=True)
    return out, None


def _callbacks(out: Path | None, cfg: TrainConfig, *, progress: bool, log: bool, extra: Sequence[Any],
               run: Sequence[Any] = ()) -> list[Any]:
    """Early stopping, then the run's own callbacks (``run``: they add to an epoch's logs, so they come
    before the writers and after the stop decision), logging, checkpoints, progress, then ``extra``."""
    cbs: list[Any] = []
    if cfg.patience > 0:
        cbs.append(EarlyStopping(cfg.patience))
    cbs.extend(run)
    if out is not None:
        if log:
            cbs.append(JSONLinesLogger(out / "log.jsonl"))
            if tensorboard_available():
                cbs.append(TensorBoard(out / "tensorboard"))
        cbs.append(Checkpointing(out))
    if progress:
        cbs.append(ProgressBar())
    cbs.extend(extra)
    return cbs


def _fit(
    *,
    build_model,
    build_step,
    prepared,
    cfg: TrainConfig,
    ctx: DistContext,
    out: Path | None,
    payload: dict | None,
    meta: dict[str, Any],
    callbacks: Sequence[Any],
    progress: bool,
    log: bool,
    evaluate_test: bool,
    run_callbacks: Sequence[Any] = (),
    baselines: bool = False,
) -> TrainResult:
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    model = build_model().to(ctx.device)
    if getattr(model, "role", None) == "baseline":  # fitted, not trained
        return _fit_baseline(model, prepared=prepared, cfg=cfg, ctx=ctx, out=out, evaluate_test=evaluate_test,
                             baselines=baselines)
    step = build_step(model)
    trainer = Trainer(model, prepared, config=cfg, step=step, ctx=ctx, meta=meta,
                      callbacks=_callbacks(out, cfg, progress=progress and ctx.is_main, log=log, extra=callbacks,
                                           run=run_callbacks))
    resumed_from = 0
    if payload is not None:
        trainer.restore(payload, path=str(out / "last.pt"))
        resumed_from = trainer.epoch
        if ctx.is_main:
            state = "complete" if payload.get("complete", True) else "interrupted mid-epoch"
            print(f"resuming {out / 'last.pt'}: epoch {trainer.epoch} {state}; continuing at epoch "
                  f"{trainer.epoch + 1}/{trainer.config.epochs}", file=sys.stderr)
    fit = trainer.fit()
    best_path = out / "best.pt" if out is not None and (out / "best.pt").exists() else None
    if trainer.best_state is not None:
        trainer.load_best()
    elif best_path is not None:
        model.load_state_dict(load_checkpoint(best_path)["state_dict"])
    model.eval()
    result = TrainResult(
        model=model, data=prepared, best_epoch=int(trainer.best["epoch"]),
        best_val=dict(trainer.best.get("metrics", {})), epochs_run=trainer.epoch, stopped_early=fit.stopped_early,
        history=trainer.history, seconds=fit.seconds, train_config=trainer.config, out=out, best_path=best_path,
        last_path=out / "last.pt" if out is not None else None, resumed_from=resumed_from,
        distill=meta.get("distill"), teacher_checkpoint=meta.get("teacher_checkpoint"), rank=ctx.rank,
    )
    if evaluate_test:
        result.test = {k: v for k, v in trainer.validate("test").items() if k != "per_step"}
        if baselines and ctx.is_main:
            result.baselines = score_baselines(prepared, "test")
    if out is not None and ctx.is_main:
        summary = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                   "stopped_early": result.stopped_early, "val": result.best_val}
        if result.test is not None:
            summary["test"] = result.test
        if result.baselines is not None:
            summary["baselines"] = result.baselines.to_dict()
            summary["worse_than_best_baseline"] = [
                s.to_dict() for s in compare_with_baselines(model.registry_name, result.test, result.baselines)]
        best_logs = next((h for h in result.history if h.get("epoch") == result.best_epoch), {})
        if "val_fidelity" in best_logs:
            summary["val_fidelity"] = best_logs["val_fidelity"]
        if "teachers" in meta:
            summary["teachers"] = meta["teachers"]
        teacher_mae, student_mae = meta.get("teacher_val_mae"), (result.best_val.get("avg") or {}).get("mae")
        if teacher_mae is not None and student_mae is not None:
            summary["teacher_val_mae"] = teacher_mae
            if student_mae < teacher_mae:  # the teacher knows less than the student learns: it can only pull back
                summary["teacher_worse_than_student"] = (
                    f"the teacher's validation MAE ({teacher_mae:.4f}) is worse than this student's ({student_mae:.4f}): "
                    "distilling from it pulls the student toward worse forecasts; train a stronger teacher")
                print(f"note: {summary['teacher_worse_than_student']}", file=sys.stderr)
        if result.grad_share:
            summary["grad_share"] = result.grad_share
        (out / "metrics.json").write_text(json.dumps(to_jsonable(summary), indent=2) + "\n")
    return result


def _fit_baseline(model: nn.Module, *, prepared: Any, cfg: TrainConfig, ctx: DistContext, out: Path | None,
                  evaluate_test: bool, baselines: bool) -> TrainResult:
    """A baseline (:mod:`stgkd.nn.baselines`) is fitted on the training slice, not trained: no epoch, no
    optimiser. ``best.pt`` and ``last.pt`` hold the fitted model as any checkpoint does (so ``stgkd
    evaluate`` and ``stgkd export`` take it), ``metrics.json`` its validation (and test) metrics."""
    import time

    import numpy as np

    from stgkd.data.rebuild import data_meta
    from stgkd.engine.checkpoint import FORMAT, save_checkpoint
    from stgkd.engine.evaluate import evaluate_split

    cfg = with_epochs(cfg, len(prepared.train))  # nothing iterates, but the checkpoint reads like any other
    started = time.perf_counter()
    model.fit(prepared).eval()
    seconds = time.perf_counter() - started

    def score(split: str) -> dict[str, Any]:
        metrics = evaluate_split(model, prepared.get_split(split), prepared.scaler, device=ctx.device,
                                 batch_size=cfg.eval_batch,
                                 interval_minutes=int(prepared.data.interval_minutes))
        return {k: v for k, v in metrics.items() if k != "per_step"}

    val = score("val")
    result = TrainResult(model=model, data=prepared, best_epoch=0, best_val=val, epochs_run=0, stopped_early=False,
                         history=[], seconds=seconds, train_config=cfg, out=out, rank=ctx.rank)
    if evaluate_test:
        result.test = score("test")
        if baselines and ctx.is_main:
            result.baselines = score_baselines(prepared, "test")
    if out is not None and ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT, "role": model.role, "model": model.config(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "graph": torch.as_tensor(np.asarray(prepared.adj), dtype=torch.float32),
            "scaler": {"mean": float(prepared.scaler.mean), "std": float(prepared.scaler.std)},
            "data": data_meta(prepared), "metrics": val, "epoch": 0, "complete": True,
            "train_config": cfg.to_dict(), "history": [],
            "best": {"epoch": 0, "val_mae": result.best_val_mae, "metrics": val},
        }
        result.best_path = save_checkpoint([out / "best.pt", out / "last.pt"], payload)
        result.last_path = out / "last.pt"
        summary: dict[str, Any] = {"fitted": "on the training slice, without gradient steps", "val": val}
        if result.test is not None:
            summary["test"] = result.test
        if result.baselines is not None:
            summary["baselines"] = result.baselines.to_dict()
            summary["worse_than_best_baseline"] = [
                s.to_dict() for s in compare_with_baselines(model.registry_name, result.test, result.baselines)]
        (out / "metrics.json").write_text(json.dumps(to_jsonable(summary), indent=2) + "\n")
    return result


def _config_for_resume(payload: dict, config: TrainConfig | None) -> TrainConfig:
    """The run's own settings, except ``epochs`` and ``device`` which the caller may change."""
    saved = TrainConfig.from_dict(dict(payload["train_config"]))
    if config is None:
        return replace(saved, device=None)
    return replace(saved, epochs=config.epochs, device=config.device)


# --------------------------------------------------------------------------- recipes


def train_model(
    dataset: str | Path | TrafficData,
    model: str = DEFAULT_TEACHER,
    out: str | Path | None = None,
    *,
    hparams: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    data_dir: str | Path | None = None,
    in_steps: int = 12,
    out_steps: int = 12,
    split: Sequence[float] | None = None,
    time_of_day: bool = True,
    day_of_week: bool | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    log: bool = True,
    evaluate_test: bool = False,
    missing: MissingSpec = None,
    baselines: bool = False,
    seasonal: Sequence[str] | None = None,
) -> TrainResult:
    """Train a registered model (a teacher, or a student on its own) with the masked MAE in raw units.

    Args:
        dataset: a registered dataset name (``"metr-la"``, ``"synthetic"``), a path, or a
            :class:`TrafficData`.
        model: registered model name (default: :data:`~stgkd.nn.DEFAULT_TEACHER`, ``"graph-wavenet"``).
        out: run directory for ``best.pt``, ``last.pt``, ``log.jsonl``, ``metrics.json`` (and
            ``tensorboard/``); ``None`` writes nothing.
        hparams: model hyperparameters (default: the model's defaults).
        config: optimisation settings (default: ``TrainConfig()``).
        data_dir: root of registered datasets (default: ``$STGKD_DATA`` or ``<repo>/datasets``).
        in_steps, out_steps: window lengths (default: 12 and 12).
        split: train/val/test fractions (default: the dataset's).
        time_of_day, day_of_week: time features appended to the input (default: True, and the day of week
            where the series allows a week-long season by default, :func:`~stgkd.data.features.default_seasons`:
            three weeks of data at ten minutes or more, e.g. a month of hourly counts).
        resume: continue from ``out/last.pt`` (its model, data and settings; ``config.epochs`` and
            ``config.device`` may differ); a fresh run when there is none.
        overwrite: start again in an ``out`` that already holds a run.
        callbacks: extra callbacks (e.g. the tuner's pruning callback), called after the built-in ones.
        progress: show the progress bar and per-epoch summary lines on stderr.
        log: write ``log.jsonl`` (and TensorBoard scalars when ``tensorboard`` is installed).
        evaluate_test: also compute test-split metrics of the best weights.
        missing: which readings are missing when ``dataset`` is a name or a path: ``"zero"``,
            ``"nan"``, ``"none"`` or a sentinel number (:mod:`stgkd.missing`; default: the
            dataset's convention, or the resumed run's). Recorded in the checkpoints.
        baselines: with ``evaluate_test``, also score the baselines on the same test targets
            (:func:`~stgkd.engine.baselines.score_baselines`: ``TrainResult.baselines``, and
            ``metrics.json``'s ``baselines`` and ``worse_than_best_baseline``).
        seasonal: seasons whose seasonal-lag input channels to add (``("day",)``: yesterday's readings at
            the forecast steps; :func:`~stgkd.data.prepare`); ``()`` for none (default: ``None``, the model
            family's :attr:`~stgkd.nn.base.ForecastModel.default_seasons` that the series allows,
            :func:`~stgkd.data.features.default_seasons`). Recorded in the checkpoints' input features, so
            evaluation and export rebuild them.

    Returns:
        :class:`TrainResult`.

    Raises:
        ConfigError: bad settings, an unknown model or hyperparameter, an existing run without
            ``resume``/``overwrite``. DataError: the dataset cannot be loaded or prepared.
        CheckpointError: ``out/last.pt`` is corrupt.
    """
    out_dir, payload = _run_dir(out, resume=resume, overwrite=overwrite)
    cfg = _config_for_resume(payload, config) if payload is not None else (config or TrainConfig())
    ctx = init_distributed(cfg.device)
    try:
        if payload is not None and missing is None and not isinstance(dataset, TrafficData):
            missing = payload["data"].get("missing", "zero")  # the resumed run's convention
        data = load_data(dataset, data_dir=data_dir, missing=missing)
        if payload is not None:
            if payload["model"]["name"] != _canonical_model(model):
                raise ConfigError(
                    f"{out_dir / 'last.pt'} trains {payload['model']['name']!r}, not {model!r}; drop --resume or use "
                    "another --out"
                )
            prepared = prepare_from_meta(payload["data"], dataset=data, device=ctx.device)
        else:
            if seasonal is None:
                notes: list[str] = []
                seasonal = default_seasons(_model_class(model).default_seasons, data.interval_minutes,
                                           data.num_steps, in_steps, notes)
                for note in notes if ctx.is_main else ():
                    print(f"note: {data.name}: {note}", file=sys.stderr)
            if day_of_week is None:  # where a week is a season the series allows, the weekday is worth reading
                day_of_week = bool(default_seasons(("week",), data.interval_minutes, data.num_steps, in_steps))
            prepared = prepare_data(data, in_steps=in_steps, out_steps=out_steps, split=split, input_features=None,
                                    time_of_day=time_of_day, day_of_week=day_of_week, device=ctx.device,
                                    seasonal=seasonal)
        return _fit(
            build_model=_model_builder(model, prepared, hparams or {}, payload, role="model"),
            build_step=lambda m: SupervisedStep(m, prepared.scaler, ctx=ctx, amp=cfg.amp, loss=cfg.loss),
            prepared=prepared, cfg=cfg, ctx=ctx, out=out_dir, payload=payload, meta={},
            callbacks=callbacks, progress=progress, log=log, evaluate_test=evaluate_test, baselines=baselines,
        )
    finally:
        shutdown(ctx)


def _model_class(name: str) -> type:
    from stgkd.nn import MODELS

    return MODELS.get(name)


def _canonical_model(name: str) -> str:
    return _model_class(name).registry_name


def distill_student(
    teacher: str | Path | Sequence[str | Path],
    student: str = DEFAULT_STUDENT,
    out: str | Path | None = None,
    *,
    hparams: dict[str, Any] | None = None,
    distill: Any = None,
    config: TrainConfig | None = None,
    dataset: str | Path | TrafficData | None = None,
    data_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    log: bool = True,
    evaluate_test: bool = False,
    cache: Any = None,
    missing: MissingSpec = None,
    baselines: bool = False,
    feature_teacher: str | Path | None = None,
    seasonal: Sequence[str] | None = None,
) -> TrainResult:
    """Distill a trained teacher, or an ensemble of several, into a student.

    The data (series, split, window lengths, input features) is the teacher's, rebuilt from its
    checkpoint, unless ``dataset`` is given (same sensors required). The teacher runs once over
    the training windows to fill a :class:`~stgkd.distill.TeacherCache` (forecasts plus the
    features the loss reads); training then only looks them up. With ``w_out = w_feat = w_rel = 0``
    no teacher output is used and the student is trained exactly as :func:`train_model` would
    train it (same loss in raw units, same seed, same result).

    Besides the usual logs, every epoch records the student's fidelity to the teacher on the
    validation windows (``val_fidelity_mae``: masked MAE to the teacher's forecasts, which are
    computed once per run), a staged run (``DistillConfig.stages``) its ``stage``, and the first
    and last epochs each loss term's share of the gradient norm (``grad_share``); ``metrics.json``
    repeats the best epoch's fidelity and the two gradient records.

    Several teachers (all trained on the same data: a DataError names the two files otherwise) are
    distilled as one :class:`~stgkd.distill.TeacherEnsemble`: their forecasts combined by
    ``DistillConfig.teacher_combine`` (weights from their validation errors, computed once), the
    features, relations and adaptive adjacency those of ``feature_teacher``, everything cached once.
    The checkpoints and ``metrics.json`` record the members, the combination and its weights
    (``"teachers"``); ``teacher_checkpoint`` is the feature teacher.

    Args:
        teacher: path of the teacher's checkpoint (``best.pt``), or several paths (an ensemble).
        student: registered student name (default: :data:`~stgkd.nn.DEFAULT_STUDENT`, ``"stgru"``, the most accurate student on the METR-LA
            week at about a tenth of ``"dcgru"``'s FLOPs).
        out: run directory (as in :func:`train_model`); ``None`` writes nothing.
        hparams: the student's hyperparameters (``{"hidden": 32}``; default: its family's).
        distill: a :class:`~stgkd.distill.DistillConfig` or a dict of its fields (default: its defaults).
        config: optimisation settings (default: ``TrainConfig()``).
        dataset: dataset override (name, path or :class:`TrafficData`).
        data_dir: root of registered datasets.
        resume, overwrite, callbacks, progress, log, evaluate_test, baselines: as in :func:`train_model`.
        cache: a :class:`~stgkd.distill.TeacherCache` of this teacher over this training split, to
            distill several students without running the teacher again (it must hold the features the
            loss reads); or a function returning one, called only if the loss needs the teacher
            (default: ``None``, build one here).
        missing: the missing-value convention to read ``dataset`` with; the teacher's (the default),
            since the student learns from the same readings.
        feature_teacher: with several teachers, the one (a path among ``teacher``) whose features and
            relations the loss reads (default: the first).
        seasonal: seasons whose seasonal-lag channels the student also reads, ``()`` for none (as in
            :func:`train_model`; default: the student family's that the series allows; a resumed run keeps
            its own). The teacher still reads only the channels it was trained with
            (:class:`~stgkd.nn.base.SelectInputs`).

    Returns:
        :class:`TrainResult` with ``distill`` (resolved settings) and ``teacher_checkpoint`` set.
    """
    from stgkd.engine.teachers import check_teacher_statistics, load_teachers

    teacher_paths = [Path(t).resolve() for t in ([teacher] if isinstance(teacher, (str, Path)) else teacher)]
    if not teacher_paths:
        raise ConfigError("distill_student: no teacher checkpoint given")
    teacher_payload = load_checkpoint(teacher_paths[0])
    out_dir, payload = _run_dir(out, resume=resume, overwrite=overwrite)
    cfg, dcfg = _distill_settings(payload, config, distill, teacher_paths=teacher_paths, out_dir=out_dir)
    ctx = init_distributed(cfg.device)
    try:
        if payload is not None:
            seasonal = seasons_of(payload["data"]["input_features"])  # the resumed student's own inputs
        by_default = _model_class(student).default_seasons if seasonal is None else ()
        prepared = prepare_from_meta(teacher_payload["data"], dataset=dataset, data_dir=data_dir, device=ctx.device,
                                     missing=missing, seasonal=seasonal or (), seasons_by_default=by_default)
        check_teacher_statistics(prepared.scaler, teacher_payload["scaler"])
        teacher_features = list(teacher_payload["data"]["input_features"])
        teachers = load_teachers(teacher_paths, prepared=prepared.select_features(teacher_features),
                                 combine=dcfg.teacher_combine, feature_teacher=feature_teacher, device=ctx.device,
                                 batch_size=cfg.eval_batch)
        teacher_model = SelectInputs.for_features(teachers.model, prepared.input_features, teacher_features,
                                                  where=f"teacher {teacher_paths[0]}")
        student_hparams = dict(hparams or {})
        meta: dict[str, Any] = {"teacher_checkpoint": str(teachers.feature_teacher)}
        if teachers.record is not None:
            meta["teachers"] = teachers.record
        recent = recent_windows(cfg, prepared.data.interval_minutes)
        first_window = len(prepared.train) - recent if recent is not None and recent < len(prepared.train) else 0

        def build_step(model: nn.Module) -> nn.Module:
            step, resolved = make_distill_step(
                model, teacher_model, prepared, dcfg, device=ctx.device, amp=cfg.amp, ctx=ctx, cache=cache,
                cache_batch_size=cfg.eval_batch, first_window=first_window,
            )
            meta["distill"] = resolved.to_dict()
            return step

        return _fit(
            build_model=_model_builder(student, prepared, student_hparams, payload, role="student"),
            build_step=build_step, prepared=prepared, cfg=cfg, ctx=ctx, out=out_dir, payload=payload, meta=meta,
            callbacks=callbacks, progress=progress, log=log, evaluate_test=evaluate_test, baselines=baselines,
            run_callbacks=_distill_callbacks(dcfg, teacher_model, prepared, cfg, ctx, meta),
        )
    finally:
        shutdown(ctx)


def _model_builder(name: str, prepared: Any, hparams: dict[str, Any], payload: dict | None, *, role: str):
    """The function :func:`_fit` builds the model with: the resumed run's model (its config), or the
    registered ``name`` for ``prepared`` with ``hparams`` (a bad hyperparameter is a ConfigError naming
    the ``role``)."""
    from stgkd.nn import MODELS, build_for, from_config

    if role == "student" and getattr(MODELS.get(name), "role", None) == "baseline":
        raise ConfigError(f"student {name!r} is a baseline: it is fitted, not distilled (stgkd train --model {name})")
    if payload is not None:
        return lambda: from_config(payload["model"], prepared.adj)

    def build() -> nn.Module:
        try:
            return build_for(name, prepared, **hparams)
        except TypeError as exc:
            raise ConfigError(f"{role} {name!r}: {exc}") from None

    return build


def _distill_settings(payload: dict | None, config: TrainConfig | None, distill: Any, *, teacher_paths: list[Path],
                      out_dir: Path | None) -> tuple[TrainConfig, Any]:
    """The optimisation and distillation settings of a run: the resumed run's own (as its code meant
    them), else ``config`` and ``distill`` (a DistillConfig, a dict of its fields, or ``None``)."""
    from stgkd.distill import DistillConfig

    if payload is None:
        if distill is None:
            dcfg = DistillConfig()
        elif isinstance(distill, dict):
            dcfg = DistillConfig.from_dict(distill)
        else:
            dcfg = distill
        return config or TrainConfig(), dcfg
    cfg = _config_for_resume(payload, config)
    if "distill" not in payload:
        raise CheckpointError(f"{out_dir / 'last.pt'} is not a distillation run; use `stgkd train --resume`")
    dcfg = DistillConfig.from_checkpoint(payload["distill"])  # a run saved before a field existed keeps its meaning
    saved = payload.get("teachers", {}).get("members") or [payload.get("teacher_checkpoint")]
    saved = [Path(p) for p in saved if p]
    if saved and saved != teacher_paths:
        print(f"note: resuming with teachers {[str(p) for p in teacher_paths]} (the run started with "
              f"{[str(p) for p in saved]})", file=sys.stderr)
    return cfg, dcfg


def _distill_callbacks(dcfg: Any, teacher: nn.Module, prepared: Any, cfg: TrainConfig, ctx: DistContext,
                       meta: dict[str, Any]) -> list[Any]:
    """A distillation run's own callbacks: its stages (when staged), the student's fidelity to the
    teacher's validation forecasts (computed once, in raw units; the teacher's own validation MAE goes to
    ``meta["teacher_val_mae"]``) and each term's gradient share."""

    def teacher_val_forecast() -> Tensor:
        from stgkd.engine.evaluate import predict_split

        fc = predict_split(teacher, prepared.val, prepared.scaler, device=ctx.device,
                           batch_size=cfg.eval_batch)
        pred = torch.from_numpy(fc.pred)
        meta["teacher_val_mae"] = float(masked_mae(pred, torch.from_numpy(fc.true), torch.from_numpy(fc.mask)))
        return pred

    stages: list[Any] = [DistillStages(dcfg.stages)] if dcfg.stages else []
    cost: list[Any] = [TeacherCost()] if dcfg.augment else []
    return stages + cost + [Fidelity(teacher_val_forecast), GradientShare()]
