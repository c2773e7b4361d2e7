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

from stgkd.engine.checkpoint import remove_stale_temporaries, save_checkpoint
from stgkd.errors import ConfigError

__all__ = [
    "Callback",
    "LambdaCallback",
    "EarlyStopping",
    "TimeLimit",
    "Checkpointing",
    "JSONLinesLogger",
    "ProgressBar",
    "TensorBoard",
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
    """

    def __init__(self, seconds: float | None = None, *, until: float | None = None) -> None:
        if seconds is None and until is None:
            raise ConfigError("TimeLimit: give seconds or until")
        if seconds is not None and not seconds > 0:
            raise ConfigError(f"TimeLimit: seconds must be > 0, got {seconds}")
        self.seconds = seconds
        self.until = until
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
        if time.monotonic() >= self.end and not trainer.should_stop and epoch < trainer.config.epochs:
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
            fh.write(json.dumps(_jsonable(record)) + "\n")
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


def _clock(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):
        return obj.item()
    return obj
