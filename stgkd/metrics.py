"""Masked forecasting metrics with DCRNN's definitions, per horizon step.

A reading is *observed* where ``mask`` says so (and ``true`` is finite). Pass ``batch.mask``: it carries
the dataset's missing-value convention (:mod:`stgkd.missing`; a real ``0`` of a count series is
observed, a ``0`` of METR-LA is not), and ``batch.y`` holds a filler ``0`` where a reading is missing.
Without a mask, ``true != null_val`` decides (DCRNN's rule, ``0`` by default). As in DCRNN's
``masked_mae_loss``, errors are averaged over observed entries
only: ``sum(|e| * m) / sum(m)``, which equals DCRNN's ``mean(|e| * m / mean(m))``. RMSE is the square
root of the masked MSE over the whole set, MAPE is in percent.

Tensors are laid out with the horizon on dim 1: forecasts ``(B, H, N)`` (or ``(B, H, N, C)``).
``at`` picks a 1-based horizon step (3 / 6 / 12 are 15 / 30 / 60 minutes at 5-minute intervals).

Dataset-level figures are *not* the mean of per-batch figures (batches differ in their number of
observed entries and RMSE is not additive); :class:`MetricAccumulator` keeps per-step sums so that
evaluation over many batches gives the exact metrics of the whole set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from stgkd.errors import DataError

__all__ = [
    "masked_mae",
    "masked_mse",
    "masked_rmse",
    "masked_mape",
    "horizon_metrics",
    "MetricAccumulator",
]


def _mask(true: Tensor, mask: Tensor | None, null_val: float) -> Tensor:
    if mask is None:
        if isinstance(null_val, float) and math.isnan(null_val):
            observed = ~torch.isnan(true)
        else:
            observed = true != null_val
    else:
        if mask.shape != true.shape:
            raise DataError(f"metrics: mask shape {tuple(mask.shape)} != target shape {tuple(true.shape)}")
        observed = mask.bool()
    return observed & torch.isfinite(true)


def _select(pred: Tensor, true: Tensor, mask: Tensor | None, at: int | None):
    if pred.shape != true.shape:
        raise DataError(f"metrics: prediction shape {tuple(pred.shape)} != target shape {tuple(true.shape)}")
    if at is None:
        return pred, true, mask
    if true.dim() < 2:
        raise DataError(f"metrics: at= needs the horizon on dim 1, got shape {tuple(true.shape)}")
    horizon = true.shape[1]
    if not 1 <= at <= horizon:
        raise DataError(f"metrics: at={at} is outside the horizon 1..{horizon}")
    return pred[:, at - 1], true[:, at - 1], None if mask is None else mask[:, at - 1]


def _masked_mean(values: Tensor, observed: Tensor) -> Tensor:
    weights = observed.to(values.dtype)
    total = weights.sum()
    values = torch.where(observed, values, torch.zeros_like(values))  # NaN/Inf at masked spots
    return (values * weights).sum() / total.clamp_min(1.0)


def masked_mae(
    pred: Tensor, true: Tensor, mask: Tensor | None = None, *, null_val: float = 0.0, at: int | None = None
) -> Tensor:
    """Mean absolute error over observed entries (0 when none is observed). Differentiable.

    Args:
        pred: forecasts, horizon on dim 1, e.g. ``(B, H, N)``.
        true: targets of the same shape, raw units.
        mask: optional bool tensor (True = observed); combined with ``isfinite(true)``. When
            omitted, ``true != null_val`` (default: ``0.0``; ``nan`` masks NaN instead).
        at: 1-based horizon step, or ``None`` for all steps (default: ``None``).
    """
    pred, true, mask = _select(pred, true, mask, at)
    return _masked_mean((pred - true).abs(), _mask(true, mask, null_val))


def masked_mse(
    pred: Tensor, true: Tensor, mask: Tensor | None = None, *, null_val: float = 0.0, at: int | None = None
) -> Tensor:
    """Mean squared error over observed entries; arguments as :func:`masked_mae`."""
    pred, true, mask = _select(pred, true, mask, at)
    return _masked_mean((pred - true) ** 2, _mask(true, mask, null_val))


def masked_rmse(
    pred: Tensor, true: Tensor, mask: Tensor | None = None, *, null_val: float = 0.0, at: int | None = None
) -> Tensor:
    """Root of :func:`masked_mse` (DCRNN: sqrt of the masked MSE of the whole set given)."""
    return masked_mse(pred, true, mask, null_val=null_val, at=at).sqrt()


def masked_mape(
    pred: Tensor, true: Tensor, mask: Tensor | None = None, *, null_val: float = 0.0, at: int | None = None
) -> Tensor:
    """Mean absolute percentage error in % over observed, non-zero targets."""
    pred, true, mask = _select(pred, true, mask, at)
    observed = _mask(true, mask, null_val) & (true != 0)
    ape = (pred - true).abs() / true.abs().clamp_min(torch.finfo(true.dtype).tiny)
    return 100.0 * _masked_mean(ape, observed)


class MetricAccumulator:
    """Running per-horizon-step sums of ``|e|``, ``e^2``, ``|e|/|y|`` and counts (float64).

    ``update`` takes batches ``(B, H, N[, C])``; :meth:`result` returns the exact metrics of
    everything seen, as if computed on the concatenation of the batches.

    Example::

        acc = MetricAccumulator()
        for batch in loader:
            acc.update(scaler.inverse_transform(model(batch.x)), batch.y, batch.mask)
        acc.result()  # {"15min": {"mae": ..., "rmse": ..., "mape": ...}, ..., "avg": {...}}
    """

    def __init__(self, *, null_val: float = 0.0, interval_minutes: int = 5) -> None:
        self.null_val = null_val
        self.interval_minutes = interval_minutes
        self.abs_sum: Tensor | None = None
        self.sq_sum: Tensor | None = None
        self.ape_sum: Tensor | None = None
        self.count: Tensor | None = None
        self.ape_count: Tensor | None = None

    @property
    def horizon(self) -> int:
        return 0 if self.count is None else int(self.count.numel())

    @torch.no_grad()
    def update(self, pred: Tensor, true: Tensor, mask: Tensor | None = None) -> None:
        """Add one batch; the horizon is dim 1 and must match earlier batches."""
        if pred.shape != true.shape or true.dim() < 2:
            raise DataError(
                f"MetricAccumulator.update: need pred and true of one shape (B, H, ...), got "
                f"{tuple(pred.shape)} and {tuple(true.shape)}"
            )
        observed = _mask(true, mask, self.null_val)
        err = torch.where(observed, (pred - true).double(), torch.zeros((), dtype=torch.float64, device=true.device))
        true64 = true.double()
        ape_ok = observed & (true != 0)
        ape = torch.where(ape_ok, err.abs() / torch.where(ape_ok, true64.abs(), torch.ones_like(true64)),
                          torch.zeros_like(err))
        dims = [0] + list(range(2, true.dim()))
        stats = [err.abs().sum(dims), (err * err).sum(dims), ape.sum(dims),
                 observed.sum(dims).double(), ape_ok.sum(dims).double()]
        stats = [s.cpu() for s in stats]
        if self.count is None:
            self.abs_sum, self.sq_sum, self.ape_sum, self.count, self.ape_count = stats
            return
        if stats[3].numel() != self.count.numel():
            raise DataError(
                f"MetricAccumulator.update: horizon {stats[3].numel()} differs from earlier batches' "
                f"{self.count.numel()}"
            )
        self.abs_sum += stats[0]
        self.sq_sum += stats[1]
        self.ape_sum += stats[2]
        self.count += stats[3]
        self.ape_count += stats[4]

    def metrics(self, at: int | None = None) -> dict[str, float]:
        """``{"mae", "rmse", "mape"}`` at 1-based step ``at``, or over all steps when ``None``."""
        if self.count is None:
            raise DataError("MetricAccumulator: no batch was added")
        if at is None:
            sl = slice(None)
        elif 1 <= at <= self.horizon:
            sl = slice(at - 1, at)
        else:
            raise DataError(f"MetricAccumulator: at={at} is outside the horizon 1..{self.horizon}")
        n = float(self.count[sl].sum())
        n_ape = float(self.ape_count[sl].sum())
        if n == 0:
            return {"mae": 0.0, "rmse": 0.0, "mape": 0.0}
        return {
            "mae": float(self.abs_sum[sl].sum()) / n,
            "rmse": math.sqrt(float(self.sq_sum[sl].sum()) / n),
            "mape": 100.0 * float(self.ape_sum[sl].sum()) / n_ape if n_ape else 0.0,
        }

    def result(self, steps: Sequence[int] = (3, 6, 12)) -> dict[str, dict[str, float]]:
        """Metrics at each of ``steps`` (keyed ``"15min"`` etc.) plus ``"avg"`` over all steps.

        Steps beyond the accumulated horizon are skipped.
        """
        out = {
            f"{step * self.interval_minutes}min": self.metrics(step) for step in steps if step <= self.horizon
        }
        out["avg"] = self.metrics(None)
        return out


def horizon_metrics(
    pred: Tensor,
    true: Tensor,
    mask: Tensor | None = None,
    steps: Sequence[int] = (3, 6, 12),
    interval_minutes: int = 5,
    *,
    null_val: float = 0.0,
) -> dict[str, dict[str, float]]:
    """MAE / RMSE / MAPE at each horizon step in ``steps`` and averaged over all steps.

    Args:
        pred: forecasts ``(B, H, N)`` in raw units.
        true: targets ``(B, H, N)`` in raw units.
        mask: optional observed-mask (default: ``true != null_val``).
        steps: 1-based horizon steps to report (default: ``(3, 6, 12)``).
        interval_minutes: minutes per step, for the keys (default: ``5``).

    Returns:
        ``{"15min": {"mae", "rmse", "mape"}, "30min": ..., "60min": ..., "avg": ...}`` as floats.
    """
    acc = MetricAccumulator(null_val=null_val, interval_minutes=interval_minutes)
    acc.update(pred, true, mask)
    return acc.result(steps)
