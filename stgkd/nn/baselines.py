r"""Baselines every forecast must beat, as registered models: last value, seasonal naive, and the
historical average and median per sensor and time of day.

They speak the interface of every model (``(B, T_in, N, C)`` scaled in, ``(B, H, N)`` scaled out, channel
0 the z-scored reading, the others time features), so they are built, saved, evaluated and exported like
any student, but they learn nothing by gradient: :meth:`BaselineModel.fit` reads the training slice of a
:class:`~stgkd.data.windows.PreparedData` (:attr:`~stgkd.data.windows.PreparedData.train_end`, the
slice the scaler is fitted on), in well under a second at METR-LA size. Their ``role`` is
``"baseline"``, so loops over teachers or students (``model_names("student")``) leave them out.

=====================  =========================================================================
``last-value``         :math:`\hat y_{t+h} = y_t`
``seasonal-naive``     :math:`\hat y_{t+h} = y_{t+h-kS}`, :math:`k = \lceil h/S \rceil`: the latest reading
                       at the same phase of a season of ``S`` steps (one day: ``S = 1440 / interval``),
                       read from the input window, which must therefore hold ``T_in >= S`` steps
``historical-average`` :math:`\hat y_{t+h} = \mathrm{mean}\{y_s : s < t_{train},\ \mathrm{slot}(s) =
                       \mathrm{slot}(t+h)\}` per sensor, the slot the time of day (and with ``weekly`` the day
                       of week) read from the input's time features
``historical-median``  the same with the median
``zero``               :math:`\hat y_{t+h} = 0`: the forecast to beat on a count series where most readings
                       are ``0`` (an MAE-trained model that learns the median learns it)
=====================  =========================================================================

Missing readings (``NaN`` in :attr:`TrafficData.values <stgkd.data.TrafficData.values>`) are skipped when
a profile is fitted. A profile cell with no observed training reading takes the sensor's time-of-day
profile (weekly profiles only), then the sensor's statistic over the whole training slice, then the
training mean; none is left ``NaN``. At forecast time the naive baselines copy what the input holds: a
missing input reading is the training mean there (``0`` in scaled units, as :func:`~stgkd.data.prepare`
and the exported wrapper set it).

What each needs from the data, checked with an error that says what is short: a seasonal naive needs
an input window of a whole season; a historical profile needs a training slice of at least one day, two
weeks for ``weekly``, and an interval that divides a day.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor

from stgkd.errors import ConfigError, DataError
from stgkd.nn.base import ForecastModel
from stgkd.nn.registry import register_model

__all__ = [
    "BaselineModel",
    "HistoricalAverage",
    "HistoricalMedian",
    "LastValue",
    "PROFILE_STATISTICS",
    "SeasonalNaive",
    "ZeroForecast",
    "profile_table",
    "season_label",
]

MINUTES_PER_DAY = 1440


def _nanmean(block: np.ndarray) -> np.ndarray:
    ok = np.isfinite(block)
    count = ok.sum(0)
    total = np.where(ok, block, 0.0).sum(0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmedian(block: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # a sensor with no reading in the block: NaN, filled by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(block, axis=0)


#: statistic of a profile cell's observed readings ``(k, N) -> (N,)``, ``NaN`` where a column has none
PROFILE_STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"mean": _nanmean, "median": _nanmedian}


def profile_table(values: np.ndarray, keys: np.ndarray, num_keys: int, statistic: str = "mean") -> np.ndarray:
    r"""Per-key, per-sensor statistic of the observed readings: the table of a historical baseline.

    .. math::
        P_{k,n} = \mathrm{stat}\{\, v_{s,n} : \mathrm{key}_s = k,\ v_{s,n} \text{ finite} \,\}

    Shapes:
        values ``(T, N)`` (``NaN`` = missing), keys ``(T,)`` ints in ``0 .. num_keys - 1`` -> ``(num_keys, N)``
        float64, ``NaN`` where a key has no observed reading of a sensor.

    Args:
        values: the readings, raw units.
        keys: the profile cell of each step (e.g. its time-of-day slot).
        num_keys: number of cells.
        statistic: a name in :data:`PROFILE_STATISTICS`, ``"mean"`` or ``"median"`` (default: ``"mean"``).
    """
    if statistic not in PROFILE_STATISTICS:
        raise ConfigError(f"profile statistic {statistic!r}: expected one of {', '.join(PROFILE_STATISTICS)}")
    values = np.asarray(values, dtype=np.float64)
    keys = np.asarray(keys, dtype=np.int64)
    if values.ndim != 2 or keys.shape != values.shape[:1]:
        raise DataError(f"profile_table: need values (T, N) and keys (T,), got {values.shape} and {keys.shape}")
    if keys.size and (keys.min() < 0 or keys.max() >= num_keys):
        raise DataError(f"profile_table: keys must lie in 0..{num_keys - 1}")
    reduce = PROFILE_STATISTICS[statistic]
    out = np.full((num_keys, values.shape[1]), np.nan)
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(num_keys + 1))
    for k in range(num_keys):
        if bounds[k + 1] > bounds[k]:
            out[k] = reduce(values[order[bounds[k] : bounds[k + 1]]])
    return out


def season_label(steps: int, interval_minutes: int) -> str:
    """``"1 day"``, ``"1 week"``, ``"2 days"`` or ``"36 steps"``: a season of ``steps`` at ``interval_minutes``."""
    minutes = steps * interval_minutes
    for unit, size in (("week", 7 * MINUTES_PER_DAY), ("day", MINUTES_PER_DAY), ("hour", 60)):
        if minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{steps} steps"


def steps_per_day(interval_minutes: int, where: str) -> int:
    """Steps in a day at ``interval_minutes``; a :class:`ConfigError` naming ``where`` if it does not divide a day."""
    if interval_minutes < 1 or MINUTES_PER_DAY % int(interval_minutes):
        raise ConfigError(f"{where}: an interval of {interval_minutes} min does not divide a day")
    return MINUTES_PER_DAY // int(interval_minutes)


class BaselineModel(ForecastModel):
    """A model that is fitted, not trained: no parameters, its state in buffers.

    Subclasses implement :meth:`label` and, when they hold a state, :meth:`fit`.
    """

    role: ClassVar[str] = "baseline"
    uses_graph: ClassVar[bool] = False

    def fit(self, prepared: Any) -> "BaselineModel":
        """Fit on the training slice of ``prepared`` (a :class:`~stgkd.data.windows.PreparedData`);
        returns ``self``. Baselines without a state have nothing to fit."""
        return self

    def label(self, interval_minutes: int = 5) -> str:  # pragma: no cover - abstract
        """How tables name the baseline, e.g. ``"seasonal naive (1 day)"``."""
        raise NotImplementedError

    def _output(self, out: Tensor, return_features: bool):
        return (out, {}) if return_features else out


@register_model("last-value")
class LastValue(BaselineModel):
    r"""Repeat the last input reading over the horizon: :math:`\hat y_{t+h} = y_t`.

    Args:
        num_nodes: number of sensors ``N``.
        graph: ignored (default: None).
        in_steps: input steps; only the last is read (default: 12).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels; channel 0 is the scaled reading (default: 2).
    """

    def __init__(self, *, num_nodes: int, graph: Tensor | np.ndarray | None = None, in_steps: int = 12,
                 out_steps: int = 12, in_channels: int = 2) -> None:
        super().__init__(num_nodes=num_nodes, in_steps=in_steps, out_steps=out_steps, in_channels=in_channels)

    def label(self, interval_minutes: int = 5) -> str:
        return "last value"

    def forward(self, x: Tensor, return_features: bool = False):
        """The last step's reading at every horizon.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; no features.
        """
        self._check_input(x)
        return self._output(x[:, -1:, :, 0].expand(-1, self.out_steps, -1).contiguous(), return_features)


@register_model("zero")
class ZeroForecast(BaselineModel):
    r"""Forecast ``0`` at every horizon: :math:`\hat y_{t+h} = 0` in raw units. On a count series most of
    whose readings are ``0`` (boardings an hour at a quiet stop) it is the table an MAE-trained model
    must beat; :meth:`fit` stores what ``0`` is in the data's scaled units.

    Args:
        num_nodes: number of sensors ``N``.
        graph: ignored (default: None).
        in_steps: input steps; none is read (default: 12).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels (default: 2).
    """

    def __init__(self, *, num_nodes: int, graph: Tensor | np.ndarray | None = None, in_steps: int = 12,
                 out_steps: int = 12, in_channels: int = 2) -> None:
        super().__init__(num_nodes=num_nodes, in_steps=in_steps, out_steps=out_steps, in_channels=in_channels)
        self.register_buffer("zero", torch.zeros(()))

    def label(self, interval_minutes: int = 5) -> str:
        return "zero"

    def fit(self, prepared: Any) -> "ZeroForecast":
        """Store ``0`` in the scaled units of ``prepared.scaler``."""
        self.zero.fill_(float(prepared.scaler.transform(np.float64(0.0))))
        return self

    def forward(self, x: Tensor, return_features: bool = False):
        """``0`` (raw units) at every horizon and sensor.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; no features.
        """
        self._check_input(x)
        out = self.zero.to(x.dtype).expand(x.shape[0], self.out_steps, self.num_nodes).contiguous()
        return self._output(out, return_features)


@register_model("seasonal-naive")
class SeasonalNaive(BaselineModel):
    r"""The latest reading at the same phase of a season of ``S`` steps (statsforecast's
    ``SeasonalNaive``): :math:`\hat y_{t+h} = y_{t+h-kS}` with :math:`k = \lceil h / S \rceil`, i.e. the
    same time the day (or week) before for every horizon within a season.

    The readings come from the input window, which must reach back a season: ``T_in >= S``. (Beside a
    model with a shorter window, :func:`stgkd.engine.baselines.score_baselines` gives it the same forecast
    targets with the longer history the series holds before them.)

    Args:
        num_nodes: number of sensors ``N``.
        graph: ignored (default: None).
        in_steps: input steps, at least ``season_steps`` (default: 12, which is too short for the
            default season: pass ``in_steps``).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels; channel 0 is the scaled reading (default: 2).
        season_steps: the season ``S`` in steps, e.g. 288 for a day at 5 minutes, 24 at an hour
            (default: 288).

    Raises:
        ConfigError: the input window is shorter than the season.
    """

    def __init__(self, *, num_nodes: int, graph: Tensor | np.ndarray | None = None, in_steps: int = 12,
                 out_steps: int = 12, in_channels: int = 2, season_steps: int = 288) -> None:
        super().__init__(num_nodes=num_nodes, in_steps=in_steps, out_steps=out_steps, in_channels=in_channels,
                         season_steps=season_steps)
        if season_steps < 1:
            raise ConfigError(f"seasonal-naive: season_steps must be >= 1, got {season_steps}")
        if in_steps < season_steps:
            raise ConfigError(
                f"seasonal-naive: a season of {season_steps} steps needs an input window of at least "
                f"{season_steps} steps, got in_steps={in_steps}"
            )
        self.season_steps = int(season_steps)
        h = torch.arange(1, out_steps + 1)
        source = in_steps - 1 + h - self.season_steps * torch.div(h + self.season_steps - 1, self.season_steps,
                                                                   rounding_mode="floor")
        self.register_buffer("source", source, persistent=False)

    def label(self, interval_minutes: int = 5) -> str:
        return f"seasonal naive ({season_label(self.season_steps, interval_minutes)})"

    def forward(self, x: Tensor, return_features: bool = False):
        """Gather, for each horizon ``h``, the input step ``T_in - 1 + h - kS``.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; no features.
        """
        self._check_input(x)
        return self._output(x[:, :, :, 0].index_select(1, self.source), return_features)


class HistoricalProfile(BaselineModel):
    r"""Per sensor, a statistic of the training readings at each time of day (and day of week with
    ``weekly``), looked up for the time each horizon forecasts:

    .. math::
        \hat y_{t+h,n} = P_{\mathrm{slot}(t+h),\,n}, \qquad
        \mathrm{slot}(s) = (d_s \cdot S_{day} +)\ \mathrm{round}(\mathrm{tod}_s \cdot S_{day})

    The input's last step gives the time (channel ``time_channel``: minutes since midnight / 1440, and
    ``day_channel``: weekday / 7, as :func:`stgkd.data.prepare` builds them); ``h`` steps later is
    ``h`` slots later, rolling over into the next day. The table is the buffer ``profile``
    ``(D, S_day, N)`` in scaled units (``D = 7`` with ``weekly``, else 1), filled by :meth:`fit`.

    Args:
        num_nodes: number of sensors ``N``.
        graph: ignored (default: None).
        in_steps: input steps; only the last one's time features are read (default: 12).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels (default: 2).
        slots_per_day: time-of-day slots, ``1440 / interval``; ``None`` takes them from the data's interval
            when fitted (and :meth:`config` records them) (default: None).
        weekly: one profile per day of week; fitting needs two weeks of training data (default: False).
        time_channel: input channel of the time of day (default: 1).
        day_channel: input channel of the day of week, read with ``weekly`` only (default: 2).
    """

    statistic: ClassVar[str] = "mean"
    what: ClassVar[str] = "historical average"

    def __init__(self, *, num_nodes: int, graph: Tensor | np.ndarray | None = None, in_steps: int = 12,
                 out_steps: int = 12, in_channels: int = 2, slots_per_day: int | None = None, weekly: bool = False,
                 time_channel: int = 1, day_channel: int = 2) -> None:
        super().__init__(num_nodes=num_nodes, in_steps=in_steps, out_steps=out_steps, in_channels=in_channels,
                         slots_per_day=slots_per_day, weekly=weekly, time_channel=time_channel,
                         day_channel=day_channel)
        name = self.registry_name
        if slots_per_day is not None and slots_per_day < 1:
            raise ConfigError(f"{name}: slots_per_day must be >= 1, got {slots_per_day}")
        if not 0 <= time_channel < in_channels:
            raise ConfigError(f"{name}: reads the time of day from input channel {time_channel}, but there are "
                              f"{in_channels} channels (keep the time-of-day feature)")
        if weekly and not 0 <= day_channel < in_channels:
            raise ConfigError(f"{name}: weekly reads the day of week from input channel {day_channel}, but there "
                              f"are {in_channels} channels (add the day-of-week feature)")
        self.slots_per_day = int(slots_per_day or 1)  # 1 until fitted when None
        self.weekly = bool(weekly)
        self.time_channel = int(time_channel)
        self.day_channel = int(day_channel)
        self.register_buffer("profile", torch.zeros(7 if weekly else 1, self.slots_per_day, num_nodes))
        self.register_buffer("ahead", torch.arange(1, out_steps + 1), persistent=False)

    def label(self, interval_minutes: int = 5) -> str:
        return self.what + (" (day of week)" if self.weekly else "")

    def fit(self, prepared: Any) -> "HistoricalProfile":
        """Fill ``profile`` from the training slice of ``prepared`` (steps ``0 .. prepared.train_end - 1``
        of the target channel, missing readings skipped), in the scaled units of ``prepared.scaler``.

        Raises:
            ConfigError: the sensors or the slots a day are not the data's.
            DataError: the training slice is shorter than a day (two weeks with ``weekly``).
        """
        from stgkd.data.windows import time_features

        name = self.registry_name
        data = prepared.data
        if data.num_nodes != self.num_nodes:
            raise ConfigError(f"{name}: built for {self.num_nodes} sensors, {data.name} has {data.num_nodes}")
        per_day = steps_per_day(int(data.interval_minutes), f"{name} on {data.name}")
        if self._hparams["slots_per_day"] is None:  # from the data: now part of the config
            self._hparams["slots_per_day"] = self.slots_per_day = per_day
            self.profile = torch.zeros(self.profile.shape[0], per_day, self.num_nodes, device=self.profile.device)
        if per_day != self.slots_per_day:
            raise ConfigError(f"{name}: {self.slots_per_day} slots a day, but {data.name}'s interval of "
                              f"{data.interval_minutes} min gives {per_day} (pass slots_per_day={per_day})")
        end = int(prepared.train_end)
        need = per_day * (14 if self.weekly else 1)
        if end < need:
            raise DataError(
                f"{name} on {data.name}: the training slice covers {end} steps ({end / per_day:.1f} days), "
                f"less than the {'two weeks' if self.weekly else 'one day'} ({need} steps) a "
                f"{'weekly ' if self.weekly else ''}profile needs"
            )
        times = time_features(data, time_of_day=True, day_of_week=True)
        slot = np.rint(times["time_of_day"][:end].astype(np.float64) * per_day).astype(np.int64) % per_day
        values = np.asarray(data.values[:end, :, 0], dtype=np.float64)
        table = profile_table(values, slot, per_day, self.statistic)[None]  # (1, S, N)
        if self.weekly:
            day = np.rint(times["day_of_week"][:end].astype(np.float64) * 7).astype(np.int64) % 7
            weekly = profile_table(values, day * per_day + slot, 7 * per_day, self.statistic).reshape(7, per_day, -1)
            table = np.where(np.isnan(weekly), table, weekly)  # an empty (day, slot): the time-of-day profile
        overall = profile_table(values, np.zeros(end, dtype=np.int64), 1, self.statistic)  # (1, N)
        table = np.where(np.isnan(table), overall[None], table)
        table = np.where(np.isnan(table), prepared.scaler.mean, table)  # a sensor never observed
        scaled = prepared.scaler.transform(table).astype(np.float32)
        self.profile.copy_(torch.from_numpy(scaled).to(self.profile.device))
        return self

    def forward(self, x: Tensor, return_features: bool = False):
        """Look up each horizon's slot in ``profile``.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; no features.
        """
        self._check_input(x)
        per_day = self.slots_per_day
        now = torch.round(x[:, -1, 0, self.time_channel] * per_day).long() % per_day  # (B,)
        later = now[:, None] + self.ahead  # (B, H) slots from today's midnight
        slot = later % per_day
        if self.weekly:
            today = torch.round(x[:, -1, 0, self.day_channel] * 7).long() % 7
            day = (today[:, None] + torch.div(later, per_day, rounding_mode="floor")) % 7
        else:
            day = torch.zeros_like(slot)
        return self._output(self.profile[day, slot], return_features)


@register_model("historical-average")
class HistoricalAverage(HistoricalProfile):
    __doc__ = "The historical average (HA in DCRNN's and BasicTS's tables). " + (HistoricalProfile.__doc__ or "")
    statistic = "mean"
    what = "historical average"


@register_model("historical-median")
class HistoricalMedian(HistoricalProfile):
    __doc__ = ("The historical median: robust to bursts and outages, the stronger profile of a sparse count "
               "series. " + (HistoricalProfile.__doc__ or ""))
    statistic = "median"
    what = "historical median"
