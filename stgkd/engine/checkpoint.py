"""Checkpoints: one plain dict per file, written atomically, read without running code.

A checkpoint (``best.pt`` / ``last.pt``) holds everything needed to rebuild the model, the data
preparation it was trained on, and the exact training state to resume from::

    {"format": "stgkd/1", "role": "teacher" | "student",
     "model": model.config(), "state_dict": {...}, "graph": Tensor (N, N),
     "scaler": {"mean": float, "std": float},
     "data": {"name", "source", "split", "in_steps", "out_steps", "input_features",
              "sensor_ids", "interval_minutes", "missing"},
     "metrics": {...}, "epoch": int (last completed epoch, 1-based; 0 = none),
     "complete": bool (False: written on interrupt, mid-epoch ``epoch + 1``; resume redoes it),
     "optimizer": ..., "scheduler": ..., "rng": {...}, "callbacks": {...}, "train_config": {...},
     "history": [...], "best": {...},
     # students trained by distillation:
     "distill": {...}, "adapters": {...}, "teacher_checkpoint": str}

Everything in it is a tensor, number, string, ``None`` or a list/dict/tuple of those, so
``torch.load(..., weights_only=True)`` reads it; that is the only way this module loads files.
"""

from __future__ import annotations

import io
import math
import pickle
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from stgkd.errors import CheckpointError
from stgkd.files import atomic_write
from stgkd.formats import EXPORTED_KINDS, archive_metadata, file_kind

FORMAT = "stgkd/1"


def save_checkpoint(path: str | Path | Sequence[str | Path], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` (or to each of several paths) atomically.

    The payload is serialised once and written to each path with :func:`stgkd.files.atomic_write`:
    a reader, or a process killed at any moment, sees either the old file or the complete new one,
    never a torn write. Returns the (first) path.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getbuffer()
    for target in paths:
        atomic_write(target, data)
    return paths[0]


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete ``.<name>.*.tmp`` files a killed writer left behind in ``directory``."""
    directory = Path(directory)
    removed = []
    if directory.is_dir():
        for tmp in directory.glob(".*.pt.*.tmp"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:
                pass
    return removed


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, is an exported student (``stgkd export``: the message
            says which format and names the checkpoint it was exported from), is not a readable torch
            file, holds objects other than tensors and plain containers (a pickled class or function
            is refused without being run), or is not an stgkd checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    exported = _exported_student(path)
    if exported is not None:
        raise CheckpointError(exported)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects other than tensors and plain "
            f"containers ({first})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file means it is unusable
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not an stgkd checkpoint (format {found!r}, expected {FORMAT!r})")
    for key in ("model", "state_dict", "data", "scaler"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks the {key!r} entry")
    return payload


def _exported_student(path: Path) -> str | None:
    """What to tell a user who passed an exported student where a training checkpoint belongs
    (``None``: ``path`` is no exported student)."""
    try:
        kind = file_kind(path)
    except (CheckpointError, OSError):
        return None  # torch.load's own message says what is wrong
    if kind not in EXPORTED_KINDS:
        return None
    meta = archive_metadata(path) if kind != "onnx" else {}
    model = (meta.get("model") or {}).get("name")
    what = f"an exported {meta.get('role', 'student')}{f' ({model})' if model else ''}"
    source = meta.get("checkpoint")
    instead = f"pass {source}, the checkpoint it was exported from" if source else (
        "pass the checkpoint it was exported from (best.pt in the run's folder)")
    return (f"{path} is {what} in {EXPORTED_KINDS[kind]} format, written by `stgkd export` for deployment "
            f"(stgkd.Forecaster.load, stgkd latency), not a training checkpoint; {instead}")


def model_from_checkpoint(payload: dict[str, Any], *, device: str | torch.device = "cpu",
                          where: str = "checkpoint"):
    """Rebuild the model a checkpoint describes (registered name, config, graph) and load its weights,
    in eval mode.

    Raises:
        CheckpointError: the config names no registered model or does not match the weights; the
            message starts with ``where`` (the file, when known).
    """
    import stgkd.nn  # noqa: F401  (registers the models)
    from stgkd.nn.registry import from_config

    try:
        model = from_config(payload["model"], payload.get("graph"))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{where}: the checkpoint's model does not match its config/weights: {exc}") from None
    return model.to(device).eval()


@dataclass(frozen=True)
class RunProgress:
    """How far the training run that wrote a checkpoint got (read from ``last.pt``).

    Attributes:
        epochs: the last completed epoch.
        requested: the epochs the run was asked for (its ``train_config``).
        stopped_early: early stopping ended the run (its patience ran out) before ``requested``.
        best_epoch: the epoch of the best validation masked MAE so far (``0``: none).
        best_val_mae: that MAE (``nan`` before the first epoch).
    """

    epochs: int
    requested: int
    stopped_early: bool
    best_epoch: int
    best_val_mae: float

    @property
    def finished(self) -> bool:
        """Whether training the run again with ``resume`` would not run another epoch."""
        return self.epochs >= self.requested or self.stopped_early

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "finished": self.finished}


def run_progress(payload: dict[str, Any]) -> RunProgress:
    """The :class:`RunProgress` of a checkpoint ``payload``.

    Only ``last.pt`` tells whether early stopping ended its run (``best.pt`` is written at an
    improvement, when the patience counter is 0). The stop rule is
    :class:`~stgkd.engine.callbacks.EarlyStopping`'s:
    ``wait >= patience`` epochs without improvement.
    """
    epochs = int(payload.get("epoch", 0))
    train_config = payload.get("train_config") or {}
    requested = int(train_config.get("epochs") or epochs)  # None: a run that set none and was never resolved
    patience = int(train_config.get("patience", 0))
    stopper = (payload.get("callbacks") or {}).get("EarlyStopping") or {}
    stopped = patience > 0 and int(stopper.get("wait", 0)) >= patience and epochs < requested
    best = payload.get("best") or {}
    return RunProgress(epochs=epochs, requested=requested, stopped_early=bool(stopped),
                       best_epoch=int(best.get("epoch", 0)), best_val_mae=float(best.get("val_mae", math.nan)))


# --------------------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy and ``random`` as tensors and lists."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_version), "state": list(py_internal), "gauss_next": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            int(np_state["pos"]),
            int(np_state["has_gauss"]),
            float(np_state["cached_gaussian"]),
        )
    )
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
