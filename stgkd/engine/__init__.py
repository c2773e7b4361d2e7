"""Training: the steps (:mod:`~stgkd.engine.steps`: supervised and distillation), one plain loop with
callbacks, checkpoints, distributed helpers, evaluation, the run specification (:class:`RunSpec`) that
:func:`run` carries out, and the ``train_model`` / ``distill_student`` recipes that build one (the data
layer's :mod:`stgkd.data.rebuild` composed with the steps and the loop)."""

from __future__ import annotations

from stgkd.engine.callbacks import (
    Callback,
    Checkpointing,
    DistillStages,
    EarlyStopping,
    Fidelity,
    GradientShare,
    JSONLinesLogger,
    LambdaCallback,
    ProgressBar,
    TensorBoard,
    TimeLimit,
)
from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from stgkd.engine.evaluate import HorizonAccumulator, evaluate_split
from stgkd.data.rebuild import prepare_from_meta
from stgkd.engine.recipes import TrainResult, distill_student, run, train_model
from stgkd.engine.spec import DataSpec, RunSpec
from stgkd.engine.steps import DistillStep, SupervisedStep, make_distill_step
from stgkd.engine.trainer import SCHEDULES, TrainConfig, Trainer, seed_everything

__all__ = [
    "SCHEDULES",
    "Callback",
    "DataSpec",
    "Checkpointing",
    "DistillStep",
    "DistillStages",
    "EarlyStopping",
    "Fidelity",
    "GradientShare",
    "HorizonAccumulator",
    "JSONLinesLogger",
    "LambdaCallback",
    "SupervisedStep",
    "ProgressBar",
    "RunSpec",
    "TensorBoard",
    "TrainConfig",
    "TrainResult",
    "TimeLimit",
    "Trainer",
    "distill_student",
    "evaluate_split",
    "load_checkpoint",
    "make_distill_step",
    "model_from_checkpoint",
    "prepare_from_meta",
    "run",
    "save_checkpoint",
    "seed_everything",
    "train_model",
]
