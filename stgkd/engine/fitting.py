"""What every run of :func:`stgkd.engine.run` shares: the run directory (fresh, overwritten or resumed), the
resumed run's settings, the callbacks, and the fit itself (the loop, or a fitted baseline), which writes
``metrics.json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stgkd.engine.baselines import compare_with_baselines, score_baselines
from stgkd.engine.callbacks import (
    Checkpointing,
    EarlyStopping,
    JSONLinesLogger,
    ProgressBar,
    TensorBoard,
    tensorboard_available,
)
from stgkd.engine.checkpoint import load_checkpoint
from stgkd.engine.distributed import DistContext
from stgkd.engine.result import TrainResult
from stgkd.engine.trainer import TrainConfig, Trainer, seed_everything, with_epochs
from stgkd.errors import ConfigError
from stgkd.files import to_jsonable

__all__ = ["config_for_resume", "fit_run", "run_dir"]


def run_dir(out: str | Path | None, *, resume: bool, overwrite: bool) -> tuple[Path | None, dict | None]:
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


def fit_run(
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
        summary.update(_test_summary(result, model.registry_name))
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


def _test_summary(result: TrainResult, name: str) -> dict[str, Any]:
    """``metrics.json``'s test entries: the test metrics, and the baselines beside them with the horizons where
    the model is worse than the best."""
    summary: dict[str, Any] = {}
    if result.test is not None:
        summary["test"] = result.test
    if result.baselines is not None:
        summary["baselines"] = result.baselines.to_dict()
        summary["worse_than_best_baseline"] = [
            s.to_dict() for s in compare_with_baselines(name, result.test, result.baselines)]
    return summary


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
        summary.update(_test_summary(result, model.registry_name))
        (out / "metrics.json").write_text(json.dumps(to_jsonable(summary), indent=2) + "\n")
    return result


def config_for_resume(payload: dict, config: TrainConfig | None, out: Path | None,
                      given: Collection[str] | None = None) -> TrainConfig:
    """The resumed run's own settings, but ``epochs`` (when given) and ``device``. The settings of ``config``
    that were given (``given``: field names, a command line's flags; ``None``: those that are not the
    default) and differ from the run's are named in a note, as their flags, and ignored."""
    saved = TrainConfig.from_dict(dict(payload["train_config"]))
    if config is None:
        return replace(saved, device=None)
    default = TrainConfig()
    asked = [f.name for f in fields(TrainConfig) if (f.name in given if given is not None
                                                      else getattr(config, f.name) != getattr(default, f.name))]
    ignored = [f"--{name.replace('_', '-')} {_flag_value(getattr(config, name))}" for name in asked
               if name not in ("epochs", "device") and getattr(config, name) != getattr(saved, name)]
    if ignored:
        print(f"note: resuming {out / 'last.pt' if out else 'the run'} with its own settings; ignoring "
              f"{', '.join(ignored)}", file=sys.stderr)
    return replace(saved, epochs=config.epochs if config.epochs is not None else saved.epochs, device=config.device)


def _flag_value(value: Any) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)
