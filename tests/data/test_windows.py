import numpy as np
import pandas as pd
import pytest
import torch

from stgkd.data.core import TrafficData
from stgkd.data.scalers import StandardScaler
from stgkd.data.windows import WindowLoader, prepare, split_sizes
from stgkd.errors import DataError


def make_data(t=40, n=3, c=1, seed=0, timestamps=True, start="2024-01-01 00:00"):
    rng = np.random.default_rng(seed)
    values = rng.uniform(20, 70, size=(t, n, c)).astype(np.float32)
    values[rng.random((t, n)) < 0.15, 0] = 0.0  # missing target readings, recorded as 0 (missing="zero")
    ts = pd.date_range(start, periods=t, freq="5min") if timestamps else None
    return TrafficData(values=values, adj=np.eye(n), sensor_ids=[f"s{i}" for i in range(n)], timestamps=ts,
                       name="tiny", channel_names=[f"c{i}" for i in range(c)])


def dcrnn_windows(series, in_steps=12, out_steps=12):
    """DCRNN generate_training_data.py's loop, verbatim in spirit."""
    x_offsets = np.arange(-in_steps + 1, 1)
    y_offsets = np.arange(1, out_steps + 1)
    xs, ys = [], []
    for t in range(abs(min(x_offsets)), abs(series.shape[0] - max(y_offsets))):
        xs.append(series[t + x_offsets])
        ys.append(series[t + y_offsets])
    return np.stack(xs), np.stack(ys)


def test_split_sizes_round_like_dcrnn():
    # num_test = round(n * 0.2), num_train = round(n * 0.7) (Python's round: 10.5 -> 10), val = rest
    assert split_sizes(17) == (12, 2, 3)
    assert split_sizes(15) == (10, 2, 3)
    assert split_sizes(25) == (18, 2, 5)
    assert split_sizes(34249) == (23974, 3425, 6850)  # METR-LA: 34272 - 23 windows
    assert split_sizes(100, (0.6, 0.2, 0.2)) == (60, 20, 20)


def test_windows_match_naive_dcrnn_construction():
    data = make_data()
    prep = prepare(data)
    raw = data.values[:, :, 0]
    x_ref, y_ref = dcrnn_windows(raw)
    assert x_ref.shape == (17, 12, 3)
    assert (len(prep.train), len(prep.val), len(prep.test)) == (12, 2, 3)
    tod = ((np.arange(40) * 5) % 1440 / 1440.0).astype(np.float32)
    tod_ref, _ = dcrnn_windows(tod)
    sc = prep.scaler
    offset = 0
    for split in (prep.train, prep.val, prep.test):
        b = split.batch(torch.arange(len(split)))
        sl = slice(offset, offset + len(split))
        offset += len(split)
        assert b.x.shape == (len(split), 12, 3, 2) and b.x.dtype == torch.float32
        assert b.y.shape == (len(split), 12, 3) and b.mask.dtype == torch.bool
        expected_x = np.where(np.isnan(x_ref[sl]), 0.0, (x_ref[sl] - sc.mean) / sc.std)
        np.testing.assert_allclose(b.x[..., 0].numpy(), expected_x, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b.x[..., 1].numpy(), np.broadcast_to(tod_ref[sl, :, None], (len(split), 12, 3)))
        np.testing.assert_array_equal(b.y.numpy(), np.nan_to_num(y_ref[sl], nan=0.0))  # 0 where missing
        np.testing.assert_array_equal(b.mask.numpy(), np.isfinite(y_ref[sl]))
        np.testing.assert_array_equal(b.index.numpy(), np.arange(len(split)))
    assert prep.input_features == ["value", "time_of_day"]
    assert prep.in_channels == 2 and prep.num_nodes == 3


def test_batch_gathers_arbitrary_positions():
    data = make_data()
    prep = prepare(data, in_steps=3, out_steps=2)
    x_ref, y_ref = dcrnn_windows(data.values[:, :, 0], 3, 2)
    n_train, n_val, _ = split_sizes(40 - 4)
    idx = torch.tensor([2, 0, 2])
    b = prep.test.batch(idx)
    np.testing.assert_array_equal(b.y.numpy(), np.nan_to_num(y_ref[n_train + n_val + idx.numpy()], nan=0.0))
    np.testing.assert_array_equal(b.index.numpy(), [2, 0, 2])


def test_scaler_excludes_missing_and_uses_train_inputs_only():
    data = make_data()
    prep = prepare(data)
    train_steps = data.values[: 12 - 1 + 12, :, 0]  # steps read by the 12 training windows' inputs
    observed = train_steps[np.isfinite(train_steps)].astype(np.float64)
    assert prep.scaler.mean == pytest.approx(observed.mean(), rel=1e-9)
    assert prep.scaler.std == pytest.approx(observed.std(), rel=1e-9)
    with_zeros = np.nan_to_num(train_steps, nan=0.0).astype(np.float64)
    assert with_zeros.mean() < observed.mean() - 1  # zeros would drag the mean down


def test_no_leakage_from_val_and_test():
    data = make_data()
    prep = prepare(data)
    changed = data.values.copy()
    changed[23:] *= 3.0  # every step after the training inputs
    prep2 = prepare(TrafficData(values=changed, adj=data.adj, sensor_ids=data.sensor_ids,
                                timestamps=data.timestamps, name="tiny"))
    assert prep2.scaler == prep.scaler
    b1 = prep.train.batch(torch.arange(len(prep.train)))
    b2 = prep2.train.batch(torch.arange(len(prep2.train)))
    assert torch.equal(b1.x, b2.x)


def test_time_features_without_timestamps_and_day_of_week():
    # 2024-01-03 is a Wednesday; start at 23:50 to cross midnight
    data = make_data(t=40, start="2024-01-03 23:50")
    prep = prepare(data, time_of_day=True, day_of_week=True)
    assert prep.input_features == ["value", "time_of_day", "day_of_week"]
    x = prep.train.batch([0]).x[0]  # steps 0..T_in-1 of the series: (T_in, N, C)
    assert x[0, 0, 1].item() == pytest.approx(1430 / 1440)
    assert x[2, 1, 1].item() == pytest.approx(0.0)
    assert x[1, 0, 2].item() == pytest.approx(2 / 7) and x[2, 2, 2].item() == pytest.approx(3 / 7)
    # the time features are the same for every sensor
    assert torch.equal(x[:, 0, 1:], x[:, 2, 1:])
    # without timestamps: step 0 = Monday 00:00
    bare = prepare(make_data(timestamps=False), day_of_week=True)
    stamped = prepare(make_data(timestamps=True), day_of_week=True)
    every = torch.arange(len(bare.train))
    assert torch.allclose(bare.train.batch(every).x, stamped.train.batch(every).x)
    assert bare.train.batch(every).x[..., 2].max().item() == 0.0  # all on Monday
    only_value = prepare(make_data(), time_of_day=False)
    assert only_value.input_features == ["value"] and only_value.in_channels == 1


def test_series_stored_once_and_targets_share_memory():
    data = make_data()
    prep = prepare(data)
    assert prep.train.inputs is prep.val.inputs is prep.test.inputs
    assert prep.train.step_features is prep.test.step_features
    # per-sensor channels (N x value) and per-step time features (not repeated for every sensor)
    assert prep.train.inputs.is_contiguous() and prep.train.inputs.shape == (40, 3, 1)
    assert prep.train.step_features.shape == (40, 1)
    assert prep.train.targets.data_ptr() == data.values.ctypes.data  # no copy of the raw series


def test_extra_channels_scaled_separately():
    data = make_data(c=3)
    prep = prepare(data, channels=["c2", 1])
    assert prep.input_features == ["value", "c2", "c1", "time_of_day"]
    sc2 = prep.channel_scalers["c2"]
    raw = data.values[:23, :, 2]
    assert sc2.mean == pytest.approx(raw[raw != 0].mean(), rel=1e-6)
    b = prep.val.batch(torch.tensor([0]))
    start = prep.val.starts[0].item()
    expected = (data.values[start : start + 12, :, 2] - sc2.mean) / sc2.std
    np.testing.assert_allclose(b.x[0, :, :, 1].numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError, match="not one of"):
        prepare(data, channels=["nope"])


def test_loader_batches_shuffle_and_shards():
    prep = prepare(make_data(t=60))  # 37 windows: 26 / 4 / 7
    assert len(prep.train) == 26
    loader = prep.loader("train", 8)
    assert len(loader) == 4
    seen = torch.cat([b.index for b in loader])
    assert torch.equal(seen, torch.arange(26))
    dropped = prep.loader("train", 8, drop_last=True)
    assert len(dropped) == 3 and [len(b) for b in dropped] == [8, 8, 8]
    a = [b.index for b in prep.loader("train", 8, shuffle=True, seed=3)]
    b = [b.index for b in prep.loader("train", 8, shuffle=True, seed=3)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(torch.cat(a), torch.arange(26))
    assert torch.equal(torch.cat(a).sort().values, torch.arange(26))
    shuffled = prep.loader("train", 8, shuffle=True, seed=3)
    epoch1 = torch.cat([x.index for x in shuffled])
    epoch2 = torch.cat([x.index for x in shuffled])
    assert not torch.equal(epoch1, epoch2)  # a new permutation each epoch
    shard = WindowLoader(prep.train, 4, indices=torch.arange(1, 26, 2))
    assert torch.equal(torch.cat([x.index for x in shard]), torch.arange(1, 26, 2))
    with pytest.raises(DataError):
        WindowLoader(prep.train, 4, indices=[30])


def test_errors_and_scaler_roundtrip():
    with pytest.raises(DataError, match="every split needs"):
        prepare(make_data(t=24))
    with pytest.raises(DataError, match="split"):
        prepare(make_data(), split=(0.5, 0.5, 0.5))
    sc = StandardScaler(mean=50.0, std=10.0)
    t = torch.tensor([40.0, 60.0])
    assert torch.allclose(sc.inverse_transform(sc.transform(t)), t)
    assert np.allclose(sc.transform(np.array([60.0])), [1.0])


def test_observed_mask_numpy_path_matches_torch():
    from stgkd.data.windows import observed_mask

    y = torch.tensor([[0.0, 1.0, float("nan")], [float("inf"), -2.0, 0.0]])
    expected = torch.tensor([[True, True, False], [False, True, True]])  # NaN is missing; a 0 is a reading
    assert torch.equal(observed_mask(y), expected)
    assert torch.equal(observed_mask(y[:, :2].clone()), expected[:, :2])
    assert torch.equal(observed_mask(y.double()), expected)
    finite = torch.tensor([[0.0, 1.5], [2.0, 0.0]])
    assert observed_mask(finite, known_finite=True).all()
    filled = y.clone()
    assert torch.equal(observed_mask(filled, fill=True), expected)
    assert torch.equal(filled, torch.where(expected, y, torch.zeros(())))  # no NaN left to reach a gradient
