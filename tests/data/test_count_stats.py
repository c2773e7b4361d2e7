"""stgkd.data.count_stats on hand-built arrays whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stgkd.data.count_stats import (
    BUS_NETWORK,
    count_statistics,
    dispersion_index,
    lag_correlation,
    zero_share,
    zero_share_by_hour,
)
from stgkd.errors import DataError

NAN = np.nan


def test_zero_share_counts_only_observed_cells():
    x = np.array([[0, 1], [0, NAN], [2, 0]])
    assert zero_share(x) == pytest.approx(3 / 5)  # 5 observed cells, 3 of them 0; the NaN is not a zero


def test_dispersion_index_is_variance_over_mean_of_observed_cells():
    x = np.array([[0, 2], [4, NAN]])
    # observed 0, 2, 4: mean 2, population variance (4 + 0 + 4) / 3
    assert dispersion_index(x) == pytest.approx((8 / 3) / 2)
    assert dispersion_index(np.full((3, 2), 5.0)) == 0.0  # one rate, no noise: no spread at all


def test_lag_correlation_centres_each_stop_then_pools():
    # stop A (mean 1): centred -1, 1, -1, 1; stop B (mean 11): centred -1, -1, 1, 1
    x = np.array([[0, 10], [2, 10], [0, 12], [2, 12]], dtype=float)
    # lag 1 pairs (later, earlier): A (1,-1) (-1,1) (1,-1), B (-1,-1) (1,-1) (1,1)
    # later: mean 1/3, var 8/9; earlier: mean -1/3, var 8/9; mean of products -1/3 -> cov -1/3 + 1/9 = -2/9
    assert lag_correlation(x, 1) == pytest.approx(-0.25)
    # lag 2: A (-1,-1) (1,1), B (1,-1) (1,-1): later mean 1/2, earlier -1/2, both var 3/4; mean of products 0
    # -> cov 0 + 1/4, correlation (1/4) / (3/4)
    assert lag_correlation(x, 2) == pytest.approx(1 / 3)
    # a stop's level does not count: shifting B by 1000 changes nothing
    shifted = x + np.array([0, 1000.0])
    assert lag_correlation(shifted, 1) == pytest.approx(-0.25)


def test_lag_correlation_skips_pairs_with_a_missing_cell():
    x = np.array([[0, 10], [2, 10], [0, 12], [2, 12], [NAN, NAN]], dtype=float)
    assert lag_correlation(x, 1) == pytest.approx(-0.25)  # the NaN row adds no pair and no mean
    periodic = np.tile([[0.0], [3.0], [1.0]], (5, 1))
    assert lag_correlation(periodic, 3) == pytest.approx(1.0)
    with pytest.raises(DataError, match="lag"):
        lag_correlation(periodic, periodic.shape[0])


def test_zero_share_by_hour():
    x = np.array([[0, 0], [1, 0], [0, NAN], [3, 4]], dtype=float)
    by_hour = zero_share_by_hour(x, np.array([0, 1, 0, 1]))
    assert by_hour.shape == (24,)
    assert by_hour[0] == pytest.approx(3 / 3) and by_hour[1] == pytest.approx(1 / 4)
    assert np.isnan(by_hour[2:]).all()  # hours without a cell


def test_count_statistics_on_two_days():
    timestamps = pd.date_range("2024-01-01", periods=48, freq="60min")
    hours = timestamps.hour.to_numpy()
    x = np.zeros((48, 3))
    x[:, 0] = np.where((hours >= 6) & (hours < 22), 2.0, 0.0)  # a busy stop in service hours
    x[hours == 12, 1] = 6.0  # a stop used once a day, at noon
    x[0, 2] = NAN
    adj = np.array([[1, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=np.float32)  # 0-1 both ways, 1 -> 2 one way, a loop
    s = count_statistics(x, timestamps, adj)
    seen = x[np.isfinite(x)]
    assert (s.stops, s.days, s.links) == (3, 2.0, 2)
    assert s.zero_share == pytest.approx((seen == 0).mean())
    assert s.mean == pytest.approx(seen.mean()) and s.max == 6.0
    assert s.dispersion_index == pytest.approx(seen.var() / seen.mean())
    assert s.stop_mean_q50 == pytest.approx(6 / 24)  # the middle stop's mean (the others 32 / 24 and 0)
    assert s.stop_mean_q99 == pytest.approx(np.quantile([32 / 24, 6 / 24, 0.0], 0.99))
    assert s.zero_share_night == 1.0  # nothing between 00:00 and 04:59
    assert s.lowest_hour == 12 and s.zero_share_lowest_hour == pytest.approx(1 / 3)  # stop 2 reads 0 at noon too
    assert s.lag_24h == pytest.approx(1.0)  # the two days are alike
    assert np.isnan(s.lag_168h)  # no week to compare with
    assert s.missing_share == pytest.approx(1 / 144)
    assert count_statistics(x, timestamps).links is None


def test_count_statistics_rejects_a_mismatch():
    with pytest.raises(DataError):
        count_statistics(np.zeros((5, 2)), pd.date_range("2024-01-01", periods=4, freq="60min"))
    with pytest.raises(DataError, match="divide an hour"):
        count_statistics(np.zeros((5, 2)), pd.date_range("2024-01-01", periods=5, freq="90min"))


def test_the_real_network_figures_are_consistent():
    # quantiles ordered, shares in [0, 1], the week the strongest season, as the figures were reported
    q = [BUS_NETWORK[f"stop_mean_q{p}"] for p in (10, 50, 90, 99)]
    assert q == sorted(q) and BUS_NETWORK["stop_mean_q99"] < BUS_NETWORK["max"]
    assert BUS_NETWORK["lag_168h"] > BUS_NETWORK["lag_1h"] > BUS_NETWORK["lag_24h"]
    assert 0 < BUS_NETWORK["zero_share_lowest_hour"] < BUS_NETWORK["zero_share"] < BUS_NETWORK["zero_share_night"] <= 1
