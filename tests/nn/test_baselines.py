"""The baseline models against brute-force expectations on a small hourly network."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stgkd.data.core import TrafficData
from stgkd.data.windows import prepare
from stgkd.errors import ConfigError, DataError
from stgkd.nn import build, build_for
from stgkd.nn.registry import model_names
from stgkd.nn.baselines import profile_table, season_label

N = 6


def _hourly(days: int, *, seed: int = 0, missing_rate: float = 0.1) -> TrafficData:
    """``days`` of hourly readings at 6 sensors, a daily profile plus noise, some readings missing
    (``NaN``); no timestamps, so step ``t`` is ``t`` hours after Monday 00:00."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    values = 30 + 10 * np.sin(2 * np.pi * t / 24)[:, None] + rng.normal(0, 3, (len(t), N)) + np.arange(N)
    values[rng.random(values.shape) < missing_rate] = np.nan
    return TrafficData(values=values.astype(np.float32), adj=np.eye(N), sensor_ids=[f"s{i}" for i in range(N)],
                       interval_minutes=60, name="hourly")


def _forecast(model, prepared, split="test"):
    """Raw-unit forecasts ``(S, H, N)`` of ``model`` on every window of ``split``."""
    windows = prepared.get_split(split)
    batch = windows.batch(torch.arange(len(windows)))
    with torch.no_grad():
        return prepared.scaler.inverse_transform(model(batch.x)).numpy(), windows


def test_profile_table_hand_computed():
    values = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0], [np.nan, 10.0]])
    keys = np.array([0, 1, 0, 1])
    mean = profile_table(values, keys, 3, "mean")
    median = profile_table(values, keys, 3, "median")
    np.testing.assert_allclose(mean[:2], [[3.0, 6.0], [3.0, 7.0]])
    np.testing.assert_allclose(median[:2], [[3.0, 6.0], [3.0, 7.0]])
    assert np.isnan(mean[2]).all() and np.isnan(median[2]).all()  # no reading at key 2: NaN, filled by the model
    values = np.array([[1.0], [2.0], [10.0], [np.nan]])
    assert profile_table(values, np.zeros(4, dtype=int), 1, "median")[0, 0] == 2.0
    assert profile_table(values, np.zeros(4, dtype=int), 1, "mean")[0, 0] == pytest.approx(13 / 3)
    with pytest.raises(ConfigError, match="statistic"):
        profile_table(values, np.zeros(4, dtype=int), 1, "mode")


def test_season_labels():
    assert season_label(288, 5) == "1 day"
    assert season_label(2016, 5) == "1 week"
    assert season_label(48, 60) == "2 days"
    assert season_label(7, 1) == "7 steps"


def test_baselines_have_their_own_role():
    for name in ("last-value", "seasonal-naive", "historical-average", "historical-median"):
        assert name in model_names("baseline")
        assert name not in model_names("student") and name not in model_names("teacher")


def test_last_value_repeats_the_last_reading():
    prepared = prepare(_hourly(4), in_steps=3, out_steps=4)
    model = build_for("last-value", prepared)
    pred, windows = _forecast(model, prepared)
    origin = windows.starts.numpy() + 2
    scaled = prepared.train.inputs[..., 0].numpy()
    expected = prepared.scaler.inverse_transform(scaled[origin])  # a missing reading is the training mean
    np.testing.assert_allclose(pred, np.repeat(expected[:, None], 4, axis=1), rtol=1e-5)
    assert pred.shape == (len(windows), 4, N) and not any(p.requires_grad for p in model.parameters())


def test_seasonal_naive_reads_the_latest_reading_of_the_same_phase():
    season = 5
    prepared = prepare(_hourly(4), in_steps=6, out_steps=12)  # horizons up to 12 > 2 seasons: k = 1, 2, 3
    model = build_for("seasonal-naive", prepared, season_steps=season)
    pred, windows = _forecast(model, prepared)
    raw = prepared.data.values[..., 0]
    for w, start in enumerate(windows.starts.tolist()):
        origin = start + 5
        for h in range(1, 13):
            source = origin + h - season * math.ceil(h / season)
            assert origin - 5 <= source <= origin  # inside the input window
            want = raw[source]
            got = pred[w, h - 1]
            ok = np.isfinite(want)
            np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5)
            np.testing.assert_allclose(got[~ok], prepared.scaler.mean, rtol=1e-5)  # missing: the training mean


def test_seasonal_naive_needs_a_window_of_a_season():
    with pytest.raises(ConfigError, match="at least 288 steps.*in_steps=12"):
        build("seasonal-naive", num_nodes=N, in_steps=12, season_steps=288)


@pytest.mark.parametrize("name, reduce", [("historical-average", np.nanmean), ("historical-median", np.nanmedian)])
def test_historical_profile_matches_brute_force_and_skips_missing(name, reduce):
    data = _hourly(6)
    data.values[:, 2, 0][np.arange(data.num_steps) % 24 == 5] = np.nan  # sensor 2 never read at 05:00
    prepared = prepare(data, in_steps=3, out_steps=4)
    model = build_for(name, prepared, slots_per_day=24).fit(prepared)
    pred, windows = _forecast(model, prepared)
    end = prepared.train_end
    train = data.values[:end, :, 0].astype(np.float64)
    slot = np.arange(end) % 24
    for w, start in enumerate(windows.starts.tolist()):
        for h in range(1, 5):
            target = start + 2 + h
            for n in range(N):
                cell = train[slot == target % 24, n]
                want = reduce(cell) if np.isfinite(cell).any() else reduce(train[:, n])  # the sensor's overall
                assert pred[w, h - 1, n] == pytest.approx(want, rel=1e-5)
    assert np.isfinite(pred).all()


def test_weekly_profile_matches_brute_force():
    data = _hourly(21, seed=1)
    prepared = prepare(data, in_steps=3, out_steps=4)
    assert prepared.train_end >= 14 * 24
    with pytest.raises(ConfigError, match="day of week"):  # the input carries no day of week
        build_for("historical-average", prepared, slots_per_day=24, weekly=True)
    prepared = prepare(data, in_steps=3, out_steps=4, day_of_week=True)
    model = build_for("historical-average", prepared, slots_per_day=24, weekly=True).fit(prepared)
    pred, windows = _forecast(model, prepared)
    end = prepared.train_end
    train = data.values[:end, :, 0].astype(np.float64)
    key = np.arange(end) % (7 * 24)  # step 0 is Monday 00:00
    fallbacks = 0
    for w, start in enumerate(windows.starts.tolist()):
        for h in (1, 4):
            target = start + 2 + h
            cell = train[key == target % (7 * 24)]
            daily = train[key % 24 == target % 24]  # an empty (day, hour) cell: the hour over all days
            empty = ~np.isfinite(cell).any(axis=0)
            fallbacks += int(empty.sum())
            want = np.where(empty, np.nanmean(daily, axis=0), np.nanmean(np.where(empty, 0.0, cell), axis=0))
            np.testing.assert_allclose(pred[w, h - 1], want, rtol=1e-5)
    assert fallbacks > 0  # the fallback was exercised


def test_historical_profile_on_a_training_slice_too_short_says_so():
    prepared = prepare(_hourly(1), in_steps=2, out_steps=2)  # about 17 hours of training steps
    with pytest.raises(DataError, match=r"covers \d+ steps .* less than the one day \(24 steps\)"):
        build_for("historical-median", prepared, slots_per_day=24).fit(prepared)
    prepared = prepare(_hourly(10), in_steps=2, out_steps=2, day_of_week=True)
    with pytest.raises(DataError, match="two weeks"):
        build_for("historical-average", prepared, slots_per_day=24, weekly=True).fit(prepared)
    with pytest.raises(ConfigError, match="pass slots_per_day=24"):
        build_for("historical-average", prepared, slots_per_day=288).fit(prepared)  # the data is hourly


def test_baselines_round_trip_their_config_and_trace():
    prepared = prepare(_hourly(4), in_steps=3, out_steps=4)
    model = build_for("historical-median", prepared).fit(prepared)  # the slots a day from the data's interval
    assert model.config()["hparams"]["slots_per_day"] == 24 and model.profile.shape == (1, 24, N)
    from stgkd.nn import from_config

    again = from_config(model.config())
    again.load_state_dict(model.state_dict())
    x = prepared.test.batch(torch.arange(5)).x
    torch.testing.assert_close(again(x), model(x))
    traced = torch.jit.trace(model, (x,), check_inputs=[(prepared.test.batch(torch.arange(2)).x,)])
    x7 = prepared.test.batch(torch.arange(7)).x
    torch.testing.assert_close(traced(x7), model(x7))
