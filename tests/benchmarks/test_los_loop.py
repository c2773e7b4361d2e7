"""T-GCN's Los-loop protocol: regions, scaling, window counts and its metrics, on hand-made data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.los_loop import horizon_table, prepare_los_loop, tgcn_metrics
from stgkd.data.core import TrafficData
from stgkd.errors import DataError


def _data(steps: int = 100, nodes: int = 4) -> TrafficData:
    t = np.arange(steps, dtype=np.float32)[:, None]
    values = 40.0 + t * 0.1 + np.arange(nodes, dtype=np.float32)[None, :]  # rising: the test part holds the max
    return TrafficData(values=values, adj=np.eye(nodes, dtype=np.float32), sensor_ids=[str(i) for i in range(nodes)],
                       name="toy")


def test_regions_windows_and_scaling_follow_the_protocol():
    data = _data()
    prepared, info = prepare_los_loop(data, in_steps=3, out_steps=2)
    # T-GCN: train_size = int(100 * 0.8) = 80; the last 10% of it (8 steps) is held out for selection
    assert info.train == (0, 72) and info.val == (72, 80) and info.test == (80, 100)
    # windows of 5 steps lying entirely inside each region
    assert len(prepared.train) == 72 - 5 + 1
    assert len(prepared.val) == 8 - 5 + 1
    assert len(prepared.test) == 20 - 5 + 1
    assert prepared.test.starts[0].item() == 80 and prepared.test.starts[-1].item() == 95
    # scaled by the training region's maximum (step 71, node 3), not the whole series'
    expected_max = 40.0 + 71 * 0.1 + 3
    assert info.max_value == pytest.approx(expected_max, rel=1e-6)
    assert info.max_value_all == pytest.approx(40.0 + 99 * 0.1 + 3, rel=1e-6)
    batch = prepared.test.batch(torch.tensor([0]))
    assert batch.x.shape == (1, 3, 4, 1)  # speed only, no time features
    assert torch.allclose(batch.x[0, 0, :, 0], torch.tensor(data.values[80, :, 0]) / expected_max)
    assert torch.allclose(batch.y[0, :, 2], torch.tensor(data.values[83:85, 2, 0]))
    assert torch.allclose(prepared.scaler.inverse_transform(batch.x[..., 0]), torch.tensor(data.values[80:83, :, 0])[None])


def test_too_short_region_is_an_error():
    with pytest.raises(DataError, match="shorter than one window"):
        prepare_los_loop(_data(steps=40), in_steps=12, out_steps=12)


def test_tgcn_metrics_match_hand_computed_values():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, 3.0], [2.0, 4.0]])
    m = tgcn_metrics(a, b)
    err = np.array([0.0, -1.0, 1.0, 0.0])
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))
    assert m["mae"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(1 - math.sqrt(2) / math.sqrt(30))
    assert m["r2"] == pytest.approx(1 - 2 / 5)  # sum err^2 = 2, sum (a - 2.5)^2 = 5
    assert m["var"] == pytest.approx(1 - err.var() / np.var([1, 2, 3, 4]))


def test_horizon_table_scores_the_first_h_steps():
    true = 10.0 + np.arange(2 * 12 * 3, dtype=np.float64).reshape(2, 12, 3)
    pred = true.copy()
    pred[:, 3:] += 2.0  # perfect for 3 steps, off by 2 afterwards
    table = horizon_table(true, pred)
    assert list(table) == ["15min", "30min", "45min", "60min"]
    assert table["15min"]["mae"] == 0.0 and table["15min"]["accuracy"] == 1.0
    assert table["30min"]["mae"] == pytest.approx(2.0 * 3 / 6)
    assert table["60min"]["rmse"] == pytest.approx(math.sqrt(4.0 * 9 / 12))


def test_los_loop_protocol_end_to_end_on_a_tiny_network(tmp_path):
    """Teacher, plain and distilled student: trained on the T-GCN regions, scored per horizon."""
    from benchmarks.protocols import SuiteState, train_suite
    from benchmarks.run import build_parser
    from benchmarks.suites import TINY_TEACHER, get_suite
    from stgkd.data.synthetic import generate

    data, _ = generate(num_nodes=4, num_days=2, seed=1)
    args = build_parser().parse_args(["--epochs", "1", "--limit-batches", "2", "--batch-size", "16", "--patience", "0",
                                      "--eval-batch-size", "256", "--latency-iters", "1", "--latency-warmup", "1",
                                      "--latency-batches", "1"])
    args.seed_list = [0]
    suite = get_suite("los-loop")
    state = SuiteState()
    train_suite(suite, data, args=args, device="cpu", work=tmp_path, teacher_hp=dict(TINY_TEACHER),
                students=[("gcn-gru h32", "gcn-gru", {"hidden": 8})], peers=[], state=state)
    models, info = list(state.models.values()), state.dataset_info
    assert [m["kind"] for m in models] == ["teacher", "student", "student+kd"]
    # 576 steps: train_size = int(0.8 * 576) = 460, of which the last round(46.0) = 46 steps validate
    assert info["regions"] == {"train": (0, 414), "val": (414, 460), "test": (460, 576)}
    assert info["windows"] == [414 - 23, 46 - 23, 116 - 23]
    for m in models:
        (seed,) = m["seeds"]
        assert list(seed["tgcn"]) == ["15min", "30min", "45min", "60min"]
        m60 = seed["tgcn"]["60min"]
        assert math.isfinite(m60["accuracy"]) and m60["accuracy"] < 1 and m60["rmse"] >= m60["mae"] > 0
        assert seed["test"]["avg"]["mae"] > 0 and m["parameters"] > 0
    assert models[2]["distill"]["w_out"] > 0
    # the baselines, on the test windows of the T-GCN regions the models are scored on
    assert state.baselines["split"] == "test" and state.baselines["windows"] == info["windows"][2]
    assert {s["label"] for s in state.baselines["scored"]} >= {"last value", "seasonal naive (1 day)"}
