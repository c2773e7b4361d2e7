"""What a count series looks like, in the figures a real network is described by.

A count network (boardings at bus stops, say) is hard for a forecaster in ways a mean and a standard deviation
do not show: most readings are ``0``, a few stops carry most of the riders, the counts are overdispersed, and the
day and the week repeat only so far. :func:`count_statistics` measures these on a ``(T, N)`` array of counts
(``NaN`` where a reading is missing; a ``0`` is a reading), and :data:`BUS_NETWORK` holds the same figures for
a real bus network, the one :func:`stgkd.data.synthetic_counts.generate_counts` is made to resemble at its defaults.

Every statistic is a plain function of the observed cells:

* :func:`zero_share`: the share of observed cells that are ``0``;
* :func:`dispersion_index`: variance over mean of all observed cells (1 for Poisson counts of one rate);
* :func:`lag_correlation`: the Pearson correlation of the centred counts ``x[t, n] - mean_n`` with
  ``x[t - lag, n] - mean_n``, pooled over the stops (every pair of observed cells ``lag`` steps apart at one
  stop is one sample; busy stops, whose centred counts vary most, weigh most);
* :func:`zero_share_by_hour`: the share of ``0`` at each hour of the day.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from stgkd.errors import DataError

__all__ = [
    "BUS_NETWORK",
    "CountStatistics",
    "NIGHT_HOURS",
    "STOP_MEAN_QUANTILES",
    "count_statistics",
    "dispersion_index",
    "lag_correlation",
    "zero_share",
    "zero_share_by_hour",
]

#: hours of the day (by the hour they start) counted as night: 00:00 to 04:59
NIGHT_HOURS = (0, 1, 2, 3, 4)
#: quantiles of the per-stop mean reported by :func:`count_statistics`
STOP_MEAN_QUANTILES = (0.1, 0.5, 0.9, 0.99)
#: lags (hours) of :func:`lag_correlation` reported by :func:`count_statistics`: an hour, a day, a week
LAGS_HOURS = (1, 24, 168)

#: A real bus network: 675 stops, 31 days of hourly boardings, an edge list of 690 links between stops
#: (sparse, route-like), missing cells empty. The night zero share is the middle of the 98-100 % its five
#: night hours show; the lowest hourly zero share falls at midday.
BUS_NETWORK: dict[str, float] = {
    "stops": 675,
    "days": 31,
    "links": 690,
    "zero_share": 0.80,
    "dispersion_index": 14.6,
    "mean": 0.75,
    "p99": 13.0,
    "max": 101.0,
    "stop_mean_q10": 0.015,
    "stop_mean_q50": 0.14,
    "stop_mean_q90": 1.6,
    "stop_mean_q99": 11.0,
    "lag_1h": 0.71,
    "lag_24h": 0.68,
    "lag_168h": 0.79,
    "zero_share_night": 0.99,
    "zero_share_lowest_hour": 0.66,
}


def _observed(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise DataError(f"count statistics need a (T, N) array of counts, got shape {values.shape}")
    return values[np.isfinite(values)]


def _stop_means(x: np.ndarray) -> np.ndarray:
    """``(N,)`` mean of each column's finite cells (``NaN`` for a column without one), without warnings."""
    seen = np.isfinite(x)
    count = seen.sum(axis=0)
    total = np.where(seen, x, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def zero_share(values: np.ndarray) -> float:
    """The share of observed (finite) cells of ``values`` ``(T, N)`` that are ``0``."""
    seen = _observed(values)
    return float((seen == 0).mean()) if seen.size else float("nan")


def dispersion_index(values: np.ndarray) -> float:
    """Variance over mean of the observed cells of ``values`` ``(T, N)``, pooled over stops and steps
    (population variance, ``ddof=0``): 1 for Poisson counts of one rate, more for overdispersed counts or
    uneven rates."""
    seen = _observed(values)
    return float(seen.var() / seen.mean()) if seen.size and seen.mean() > 0 else float("nan")


def lag_correlation(values: np.ndarray, lag: int) -> float:
    """Pooled Pearson correlation of the centred counts ``lag`` steps apart.

    ``c[t, n] = x[t, n] - mean_n`` (each stop's mean over its observed cells); the samples are the pairs
    ``(c[t, n], c[t - lag, n])`` with both cells observed, over every stop and step; the result is the
    Pearson correlation of the two columns.

    Shapes:
        values: ``(T, N)``, ``NaN`` where missing.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"lag_correlation needs a (T, N) array, got shape {x.shape}")
    if not 0 < lag < x.shape[0]:
        raise DataError(f"lag_correlation: lag must be in [1, {x.shape[0] - 1}], got {lag}")
    centred = x - _stop_means(x)[None, :]
    a, b = centred[lag:], centred[:-lag]
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def zero_share_by_hour(values: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """``(24,)`` share of ``0`` among the observed cells at each hour of the day (``NaN`` for an hour without
    observed cells); ``hours`` ``(T,)`` is the hour of day of each step."""
    x = np.asarray(values, dtype=np.float64)
    hours = np.asarray(hours)
    if x.ndim != 2 or hours.shape != (x.shape[0],):
        raise DataError(f"zero_share_by_hour: need values (T, N) and hours (T,), got {x.shape} and {hours.shape}")
    seen = np.isfinite(x)
    zeros = np.bincount(hours, weights=((x == 0) & seen).sum(axis=1), minlength=24)
    counted = np.bincount(hours, weights=seen.sum(axis=1), minlength=24)
    with np.errstate(invalid="ignore", divide="ignore"):
        return zeros / counted


@dataclass(frozen=True)
class CountStatistics:
    """The figures of :data:`BUS_NETWORK`, measured on one count series (:func:`count_statistics`)."""

    stops: int
    days: float
    links: int | None
    zero_share: float
    dispersion_index: float
    mean: float
    p99: float
    max: float
    stop_mean_q10: float
    stop_mean_q50: float
    stop_mean_q90: float
    stop_mean_q99: float
    lag_1h: float
    lag_24h: float
    lag_168h: float
    zero_share_night: float
    zero_share_lowest_hour: float
    lowest_hour: int
    missing_share: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def count_statistics(values: np.ndarray, timestamps: pd.DatetimeIndex,
                     adj: np.ndarray | None = None) -> CountStatistics:
    """Every figure of :data:`BUS_NETWORK` for the counts ``values``.

    Args:
        values: ``(T, N)`` counts, ``NaN`` where missing.
        timestamps: the ``T`` regular timestamps (their interval turns the lags of :data:`LAGS_HOURS` into
            steps and gives the hour of day).
        adj: ``(N, N)`` adjacency; ``links`` counts the linked pairs of distinct stops, a pair linked both ways
            once (default: ``None``, ``links`` is ``None``).

    Returns:
        :class:`CountStatistics`: zero share, variance / mean, mean, 99th percentile and maximum of the observed
        cells; the 10 / 50 / 90 / 99 % quantiles of the per-stop mean; :func:`lag_correlation` at 1 h, 24 h
        and 168 h; the zero share at night (mean over :data:`NIGHT_HOURS` of each hour's share) and at the
        hour with the fewest zeros (which hour: ``lowest_hour``); the share of missing cells.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or len(timestamps) != x.shape[0] or x.shape[0] < 2:
        raise DataError(f"count_statistics: need values (T, N) with T >= 2 and T timestamps, got {x.shape} and "
                        f"{len(timestamps)} timestamps")
    step_minutes = (timestamps[1] - timestamps[0]) / pd.Timedelta(minutes=1)
    if step_minutes <= 0 or 60 % step_minutes:
        raise DataError(f"count_statistics: the interval must divide an hour, got {step_minutes} minutes")
    per_hour = int(60 // step_minutes)
    seen = _observed(x)
    stop_means = _stop_means(x)
    stop_means = stop_means[np.isfinite(stop_means)]
    by_hour = zero_share_by_hour(x, np.asarray(timestamps.hour))
    lowest = int(np.nanargmin(by_hour))
    quantiles = np.quantile(stop_means, STOP_MEAN_QUANTILES)
    lags = [lag_correlation(x, h * per_hour) if h * per_hour < x.shape[0] else float("nan") for h in LAGS_HOURS]
    links = None
    if adj is not None:
        linked = np.asarray(adj) > 0
        np.fill_diagonal(linked, False)
        links = int(np.triu(linked | linked.T).sum())
    return CountStatistics(
        stops=x.shape[1],
        days=x.shape[0] / (24 * per_hour),
        links=links,
        zero_share=zero_share(x),
        dispersion_index=dispersion_index(x),
        mean=float(seen.mean()),
        p99=float(np.quantile(seen, 0.99)),
        max=float(seen.max()),
        stop_mean_q10=float(quantiles[0]),
        stop_mean_q50=float(quantiles[1]),
        stop_mean_q90=float(quantiles[2]),
        stop_mean_q99=float(quantiles[3]),
        lag_1h=lags[0],
        lag_24h=lags[1],
        lag_168h=lags[2],
        zero_share_night=float(np.nanmean(by_hour[list(NIGHT_HOURS)])),
        zero_share_lowest_hour=float(by_hour[lowest]),
        lowest_hour=lowest,
        missing_share=float(1 - np.isfinite(x).mean()),
    )
