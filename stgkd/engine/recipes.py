"""Training runs: :func:`run` carries out a :class:`~stgkd.engine.spec.RunSpec`; :func:`train_model` and
:func:`distill_student` build one from their arguments (the two ways to train, as functions).

The ``train`` / ``distill`` commands, the demo and the benchmarks all come here. A run's steps
compose the data layer (:mod:`stgkd.data.rebuild`: the series, its windows, or those a checkpoint was
trained on) with the training steps (:mod:`stgkd.engine.steps`) and the loop. Each
prepares the data, seeds, builds the model, assembles the callbacks (early stopping, checkpoints,
JSON-lines log, TensorBoard when installed, progress bar, plus the caller's), resumes from
``out/last.pt`` when asked, runs :class:`~stgkd.engine.trainer.Trainer` (under ``torchrun``: one
rank of a DistributedDataParallel run) and returns a :class:`TrainResult` holding the model with
its best validation weights.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from stgkd.data.core import TrafficData
from stgkd.data.features import default_seasons
from stgkd.data.rebuild import load_data, prepare_data, prepare_from_meta
from stgkd.data.windows import seasons_of
from stgkd.engine.callbacks import DistillStages, Fidelity, GradientShare, TeacherCost
from stgkd.engine.checkpoint import load_checkpoint
from stgkd.engine.distributed import DistContext, init_distributed, shutdown
from stgkd.engine.fitting import config_for_resume, fit_run, run_dir
from stgkd.engine.result import TrainResult
from stgkd.engine.spec import DataSpec, RunSpec
from stgkd.engine.steps import SupervisedStep, make_distill_step
from stgkd.engine.trainer import TrainConfig, recent_windows
from stgkd.errors import CheckpointError, ConfigError
from stgkd.metrics import masked_mae
from stgkd.missing import MissingSpec
from stgkd.nn.base import SelectInputs
from stgkd.nn.registry import DEFAULT_STUDENT, DEFAULT_TEACHER

__all__ = [
    "DataSpec",
    "RunSpec",
    "TrainResult",
    "run",
    "train_model",
    "distill_student",
]



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
    spec = RunSpec(model, hparams or {}, DataSpec(dataset, data_dir, missing, in_steps, out_steps, split, time_of_day,
                                                  day_of_week, seasonal), config)
    return run(spec, out, resume=resume, overwrite=overwrite, callbacks=callbacks, progress=progress, log=log,
               evaluate_test=evaluate_test, baselines=baselines)


def run(
    spec: RunSpec,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    log: bool = True,
    evaluate_test: bool = False,
    baselines: bool = False,
    cache: Any = None,
    prepared: Any = None,
    teacher: nn.Module | None = None,
    diagnostics: bool = True,
    record: dict[str, Any] | None = None,
    given: Collection[str] | None = None,
) -> TrainResult:
    """Carry out a :class:`~stgkd.engine.spec.RunSpec`: the one entry point of every training run.

    It alone resumes (``out/last.pt``: the run's own model, data and settings, but ``epochs`` and
    ``device``; settings given that differ are named in a note and ignored), evaluates (validation each
    epoch, test and the baselines with ``evaluate_test``/``baselines``) and writes the run directory
    (``best.pt``, ``last.pt``, ``log.jsonl``, ``metrics.json``). :func:`train_model` and
    :func:`distill_student` build a spec from their arguments and call it.

    Args:
        spec: the run.
        out: run directory; ``None`` writes nothing.
        resume: continue from ``out/last.pt`` (a fresh run when there is none).
        overwrite: start again in an ``out`` that already holds a run.
        callbacks: extra callbacks, called after the built-in ones.
        progress: the progress bar and per-epoch lines on stderr.
        log: write ``log.jsonl`` (and TensorBoard scalars when installed).
        evaluate_test: also compute the test metrics of the best weights.
        baselines: with ``evaluate_test``, also score the baselines on the same test targets.
        cache: for a distillation, a :class:`~stgkd.distill.TeacherCache` (or a function building one) to
            reuse instead of running the teacher over the training windows.
        prepared: the spec's data already prepared (a :class:`~stgkd.data.PreparedData`, for a distillation
            with the student's input features), for callers that run many specs on the same windows (a
            study's trials); the spec's ``data`` is then not read.
        teacher: for a distillation, the frozen teacher already loaded from ``spec.teachers`` and reading
            ``prepared``'s input features (:class:`~stgkd.nn.base.SelectInputs`); with ``prepared`` only.
        diagnostics: a distillation's per-epoch fidelity to the teacher and the gradient shares of its terms
            (each costs a teacher forward over the validation windows or extra backward passes; a study's
            trials leave them out).
        record: more entries for the checkpoints (e.g. the study and trial a run belongs to).
        given: the ``spec.train`` fields the caller set (a command line's flags): on resume, those that differ
            from the run's own are named in the note (default: those that are not the default).

    Returns:
        :class:`TrainResult`.
    """
    if teacher is not None and (prepared is None or not spec.distills):
        raise ConfigError("run: a loaded teacher is given with the prepared data of a distillation only")
    out_dir, payload = run_dir(out, resume=resume, overwrite=overwrite)
    if payload is not None and prepared is not None:
        raise ConfigError(f"run: {out_dir / 'last.pt'} resumes on its own data; pass no prepared data")
    cfg = config_for_resume(payload, spec.train, out_dir, given) if payload is not None else (spec.train or TrainConfig())
    fit = dict(callbacks=callbacks, progress=progress, log=log, evaluate_test=evaluate_test, baselines=baselines)
    if spec.distills:
        return _distill_run(spec, cfg, out_dir, payload, cache=cache, prepared=prepared, teacher=teacher,
                            diagnostics=diagnostics, record=record or {}, **fit)
    return _train_run(spec, cfg, out_dir, payload, prepared=prepared, record=record or {}, **fit)


def _train_run(spec: RunSpec, cfg: TrainConfig, out_dir: Path | None, payload: dict | None, *, prepared: Any,
               record: dict[str, Any], **fit: Any) -> TrainResult:
    """A plain run of :func:`run`."""
    model, d = spec.model, spec.data
    missing, seasonal, day_of_week = d.missing, d.seasonal, d.day_of_week
    ctx = init_distributed(cfg.device)
    try:
        if payload is not None and missing is None and not isinstance(d.dataset, TrafficData):
            missing = payload["data"].get("missing", "zero")  # the resumed run's convention
        if payload is not None:
            if payload["model"]["name"] != _canonical_model(model):
                raise ConfigError(
                    f"{out_dir / 'last.pt'} trains {payload['model']['name']!r}, not {model!r}; drop --resume or use "
                    "another --out"
                )
            prepared = prepare_from_meta(payload["data"], dataset=load_data(d.dataset, data_dir=d.data_dir,
                                                                            missing=missing), device=ctx.device)
        elif prepared is None:
            data = load_data(d.dataset, data_dir=d.data_dir, missing=missing)
            if seasonal is None:
                notes: list[str] = []
                seasonal = default_seasons(_model_class(model).default_seasons, data.interval_minutes,
                                           data.num_steps, d.in_steps, notes)
                for note in notes if ctx.is_main else ():
                    print(f"note: {data.name}: {note}", file=sys.stderr)
            if day_of_week is None:  # where a week is a season the series allows, the weekday is worth reading
                day_of_week = bool(default_seasons(("week",), data.interval_minutes, data.num_steps, d.in_steps))
            prepared = prepare_data(data, in_steps=d.in_steps, out_steps=d.out_steps, split=d.split,
                                    input_features=None, time_of_day=d.time_of_day, day_of_week=day_of_week,
                                    device=ctx.device, seasonal=seasonal)
        return fit_run(
            build_model=_model_builder(model, prepared, spec.hparams, payload, role="model"),
            build_step=lambda m: SupervisedStep(m, prepared.scaler, ctx=ctx, amp=cfg.amp, loss=cfg.loss),
            prepared=prepared, cfg=cfg, ctx=ctx, out=out_dir, payload=payload, meta=dict(record), **fit,
        )
    finally:
        shutdown(ctx)


def _distill_run(spec: RunSpec, cfg: TrainConfig, out_dir: Path | None, payload: dict | None, *, cache: Any,
                 prepared: Any, teacher: nn.Module | None, diagnostics: bool, record: dict[str, Any],
                 **fit: Any) -> TrainResult:
    """A distillation of :func:`run` (see :func:`distill_student`)."""
    from stgkd.engine.teachers import check_teacher_statistics, load_teachers

    teacher_paths = list(spec.teachers)
    dcfg = _distill_settings(payload, spec.distill, teacher_paths=teacher_paths, out_dir=out_dir)
    d, seasonal = spec.data, spec.data.seasonal
    ctx = init_distributed(cfg.device)
    try:
        meta: dict[str, Any] = dict(record)
        if teacher is not None:  # a study's: loaded once, on the prepared windows
            teacher_model = teacher
            meta["teacher_checkpoint"] = str(teacher_paths[0])
        else:
            teacher_payload = load_checkpoint(teacher_paths[0])
            if payload is not None:
                seasonal = seasons_of(payload["data"]["input_features"])  # the resumed student's own inputs
            if prepared is None:
                by_default = _model_class(spec.model).default_seasons if seasonal is None else ()
                prepared = prepare_from_meta(teacher_payload["data"], dataset=d.dataset, data_dir=d.data_dir,
                                             device=ctx.device, missing=d.missing, seasonal=seasonal or (),
                                             seasons_by_default=by_default)
            check_teacher_statistics(prepared.scaler, teacher_payload["scaler"])
            teacher_features = list(teacher_payload["data"]["input_features"])
            teachers = load_teachers(teacher_paths, prepared=prepared.select_features(teacher_features),
                                     combine=dcfg.teacher_combine, feature_teacher=spec.feature_teacher,
                                     device=ctx.device, batch_size=cfg.eval_batch)
            teacher_model = SelectInputs.for_features(teachers.model, prepared.input_features, teacher_features,
                                                      where=f"teacher {teacher_paths[0]}")
            meta["teacher_checkpoint"] = str(teachers.feature_teacher)
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

        return fit_run(
            build_model=_model_builder(spec.model, prepared, spec.hparams, payload, role="student"),
            build_step=build_step, prepared=prepared, cfg=cfg, ctx=ctx, out=out_dir, payload=payload, meta=meta,
            run_callbacks=_distill_callbacks(dcfg, teacher_model, prepared, cfg, ctx, meta, diagnostics=diagnostics),
            **fit,
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
    from stgkd.distill import DistillConfig

    teachers = [teacher] if isinstance(teacher, (str, Path)) else list(teacher)
    if not teachers:
        raise ConfigError("distill_student: no teacher checkpoint given")
    spec = RunSpec(student, hparams or {}, DataSpec(dataset, data_dir, missing, seasonal=seasonal), config,
                   teachers=tuple(teachers), feature_teacher=feature_teacher,
                   distill=DistillConfig.from_dict(distill) if isinstance(distill, Mapping) else distill)
    return run(spec, out, resume=resume, overwrite=overwrite, callbacks=callbacks, progress=progress, log=log,
               evaluate_test=evaluate_test, baselines=baselines, cache=cache)


def _model_builder(name: str, prepared: Any, hparams: dict[str, Any], payload: dict | None, *, role: str):
    """The function :func:`~stgkd.engine.fitting.fit_run` builds the model with: the resumed run's model (its config), or the
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


def _distill_settings(payload: dict | None, distill: Any, *, teacher_paths: list[Path], out_dir: Path | None) -> Any:
    """The distillation settings of a run: the resumed run's own (as its code meant them), else ``distill``
    (a DistillConfig, or ``None`` for its defaults)."""
    from stgkd.distill import DistillConfig

    if payload is None:
        return distill if distill is not None else DistillConfig()
    if "distill" not in payload:
        raise CheckpointError(f"{out_dir / 'last.pt'} is not a distillation run; use `stgkd train --resume`")
    dcfg = DistillConfig.from_checkpoint(payload["distill"])  # a run saved before a field existed keeps its meaning
    saved = payload.get("teachers", {}).get("members") or [payload.get("teacher_checkpoint")]
    saved = [Path(p) for p in saved if p]
    if saved and saved != teacher_paths:
        print(f"note: resuming with teachers {[str(p) for p in teacher_paths]} (the run started with "
              f"{[str(p) for p in saved]})", file=sys.stderr)
    return dcfg


def _distill_callbacks(dcfg: Any, teacher: nn.Module, prepared: Any, cfg: TrainConfig, ctx: DistContext,
                       meta: dict[str, Any], *, diagnostics: bool = True) -> list[Any]:
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
    return stages + cost + ([Fidelity(teacher_val_forecast), GradientShare()] if diagnostics else [])
