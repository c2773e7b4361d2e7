"""Callbacks around :class:`~stgkd.engine.trainer.Trainer`'s loop.

A callback is any object with some of these methods (all optional; :class:`Callback` gives no-op
defaults)::

    on_fit_start(trainer)
    on_epoch_start(trainer, epoch)
    on_batch_end(trainer, step, logs)      # logs: {"loss", "abs_err", "count"} as tensors
    on_epoch_end(trainer, epoch, logs)     # logs: see Trainer.run_epoch
    on_interrupt(trainer, epoch)           # KeyboardInterrupt during `epoch`
    on_fit_end(trainer, result)

``rank_zero_only = True`` keeps a callback on rank 0 of a distributed run (writers). A callback
with ``state_dict()`` / ``load_state_dict(state)`` has that state saved in checkpoints and
restored on resume. To end training, set ``trainer.should_stop = True``; to abort (e.g. an Optuna
pruned trial), raise from ``on_epoch_end`` -- the callbacks before it in the list have run.

Optuna pruning (the tuner's callback) needs nothing more than::

    class Pruning(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trial.report(logs["val_mae"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from stgkd.engine.checkpoint import remove_stale_temporaries, save_checkpoint
from stgkd.errors import ConfigError
from stgkd.files import to_jsonable

__all__ = [
    "Callback",
    "LambdaCallback",
    "EarlyStopping",
    "TimeLimit",
    "Checkpointing",
    "JSONLinesLogger",
    "ProgressBar",
    "TensorBoard",
    "DistillStages",
    "Fidelity",
    "GradientShare",
    "TeacherCost",
    "measure_gradient_share",
    "tensorboard_available",
]


class Callback:
    """No-op base class; override the hooks you need."""

    rank_zero_only: bool = False

    def on_fit_start(self, trainer) -> None:
        pass

    def on_epoch_start(self, trainer, epoch: int) -> None:
        pass

    def on_batch_end(self, trainer, step: int, logs: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        pass

    def on_interrupt(self, trainer, epoch: int) -> None:
        pass

    def on_fit_end(self, trainer, result) -> None:
        pass


class LambdaCallback(Callback):
    """A callback from functions, e.g. ``LambdaCallback(on_epoch_end=lambda trainer, epoch, logs: ...)``.

    Args:
        **hooks: any of the hook names above, each a function taking the hook's arguments.
    """

    HOOKS = ("on_fit_start", "on_epoch_start", "on_batch_end", "on_epoch_end", "on_interrupt", "on_fit_end")

    def __init__(self, **hooks: Callable[..., None]) -> None:
        unknown = sorted(set(hooks) - set(self.HOOKS))
        if unknown:
            raise ConfigError(f"LambdaCallback: unknown hooks {unknown}; known: {list(self.HOOKS)}")
        self._hooks = hooks

    def _run(self, name: str, *args: Any) -> None:
        fn = self._hooks.get(name)
        if fn is not None:
            fn(*args)

    def on_fit_start(self, trainer) -> None:
        self._run("on_fit_start", trainer)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self._run("on_epoch_start", trainer, epoch)

    def on_batch_end(self, trainer, step: int, logs: dict[str, Any]) -> None:
        self._run("on_batch_end", trainer, step, logs)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        self._run("on_epoch_end", trainer, epoch, logs)

    def on_interrupt(self, trainer, epoch: int) -> None:
        self._run("on_interrupt", trainer, epoch)

    def on_fit_end(self, trainer, result) -> None:
        self._run("on_fit_end", trainer, result)


class EarlyStopping(Callback):
    """Stop when ``monitor`` (default: the validation masked MAE) has not improved by more than
    ``min_delta`` for ``patience`` epochs.

    Args:
        patience: epochs to wait after the last improvement (default: ``10``).
        monitor: key of the epoch logs, lower is better (default: ``"val_mae"``).
        min_delta: smallest decrease that counts as an improvement (default: ``0.0``).
    """

    def __init__(self, patience: int = 10, *, monitor: str = "val_mae", min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ConfigError(f"EarlyStopping: patience must be >= 1, got {patience}")
        self.patience = patience
        self.monitor = monitor
        self.min_delta = min_delta
        self.best = math.inf
        self.wait = 0
        self.stopped_epoch = 0

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        value = float(logs[self.monitor])
        if value < self.best - self.min_delta:
            self.best = value
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                trainer.should_stop = True

    def on_fit_start(self, trainer) -> None:
        if self.wait >= self.patience:  # resumed after the epoch that triggered the stop
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": float(self.best), "wait": int(self.wait)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.wait = int(state["wait"])


class TimeLimit(Callback):
    """Stop after the epoch during which a wall-clock limit passed (at least one epoch always runs).

    The limit is ``seconds`` from the start of :meth:`Trainer.fit`, or the absolute
    :func:`time.monotonic` instant ``until`` (for a share of a larger budget that started before this
    run, e.g. a benchmark suite's). An epoch is never cut short, so a run ends at most one epoch
    past the limit; ``stopped_epoch`` is the epoch after which it stopped (``0``: the limit was not hit).

    Args:
        seconds: limit counted from the start of training (default: none).
        until: absolute :func:`time.monotonic` limit (default: none); with both, the earlier one applies.
        min_epochs: epochs always trained before the limit can stop the run (default: 1), e.g. the passes a
            result needs when the run's share of a budget is spent before it starts.
    """

    def __init__(self, seconds: float | None = None, *, until: float | None = None, min_epochs: int = 1) -> None:
        if seconds is None and until is None:
            raise ConfigError("TimeLimit: give seconds or until")
        if seconds is not None and not seconds > 0:
            raise ConfigError(f"TimeLimit: seconds must be > 0, got {seconds}")
        self.seconds = seconds
        self.until = until
        self.min_epochs = int(min_epochs)
        self.end = until
        self.stopped_epoch = 0

    def on_fit_start(self, trainer) -> None:
        ends = [t for t in (self.until, time.monotonic() + self.seconds if self.seconds is not None else None)
                if t is not None]
        self.end = min(ends)
        self.stopped_epoch = 0

    @property
    def fired(self) -> bool:
        """Whether the limit ended training."""
        return self.stopped_epoch > 0

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        if (epoch >= self.min_epochs and time.monotonic() >= self.end and not trainer.should_stop
                and epoch < trainer.config.epochs):
            self.stopped_epoch = epoch
            trainer.should_stop = True


class Checkpointing(Callback):
    """Write ``last.pt`` after every epoch and ``best.pt`` whenever the validation MAE improves,
    atomically (see :func:`~stgkd.engine.checkpoint.save_checkpoint`). On ``KeyboardInterrupt``
    write ``last.pt`` with the running epoch marked incomplete (``"complete": False``), so
    ``--resume`` redoes it.

    Args:
        directory: where the two files go.
    """

    rank_zero_only = True

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @property
    def last(self) -> Path:
        return self.directory / "last.pt"

    @property
    def best(self) -> Path:
        return self.directory / "best.pt"

    def on_fit_start(self, trainer) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.directory)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        payload = trainer.checkpoint(complete=True)
        targets = [self.last, self.best] if logs.get("improved") else [self.last]
        save_checkpoint(targets, payload)

    def on_interrupt(self, trainer, epoch: int) -> None:
        save_checkpoint(self.last, trainer.checkpoint(complete=False))
        print(
            f"interrupted during epoch {epoch}: saved {self.last} (epoch {trainer.epoch} complete); "
            "run again with --resume to continue",
            file=sys.stderr,
        )


class JSONLinesLogger(Callback):
    """Append one JSON object per epoch to ``path``: epoch, train loss/MAE (and distillation
    parts), validation metrics, learning rate and seconds.

    On a resumed run, lines of epochs after the checkpoint's are dropped first, so the file always
    matches the checkpoint's history.
    """

    rank_zero_only = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_fit_start(self, trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            if trainer.epoch > 0 and int(record.get("epoch", 0)) <= trainer.epoch:
                keep.append(line)
        self.path.write_text("".join(k + "\n" for k in keep))

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        record = {k: v for k, v in logs.items() if k != "improved"}
        with self.path.open("a") as fh:
            fh.write(json.dumps(to_jsonable(record, finite=True)) + "\n")
            fh.flush()


class ProgressBar(Callback):
    """A tqdm bar per epoch with ETA and the running loss / masked MAE, and one summary line per
    epoch (with the ETA of the whole run). The bar shows on terminals only; the summary line is
    always printed (to ``stderr``).

    Args:
        refresh_every: update the loss shown every this many batches (reading it syncs the GPU)
            (default: ``10``).
        bar: ``None`` = only on a terminal, ``True``/``False`` = always/never (default: ``None``).
    """

    rank_zero_only = True

    def __init__(self, *, refresh_every: int = 10, bar: bool | None = None, stream=None) -> None:
        self.refresh_every = max(1, refresh_every)
        self.bar_enabled = bar
        self.stream = stream
        self._bar = None
        self._epoch_seconds: list[float] = []
        self._loss = 0.0
        self._err = 0.0
        self._count = 0.0
        self._n = 0

    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def on_epoch_start(self, trainer, epoch: int) -> None:
        from tqdm.auto import tqdm

        disable = None if self.bar_enabled is None else not self.bar_enabled
        self._loss = self._err = self._count = 0.0
        self._n = 0
        self._pending: list[dict[str, Any]] = []
        self._bar = tqdm(
            total=trainer.num_batches, desc=f"epoch {epoch}/{trainer.config.epochs}", unit="batch",
            leave=False, disable=disable, file=self._out(), dynamic_ncols=True,
        )

    def on_batch_end(self, trainer, step: int, logs: dict[str, Any]) -> None:
        self._pending.append(logs)
        if self._bar is None:
            return
        self._bar.update(1)
        if step % self.refresh_every == 0 or step == trainer.num_batches:
            for item in self._pending:
                self._loss += float(item["loss"])
                self._err += float(item["abs_err"])
                self._count += float(item["count"])
                self._n += 1
            self._pending = []
            if not self._bar.disable:
                self._bar.set_postfix(loss=f"{self._loss / max(1, self._n):.4f}",
                                      mae=f"{self._err / max(1.0, self._count):.4f}")

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._epoch_seconds.append(float(logs["seconds"]))
        remaining = (trainer.config.epochs - epoch) * (sum(self._epoch_seconds) / len(self._epoch_seconds))
        mark = " *" if logs.get("improved") else ""
        print(
            f"epoch {epoch}/{trainer.config.epochs}  loss {logs['train_loss']:.4f}  train MAE "
            f"{logs['train_mae']:.4f}  val MAE {logs['val_mae']:.4f}  RMSE {logs['val_rmse']:.4f}  "
            f"MAPE {100 * logs['val_mape']:.2f}%  lr {logs['lr']:.2e}  {logs['seconds']:.1f}s  "
            f"ETA {_clock(remaining)}{mark}",
            file=self._out(), flush=True,
        )

    def on_interrupt(self, trainer, epoch: int) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def tensorboard_available() -> bool:
    """Whether ``tensorboard`` (needed by ``torch.utils.tensorboard``) is importable."""
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoard(Callback):
    """Scalars per epoch (losses, validation metrics, learning rate) for TensorBoard.

    Raises:
        ConfigError: ``tensorboard`` is not installed.
    """

    rank_zero_only = True

    def __init__(self, log_dir: str | Path) -> None:
        if not tensorboard_available():
            raise ConfigError("TensorBoard logging needs the 'tensorboard' package (pip install tensorboard)")
        self.log_dir = Path(log_dir)
        self._writer = None

    def on_fit_start(self, trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=trainer.epoch + 1)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        for key, value in logs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                group = "val" if key.startswith("val_") else "train" if key.startswith("train_") else "misc"
                self._writer.add_scalar(f"{group}/{key}", value, epoch)
        self._writer.flush()

    def on_fit_end(self, trainer, result) -> None:
        if self._writer is not None:
            self._writer.close()

    def on_interrupt(self, trainer, epoch: int) -> None:
        self.on_fit_end(trainer, None)


class DistillStages(Callback):
    """Apply a staged-distillation schedule (:mod:`stgkd.distill.stages`): at the start of each epoch
    keep on only the loss terms of that epoch's stage (the step's ``objective.set_stage``), and log
    the stage as ``"stage"``. Steps without an objective (plain training) are left alone.

    Args:
        stages: a schedule such as ``"hint:0.2,kd:0.6,fine:0.2"`` (fractions of ``config.epochs``).
    """

    def __init__(self, stages: str) -> None:
        from stgkd.distill.stages import parse_stages

        self.stages = parse_stages(stages)
        self.stage: str | None = None

    def on_epoch_start(self, trainer, epoch: int) -> None:
        from stgkd.distill.stages import stage_at

        self.stage = stage_at(self.stages, epoch, trainer.config.epochs)
        objective = getattr(trainer.step_module, "objective", None)
        if objective is not None:
            objective.set_stage(self.stage)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        if self.stage is not None:
            logs["stage"] = self.stage


class TeacherCost(Callback):
    """What labelling augmented views on the fly cost: every epoch, the seconds the step spent in the
    teacher's forwards (``"train_teacher_seconds"``, beside the epoch's ``"train_seconds"``) and the
    views it labelled (``"train_teacher_windows"``), read from the step's ``teacher_seconds`` and
    ``teacher_windows`` counters (:class:`~stgkd.engine.steps.DistillStep` with an augmenter). Steps
    without them are left alone."""

    def on_epoch_start(self, trainer, epoch: int) -> None:
        step = trainer.step_module
        if hasattr(step, "teacher_seconds"):
            step.teacher_seconds, step.teacher_windows = 0.0, 0

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        step = trainer.step_module
        if hasattr(step, "teacher_seconds"):
            logs["train_teacher_seconds"] = float(step.teacher_seconds)
            logs["train_teacher_windows"] = int(step.teacher_windows)


class Fidelity(Callback):
    """How closely the student follows its teacher: every epoch, the masked MAE (RMSE, MAPE) of the
    student's forecasts against the teacher's on the validation windows, where the truth is observed
    (the same readings as ``val_mae``), logged as ``"val_fidelity_mae"`` and ``"val_fidelity"``
    (``{"15min": {...}, ..., "avg": {...}}``). Costs one student pass over the split per epoch.

    Args:
        teacher_forecast: the teacher's forecasts of every window of the split in raw units,
            ``(S, H, N)``, or a function returning them, called once at the start of fitting.
        split: the split they belong to (default: ``"val"``).
    """

    def __init__(self, teacher_forecast: Tensor | Callable[[], Tensor], *, split: str = "val") -> None:
        self._source = teacher_forecast
        self.reference: Tensor | None = teacher_forecast if isinstance(teacher_forecast, Tensor) else None
        self.split = split

    def on_fit_start(self, trainer) -> None:
        if self.reference is None:
            self.reference = self._source()
        self.reference = torch.as_tensor(self.reference, dtype=torch.float32).to(trainer.device)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        from stgkd.engine.evaluate import evaluate_split

        cfg = trainer.config
        metrics = evaluate_split(
            trainer.model, trainer.data.get_split(self.split), trainer.data.scaler, reference=self.reference,
            batch_size=cfg.eval_batch, device=trainer.device, ctx=trainer.ctx,
            interval_minutes=int(trainer.data.data.interval_minutes),
        )
        logs[f"{self.split}_fidelity_mae"] = metrics["avg"]["mae"]
        logs[f"{self.split}_fidelity"] = {k: v for k, v in metrics.items() if k != "per_step"}


def measure_gradient_share(step, split, params: list[Tensor], *, batches: int = 4, batch_size: int = 64,
                           device: torch.device | str = "cpu") -> dict[str, Any]:
    r"""Each loss term's gradient norm with respect to ``params``, on a few fixed training windows.

    ``step.loss_terms(x, y, mask, index)`` gives the weighted terms :math:`w_k L_k` (at the configured
    weights); for each, :math:`g_k = \nabla_\theta w_k L_k` by ``torch.autograd.grad`` on one shared
    graph. Per batch, :math:`\|g_k\|`, :math:`\|\sum_k g_k\|` and :math:`\cos(g_k, g_{sup})` are
    taken, then averaged over the batches. The share of a term is
    :math:`\|g_k\| / \sum_j \|g_j\|` (the shares sum to 1).

    The windows are ``batches · batch_size`` evenly spaced positions of ``split``, the same at every
    call. The step runs in eval mode (no dropout mask is drawn, no normalisation statistic moves)
    and no ``.grad`` is touched, so training continues exactly as without the measurement.

    Returns:
        ``{"batches", "windows", "norm": {term: float}, "share": {term: float}, "total": float,
        "cos_sup": {term: float}}`` (``cos_sup`` for the terms other than ``sup``, when ``sup`` is on).
    """
    n = len(split)
    count = max(1, min(n, int(batches) * int(batch_size)))
    order = torch.linspace(0, n - 1, count).round().long().unique()
    norm_sums: dict[str, float] = {}
    cos_sums: dict[str, float] = {}
    total, seen = 0.0, 0
    was_training = step.training
    step.eval()
    # cuDNN's RNN kernels take no backward pass in eval mode; the native ones compute the same gradient
    try:
        with torch.backends.cudnn.flags(enabled=False):
            for idx in torch.split(order, max(1, int(batch_size))):
                batch = split.batch(idx.to(split.device)).to(device)
                terms = step.loss_terms(batch.x, batch.y, batch.mask, batch.index)
                grads = {}
                for name, term in terms.items():
                    g = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
                    grads[name] = torch.cat([(gi if gi is not None else torch.zeros_like(p)).flatten().float()
                                             for gi, p in zip(g, params)])
                if not grads:
                    continue
                stats = [g.norm() for g in grads.values()] + [torch.stack(list(grads.values())).sum(0).norm()]
                cos_names = [k for k in grads if k != "sup"] if "sup" in grads else []
                stats += [torch.nn.functional.cosine_similarity(grads[k], grads["sup"], dim=0, eps=1e-12) for k in cos_names]
                values = torch.stack(stats).tolist()  # one transfer per batch
                for k, v in zip(grads, values):
                    norm_sums[k] = norm_sums.get(k, 0.0) + v
                total += values[len(grads)]
                for k, v in zip(cos_names, values[len(grads) + 1:]):
                    cos_sums[k] = cos_sums.get(k, 0.0) + v
                seen += 1
    finally:
        step.train(was_training)
    seen = max(1, seen)
    norm = {k: v / seen for k, v in norm_sums.items()}
    whole = sum(norm.values())
    return {
        "batches": seen,
        "windows": int(order.numel()),
        "norm": norm,
        "share": {k: (v / whole if whole > 0 else 0.0) for k, v in norm.items()},
        "total": total / seen,
        "cos_sup": {k: v / seen for k, v in cos_sums.items()},
    }


class GradientShare(Callback):
    """Record each loss term's share of the gradient norm (:func:`measure_gradient_share`) at the end
    of the first epoch and of the last one (the configured last epoch, or the one after which a
    callback listed before this one, such as early stopping, ends the run), as ``"grad_share"`` in that
    epoch's logs (so in ``log.jsonl`` and the checkpoint's history). Only for steps with
    ``loss_terms`` (distillation); the terms are measured at their configured weights, whatever
    stage a staged run is in.

    Args:
        batches: batches measured each time (default: ``4``).
        batch_size: windows per batch (default: the run's ``batch_size``).
    """

    rank_zero_only = True

    def __init__(self, *, batches: int = 4, batch_size: int | None = None) -> None:
        if batches < 1:
            raise ConfigError(f"GradientShare: batches must be >= 1, got {batches}")
        self.batches = batches
        self.batch_size = batch_size

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        step = trainer.step_module
        last = epoch >= trainer.config.epochs or trainer.should_stop
        if not hasattr(step, "loss_terms") or (epoch != 1 and not last):
            return
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        record = measure_gradient_share(step, trainer.data.train, params, batches=self.batches,
                                        batch_size=self.batch_size or trainer.config.batch_size, device=trainer.device)
        record["epoch"] = epoch
        record["at"] = [name for name, flag in (("first", epoch == 1), ("last", last)) if flag]
        logs["grad_share"] = record


def _clock(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
