"""T-GCN's Los-loop protocol on the real METR-LA week, for our teacher, students and a peer.

What T-GCN (Zhao et al., IEEE T-ITS 2020; official code ``lehaifeng/T-GCN``) does, and what we do:

============================  ==========================================  =====================================
step                          T-GCN                                        here
============================  ==========================================  =====================================
data                          ``los_speed.csv`` (207 sensors, 2,016        the same file from
                              steps, no missing readings)                  ``../shared/data/metr-la-week``
adjacency                     ``los_adj.csv`` (binary-ish 0/1 matrix)      DCRNN's ``adj_mx.pkl`` (Gaussian kernel
                                                                           of road distance, threshold 0.1): the
                                                                           shared folder has no ``los_adj.csv``
scaling                       divide by ``max`` of the whole series        divide by ``max`` of the training
                                                                           region (no test statistics)
split                         first 80% of steps train, last 20% test;     the same 80/20 steps; the last 10% of
                              windows inside each part                     the training steps is held out for
                                                                           model selection (validation)
input / horizons              12 steps in; a separate model per            12 steps in; one model with 12
                              ``pre_len`` = 3, 6, 9, 12 (15-60 min)        outputs, scored on its first 3/6/9/12
model selection               best *test* epoch (reported at it)           best validation epoch, scored once on
                                                                           the test part
metrics (mph)                 RMSE, MAE, accuracy = 1 - ||Y-Ŷ||_F/||Y||_F,  the same, over every window of the
                              R², var, over all predicted steps            test part and its first ``h`` steps
============================  ==========================================  =====================================

With 12 outputs per window the test part holds ``404 - 24 + 1 = 381`` windows for every horizon,
where T-GCN's ``pre_len = h`` model sees ``404 - 12 - h + 1`` (a few more at short horizons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from stgkd.data.core import TrafficData
from stgkd.data.scalers import StandardScaler
from stgkd.data.windows import PreparedData, WindowSplit
from stgkd.errors import DataError

__all__ = ["HORIZONS", "LosLoopSplit", "prepare_los_loop", "tgcn_metrics", "horizon_table"]

#: T-GCN's pre_len values (steps) and what they are in minutes at 5-minute steps
HORIZONS = (3, 6, 9, 12)


@dataclass
class LosLoopSplit:
    """Step ranges ``[lo, hi)`` of the three regions and the scaling maximum."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]
    max_value: float
    max_value_all: float


def _window_starts(lo: int, hi: int, length: int) -> torch.Tensor:
    """Starts of every window of ``length`` steps lying inside ``[lo, hi)``."""
    last = hi - length
    if last < lo:
        return torch.zeros(0, dtype=torch.long)
    return torch.arange(lo, last + 1, dtype=torch.long)


def prepare_los_loop(
    data: TrafficData,
    *,
    in_steps: int = 12,
    out_steps: int = 12,
    train_rate: float = 0.8,
    val_fraction: float = 0.1,
    device: str | torch.device = "cpu",
) -> tuple[PreparedData, LosLoopSplit]:
    """Windows of the T-GCN protocol as a :class:`PreparedData` the trainer can use.

    The "scaler" is ``x / max`` (a :class:`StandardScaler` with ``mean = 0``, ``std = max`` of the
    training region), so ``scaler.inverse_transform`` returns mph as for every other protocol. The
    input has one channel, the scaled speed (T-GCN uses no time features).

    Raises:
        DataError: a region too short for one window, or fractions outside (0, 1).
    """
    if not (0 < train_rate < 1 and 0 < val_fraction < 1):
        raise DataError(f"los-loop: train_rate and val_fraction must be in (0, 1), got {train_rate}, {val_fraction}")
    t_total = data.num_steps
    train_size = int(t_total * train_rate)  # T-GCN: train_size = int(time_len * rate)
    fit_end = train_size - int(round(train_size * val_fraction))
    regions = {"train": (0, fit_end), "val": (fit_end, train_size), "test": (train_size, t_total)}
    values = np.asarray(data.values[..., 0], dtype=np.float32)  # NaN where a reading is missing
    readings = np.nan_to_num(values, nan=0.0)  # T-GCN feeds a missing reading (recorded as 0) as 0
    max_value = float(readings[:fit_end].max())
    if not math.isfinite(max_value) or max_value <= 0:
        raise DataError(f"{data.name}: the training region's maximum is {max_value}; cannot scale by it")
    scaler = StandardScaler(mean=0.0, std=max_value)
    inputs = torch.from_numpy(readings / np.float32(max_value)).unsqueeze(-1).contiguous().to(device)
    targets = torch.from_numpy(np.ascontiguousarray(values)).to(device)  # missing: masked by the windows
    length = in_steps + out_steps
    splits = {}
    for name, (lo, hi) in regions.items():
        starts = _window_starts(lo, hi, length)
        if len(starts) == 0:
            raise DataError(f"{data.name}: the {name} region [{lo}, {hi}) is shorter than one window of {length} steps")
        splits[name] = WindowSplit(name, inputs, targets, starts, in_steps, out_steps)
    prepared = PreparedData(
        data=data, scaler=scaler, train=splits["train"], val=splits["val"], test=splits["test"], in_steps=in_steps,
        out_steps=out_steps, input_features=["value"], split=(fit_end / t_total, (train_size - fit_end) / t_total,
                                                              (t_total - train_size) / t_total),
        channel_scalers={data.channel_names[0]: scaler},
    )
    info = LosLoopSplit(regions["train"], regions["val"], regions["test"], max_value, float(readings.max()))
    return prepared, info


def tgcn_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """T-GCN's ``evaluation(a, b)`` with ``a`` the truth and ``b`` the forecast, in mph.

    ``rmse``, ``mae``; ``accuracy = 1 - ||a - b||_F / ||a||_F``; ``r2 = 1 - Σ(a-b)² / Σ(a-ā)²``;
    ``var = 1 - Var(a - b) / Var(a)`` (all entries pooled, as its code does on ``(-1, N)`` matrices).
    """
    a = np.asarray(true, dtype=np.float64).ravel()
    b = np.asarray(pred, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise DataError(f"tgcn_metrics: truth and forecast must be non-empty and equal in shape, got {a.shape}, {b.shape}")
    err = a - b
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "accuracy": float(1.0 - np.linalg.norm(err) / np.linalg.norm(a)),
        "r2": float(1.0 - np.sum(err**2) / np.sum((a - a.mean()) ** 2)),
        "var": float(1.0 - np.var(err) / np.var(a)),
    }


def horizon_table(true: np.ndarray, pred: np.ndarray, horizons: Sequence[int] = HORIZONS,
                  interval_minutes: int = 5) -> dict[str, dict[str, float]]:
    """T-GCN metrics of ``(S, H, N)`` forecasts over their first ``h`` steps, for each ``h``.

    Returns ``{"15min": {...}, "30min": {...}, "45min": {...}, "60min": {...}}``.
    """
    out: dict[str, Any] = {}
    for h in horizons:
        if h > true.shape[1]:
            continue
        out[f"{h * interval_minutes}min"] = tgcn_metrics(true[:, :h], pred[:, :h])
    return out
