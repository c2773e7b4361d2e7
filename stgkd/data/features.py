"""Input features computed beside the readings: the calendar of each step (time of day, day of week,
the wall-clock seconds an exported student is given) and seasonal lags (the reading one day or one
week before each forecast step, with whether it was observed). :func:`stgkd.data.prepare` lays them out
as described in :mod:`stgkd.data.windows`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from stgkd.data.core import TrafficData
from stgkd.errors import DataError

__all__ = [
    "SEASONS",
    "history_steps",
    "default_seasons",
    "is_seasonal",
    "lag_channels",
    "season_steps",
    "seasonal_feature_names",
    "seasons_of",
    "time_features",
    "wall_clock_seconds",
]

#: seasons a seasonal-lag input channel can reach back by (``prepare(seasonal=...)``), in minutes
SEASONS = {"day": 1440, "week": 10080}


def time_features(data: TrafficData, *, time_of_day: bool = True, day_of_week: bool = False) -> dict[str, np.ndarray]:
    """Per-step time features ``(T,)`` float32 by name (see the module docstring for the encoding)."""
    out: dict[str, np.ndarray] = {}
    if not (time_of_day or day_of_week):
        return out
    if data.timestamps is not None:
        ts = data.timestamps
        minutes = np.asarray(ts.hour * 60 + ts.minute, dtype=np.float64) + np.asarray(ts.second) / 60.0
        dow = np.asarray(ts.day_of_week, dtype=np.float64)
    else:  # no timestamps: step 0 is Monday 00:00
        elapsed = np.arange(data.num_steps, dtype=np.float64) * data.interval_minutes
        minutes = np.mod(elapsed, 1440.0)
        dow = np.mod(np.floor(elapsed / 1440.0), 7.0)
    if time_of_day:
        out["time_of_day"] = (minutes / 1440.0).astype(np.float32)
    if day_of_week:
        out["day_of_week"] = (dow / 7.0).astype(np.float32)
    return out


def seasonal_feature_names(season: str) -> tuple[str, str]:
    """The two input features a seasonal lag adds: ``("seasonal_<season>", "seasonal_<season>_observed")``."""
    return f"seasonal_{season}", f"seasonal_{season}_observed"


def is_seasonal(feature: str) -> bool:
    """Whether ``feature`` is one of the channels a seasonal lag adds."""
    return any(feature in seasonal_feature_names(season) for season in SEASONS)


def seasons_of(features: Sequence[str]) -> list[str]:
    """The seasons (:data:`SEASONS`) whose lag channels a list of input features holds, in order."""
    return [season for season in SEASONS if seasonal_feature_names(season)[0] in features]


def season_steps(season: str, interval_minutes: float, in_steps: int, *, where: str = "prepare") -> int:
    """Steps in one ``season`` at the data's interval; the season must be a whole number of steps and at
    least the input window (its lag channel never reads past the forecast origin).

    Raises:
        DataError: unknown season, an interval that does not divide it, or a season shorter than ``in_steps``.
    """
    if season not in SEASONS:
        raise DataError(f"{where}: seasonal: unknown season {season!r}; expected one of {', '.join(SEASONS)}")
    steps = SEASONS[season] / float(interval_minutes)
    if steps != int(steps):
        raise DataError(f"{where}: seasonal={season!r}: {SEASONS[season]} minutes is not a whole number of "
                        f"{interval_minutes}-minute steps")
    if int(steps) < in_steps:
        raise DataError(f"{where}: seasonal={season!r} is {int(steps)} steps, shorter than the input window "
                        f"({in_steps} steps)")
    return int(steps)


#: a season is added by default only when the series spans at least this many of it, so that most training
#: windows (70 % of the series under the usual split) have a lagged reading to read
DEFAULT_SEASON_SPAN = 3
#: a season is added by default only when it reaches at most this many steps back (a day at one minute, a
#: week at ten): a longer one makes every forecast, and the deployed forecaster, read that much history (a
#: week at five minutes is 2,016 steps per sensor); it is still there to ask for
DEFAULT_SEASON_MAX_STEPS = 1440


def default_seasons(wanted: Sequence[str], interval_minutes: float, num_steps: int, in_steps: int,
                    notes: list[str] | None = None) -> list[str]:
    """The seasons of ``wanted`` (a model's :attr:`~stgkd.nn.base.ForecastModel.default_seasons`) that a
    series allows: a whole number of steps at its interval, at least the input window
    (:func:`season_steps`), at most :data:`DEFAULT_SEASON_MAX_STEPS` steps back, and spanned
    :data:`DEFAULT_SEASON_SPAN` times by its ``num_steps`` steps. The others are left out without an error:
    they are a default, not a request (an explicit ``prepare(seasonal=...)`` still raises); each one left
    out appends its reason to ``notes`` when given, for the caller to print."""
    keep = []
    for season in wanted:
        try:
            steps = season_steps(season, interval_minutes, in_steps)
        except DataError as exc:
            if notes is not None:
                notes.append(f"the {season} season is left out of the default inputs: {exc}")
            continue
        reason = None
        if steps > DEFAULT_SEASON_MAX_STEPS:
            reason = (f"{steps} steps of history per forecast at {interval_minutes:g} minutes, more than the "
                      f"{DEFAULT_SEASON_MAX_STEPS} a default reaches (ask for it with seasonal / --seasonal {season})")
        elif num_steps < DEFAULT_SEASON_SPAN * steps:
            reason = (f"the series spans {num_steps} steps ({num_steps * interval_minutes / 1440:.1f} days), less than "
                      f"the {DEFAULT_SEASON_SPAN} seasons ({DEFAULT_SEASON_SPAN * steps} steps) a default needs")
        if reason is None:
            keep.append(season)
        elif notes is not None:
            notes.append(f"the {season} season is left out of the default inputs: {reason}")
    return keep


def history_steps(in_steps: int, input_features: Sequence[str], interval_minutes: float) -> int:
    """Readings per sensor one forecast reads: the input window, or a whole season when the input carries
    seasonal-lag channels (:func:`prepare`): input step ``i`` of those reads ``season - in_steps`` steps
    before it, so ``max(in_steps, season)`` steps back from the forecast origin."""
    seasons = [season_steps(s, interval_minutes, in_steps) for s in seasons_of(input_features)]
    return max([int(in_steps), *seasons])


def wall_clock_seconds(data: TrafficData) -> np.ndarray:
    """``(T,)`` int64 seconds since 1970-01-01 of each step's local wall-clock time: the timestamps an
    exported student is given (:class:`stgkd.export.RawUnitsForecaster` reads its calendar features from
    them), consistent with :func:`time_features`. Time-zone-aware timestamps keep their local time;
    without timestamps step 0 is Monday 1970-01-05 00:00 and steps are ``interval_minutes`` apart."""
    if data.timestamps is not None:
        ts = data.timestamps
        if ts.tz is not None:
            ts = ts.tz_localize(None)
        return np.asarray(ts.as_unit("s").asi8, dtype=np.int64)
    return 4 * 86400 + np.arange(data.num_steps, dtype=np.int64) * int(data.interval_minutes) * 60


def lag_channels(scaled: Tensor, raw: np.ndarray, lags: dict[str, int], chunk: int) -> Tensor:
    """``(T, N, 2 * len(lags))``: per season, the scaled reading ``lag`` steps earlier (``0`` where there is
    none or it is missing) and whether it is observed (``1``/``0``).

    Shapes:
        scaled ``(T, N)`` (missing already ``0``), raw ``(T, N)`` (``NaN`` = missing) -> ``(T, N, 2 S)``
    """
    t_total, n = scaled.shape
    out = torch.zeros((t_total, n, 2 * len(lags)), dtype=torch.float32)
    view = out.numpy()
    for k, lag in enumerate(lags.values()):
        if lag >= t_total:
            continue
        out[lag:, :, 2 * k] = scaled[: t_total - lag]
        for begin in range(lag, t_total, chunk):  # observed flags, a chunk at a time (no (T, N) bool temporary)
            end = min(begin + chunk, t_total)
            np.isfinite(raw[begin - lag : end - lag], out=view[begin:end, :, 2 * k + 1], casting="unsafe")
    return out
