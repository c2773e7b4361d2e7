"""Dataset-level masked metrics of a model on one split, and forecasts for plotting.

Metrics are accumulated exactly over the whole split (sums of absolute, squared and relative
errors and of observed entries per horizon step, in float64), not averaged per batch, so the
result does not depend on the batch size or on how the windows are sharded over processes:
``MAE_h = sum |pred - y| * mask / sum mask`` over every window of the split, the DCRNN masked
definitions at dataset level. ``"avg"`` pools all horizon steps the same way. The sums are
:class:`stgkd.metrics.MetricAccumulator`'s (MAPE as a fraction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.engine.distributed import DistContext, all_reduce_sum, shard_eval_indices
from stgkd.metrics import DEFAULT_STEPS, MetricAccumulator

#: the metrics' one accumulator, by the name the engine gave it first
HorizonAccumulator = MetricAccumulator


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def evaluate_split(
    model: nn.Module,
    split,
    scaler,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    ctx: DistContext | None = None,
    steps: tuple[int, ...] = DEFAULT_STEPS,
    interval_minutes: int = 5,
    reference: Tensor | None = None,
) -> dict[str, Any]:
    """Masked MAE/RMSE/MAPE of ``model`` on every window of ``split`` (a ``WindowSplit``).

    Returns ``{"15min": {...}, "30min": {...}, "60min": {...}, "avg": {...}, "per_step": [...]}``
    (steps beyond the model's horizon are left out). Under ``ctx`` each rank evaluates its shard
    and the sums are all-reduced, so every rank returns the full-split metrics.

    With ``reference``, raw forecasts ``(S, H, N)`` of every window of the split by another model
    (a teacher), the errors are measured against those instead of the truth, still only where the
    truth is observed: the model's *fidelity* to the reference on the readings its accuracy is
    scored on.
    """
    ctx = ctx or DistContext(device=torch.device(device))
    was_training = model.training
    model.eval()
    acc = MetricAccumulator(_out_steps(model, split), device=device)
    indices = shard_eval_indices(len(split), ctx)
    for chunk in torch.split(indices, max(1, int(batch_size))):
        batch = split.batch(chunk).to(device)
        pred = scaler.inverse_transform(_forward(model, batch.x).float())
        target = batch.y if reference is None else reference[chunk.to(reference.device)].to(pred.device)
        acc.update(pred, target, batch.mask)
    all_reduce_sum(acc.sums, ctx)
    model.train(was_training)
    result: dict[str, Any] = acc.result(steps, interval_minutes)
    result["per_step"] = acc.per_step()
    return result


@torch.no_grad()
def evaluate_program(
    program,
    prepared,
    *,
    split: str = "test",
    batch_size: int = 64,
    steps: tuple[int, ...] = DEFAULT_STEPS,
) -> dict[str, Any]:
    """Masked MAE/RMSE/MAPE of an exported program on every window of a split, fed as in deployment.

    ``program`` is called as :class:`stgkd.Forecaster` calls it: raw readings as the series holds them
    (its missing readings included) and each input step's wall-clock seconds
    (:func:`~stgkd.data.windows.wall_clock_seconds`) in, raw forecasts out; the metrics are those of
    :func:`evaluate_split`, accumulated the same way, on the CPU.

    Shapes:
        program: values ``(B, T_hist, N)`` float32, timestamps ``(B, T_hist)`` int64 -> ``(B, H, N)`` raw, where
        ``T_hist`` is :func:`~stgkd.data.windows.history_steps` (``T_in``, or a season with seasonal-lag
        channels; readings before the series starts are ``NaN``, missing).

    Args:
        program: a TorchScript / torch.export program or :class:`stgkd.export.OnnxProgram`.
        prepared: the :class:`~stgkd.data.windows.PreparedData` the student was trained on.
        split: ``"train"``, ``"val"`` or ``"test"`` (default: ``"test"``).
        batch_size: windows per call (default: 64).

    Returns:
        ``{"15min": {...}, "30min": {...}, "60min": {...}, "avg": {...}, "per_step": [...]}``.
    """
    from stgkd.data.windows import history_steps, wall_clock_seconds

    windows = prepared.get_split(split)
    interval = int(prepared.data.interval_minutes)
    hist = history_steps(windows.in_steps, prepared.input_features, interval)
    seconds = torch.from_numpy(wall_clock_seconds(prepared.data))
    raw = windows.targets.cpu()
    starts = windows.starts.cpu()
    in_offsets = torch.arange(windows.in_steps - hist, windows.in_steps)
    acc = MetricAccumulator(windows.out_steps)
    for chunk in torch.split(torch.arange(len(windows)), max(1, int(batch_size))):
        rows = starts[chunk, None] + in_offsets  # (B, T_hist) series steps of the inputs
        before = rows < 0  # a history reaching before the series: missing readings, regular timestamps
        clamped = rows.clamp_min(0)
        batch = windows.batch(chunk)
        values = raw[clamped.reshape(-1)].view(rows.shape[0], hist, -1).clone()
        values[before] = float("nan")
        stamps = torch.where(before, seconds[0] + rows * interval * 60, seconds[clamped])
        acc.update(program(values, stamps).float().cpu(), batch.y.cpu(), batch.mask.cpu())
    result: dict[str, Any] = acc.result(steps, int(prepared.data.interval_minutes))
    result["per_step"] = acc.per_step()
    return result


def _out_steps(model: nn.Module, split) -> int:
    inner = getattr(model, "module", model)
    steps = getattr(inner, "out_steps", None)
    if steps is None:
        steps = int(split.batch(torch.zeros(1, dtype=torch.long)).y.shape[1])
    return int(steps)


@dataclass
class Forecasts:
    """Forecasts of a split in raw units: ``pred``/``true`` ``(S, H, N)``, ``mask`` ``(S, H, N)``."""

    pred: np.ndarray
    true: np.ndarray
    mask: np.ndarray


@torch.no_grad()
def predict_split(model: nn.Module, split, scaler, *, batch_size: int = 64, device="cpu",
                  limit: int | None = None) -> Forecasts:
    """Raw-unit forecasts for the first ``limit`` windows of ``split`` (all when ``None``)."""
    model.eval()
    n = len(split) if limit is None else min(len(split), int(limit))
    preds, trues, masks = [], [], []
    for chunk in torch.split(torch.arange(n), max(1, int(batch_size))):
        batch = split.batch(chunk).to(device)
        preds.append(scaler.inverse_transform(_forward(model, batch.x).float()).cpu())
        trues.append(batch.y.cpu())
        masks.append(batch.mask.cpu())
    return Forecasts(torch.cat(preds).numpy(), torch.cat(trues).numpy(), torch.cat(masks).numpy())


def target_times(prepared, windows, count: int) -> np.ndarray:
    """``(S, H)``: the time each target of the first ``count`` windows of ``windows`` forecasts: the series'
    timestamps, or hours from its start where it has none."""
    steps = windows.target_steps()[:count].cpu().numpy()
    ts = prepared.data.timestamps
    return np.asarray(ts)[steps] if ts is not None else steps * float(prepared.data.interval_minutes) / 60.0


def format_metrics(metrics: dict[str, Any]) -> str:
    """A small text table of ``{"15min": {...}, ..., "avg": {...}}``."""
    rows = [f"{'horizon':>8}  {'MAE':>8}  {'RMSE':>8}  {'MAPE':>8}"]
    for key, m in metrics.items():
        if isinstance(m, dict) and "mae" in m:
            rows.append(f"{key:>8}  {m['mae']:8.4f}  {m['rmse']:8.4f}  {100 * m['mape']:7.2f}%")
    return "\n".join(rows)


@dataclass
class Evaluation:
    """What :func:`evaluate_checkpoint` returns; :meth:`to_dict` is the JSON the command writes."""

    checkpoint: str
    split: str
    model: str
    dataset: str
    windows: int
    metrics: dict[str, Any]
    per_step: list[dict[str, float]]
    forecasts: Forecasts | None = None
    sensor_ids: list[str] | None = None
    target_times: np.ndarray | None = None
    interval_minutes: int = 5
    #: the teacher compared with (a distilled student's recorded teacher, or the one asked for)
    teacher_checkpoint: str | None = None
    #: the teacher's own metrics on the split
    teacher_metrics: dict[str, Any] | None = None
    #: the model's metrics against the teacher's forecasts, where the truth is observed
    fidelity: dict[str, Any] | None = None
    #: the teacher's raw forecasts of the same first windows as ``forecasts`` ``(S, H, N)``
    teacher_forecasts: np.ndarray | None = None
    #: why no teacher comparison was made although the checkpoint names a teacher
    teacher_note: str | None = None
    #: the windows scored (a :class:`~stgkd.data.windows.PreparedData`; for the baselines' comparison,
    #: :func:`stgkd.engine.baselines.score_baselines`)
    prepared: Any = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "checkpoint": self.checkpoint,
            "split": self.split,
            "model": self.model,
            "dataset": self.dataset,
            "windows": self.windows,
            "metrics": self.metrics,
            "per_step": self.per_step,
        }
        if self.teacher_checkpoint is not None:
            out["teacher"] = {"checkpoint": self.teacher_checkpoint, "metrics": self.teacher_metrics}
            out["fidelity"] = self.fidelity
        return out


def evaluate_checkpoint(
    path,
    *,
    split: str = "test",
    dataset=None,
    data_dir=None,
    device: str | None = None,
    batch_size: int = 64,
    keep_forecasts: int | None = 0,
    missing=None,
    teacher=None,
) -> Evaluation:
    """Masked MAE/RMSE/MAPE at 15/30/60 min and over the horizon of a checkpoint on ``split``.

    The data is rebuilt from the checkpoint (``dataset`` overrides the series; it is read with the
    checkpoint's missing-value convention, which ``missing`` may repeat but not change). With
    ``keep_forecasts`` (a number of windows, ``None`` = all) the raw forecasts of the first windows
    are returned too, for plotting.

    A distilled student is also compared with its teacher (``teacher``: a teacher checkpoint path;
    ``None``: the one the student's checkpoint records, skipped with a ``teacher_note`` when that file
    is gone; ``False``: none): the teacher's own metrics, the student's *fidelity* (its metrics
    against the teacher's forecasts, where the truth is observed) and, with ``keep_forecasts``, the
    teacher's forecasts of the same windows.

    Raises:
        ConfigError: the teacher's windows (sensors, steps, input features) are not the checkpoint's.
    """
    from pathlib import Path

    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.engine.distributed import resolve_device

    dev = resolve_device(device)
    payload = load_checkpoint(path)
    prepared = prepare_from_meta(payload["data"], dataset=dataset, data_dir=data_dir, device=dev, missing=missing)
    model = model_from_checkpoint(payload, device=dev)
    windows = prepared.get_split(split)
    interval = int(payload["data"].get("interval_minutes", 5))
    metrics = evaluate_split(model, windows, prepared.scaler, batch_size=batch_size, device=dev,
                             interval_minutes=interval)
    per_step = metrics.pop("per_step")
    forecasts = times = None
    if keep_forecasts is None or keep_forecasts > 0:
        forecasts = predict_split(model, windows, prepared.scaler, batch_size=batch_size, device=dev, limit=keep_forecasts)
        times = target_times(prepared, windows, forecasts.pred.shape[0])
    evaluation = Evaluation(
        checkpoint=str(Path(path)), split=split, model=payload["model"]["name"], dataset=str(prepared.data.name),
        windows=len(windows), metrics=metrics, per_step=per_step, forecasts=forecasts,
        sensor_ids=list(prepared.data.sensor_ids), target_times=times, interval_minutes=interval, prepared=prepared,
    )
    teacher_path = None if teacher is False else teacher if teacher is not None else payload.get("teacher_checkpoint")
    members = payload.get("teachers", {}).get("members", [])
    if teacher is None and len(members) > 1:
        evaluation.teacher_note = (f"the student was distilled from an ensemble of {len(members)} teachers; no fidelity "
                                   "to one of them (pass a teacher)")
    elif teacher_path is not None and teacher is None and not Path(teacher_path).exists():
        evaluation.teacher_note = f"the student's teacher {teacher_path} is gone; no fidelity (pass a teacher)"
    elif teacher_path is not None:
        _compare_with_teacher(evaluation, model, prepared, windows, Path(teacher_path), batch_size=batch_size,
                              device=dev)
    return evaluation


def _compare_with_teacher(evaluation: Evaluation, model: nn.Module, prepared, windows, teacher_path, *,
                          batch_size: int, device) -> None:
    """Fill ``evaluation``'s teacher fields: one teacher pass over ``windows``."""
    from stgkd.data.rebuild import data_meta
    from stgkd.data.scalers import StandardScaler
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.errors import ConfigError
    from stgkd.nn.base import SelectInputs

    t_payload = load_checkpoint(teacher_path)
    ours = data_meta(prepared)
    differ = [k for k in ("sensor_ids", "in_steps", "out_steps") if t_payload["data"].get(k) != ours[k]]
    if differ:
        raise ConfigError(f"teacher {teacher_path}: its windows differ from the checkpoint's in {differ}")
    # the teacher reads the channels it was trained with (a student may also read seasonal-lag channels)
    teacher = SelectInputs.for_features(model_from_checkpoint(t_payload, device=device), ours["input_features"],
                                        list(t_payload["data"]["input_features"]), where=f"teacher {teacher_path}")
    t_scaler = StandardScaler(**t_payload["scaler"])
    reference = torch.from_numpy(predict_split(teacher, windows, t_scaler, batch_size=batch_size, device=device).pred)
    acc = MetricAccumulator(reference.shape[1], device=device)
    for chunk in torch.split(torch.arange(len(windows)), max(1, int(batch_size))):
        batch = windows.batch(chunk).to(device)
        acc.update(reference[chunk].to(device), batch.y, batch.mask)
    evaluation.teacher_checkpoint = str(teacher_path)
    evaluation.teacher_metrics = acc.result(DEFAULT_STEPS, evaluation.interval_minutes)
    fidelity = evaluate_split(model, windows, prepared.scaler, batch_size=batch_size, device=device,
                              interval_minutes=evaluation.interval_minutes, reference=reference.to(device))
    evaluation.fidelity = {k: v for k, v in fidelity.items() if k != "per_step"}
    if evaluation.forecasts is not None:
        evaluation.teacher_forecasts = reference[: evaluation.forecasts.pred.shape[0]].numpy()


def plot_forecasts(evaluation: Evaluation, sensors: list[int], path, *, horizons: tuple[int, ...] = DEFAULT_STEPS) -> None:
    """A PNG with one panel per sensor: the truth and the forecasts made ``h`` steps ahead,
    aligned to the time they forecast (missing truth left blank); with the teacher's forecasts in the
    evaluation (a distilled student), the teacher's ``h``-step forecasts as dashed lines of the same
    colour as the student's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fc = evaluation.forecasts
    if fc is None:
        raise ValueError("plot_forecasts: the evaluation holds no forecasts (keep_forecasts=0)")
    horizon = fc.pred.shape[1]
    hs = [h for h in horizons if 1 <= h <= horizon] or [horizon]
    fig, axes = plt.subplots(len(sensors), 1, figsize=(11, 2.6 * len(sensors)), squeeze=False, sharex=True)
    times = evaluation.target_times
    for ax, node in zip(axes[:, 0], sensors):
        # truth: step 1 of each window, i.e. the series at each window's first target time
        truth = np.where(fc.mask[:, 0, node], fc.true[:, 0, node], np.nan)
        ax.plot(times[:, 0], truth, color="black", lw=1.2, label="truth")
        teacher = evaluation.teacher_forecasts
        for h in hs:
            line, = ax.plot(times[:, h - 1], fc.pred[:, h - 1, node], lw=1.0, alpha=0.85,
                            label=f"{h * evaluation.interval_minutes} min ahead" + (" (student)" if teacher is not None else ""))
            if teacher is not None:
                ax.plot(times[:, h - 1], teacher[:, h - 1, node], lw=1.0, alpha=0.85, ls="--", color=line.get_color(),
                        label=f"{h * evaluation.interval_minutes} min ahead (teacher)")
        ax.set_title(f"sensor {evaluation.sensor_ids[node]} (#{node})", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="lower left", fontsize=8, ncol=len(hs) + 1)
    axes[-1, 0].set_xlabel("time" if np.issubdtype(np.asarray(times).dtype, np.datetime64) else "hours")
    title = (f"{evaluation.model} on {evaluation.dataset} ({evaluation.split}): "
             f"MAE {evaluation.metrics['avg']['mae']:.3f}")
    if evaluation.teacher_metrics is not None and evaluation.fidelity is not None:
        title += (f"; teacher MAE {evaluation.teacher_metrics['avg']['mae']:.3f}; "
                  f"student-teacher MAE {evaluation.fidelity['avg']['mae']:.3f}")
    fig.suptitle(title, fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_models(truth: np.ndarray, mask: np.ndarray, forecasts: dict[str, np.ndarray], times: np.ndarray,
                sensors: list[int], path, *, step: int, interval_minutes: int, sensor_ids: list[str] | None = None,
                title: str = ""):
    """A PNG, written atomically, with one panel per sensor: the truth and each model's forecasts made
    ``step`` steps ahead, at the times they forecast (missing truth left blank), one line per model in the
    order of ``forecasts``.

    Shapes:
        truth, mask ``(S, H, N)`` (raw units; ``mask`` true where observed), every forecast ``(S, H, N)``,
        times ``(S, H)`` (:func:`target_times`).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stgkd.files import atomic_write

    if not 1 <= step <= truth.shape[1]:
        raise ValueError(f"plot_models: step {step} is outside the horizon 1..{truth.shape[1]}")
    for name, pred in forecasts.items():
        if pred.shape != truth.shape:
            raise ValueError(f"plot_models: {name}'s forecasts are {pred.shape}, the truth {truth.shape}")
    at = step - 1
    fig, axes = plt.subplots(len(sensors), 1, figsize=(11, 2.8 * len(sensors)), squeeze=False, sharex=True)
    for ax, node in zip(axes[:, 0], sensors):
        ax.plot(times[:, at], np.where(mask[:, at, node], truth[:, at, node], np.nan), color="black", lw=1.4,
                label="truth")
        for name, pred in forecasts.items():
            ax.plot(times[:, at], pred[:, at, node], lw=1.0, alpha=0.85, label=name)
        label = sensor_ids[node] if sensor_ids is not None else str(node)
        ax.set_title(f"sensor {label} (#{node}), forecasts made {step * interval_minutes} min ahead", fontsize=9,
                     loc="left")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time" if np.issubdtype(np.asarray(times).dtype, np.datetime64) else "hours")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.autofmt_xdate()
    handles, labels = axes[0, 0].get_legend_handles_labels()  # one legend under the panels
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(labels) + 1) // 2), 1, 1))
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
