"""Seasonal-lag input channels: what each input step carries, that windows and split do not move, the
data option recorded in the input features and rebuilt from them, and the teacher's view without them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from stgkd.data.core import TrafficData
from stgkd.data.rebuild import prepare_data, prepare_from_meta
from stgkd.data.windows import prepare, season_steps, seasons_of
from stgkd.errors import DataError

IN, OUT = 4, 3
DAY = 24  # hourly data


def hourly(t: int = 120, n: int = 3, seed: int = 0, missing_at: tuple[int, int] | None = None) -> TrafficData:
    rng = np.random.default_rng(seed)
    values = rng.uniform(20, 70, size=(t, n)).astype(np.float32)
    if missing_at is not None:
        values[missing_at] = np.nan
    ts = pd.date_range("2024-01-01", periods=t, freq="60min")
    return TrafficData(values=values, adj=np.eye(n), sensor_ids=[f"s{i}" for i in range(n)], timestamps=ts,
                       interval_minutes=60, name="hourly", missing="nan")


def test_each_input_step_carries_the_reading_one_day_before_its_forecast_step():
    data = hourly(missing_at=(60, 1))
    prep = prepare(data, in_steps=IN, out_steps=OUT, seasonal=("day",))
    assert prep.input_features == ["value", "time_of_day", "seasonal_day", "seasonal_day_observed"]
    raw = data.values[..., 0]
    for split in (prep.train, prep.val, prep.test):
        batch = split.batch(torch.arange(len(split)))
        for w, start in enumerate(split.starts.tolist()):
            origin = start + IN - 1
            for i in range(IN):
                source = origin + 1 + i - DAY  # one day before forecast step i (and beyond H, further steps)
                lag, seen = batch.x[w, i, :, 2], batch.x[w, i, :, 3]
                if source < 0:
                    assert (lag == 0).all() and (seen == 0).all()
                    continue
                assert source <= origin  # never a reading after the forecast origin
                finite = np.isfinite(raw[source])
                expected = np.where(finite, (raw[source] - prep.scaler.mean) / prep.scaler.std, 0.0)
                np.testing.assert_allclose(lag.numpy(), expected, rtol=1e-5, atol=1e-5)
                np.testing.assert_array_equal(seen.numpy(), finite.astype(np.float32))
    # the missing reading was actually met
    assert (prep.val.batch(torch.arange(len(prep.val))).x[..., 3] == 0).any() or \
        (prep.train.batch(torch.arange(len(prep.train))).x[..., 3] == 0).any()


def test_windows_split_and_targets_do_not_move():
    data = hourly()
    plain = prepare(data, in_steps=IN, out_steps=OUT)
    lagged = prepare(data, in_steps=IN, out_steps=OUT, seasonal=("day",))
    assert plain.scaler.mean == lagged.scaler.mean and plain.scaler.std == lagged.scaler.std
    for name in ("train", "val", "test"):
        a, b = plain.get_split(name), lagged.get_split(name)
        assert torch.equal(a.starts, b.starts)
        idx = torch.arange(len(a))
        ba, bb = a.batch(idx), b.batch(idx)
        assert torch.equal(ba.x, bb.x[..., :2]) and torch.equal(ba.y, bb.y) and torch.equal(ba.mask, bb.mask)


def test_the_teachers_view_drops_only_the_lag_channels():
    lagged = prepare(hourly(), in_steps=IN, out_steps=OUT, seasonal=("day",))
    view = lagged.select_features(["value", "time_of_day"])
    assert view.input_features == ["value", "time_of_day"] and view.in_channels == 2
    idx = torch.arange(5)
    assert torch.equal(view.train.batch(idx).x, lagged.train.batch(idx).x[..., :2])
    assert lagged.select_features(lagged.input_features) is lagged
    with pytest.raises(DataError, match="select_features"):
        lagged.select_features(["value"])


def test_the_option_is_rebuilt_from_the_input_features():
    data = hourly()
    lagged = prepare(data, in_steps=IN, out_steps=OUT, seasonal=("day",))
    assert seasons_of(lagged.input_features) == ["day"]
    again = prepare_data(data, in_steps=IN, out_steps=OUT, split=None, input_features=lagged.input_features,
                         time_of_day=False, day_of_week=False, device=torch.device("cpu"))
    assert again.input_features == lagged.input_features
    assert torch.equal(again.test.batch(torch.arange(3)).x, lagged.test.batch(torch.arange(3)).x)
    meta = {"name": "hourly", "source": [], "split": [0.7, 0.1, 0.2], "in_steps": IN, "out_steps": OUT,
            "input_features": ["value", "time_of_day"], "sensor_ids": data.sensor_ids, "interval_minutes": 60,
            "missing": "nan"}
    widened = prepare_from_meta(meta, dataset=data, seasonal=("day",))
    assert widened.input_features == lagged.input_features


def test_bad_seasons_are_refused_with_the_setting_named():
    data = hourly()
    with pytest.raises(DataError, match="unknown season 'month'"):
        prepare(data, in_steps=IN, out_steps=OUT, seasonal=("month",))
    with pytest.raises(DataError, match="shorter than the input window"):
        prepare(data, in_steps=30, out_steps=OUT, seasonal=("day",))
    with pytest.raises(DataError, match="no training window would see"):
        prepare(data, in_steps=IN, out_steps=OUT, seasonal=("week",))
    with pytest.raises(DataError, match="whole number"):
        season_steps("day", 7, 12)
    assert season_steps("day", 5, 12) == 288 and season_steps("week", 5, 12) == 2016


def test_a_season_most_training_windows_cannot_reach_is_noted(capsys):
    """A week asked of ten days of hourly counts: kept (it was asked for), and a note says how few training
    windows see last week's reading; three weeks need no note."""
    from stgkd.data.synthetic_counts import generate_counts
    from stgkd.data.windows import prepare

    prepare(generate_counts(num_nodes=6, num_days=10, seed=0, num_routes=2), seasonal=("week",))
    err = capsys.readouterr().err
    assert "note: synthetic-counts: seasonal='week' reaches 168 steps back: only 7 of the 152 training windows" in err
    prepare(generate_counts(num_nodes=6, num_days=21, seed=0, num_routes=2), seasonal=("week",))
    assert "note:" not in capsys.readouterr().err
