"""Masked forecasting metrics with DCRNN's definitions, per horizon step.

A reading is *observed* where ``mask`` says so (and ``true`` is finite). Pass ``batch.mask``: it carries
the dataset's missing-value convention (:mod:`stgkd.missing`; a real ``0`` of a count series is
observed, a ``0`` of METR-LA is not), and ``batch.y`` holds a filler ``0`` where a reading is missing.
Without a mask, ``true != null_val`` decides (DCRNN's rule, ``0`` by default). As in DCRNN's
``masked_mae_loss``, errors are averaged over observed entries
only: ``sum(|e| * m) / sum(m)``, which equals DCRNN's ``mean(|e| * m / mean(m))``. RMSE is the square
root of the masked MSE over the whole set, MAPE is a fraction (``0.07`` is 7 %) everywhere in stgkd:
:class:`MetricAccumulator`, the engine's evaluation and every JSON file they fill.

One metric family: :class:`MetricAccumulator` computes every reported figure (MAE, RMSE, MAPE by
horizon); :func:`masked_mae` is the supervised loss (and its value on one batch).

Tensors are laid out with the horizon on dim 1: forecasts ``(B, H, N)`` (or ``(B, H, N, C)``).
``at`` picks a 1-based horizon step (3 / 6 / 12 are 15 / 30 / 60 minutes at 5-minute intervals); results
are keyed by :func:`horizon_name` (``"15min"`` at 5-minute intervals, ``"3h"`` hourly, ``"3w"`` weekly).

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
    "LOSSES",
    "masked_loss",
    "masked_mae",
    "DEFAULT_STEPS",
    "HORIZON_UNITS",
    "MetricAccumulator",
    "horizon_name",
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
    r"""Mean absolute error over observed entries; also the supervised loss term :math:`L_{sup}`.

    .. math::
        \mathrm{MAE} = \frac{\sum_i m_i |\hat y_i - y_i|}{\max(1, \sum_i m_i)}

    Differentiable; an all-missing batch gives ``0`` (with a graph, so ``backward`` still works).

    Shapes:
        pred, true, mask: ``(B, H, N)`` (any equal shapes); returns a scalar.

    Args:
        pred: forecasts, horizon on dim 1, e.g. ``(B, H, N)``.
        true: targets of the same shape, raw units.
        mask: optional bool tensor (True = observed); combined with ``isfinite(true)``. When
            omitted, ``true != null_val`` (default: ``0.0``; ``nan`` masks NaN instead).
        at: 1-based horizon step, or ``None`` for all steps (default: ``None``).
    """
    pred, true, mask = _select(pred, true, mask, at)
    return _masked_mean((pred - true).abs(), _mask(true, mask, null_val))


def _huber(err: Tensor) -> Tensor:
    a = err.abs()
    return torch.where(a < 1.0, 0.5 * err * err, a - 0.5)


#: pointwise training losses of an error ``pred - true`` in raw units, by name (``TrainConfig.loss``):
#: ``"mae"`` learns the conditional median (what MAE scores), ``"mse"`` the mean, ``"huber"`` (a unit
#: threshold) the mean of small errors and the median of large ones
LOSSES = {"mae": torch.abs, "mse": torch.square, "huber": _huber}


def masked_loss(pred: Tensor, true: Tensor, mask: Tensor | None = None, *, loss: str = "mae",
                null_val: float = 0.0) -> Tensor:
    r"""Mean of a pointwise loss of :data:`LOSSES` over observed entries: :math:`\sum_i m_i\,\ell(\hat y_i - y_i)
    / \max(1, \sum_i m_i)`; ``loss="mae"`` is :func:`masked_mae`.

    Shapes:
        pred, true, mask: ``(B, H, N)`` (any equal shapes); returns a scalar.

    Args:
        mask: bool, True = observed, combined with ``isfinite(true)``; when omitted ``true != null_val``
            (default: ``0.0``, METR-LA's missing reading; pass ``nan``, or a mask, where a 0 is a count).
    """
    if loss not in LOSSES:
        raise DataError(f"loss {loss!r}: expected one of {', '.join(LOSSES)}")
    pred, true, mask = _select(pred, true, mask, None)
    return _masked_mean(LOSSES[loss](pred - true), _mask(true, mask, null_val))


#: horizon steps reported by default: 15, 30 and 60 minutes at a 5-minute interval
DEFAULT_STEPS = (3, 6, 12)
#: the units a horizon is named in, largest first: ``(suffix, minutes)``; minutes (``"min"``) otherwise
HORIZON_UNITS = (("w", 7 * 1440), ("d", 1440), ("h", 60))


def horizon_name(step: int, interval_minutes: int) -> str:
    """The name of the forecast ``step`` steps ahead of series sampled every ``interval_minutes``.

    The lead time ``step * interval_minutes`` is written in the largest unit that divides the interval:
    weeks (``w``), days (``d``), hours (``h``), else minutes (``min``). So 5-minute data keeps the names
    published results use (``15min``, ``30min``, ``60min`` at steps 3, 6, 12), hourly data reads ``1h``,
    ``3h``, ``12h``, daily ``1d``, ``3d``, and weekly ``3w``, ``6w``, ``12w``.

    Raises:
        DataError: ``step`` or ``interval_minutes`` below 1.
    """
    step, interval_minutes = int(step), int(interval_minutes)
    if step < 1 or interval_minutes < 1:
        raise DataError(f"horizon_name: step and interval_minutes must be >= 1, got {step} and {interval_minutes}")
    lead = step * interval_minutes
    for suffix, minutes in HORIZON_UNITS:
        if interval_minutes % minutes == 0:
            return f"{lead // minutes}{suffix}"
    return f"{lead}min"


class MetricAccumulator:
    """Running per-horizon-step sums of ``|e|``, ``e^2``, ``|e|/|y|`` and counts (float64).

    ``update`` takes batches ``(B, H, N[, C])`` in raw units; :meth:`result` returns the exact
    metrics of everything seen, as if computed on the concatenation of the batches, MAPE as a
    fraction (``0.07`` is 7 %). MAPE is taken over the observed readings that are not ``0`` (a
    real ``0``, as in a count series, counts in MAE and RMSE but has no percentage error). A horizon
    step with no observed reading has ``nan`` metrics.

    The state is one float64 tensor, :attr:`sums` ``(5, H)`` (rows: ``|e|``, ``e^2``, ``|e|/|y|``,
    observed count, count of the non-zero observed truths), so summing it over processes (the
    engine's ``all_reduce_sum``) before :meth:`result` gives the metrics of all their windows.

    Args:
        out_steps: the horizon ``H``; ``None`` takes it from the first batch (default: ``None``).
        device: where the sums live (default: ``"cpu"``; with ``out_steps=None``, the first batch's).
        null_val: which target marks a missing reading when ``update`` gets no mask (default: ``0.0``;
            pass ``batch.mask`` instead: it carries the dataset's missing-value convention).
        interval_minutes: minutes per step, for the keys of :meth:`result` (default: ``5``).

    Example::

        acc = MetricAccumulator()
        for batch in loader:
            acc.update(scaler.inverse_transform(model(batch.x)), batch.y, batch.mask)
        acc.result()  # {"15min": {"mae": ..., "rmse": ..., "mape": ...}, ..., "avg": {...}}
    """

    def __init__(self, out_steps: int | None = None, device: torch.device | str | None = None, *,
                 null_val: float = 0.0, interval_minutes: int = 5) -> None:
        self.null_val = null_val
        self.interval_minutes = interval_minutes
        self.sums: Tensor | None = None
        if out_steps is not None:
            self.sums = torch.zeros(5, int(out_steps), dtype=torch.float64, device=device or "cpu")

    @property
    def horizon(self) -> int:
        return 0 if self.sums is None else int(self.sums.shape[1])

    @torch.no_grad()
    def update(self, pred: Tensor, true: Tensor, mask: Tensor | None = None) -> None:
        """Add one batch; the horizon is dim 1 and must match earlier batches."""
        if pred.shape != true.shape or true.dim() < 2:
            raise DataError(
                f"MetricAccumulator.update: need pred and true of one shape (B, H, ...), got "
                f"{tuple(pred.shape)} and {tuple(true.shape)}"
            )
        if self.sums is None:
            self.sums = torch.zeros(5, true.shape[1], dtype=torch.float64, device=true.device)
        if true.shape[1] != self.horizon:
            raise DataError(
                f"MetricAccumulator.update: horizon {true.shape[1]} differs from earlier batches' {self.horizon}"
            )
        observed = _mask(true, mask, self.null_val)
        pred = pred.detach().to(self.sums.device, torch.float64)
        true = true.detach().to(self.sums.device, torch.float64)
        observed = observed.to(self.sums.device)
        err = torch.where(observed, pred - true, torch.zeros_like(pred))
        ape_ok = observed & (true != 0)
        safe_true = torch.where(ape_ok, true.abs(), torch.ones_like(true))
        dims = [0] + list(range(2, true.dim()))
        self.sums[0] += err.abs().sum(dims)
        self.sums[1] += err.square().sum(dims)
        self.sums[2] += torch.where(ape_ok, err.abs() / safe_true, torch.zeros_like(err)).sum(dims)
        self.sums[3] += observed.to(torch.float64).sum(dims)
        self.sums[4] += ape_ok.to(torch.float64).sum(dims)

    @staticmethod
    def _finish(s: Tensor) -> dict[str, float]:
        n = float(s[3])
        if n == 0:
            return {"mae": float("nan"), "rmse": float("nan"), "mape": float("nan")}
        n_ape = float(s[4])
        return {"mae": float(s[0]) / n, "rmse": (float(s[1]) / n) ** 0.5,
                "mape": float(s[2]) / n_ape if n_ape else float("nan")}

    def _state(self) -> Tensor:
        if self.sums is None:
            raise DataError("MetricAccumulator: no batch was added")
        return self.sums.cpu()

    def metrics(self, at: int | None = None) -> dict[str, float]:
        """``{"mae", "rmse", "mape"}`` at 1-based step ``at``, or over all steps when ``None``."""
        sums = self._state()
        if at is None:
            return self._finish(sums.sum(1))
        if not 1 <= at <= self.horizon:
            raise DataError(f"MetricAccumulator: at={at} is outside the horizon 1..{self.horizon}")
        return self._finish(sums[:, at - 1])

    def result(self, steps: Sequence[int] = DEFAULT_STEPS,
               interval_minutes: int | None = None) -> dict[str, dict[str, float]]:
        """Metrics at each of ``steps`` (keyed by :func:`horizon_name`: ``"15min"`` etc. at 5-minute
        intervals, ``"3w"`` etc. for weekly data) plus ``"avg"`` over all steps.

        Steps beyond the accumulated horizon are skipped; ``interval_minutes`` overrides the
        constructor's for the keys.
        """
        minutes = self.interval_minutes if interval_minutes is None else interval_minutes
        out = {horizon_name(step, minutes): self.metrics(step) for step in steps if 1 <= step <= self.horizon}
        out["avg"] = self.metrics(None)
        return out

    #: the name the engine used for :meth:`result`
    compute = result

    def per_step(self) -> list[dict[str, float]]:
        """Metrics of every horizon step, in order."""
        sums = self._state()
        return [self._finish(sums[:, h]) for h in range(self.horizon)]
