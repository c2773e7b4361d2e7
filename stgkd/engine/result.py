"""What a training run returns: :class:`TrainResult`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from stgkd.engine.trainer import TrainConfig

__all__ = ["TrainResult"]


@dataclass
class TrainResult:
    """What :func:`~stgkd.engine.recipes.train_model` and :func:`~stgkd.engine.recipes.distill_student` return.

    Attributes:
        model: the trained model with its best validation weights, in eval mode, on the training
            device.
        data: the :class:`~stgkd.data.PreparedData` it was trained on.
        best_epoch: epoch (1-based) of the best validation masked MAE.
        best_val: validation metrics of that epoch (``{"15min": {...}, ..., "avg": {...}}``).
        best_val_mae: ``best_val["avg"]["mae"]``.
        epochs_run: last completed epoch.
        stopped_early: whether early stopping (or a callback) ended the run before ``epochs``.
        history: per-epoch logs (losses, validation metrics, lr, seconds), resumed epochs included.
        seconds: wall time of this call's training loop.
        epoch_seconds: seconds of each epoch (training + validation), from ``history``.
        train_config: the settings used.
        out: run directory (``None``: nothing written).
        best_path, last_path: ``out/best.pt`` and ``out/last.pt`` when written.
        resumed_from: the completed epoch training resumed after (``0``: fresh start).
        distill: the resolved distillation settings (students from :func:`distill_student` only).
        teacher_checkpoint: path of the teacher checkpoint (:func:`distill_student` only).
        test: test-split metrics when asked for with ``evaluate_test=True``.
        baselines: the baselines on the same test targets when asked for with ``baselines=True``
            (:class:`~stgkd.engine.baselines.BaselineScores`).
        rank: this process's rank (0 unless run under ``torchrun``).
    """

    model: nn.Module
    data: Any
    best_epoch: int
    best_val: dict[str, Any]
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]]
    seconds: float
    train_config: TrainConfig
    out: Path | None = None
    best_path: Path | None = None
    last_path: Path | None = None
    resumed_from: int = 0
    distill: dict[str, Any] | None = None
    teacher_checkpoint: str | None = None
    test: dict[str, Any] | None = None
    rank: int = 0
    baselines: Any = None

    @property
    def best_val_mae(self) -> float:
        return float(self.best_val.get("avg", {}).get("mae", math.nan))

    @property
    def epoch_seconds(self) -> list[float]:
        return [float(h["seconds"]) for h in self.history]

    @property
    def grad_share(self) -> dict[str, Any]:
        """``{"first": record, "last": record}``: each loss term's share of the gradient norm at the
        end of the first and the last epoch (:class:`~stgkd.engine.callbacks.GradientShare`; distilled
        students only, else ``{}``)."""
        records = [h["grad_share"] for h in self.history if "grad_share" in h]
        return {"first": records[0], "last": records[-1]} if records else {}
