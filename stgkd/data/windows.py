"""Sliding windows over a :class:`TrafficData` series, served without copying the series.

:func:`prepare` reproduces DCRNN's ``generate_training_data.py``:

* windows are built over the whole series: input ``x = [t-T_in+1 .. t]``, target
  ``y = [t+1 .. t+H]``, for every ``t`` with both inside the series, i.e.
  ``S = T - T_in - H + 1`` windows (``T - 23`` for 12/12);
* the windows are split chronologically: ``num_test = round(S * test)``,
  ``num_train = round(S * train)``, ``num_val = S - num_train - num_test`` (Python's ``round``,
  as DCRNN; fractions from ``split=`` or ``data.split``, 0.7/0.1/0.2 by default, 0.6/0.2/0.2 for PEMS0x);
* input features: channel 0 z-scored, then ``time_of_day`` = minutes since midnight / 1440 (DCRNN's
  ``add_time_in_day``), then optionally ``day_of_week`` as *one* channel ``dayofweek / 7``
  (Monday = 0, values 0, 1/7, ..., 6/7) rather than DCRNN's 7 one-hot channels: it costs one
  channel of the ``(T, N, C)`` input tensor instead of seven, and models that embed the day recover
  the index as ``round(7 * x)``. Without timestamps, the series is taken to start on a Monday at
  midnight and step ``t`` is at ``t * interval_minutes`` minutes;
* optionally (``seasonal=("day",)``, :data:`SEASONS`) what the input window never sees: for a season of
  ``S`` steps (one day: ``S = 1440 / interval``), the channel ``seasonal_day`` holds at input step ``i``
  the scaled reading one season before output step ``i``, ``x[t + 1 + i - S]`` (the window's input step
  ``p`` reads step ``p + T_in - S``, never after the forecast origin ``t`` since ``S >= T_in``), and
  ``seasonal_day_observed`` is ``1`` where that reading exists and is observed, else ``0`` (the value is
  then ``0``, the training mean). These channels come last, after the time features, so a model trained
  without them reads a prefix of the channels. Windows, split and scaler are unchanged;
* missing readings are ``NaN`` in :attr:`TrafficData.values` (the dataset's ``missing`` convention,
  :mod:`stgkd.missing`, was applied when it was built: under DCRNN's ``"zero"`` a ``0`` is
  missing, under ``"nan"`` or ``"none"`` it is a reading like any other);
* scaling: a :class:`~stgkd.data.scalers.StandardScaler` fit on the steps covered by the training
  windows' inputs (steps ``0 .. num_train + T_in - 2``, each counted once) of the target channel,
  with missing readings excluded. Missing input readings become ``0`` in scaled space (the training
  mean);
* targets stay in raw units with ``mask = isfinite(y)``, and ``y = 0`` where the mask is ``False``
  (never read, and no ``NaN`` to leak into a gradient): the loss and the metrics skip missing readings.

The series is stored once: ``inputs`` ``(T, N, C_v)`` (the scaled per-sensor channels),
``step_features`` ``(T, F)`` (time features, the same for every sensor, so not repeated N times) and
``targets`` ``(T, N)`` raw (a view of the raw array, not a copy), shared by the three splits, each of
which only holds its window starts. :meth:`WindowSplit.batch` gathers a batch with index arithmetic
(``inputs.index_select(0, starts[idx, None] + arange(T_in))``) and broadcasts the time features to
the sensors of that batch only. Resident memory is thus about the raw array plus one float32 copy.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from stgkd.data.core import TrafficData
from stgkd.data.features import (
    DEFAULT_SEASON_SPAN,
    SEASONS,
    history_steps,
    is_seasonal,
    lag_channels,
    season_steps,
    seasonal_feature_names,
    seasons_of,
    time_features,
    wall_clock_seconds,
)
from stgkd.data.scalers import StandardScaler
from stgkd.errors import DataError

__all__ = [
    "Batch",
    "WindowSplit",
    "WindowLoader",
    "PreparedData",
    "prepare",
    "split_sizes",
    "time_features",
    "wall_clock_seconds",
    "observed_mask",
    "SEASONS",
    "season_steps",
    "seasonal_feature_names",
    "seasons_of",
    "history_steps",
]


SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Batch:
    """One batch of windows.

    Attributes:
        x: ``(B, T_in, N, C_in)`` float32, scaled target channel + time features.
        y: ``(B, H, N)`` float32 targets in RAW units; ``0`` where ``mask`` is False (a filler).
        mask: ``(B, H, N)`` bool, True where ``y`` is an observed reading (under the dataset's
            ``missing`` convention; a real ``0`` is observed under ``"nan"`` and ``"none"``).
        index: ``(B,)`` long positions of the windows in their split (``0 .. len(split) - 1``).
    """

    x: Tensor
    y: Tensor
    mask: Tensor
    index: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return Batch(
            self.x.to(device, non_blocking=non_blocking),
            self.y.to(device, non_blocking=non_blocking),
            self.mask.to(device, non_blocking=non_blocking),
            self.index.to(device, non_blocking=non_blocking),
        )

    def __len__(self) -> int:
        return int(self.x.shape[0])


def observed_mask(y: Tensor, *, known_finite: bool = False, fill: bool = False) -> Tensor:
    """``isfinite(y)`` as a bool tensor of ``y``'s shape (``NaN`` marks a missing reading).

    On the CPU it is computed with numpy, whose vectorised comparisons are about 10x faster than
    torch's single-threaded bool kernels at batch sizes. ``known_finite`` skips the test (the series
    was checked once, as a whole). ``fill`` also sets ``y`` to ``0`` where it is missing, in place.
    """
    if known_finite:
        return torch.ones(y.shape, dtype=torch.bool, device=y.device)
    if y.device.type == "cpu" and y.dtype in (torch.float32, torch.float64) and not y.requires_grad:
        arr = y.numpy()
        ok = np.isfinite(arr)
        if fill:
            arr[~ok] = 0.0
        return torch.from_numpy(ok)
    mask = torch.isfinite(y)
    if fill:
        y.masked_fill_(~mask, 0.0)
    return mask


@dataclass(eq=False)
class WindowSplit:
    """The windows of one split, as start positions into a shared series.

    Attributes:
        name: ``"train"``, ``"val"`` or ``"test"``.
        inputs: ``(T, N, C_v)`` float32, the per-sensor input channels of the whole series, scaled,
            shared by all splits.
        targets: ``(T, N)`` float32, the whole target channel in raw units (``NaN`` = missing), shared.
        starts: ``(S,)`` long, first input step of each window of this split.
        in_steps: ``T_in``.
        out_steps: ``H``.
        step_features: ``(T, F)`` float32 features shared by all sensors (time of day, day of
            week), appended after the ``C_v`` channels of every batch; ``None`` for none.
        lag_inputs: ``(T, N, C_s)`` float32 seasonal-lag channels, already aligned so that step ``p``
            holds what input step ``p`` carries (:func:`prepare`), appended last; ``None`` for none.
    """

    name: str
    inputs: Tensor
    targets: Tensor
    starts: Tensor
    in_steps: int
    out_steps: int
    step_features: Tensor | None = None
    lag_inputs: Tensor | None = None
    _in_offsets: Tensor = field(init=False, repr=False)
    _out_offsets: Tensor = field(init=False, repr=False)
    _finite: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        device = self.inputs.device
        rows = max(1, 2**18 // max(1, self.targets[0].numel()))  # chunks: no (T, N) bool temporary
        self._finite = all(
            bool(torch.isfinite(self.targets[i : i + rows]).all()) for i in range(0, self.targets.shape[0], rows)
        )
        self.starts = self.starts.to(device=device, dtype=torch.long)
        if self.step_features is not None:
            self.step_features = self.step_features.to(device=device, dtype=torch.float32)
            if self.step_features.dim() != 2 or self.step_features.shape[0] != self.inputs.shape[0]:
                raise DataError(
                    f"step_features must be (T, F) with T = {self.inputs.shape[0]}, got {tuple(self.step_features.shape)}"
                )
        if self.lag_inputs is not None and (self.lag_inputs.dim() != 3 or self.lag_inputs.shape[:2] != self.inputs.shape[:2]):
            raise DataError(
                f"lag_inputs must be (T, N, C_s) with (T, N) = {tuple(self.inputs.shape[:2])}, got {tuple(self.lag_inputs.shape)}"
            )
        self._in_offsets = torch.arange(self.in_steps, device=device)
        self._out_offsets = torch.arange(self.in_steps, self.in_steps + self.out_steps, device=device)

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def batch(self, idx: Tensor | Sequence[int]) -> Batch:
        """Gather the windows at positions ``idx`` (``(B,)`` long, ``0 .. len(self) - 1``).

        Copies only the batch: ``B * T_in`` rows of ``inputs`` and ``B * H`` rows of ``targets``.
        """
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.starts.device).reshape(-1)
        start = self.starts[idx]
        b = int(idx.shape[0])
        _, n, c = self.inputs.shape
        rows_in = (start[:, None] + self._in_offsets).reshape(-1)
        rows_out = (start[:, None] + self._out_offsets).reshape(-1)
        x = self.inputs.index_select(0, rows_in).view(b, self.in_steps, n, c)
        if self.step_features is not None or self.lag_inputs is not None:
            parts = [x]
            if self.step_features is not None:
                f = self.step_features.shape[1]
                times = self.step_features.index_select(0, rows_in).view(b, self.in_steps, 1, f)
                parts.append(times.expand(b, self.in_steps, n, f))
            if self.lag_inputs is not None:
                parts.append(self.lag_inputs.index_select(0, rows_in).view(b, self.in_steps, n, -1))
            x = torch.cat(parts, dim=-1)
        y = self.targets.index_select(0, rows_out).view(b, self.out_steps, n)  # a copy: filled in place
        return Batch(x=x, y=y, mask=observed_mask(y, known_finite=self._finite, fill=True), index=idx)

    def target_steps(self) -> Tensor:
        """``(S, H)`` long: the series step of each target of each window (for aligning outputs)."""
        return self.starts[:, None] + self._out_offsets

    def __repr__(self) -> str:
        return (
            f"WindowSplit({self.name!r}, windows={len(self)}, in_steps={self.in_steps}, "
            f"out_steps={self.out_steps}, inputs={tuple(self.inputs.shape)}, device={self.device})"
        )


class WindowLoader:
    """Iterates a :class:`WindowSplit` in batches.

    Args:
        split: the windows to serve.
        batch_size: windows per batch.
        shuffle: draw a new permutation every epoch (default: ``False``).
        drop_last: skip the last, incomplete batch (default: ``False``).
        seed: seed of the loader's own ``torch.Generator``; successive epochs draw successive
            permutations from it, so a run is reproducible. ``None`` seeds it from torch's global
            RNG (so ``torch.manual_seed`` governs it) (default: ``None``).
        indices: positions in the split to serve (default: all), e.g. one rank's shard for
            distributed training: ``indices=torch.arange(rank, len(split), world_size)``.
    """

    def __init__(
        self,
        split: WindowSplit,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        indices: Tensor | Sequence[int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"WindowLoader: batch_size must be positive, got {batch_size}")
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        if indices is None:
            order = torch.arange(len(split))
        else:
            order = torch.as_tensor(indices, dtype=torch.long).reshape(-1).cpu()
            if order.numel() and (order.min() < 0 or order.max() >= len(split)):
                raise DataError(
                    f"WindowLoader: indices must lie in 0..{len(split) - 1} for the {split.name} split"
                )
        self.indices = order
        self._device_indices = order.to(split.device)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.long).item())
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def __len__(self) -> int:
        n = int(self.indices.numel())
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Reseed to ``seed + epoch`` (so ranks sharing a seed draw the same permutation)."""
        self.generator.manual_seed(self.seed + int(epoch))

    def __iter__(self) -> Iterator[Batch]:
        order = self._device_indices
        n = int(order.numel())
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator).to(order.device)
            order = order[perm]
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for begin in range(0, stop, self.batch_size):
            yield self.split.batch(order[begin : begin + self.batch_size])


@dataclass(eq=False)
class PreparedData:
    """A series cut into scaled windows, ready for training and evaluation.

    Attributes:
        data: the source :class:`TrafficData`.
        scaler: z-score of the target channel (train slice, missing excluded).
        train, val, test: the three :class:`WindowSplit`, sharing one ``inputs`` / ``targets``.
        in_steps, out_steps: ``T_in`` and ``H``.
        input_features: names of the ``C_in`` input channels, e.g. ``["value", "time_of_day"]``.
        split: the fractions used.
        channel_scalers: scaler of every raw input channel, by channel name (the target's too).
    """

    data: TrafficData
    scaler: StandardScaler
    train: WindowSplit
    val: WindowSplit
    test: WindowSplit
    in_steps: int
    out_steps: int
    input_features: list[str]
    split: tuple[float, float, float]
    channel_scalers: dict[str, StandardScaler]

    @property
    def num_nodes(self) -> int:
        return self.data.num_nodes

    @property
    def in_channels(self) -> int:
        return len(self.input_features)

    @property
    def adj(self) -> np.ndarray:
        return self.data.adj

    @property
    def train_end(self) -> int:
        """Exclusive end of the training slice: the steps ``0 .. train_end - 1`` the training windows'
        inputs cover, each once (``len(train) + T_in - 1``). The scaler is fitted on them, and so are
        the historical baselines (:mod:`stgkd.nn.baselines`)."""
        return len(self.train) + self.in_steps - 1

    @property
    def device(self) -> torch.device:
        return self.train.device

    def select_features(self, features: Sequence[str]) -> "PreparedData":
        """The same windows serving only ``features``, e.g. a teacher's inputs when the student's data also
        carries seasonal-lag channels: a view sharing every tensor, without the lag channels. ``features``
        must be these input features without (some of) the seasonal ones, which come last.

        Raises:
            DataError: ``features`` cannot be served that way.
        """
        features = list(features)
        if features == self.input_features:
            return self
        base = [f for f in self.input_features if not is_seasonal(f)]
        if features != base:
            raise DataError(f"select_features: {features} are not the input features {self.input_features} "
                            "without their seasonal-lag channels")
        splits = {name: replace(self.get_split(name), lag_inputs=None) for name in SPLIT_NAMES}
        return replace(self, input_features=base, **splits)

    def get_split(self, name: str) -> WindowSplit:
        if name not in SPLIT_NAMES:
            raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def loader(
        self,
        split_name: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        indices: Tensor | Sequence[int] | None = None,
    ) -> WindowLoader:
        """A :class:`WindowLoader` over ``split_name`` (``"train"``, ``"val"`` or ``"test"``)."""
        return WindowLoader(
            self.get_split(split_name), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, indices=indices
        )

    def __repr__(self) -> str:
        return (
            f"PreparedData({self.data.name!r}, nodes={self.num_nodes}, in_steps={self.in_steps}, "
            f"out_steps={self.out_steps}, features={self.input_features}, windows="
            f"{len(self.train)}/{len(self.val)}/{len(self.test)}, scaler=({self.scaler.mean:.4g}, "
            f"{self.scaler.std:.4g}), device={self.device})"
        )


def split_sizes(num_windows: int, split: Sequence[float] = (0.7, 0.1, 0.2)) -> tuple[int, int, int]:
    """``(num_train, num_val, num_test)`` windows, rounded as DCRNN's ``generate_training_data.py``."""
    num_test = round(num_windows * split[2])
    num_train = round(num_windows * split[0])
    return num_train, num_windows - num_train - num_test, num_test


def _channel_index(data: TrafficData, channel: int | str) -> int:
    if isinstance(channel, str):
        if channel not in data.channel_names:
            raise DataError(f"prepare: channels: {channel!r} is not one of {data.channel_names}")
        return data.channel_names.index(channel)
    if not 0 <= int(channel) < data.num_channels:
        raise DataError(f"prepare: channels: index {channel} outside 0..{data.num_channels - 1}")
    return int(channel)


def prepare(
    data: TrafficData,
    *,
    in_steps: int = 12,
    out_steps: int = 12,
    split: Sequence[float] | None = None,
    time_of_day: bool = True,
    day_of_week: bool = False,
    channels: Sequence[int | str] | None = None,
    seasonal: Sequence[str] = (),
    device: torch.device | str = "cpu",
    chunk: int | None = None,
) -> PreparedData:
    """Cut ``data`` into scaled input windows and raw target windows (DCRNN's protocol).

    Args:
        data: the series; channel 0 is the target.
        in_steps: input window length ``T_in`` (default: ``12``).
        out_steps: forecast horizon ``H`` (default: ``12``).
        split: train/val/test fractions of the windows (default: ``data.split``).
        time_of_day: append ``minutes since midnight / 1440`` (default: ``True``).
        day_of_week: append ``dayofweek / 7``, Monday = 0 (default: ``False``).
        channels: raw channels to feed the model, by index or name (default: the target only);
            the target channel always comes first, each is z-scored with its own training stats.
        seasonal: seasons (:data:`SEASONS`: ``"day"``, ``"week"``) whose lag channels to append, each
            ``seasonal_<season>`` and ``seasonal_<season>_observed`` (see the module docstring); the
            season in steps follows from ``data.interval_minutes`` (default: none).
        device: where ``inputs`` and ``targets`` live (e.g. ``"cuda"``) (default: ``"cpu"``).
        chunk: steps processed at a time while scaling, bounding temporary memory (default: about
            256k readings' worth, ``2**18 // N``).

    Raises:
        DataError: the series is too short for one window per split, or a split is invalid; a season
            the interval does not divide, shorter than the input window, or beyond the training slice.
    """
    if in_steps < 1 or out_steps < 1:
        raise DataError(f"prepare: in_steps and out_steps must be positive, got {in_steps}, {out_steps}")
    fractions = tuple(float(f) for f in (data.split if split is None else split))
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"prepare: split must be three non-negative fractions summing to 1, got {split}")
    t_total, n, _ = data.values.shape
    num_windows = t_total - in_steps - out_steps + 1
    sizes = split_sizes(max(num_windows, 0), fractions)
    if num_windows < 1 or min(sizes) < 1:
        raise DataError(
            f"{data.name}: {t_total} steps give {max(num_windows, 0)} windows of {in_steps}+{out_steps} steps, "
            f"split {sizes} (train/val/test); every split needs at least one window"
        )
    num_train, num_val, _ = sizes
    lags = {}
    for season in sorted(set(seasonal), key=lambda name: list(SEASONS).index(name) if name in SEASONS else -1):
        lag = season_steps(season, data.interval_minutes, in_steps) - in_steps  # step p reads p - lag
        if lag >= num_train - 1 + in_steps:
            raise DataError(
                f"{data.name}: seasonal={season!r} reaches {lag + in_steps} steps back, but the training slice "
                f"holds {num_train - 1 + in_steps} steps: no training window would see a seasonal reading"
            )
        seeing = num_train - 1 + in_steps - lag  # training windows with a reading a season back at some input step
        if seeing < num_train / 2:
            print(f"note: {data.name}: seasonal={season!r} reaches {lag + in_steps} steps back: only {seeing} of the "
                  f"{num_train} training windows see a reading a {season} earlier (the others read 0, marked "
                  f"unobserved); a series of {DEFAULT_SEASON_SPAN} {season}s or more gives most of them one",
                  file=sys.stderr)
        lags[season] = lag

    chans = [0]
    for c in channels or ():
        idx = _channel_index(data, c)
        if idx not in chans:
            chans.append(idx)
    times = time_features(data, time_of_day=time_of_day, day_of_week=day_of_week)
    names = ["value" if i == 0 else data.channel_names[c] for i, c in enumerate(chans)]
    features = names + list(times) + [f for season in lags for f in seasonal_feature_names(season)]

    chunk = chunk or max(1, 2**18 // n)
    train_end = num_train - 1 + in_steps  # exclusive: steps read by the training windows' inputs (PreparedData.train_end)
    values = data.values
    scalers: dict[str, StandardScaler] = {}
    inputs = torch.empty((t_total, n, len(chans)), dtype=torch.float32)
    view = inputs.numpy()
    for k, c in enumerate(chans):
        sc = StandardScaler.fit(values[:train_end, :, c], chunk=chunk,
                                where=f"{data.name} channel {data.channel_names[c]!r}")
        scalers[data.channel_names[c]] = sc
        for begin in range(0, t_total, chunk):
            block = values[begin : begin + chunk, :, c]
            out = view[begin : begin + chunk, :, k]
            np.subtract(block, np.float32(sc.mean), out=out)
            np.multiply(out, np.float32(1.0 / sc.std), out=out)
            out[np.isnan(block)] = 0.0  # missing: the training mean
    step_features = (
        torch.from_numpy(np.stack([np.asarray(f, dtype=np.float32) for f in times.values()], axis=1)) if times else None
    )

    lag_inputs = lag_channels(inputs[..., 0], values[..., 0], lags, chunk) if lags else None

    target = values[..., 0]
    targets = torch.from_numpy(target if target.flags.c_contiguous else np.ascontiguousarray(target))
    device = torch.device(device)
    inputs = inputs.to(device)
    targets = targets.to(device)
    lag_inputs = lag_inputs.to(device) if lag_inputs is not None else None
    bounds = np.cumsum([0, *sizes])
    splits = [
        WindowSplit(name, inputs, targets, torch.arange(int(lo), int(hi)), in_steps, out_steps, step_features,
                    lag_inputs)
        for name, lo, hi in zip(SPLIT_NAMES, bounds[:-1], bounds[1:])
    ]
    return PreparedData(
        data=data,
        scaler=scalers[data.channel_names[0]],
        train=splits[0],
        val=splits[1],
        test=splits[2],
        in_steps=in_steps,
        out_steps=out_steps,
        input_features=features,
        split=fractions,
        channel_scalers=scalers,
    )
