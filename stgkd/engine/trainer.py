"""One plain training loop; everything optional happens in callbacks.

Per epoch: iterate the training windows (this rank's shard of a permutation seeded by
``seed + epoch``), compute the loss **in raw units** (``pred_raw = scaler.inverse_transform(model(x))``
against ``batch.y`` under ``batch.mask``; or a distillation objective), AdamW step with gradient
clipping, bf16 autocast on CUDA (with loss scaling where a recurrent layer computes in fp16,
:func:`stgkd.precision.grad_scaler`); then validate (dataset-level masked metrics), step the
learning-rate schedule and hand ``logs`` to every callback's ``on_epoch_end(trainer, epoch, logs)``.
Early stopping, checkpoints, logging, progress bars and Optuna pruning are callbacks
(:mod:`stgkd.engine.callbacks`).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.data.rebuild import data_meta
from stgkd.engine.checkpoint import FORMAT, capture_rng_state, restore_rng_state
from stgkd.engine.distributed import DistContext, all_reduce_sum, epoch_indices, resolve_device, wrap_ddp
from stgkd.engine.evaluate import evaluate_split
from stgkd.engine.steps import SupervisedStep
from stgkd.errors import CheckpointError, ConfigError
from stgkd.files import to_jsonable
from stgkd.metrics import LOSSES
from stgkd.precision import grad_scaler
from stgkd.registry import Registry
from stgkd.settings import flag

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MIN_STEPS",
    "TrainConfig",
    "Trainer",
    "default_epochs",
    "recent_windows",
    "SCHEDULES",
    "seed_everything",
    "with_epochs",
    "with_model_lr",
]

#: the learning rate of a model family that declares none (:attr:`stgkd.nn.base.ForecastModel.default_lr`)
DEFAULT_LR = 1e-3


@dataclass
class TrainConfig:
    """Optimisation settings; serialised into every checkpoint as ``train_config``.

    Args:
        epochs: maximum number of epochs; ``None`` for :func:`default_epochs`: 100, or enough for
            :data:`DEFAULT_MIN_STEPS` optimiser steps where an epoch is a handful of batches (a month of
            hourly counts: 8 batches, 200 epochs) (default: ``None``).
        batch_size: windows per optimiser step, per process (default: ``64``).
        eval_batch_size: windows per forward pass when evaluating and when the teacher labels the training
            windows (default: ``None``, :attr:`eval_batch`: ``batch_size``, at least 64).
        lr: AdamW learning rate; ``None`` for the model family's ``default_lr`` (:func:`with_model_lr`:
            1e-2 for ``stgru``, 1e-3 for the others) (default: ``None``).
        weight_decay: AdamW decoupled weight decay (default: ``1e-4``).
        schedule: learning-rate schedule, one of :data:`SCHEDULES`: ``"cosine"`` (to
            ``lr * min_lr_ratio`` at the last epoch), ``"multistep"`` (times ``gamma`` at each of
            ``milestones``, default 50% and 75% of ``epochs``) or ``"constant"`` (default: ``"cosine"``).
        min_lr_ratio: final learning rate of the cosine schedule, relative to ``lr`` (default: ``0.01``).
        milestones: epochs at which ``"multistep"`` decays (default: ``()`` = 50%/75% of ``epochs``).
        gamma: ``"multistep"`` decay factor (default: ``0.1``).
        clip_grad: maximum global gradient norm, ``0`` to disable (default: ``5.0``).
        patience: epochs without a better validation MAE before early stopping, ``0`` to disable
            (default: ``10``).
        seed: seed of python, numpy and torch RNGs and of the epoch permutations (default: ``0``).
        deterministic: ask torch for deterministic kernels (slower on CUDA) (default: ``False``).
        amp: bf16 autocast of the forward pass on CUDA, and loss scaling for models whose recurrent layers
            cuDNN runs in fp16 under it (:func:`stgkd.precision.grad_scaler`); ignored on CPU (default: ``True``).
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``...; ``None`` = CUDA when present (default: ``None``).
        limit_batches: stop each training epoch after this many batches (default: ``None`` = all).
        train_windows: train on only the last this many windows of the training split, the most
            recent data (data-budget studies: how a method fares with one day of history instead of
            five); validation and test are unchanged (default: ``None`` = all).
        train_days: the same in days of data: the last ``round(train_days * steps a day)`` windows,
            steps a day from the data's interval (``stgkd train/distill --train-days D``); exclusive
            with ``train_windows`` (default: ``None`` = all).
        loss: the supervised loss of a plain run, one of :data:`stgkd.metrics.LOSSES`: ``"mae"`` (what
            the scores measure; its optimum is the conditional median), ``"mse"`` or ``"huber"``
            (default: ``"mae"``).
    """

    epochs: int | None = flag(None, "maximum epochs (default: 100, or enough for 1,600 optimiser steps where an epoch "
                                    "is a handful of batches)", type=int)
    batch_size: int = flag(64, "windows per step, per process")
    eval_batch_size: int | None = flag(None, "windows per forward pass without gradients: validation, test, a "
                                             "teacher's labels (default: --batch-size, at least 64)", type=int)
    lr: float | None = flag(None, "AdamW learning rate (default: the model family's: 1e-2 for stgru, 1e-3 for the "
                                  "others)", type=float)
    weight_decay: float = flag(1e-4, "AdamW weight decay")
    schedule: str = flag("cosine", "learning-rate schedule", choices=lambda: SCHEDULES.names())
    min_lr_ratio: float = 0.01
    milestones: tuple[int, ...] = flag((), "epochs where 'multistep' decays (default: 50%% and 75%%)", type=int,
                                       nargs="+")
    gamma: float = flag(0.1, "'multistep' decay factor")
    clip_grad: float = flag(5.0, "max gradient norm, 0 = off")
    patience: int = flag(10, "early-stopping patience in epochs, 0 = off")
    seed: int = flag(0, "random seed")
    deterministic: bool = flag(False, "deterministic kernels (slower on CUDA)")
    amp: bool = flag(True, "bf16 autocast on CUDA (default: on; --no-amp for fp32)", negatable=True)
    device: str | None = flag(None, "cuda, cuda:1, cpu (default: cuda when present)", type=str)
    limit_batches: int | None = flag(None, "training batches per epoch at most (quick runs)", type=int)
    train_windows: int | None = None
    train_days: float | None = flag(None, "train on the most recent D days of the training split only; validation "
                                          "and test unchanged (default: all)", type=float, metavar="D")
    loss: str = flag("mae", "supervised loss in raw units: mae learns the median, which MAE scores; mse the mean "
                            "(default: mae)", choices=lambda: sorted(LOSSES))

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        checks = [
            (self.epochs is None or self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.eval_batch_size is None or self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.lr is None or self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.clip_grad >= 0, "clip_grad must be >= 0"),
            (self.patience >= 0, "patience must be >= 0"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (self.limit_batches is None or self.limit_batches >= 1, "limit_batches must be >= 1"),
            (self.train_windows is None or self.train_windows >= 1, "train_windows must be >= 1"),
            (self.train_days is None or self.train_days > 0, "train_days must be > 0"),
            (self.train_windows is None or self.train_days is None,
             "give train_windows or train_days, not both"),
            (self.loss in LOSSES, f"loss {self.loss!r}: expected one of {', '.join(LOSSES)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"train config: {message}")
        SCHEDULES.get(self.schedule)

    @property
    def eval_batch(self) -> int:
        """Windows per forward pass wherever nothing is trained (validation, test, the teacher's cache): the
        ``eval_batch_size`` given, else ``batch_size`` and at least 64 (a forward without gradients holds
        little memory, and small batches waste the time of a few large ones)."""
        return self.eval_batch_size or max(self.batch_size, 64)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"train config: unknown keys {sorted(unknown)}")
        return cls(**d)


def recent_windows(config: TrainConfig, interval_minutes: float) -> int | None:
    """How many of the most recent training windows ``config`` trains on (``None`` = all):
    ``train_windows`` as given, or ``train_days`` at ``1440 / interval_minutes`` windows a day (at
    least one window)."""
    if config.train_windows is not None:
        return config.train_windows
    if config.train_days is None:
        return None
    return max(1, int(round(config.train_days * 1440.0 / float(interval_minutes))))


#: epochs of a run that sets none (``TrainConfig.epochs=None``) ...
DEFAULT_EPOCHS = 100
#: ... or, where that many epochs are fewer optimiser steps than this, enough epochs for this many steps
DEFAULT_MIN_STEPS = 1600


def default_epochs(batches_per_epoch: int) -> int:
    """Epochs of a run that sets none: :data:`DEFAULT_EPOCHS`, or enough for :data:`DEFAULT_MIN_STEPS`
    optimiser steps where an epoch holds few batches. On ``synthetic-counts`` (8 batches an epoch) 200
    epochs reached a validation MAE of 0.4054 against 0.4088 at 100 (``benchmarks/results/counts-*.md``);
    on METR-LA (22 batches an epoch on its week, 375 on the full set) it stays 100."""
    return max(DEFAULT_EPOCHS, math.ceil(DEFAULT_MIN_STEPS / max(1, int(batches_per_epoch))))


def with_epochs(config: TrainConfig, train_windows: int, world_size: int = 1) -> TrainConfig:
    """``config`` with its epochs resolved: ``config.epochs``, or when that is ``None``
    :func:`default_epochs` of the batches one rank takes per epoch from ``train_windows`` windows (the
    most recent ``train_windows``/``train_days`` only, :func:`recent_windows`; ``limit_batches``, a quick
    run's cap, does not lengthen the budget). Checkpoints record the resolved value, so a resumed run
    keeps it."""
    if config.epochs is not None:
        return config
    per_rank = math.ceil(train_windows / max(1, int(world_size)))
    return replace(config, epochs=default_epochs(math.ceil(per_rank / config.batch_size)))


def with_model_lr(config: TrainConfig, model: nn.Module) -> TrainConfig:
    """``config`` with its learning rate resolved: ``config.lr``, or when that is ``None`` the model family's
    :attr:`~stgkd.nn.base.ForecastModel.default_lr` (1e-3 for a model without one). Checkpoints record the
    resolved value, so a resumed run keeps it."""
    if config.lr is not None:
        return config
    return replace(config, lr=float(getattr(model, "default_lr", DEFAULT_LR)))


# --------------------------------------------------------------------------- schedules

SCHEDULES: Registry[Callable[[torch.optim.Optimizer, TrainConfig], Any]] = Registry("lr schedule")


@SCHEDULES.register("cosine")
def _cosine(opt: torch.optim.Optimizer, cfg: TrainConfig):
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr * cfg.min_lr_ratio)


@SCHEDULES.register("multistep")
def _multistep(opt: torch.optim.Optimizer, cfg: TrainConfig):
    milestones = list(cfg.milestones) or sorted({max(1, int(cfg.epochs * 0.5)), max(1, int(cfg.epochs * 0.75))})
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.gamma)


@SCHEDULES.register("constant")
def _constant(opt: torch.optim.Optimizer, cfg: TrainConfig):
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


def _plain(obj: Any) -> Any:
    """Counters and other dict/sequence subclasses as plain dicts and lists (for weights_only)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _load_scheduler_state(scheduler: Any, state: dict[str, Any]) -> None:
    kinds = {k: type(v) for k, v in vars(scheduler).items() if isinstance(v, Counter)}
    scheduler.load_state_dict(state)
    for key, kind in kinds.items():  # MultiStepLR keeps its milestones in a Counter
        setattr(scheduler, key, kind(getattr(scheduler, key)))


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); with ``deterministic`` also ask for
    deterministic kernels (``torch.use_deterministic_algorithms``, cuDNN without autotuning,
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


# --------------------------------------------------------------------------- trainer


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns."""

    epochs_run: int
    best_epoch: int
    best_val: dict[str, Any]
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class Trainer:
    """Train ``model`` on ``data`` (a :class:`~stgkd.data.PreparedData`).

    Args:
        model: a :class:`~stgkd.nn.ForecastModel` (already built).
        data: the prepared windows; ``data.scaler`` maps forecasts to raw units.
        config: optimisation settings.
        step: the module computing ``(loss, pred_raw, parts)`` from a batch (default:
            :class:`~stgkd.engine.steps.SupervisedStep`); its parameters beyond the model's (e.g. distillation
            adapters) are optimised too.
        callbacks: objects with any of ``on_fit_start(trainer)``, ``on_epoch_start(trainer, epoch)``,
            ``on_batch_end(trainer, step, logs)``, ``on_epoch_end(trainer, epoch, logs)``,
            ``on_interrupt(trainer, epoch)``, ``on_fit_end(trainer, result)``; those with
            ``rank_zero_only = True`` run on rank 0 only. Called in the order given.
        ctx: distributed context (default: one process on ``config.device``, CUDA when present if
            that is ``None``).
        meta: extra checkpoint entries (``role``, ``distill``, ``teacher_checkpoint``, ...).

    Attributes:
        epoch: the last completed epoch (1-based; ``0`` before the first).
        should_stop: set by a callback to end training after the current epoch.
        best: ``{"epoch", "val_mae", "metrics"}`` of the best validation epoch so far.
    """

    def __init__(
        self,
        model: nn.Module,
        data,
        *,
        config: TrainConfig,
        step: nn.Module | None = None,
        callbacks: Sequence[Any] = (),
        ctx: DistContext | None = None,
        meta: dict[str, Any] | None = None,
        find_unused_parameters: bool = False,
    ) -> None:
        self.ctx = ctx or DistContext(device=resolve_device(config.device))
        recent = recent_windows(config, data.data.interval_minutes)
        windows = len(data.train) if recent is None else min(recent, len(data.train))
        self.config = config = with_epochs(with_model_lr(config, model), windows, self.ctx.world_size)
        self.device = self.ctx.device
        self.data = data
        self.model = model.to(self.device)
        self.step_module = (step or SupervisedStep(model, data.scaler, ctx=self.ctx, amp=config.amp, loss=config.loss)).to(self.device)
        self.params = [p for p in self.step_module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.grad_scaler = grad_scaler(self.step_module, self.device, config.amp)
        self.scheduler = SCHEDULES.get(config.schedule)(self.optimizer, config)
        self.engine = wrap_ddp(self.step_module, self.ctx, find_unused_parameters=find_unused_parameters)
        self.callbacks = [cb for cb in callbacks if self.ctx.is_main or not getattr(cb, "rank_zero_only", False)]
        self.meta = dict(meta or {})
        self.epoch = 0
        self.current_epoch = 0
        self.should_stop = False
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": 0, "val_mae": math.inf, "metrics": {}}
        self.best_state: dict[str, Tensor] | None = None
        self.num_batches = 0
        self.global_step = 0

    # ------------------------------------------------------------------ callbacks

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # ------------------------------------------------------------------ loop

    def fit(self) -> FitResult:
        """Train from ``self.epoch + 1`` to ``config.epochs`` (or until a callback stops it).

        A ``KeyboardInterrupt`` calls every ``on_interrupt(trainer, epoch)`` (the checkpointing
        callback saves ``last.pt`` with the running epoch marked incomplete) and is re-raised.
        """
        start = time.perf_counter()
        self._call("on_fit_start")
        stopped_early = False
        try:
            for epoch in range(self.epoch + 1, self.config.epochs + 1):
                if self.should_stop:
                    break
                self.current_epoch = epoch
                logs = self.run_epoch(epoch)
                self._call("on_epoch_end", epoch, logs)
            stopped_early = self.should_stop and self.epoch < self.config.epochs
        except KeyboardInterrupt:
            self._call("on_interrupt", self.current_epoch)
            raise
        result = FitResult(
            epochs_run=self.epoch,
            best_epoch=int(self.best["epoch"]),
            best_val=dict(self.best.get("metrics", {})),
            stopped_early=stopped_early,
            history=list(self.history),
            seconds=time.perf_counter() - start,
        )
        self._call("on_fit_end", result)
        return result

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """One training epoch, validation, schedule step; returns the epoch's logs."""
        t0 = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        train = self.train_epoch(epoch)
        t_train = time.perf_counter() - t0
        val = self.validate()
        self.scheduler.step()
        self.epoch = epoch
        logs = {
            "epoch": epoch,
            "train_loss": train["loss"],
            "train_mae": train["mae"],
            **{f"train_{k}": v for k, v in train["parts"].items()},
            "val_mae": val["avg"]["mae"],
            "val_rmse": val["avg"]["rmse"],
            "val_mape": val["avg"]["mape"],
            "val": {k: v for k, v in val.items() if k != "per_step"},
            "lr": lr,
            "train_seconds": t_train,
            "seconds": time.perf_counter() - t0,
        }
        improved = logs["val_mae"] < self.best["val_mae"]
        logs["improved"] = bool(improved)
        if improved:
            self.best = {"epoch": epoch, "val_mae": logs["val_mae"], "metrics": logs["val"]}
            self.best_state = {k: v.detach().clone() for k, v in self._bare_model().state_dict().items()}
        self.history.append(logs)
        return logs

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """Optimise over this rank's share of the training windows once."""
        cfg = self.config
        split = self.data.train
        self.step_module.train()
        self._call("on_epoch_start", epoch)
        recent = recent_windows(cfg, self.data.data.interval_minutes)
        if recent is not None and recent < len(split):
            first = len(split) - recent  # the most recent windows
            order = first + epoch_indices(recent, epoch=epoch, seed=cfg.seed, shuffle=True, ctx=self.ctx)
        else:
            order = epoch_indices(len(split), epoch=epoch, seed=cfg.seed, shuffle=True, ctx=self.ctx)
        chunks = list(torch.split(order, cfg.batch_size))
        if cfg.limit_batches is not None:
            chunks = chunks[: cfg.limit_batches]
        self.num_batches = len(chunks)
        # sums: loss * windows, windows, |err| (raw), observed count; then the parts
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        part_sums: dict[str, Tensor] = {}
        for i, idx in enumerate(chunks):
            batch = split.batch(idx.to(split.device)).to(self.device)
            loss, pred, parts = self.engine(batch.x, batch.y, batch.mask, batch.index)
            self.optimizer.zero_grad(set_to_none=True)
            self.grad_scaler.scale(loss).backward()
            if cfg.clip_grad > 0:
                self.grad_scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(self.params, cfg.clip_grad)
            self.grad_scaler.step(self.optimizer)  # skipped when a scaled gradient overflowed
            self.grad_scaler.update()
            self.global_step += 1
            with torch.no_grad():
                b = float(len(idx))
                err = torch.where(batch.mask, (pred.detach() - batch.y).abs(), torch.zeros((), device=pred.device)).sum()
                count = batch.mask.sum()
                sums += torch.stack([loss.detach().double() * b, torch.tensor(b, dtype=torch.float64, device=self.device),
                                     err.double(), count.double()])
                for k, v in parts.items():
                    part_sums[k] = part_sums.get(k, 0.0) + torch.as_tensor(v, device=self.device).detach().double() * b
            # tensors, not floats: a callback that reads them every step would sync the GPU every step
            self._call("on_batch_end", i + 1, {"loss": loss.detach(), "abs_err": err, "count": count})
        names = sorted(part_sums)
        parts_t = torch.stack([part_sums[k] for k in names]) if names else torch.zeros(0, dtype=torch.float64)
        if self.ctx.enabled:
            all_reduce_sum(sums, self.ctx)
            if names:
                all_reduce_sum(parts_t, self.ctx)
        part_sums = dict(zip(names, parts_t.tolist()))
        windows = max(1.0, float(sums[1]))
        loss_mean = float(sums[0]) / windows
        if not math.isfinite(loss_mean):
            raise ConfigError(f"epoch {epoch}: the training loss is {loss_mean}; lower --lr or check the data")
        return {
            "loss": loss_mean,
            "mae": float(sums[2]) / max(1.0, float(sums[3])),
            "parts": {k: v / windows for k, v in part_sums.items()},
        }

    def validate(self, split_name: str = "val") -> dict[str, Any]:
        """Dataset-level masked metrics of the model on ``split_name``, summed over ranks."""
        cfg = self.config
        return evaluate_split(
            self._bare_model(),
            self.data.get_split(split_name),
            self.data.scaler,
            batch_size=cfg.eval_batch,
            device=self.device,
            ctx=self.ctx,
            interval_minutes=int(self.data.data.interval_minutes),
        )

    def _bare_model(self) -> nn.Module:
        return self.model

    def load_best(self) -> None:
        """Put the best validation weights seen in this process back into the model."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    # ------------------------------------------------------------------ checkpoint state

    def checkpoint(self, *, complete: bool = True, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        """The checkpoint dict of the current state (see :mod:`stgkd.engine.checkpoint`).

        ``complete=False`` marks a state taken mid-epoch ``epoch + 1`` (on interrupt): resuming
        redoes that epoch.
        """
        model = self._bare_model()
        payload: dict[str, Any] = {
            "format": FORMAT,
            "role": getattr(model, "role", "student"),
            "model": model.config(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "graph": torch.as_tensor(np.asarray(self.data.adj), dtype=torch.float32),
            "scaler": {"mean": float(self.data.scaler.mean), "std": float(self.data.scaler.std)},
            "data": data_meta(self.data),
            "metrics": metrics if metrics is not None else (self.history[-1]["val"] if self.history else {}),
            "epoch": int(self.epoch),
            "complete": bool(complete),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": _plain(self.scheduler.state_dict()),
            "grad_scaler": self.grad_scaler.state_dict(),
            "rng": capture_rng_state(),
            "callbacks": {
                type(cb).__name__: cb.state_dict() for cb in self.callbacks if hasattr(cb, "state_dict")
            },
            "train_config": self.config.to_dict(),
            "history": [to_jsonable(h) for h in self.history],
            "best": {"epoch": int(self.best["epoch"]), "val_mae": float(self.best["val_mae"]),
                     "metrics": self.best.get("metrics", {})},
            "global_step": int(self.global_step),
        }
        payload.update(self.step_module.checkpoint_extras() if hasattr(self.step_module, "checkpoint_extras") else {})
        payload.update(self.meta)
        return payload

    def restore(self, payload: dict[str, Any], *, path: str = "checkpoint") -> None:
        """Continue from a checkpoint written by :meth:`checkpoint` (weights, optimiser, schedule,
        RNGs, callbacks' state, history)."""
        try:
            self._bare_model().load_state_dict(payload["state_dict"])
            if hasattr(self.step_module, "load_checkpoint_extras"):
                self.step_module.load_checkpoint_extras(payload)
            self.optimizer.load_state_dict(payload["optimizer"])
            if payload.get("grad_scaler") and self.grad_scaler.is_enabled():
                self.grad_scaler.load_state_dict(payload["grad_scaler"])
            _load_scheduler_state(self.scheduler, payload["scheduler"])
            if hasattr(self.scheduler, "T_max"):  # cosine: a resumed run may have been given more epochs
                self.scheduler.T_max = self.config.epochs
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot resume from it: {exc}") from None
        self.epoch = int(payload["epoch"])
        self.global_step = int(payload.get("global_step", 0))
        self.history = list(payload.get("history", []))
        best = payload.get("best") or {}
        self.best = {"epoch": int(best.get("epoch", 0)), "val_mae": float(best.get("val_mae", math.inf)),
                     "metrics": best.get("metrics", {})}
        states = payload.get("callbacks", {})
        for cb in self.callbacks:
            name = type(cb).__name__
            if name in states and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(states[name])
        if "rng" in payload:
            restore_rng_state(payload["rng"])
