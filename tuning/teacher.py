"""The teacher of a study: ``--teacher``, or a small Graph WaveNet trained once into ``OUT/teacher``.

:func:`resolve_teacher` gives every worker the same teacher (its path, SHA-256 and training summary): the
``--teacher`` file, or the one :func:`ensure_teacher` trains under a lock (so concurrent workers train it
once) and finishes after a crash before any trial distils from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stgkd.errors import CheckpointError
from tuning.progress import log

__all__ = ["SMALL_TEACHER", "ensure_teacher", "resolve_teacher", "teacher_summary"]

#: a small Graph WaveNet for the teacher trained when --teacher is omitted
SMALL_TEACHER = {
    "residual_channels": 16,
    "dilation_channels": 16,
    "skip_channels": 64,
    "end_channels": 128,
    "blocks": 2,
    "layers": 2,
}


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
    from tuning.storage import file_lock

    teacher_dir = out / "teacher"
    best, last = teacher_dir / "best.pt", teacher_dir / "last.pt"
    with file_lock(out / ".teacher.lock"):
        progress = run_progress(load_checkpoint(last)) if last.is_file() else None
        if best.is_file() and (progress is None or progress.finished):
            log(f"reusing the teacher {best}"
                + (f" ({_describe_run(progress)})" if progress is not None else f" (no {last.name} beside it)"))
            return best
        from stgkd.engine import TrainConfig, train_model

        if progress is not None:
            epochs = progress.requested
            log(f"the teacher run in {teacher_dir} stopped after epoch {progress.epochs} of {epochs}; "
                f"finishing it from {last} before any trial starts")
            if args.teacher_epochs != epochs:
                log(f"note: --teacher-epochs {args.teacher_epochs} ignored: that run was asked for {epochs}")
        else:
            epochs = args.teacher_epochs
        hparams = {**SMALL_TEACHER, **dict(args.teacher_hparam)} if args.teacher_model == "graph-wavenet" else dict(args.teacher_hparam)
        if progress is None:
            log(f"no --teacher: training {args.teacher_model} {hparams} for {epochs} epoch(s) into {teacher_dir}")
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
        log(f"teacher {best}: {_describe_run(run_progress(load_checkpoint(last)))}")
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
        "epochs_requested": int((payload.get("train_config") or {}).get("epochs") or 0) or None,
        "stopped_early": progress.stopped_early if progress else None,
        "finished": progress.finished if progress else None,
    }


def resolve_teacher(args: argparse.Namespace, data: Any, out: Path, device: str) -> tuple[Path, str, dict[str, Any]]:
    """``(path, SHA-256, training summary)`` of the teacher: ``--teacher``, or the one trained (or
    finished) in ``OUT/teacher``."""
    from stgkd.data.fetch import sha256sum

    teacher_path = ensure_teacher(args, data, out, device).resolve()
    teacher_sha = sha256sum(teacher_path)
    teacher_info = teacher_summary(teacher_path)
    if teacher_info["finished"] is False:  # a --teacher whose run is unfinished: the user's choice, said once
        log(f"note: the run of --teacher {teacher_path} trained {teacher_info['epochs_trained']} of its "
            f"{teacher_info['epochs_requested']} epochs; its weights are used as they are")
    return teacher_path, teacher_sha, teacher_info
