import math

import pytest
import torch

from stgkd.errors import DataError
from stgkd.metrics import MetricAccumulator, horizon_name, masked_mae


def example():
    # (B=1, H=2, N=3); zeros in `true` are missing
    true = torch.tensor([[[10.0, 0.0, 20.0], [40.0, 50.0, 0.0]]])
    pred = torch.tensor([[[12.0, 5.0, 17.0], [40.0, 45.0, 9.0]]])
    return pred, true


def accumulated(pred, true, mask=None, **kwargs):
    acc = MetricAccumulator(**kwargs)
    acc.update(pred, true, mask)
    return acc


def test_masked_metrics_by_hand():
    pred, true = example()
    # observed errors: 2, 3 (step 1); 0, 5 (step 2)
    assert masked_mae(pred, true).item() == pytest.approx(10 / 4)
    assert masked_mae(pred, true, at=1).item() == pytest.approx(2.5)
    assert masked_mae(pred, true, at=2).item() == pytest.approx(2.5)
    acc = accumulated(pred, true)
    assert acc.metrics() == pytest.approx({"mae": 10 / 4, "rmse": math.sqrt((4 + 9 + 0 + 25) / 4),
                                           "mape": (0.2 + 0.15 + 0.0 + 0.1) / 4})
    assert acc.metrics(at=2)["rmse"] == pytest.approx(math.sqrt(25 / 2))
    assert acc.metrics(at=1)["mape"] == pytest.approx(0.35 / 2)


def test_explicit_mask_nan_null_and_empty():
    pred, true = example()
    mask = torch.tensor([[[True, False, False], [True, True, False]]])
    assert masked_mae(pred, true, mask).item() == pytest.approx((2 + 0 + 5) / 3)
    nan_true = torch.where(true == 0, torch.tensor(float("nan")), true)
    assert masked_mae(pred, nan_true, null_val=float("nan")).item() == pytest.approx(2.5)
    assert masked_mae(pred, nan_true).item() == pytest.approx(2.5)  # NaN targets never count
    assert masked_mae(pred, torch.zeros_like(true)).item() == 0.0


def test_dcrnn_formula_equivalence_and_gradient():
    torch.manual_seed(0)
    true = torch.randint(0, 4, (4, 12, 5)).float() * 10
    pred = torch.randn(4, 12, 5, requires_grad=True)
    m = (true != 0).float()
    m = m / m.mean()
    dcrnn = ((pred - true).abs() * m).mean()
    ours = masked_mae(pred, true)
    assert torch.allclose(ours, dcrnn)
    ours.backward()
    assert pred.grad is not None and torch.all(pred.grad[true == 0] == 0)


def test_result_keys_and_values():
    pred, true = example()
    out = accumulated(pred, true, interval_minutes=5).result(steps=(1, 2))
    assert list(out) == ["5min", "10min", "avg"]
    assert out["10min"]["rmse"] == pytest.approx(math.sqrt(12.5))
    assert out["avg"]["mae"] == pytest.approx(2.5)
    assert all(isinstance(v, float) for d in out.values() for v in d.values())
    full = accumulated(torch.ones(2, 12, 3) * 2, torch.ones(2, 12, 3)).result()
    assert list(full) == ["15min", "30min", "60min", "avg"]
    assert full["60min"] == {"mae": 1.0, "rmse": 1.0, "mape": 1.0}  # MAPE is a fraction


def test_accumulator_equals_whole_set_not_batch_mean():
    torch.manual_seed(1)
    true = torch.randint(0, 5, (10, 12, 4)).float() * 10
    true[:3] = 0.0  # first batch mostly missing -> per-batch averaging would be wrong
    true[0, 0, 0] = 10.0
    pred = true + torch.randn(10, 12, 4) * 3
    acc = MetricAccumulator()
    for chunk in (slice(0, 3), slice(3, 7), slice(7, 10)):
        acc.update(pred[chunk], true[chunk])
    whole = accumulated(pred, true).result()
    got = acc.result()
    for key in whole:
        for name in ("mae", "rmse", "mape"):
            assert got[key][name] == pytest.approx(whole[key][name], rel=1e-6)
    # against the definitions, on the whole set at once: RMSE at 60 min, MAPE over every step
    observed, err = true != 0, pred.double() - true.double()
    assert got["60min"]["rmse"] == pytest.approx(err[:, 11][observed[:, 11]].square().mean().sqrt().item(), rel=1e-6)
    assert got["avg"]["mape"] == pytest.approx((err.abs() / true.double())[observed].mean().item(), rel=1e-6)
    with pytest.raises(DataError, match="horizon"):
        acc.update(pred[:, :6], true[:, :6])


def test_bad_arguments():
    pred, true = example()
    with pytest.raises(DataError, match="at=13"):
        masked_mae(pred, true, at=13)
    with pytest.raises(DataError, match="shape"):
        masked_mae(pred[:, :1], true)
    with pytest.raises(DataError, match="no batch"):
        MetricAccumulator().result()


@pytest.mark.parametrize("interval, names", [
    (5, ["15min", "30min", "60min"]),  # the keys of every result file written on 5-minute data
    (15, ["45min", "90min", "180min"]),
    (60, ["3h", "6h", "12h"]),
    (120, ["6h", "12h", "24h"]),
    (1440, ["3d", "6d", "12d"]),
    (7 * 1440, ["3w", "6w", "12w"]),
])
def test_horizon_names_read_in_the_unit_of_the_interval(interval, names):
    assert [horizon_name(step, interval) for step in (3, 6, 12)] == names


def test_horizon_name_of_one_step_and_bad_arguments():
    assert [horizon_name(1, m) for m in (5, 60, 1440, 10080, 90)] == ["5min", "1h", "1d", "1w", "90min"]
    with pytest.raises(DataError, match="must be >= 1"):
        horizon_name(0, 5)
    with pytest.raises(DataError, match="must be >= 1"):
        horizon_name(3, 0)


def test_metric_keys_of_a_weekly_series():
    pred, true = torch.ones(2, 12, 3) * 2, torch.ones(2, 12, 3)
    assert list(accumulated(pred, true, interval_minutes=7 * 1440).result()) == ["3w", "6w", "12w", "avg"]
    acc = MetricAccumulator(interval_minutes=60)
    acc.update(pred, true)
    assert list(acc.result(steps=(1, 3))) == ["1h", "3h", "avg"]


def test_training_losses_by_hand():
    from stgkd.engine.steps import SupervisedStep
    from stgkd.errors import ConfigError
    from stgkd.metrics import masked_loss

    true = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 2.0, float("nan")]]])
    pred = torch.tensor([[[1.5, 0.0, 0.0], [2.0, 2.0, 9.0]]])
    mask = torch.isfinite(true)  # a 0 is a reading here, as in a count series
    # errors 0.5, 0, -3, 2, 0 over five observed cells
    assert masked_loss(pred, true, mask, loss="mae").item() == pytest.approx(5.5 / 5)
    assert masked_loss(pred, true, mask, loss="mse").item() == pytest.approx((0.25 + 9 + 4) / 5)
    assert masked_loss(pred, true, mask, loss="huber").item() == pytest.approx((0.125 + 2.5 + 1.5) / 5)
    assert masked_loss(pred, true, mask, loss="mae").item() == pytest.approx(masked_mae(pred, true, mask).item())

    class Scaler:  # identity units
        def inverse_transform(self, x):
            return x

    class Model(torch.nn.Module):
        def forward(self, x):
            return x[..., 0]

    x = pred[..., None]
    for name, want in (("mae", 5.5 / 5), ("mse", 13.25 / 5)):
        loss, _, _ = SupervisedStep(Model(), Scaler(), loss=name)(x, true, mask, torch.zeros(1))
        assert loss.item() == pytest.approx(want)
    with pytest.raises(ConfigError, match="loss 'poisson': expected one of mae, mse, huber"):
        SupervisedStep(Model(), Scaler(), loss="poisson")


def test_the_loss_is_a_train_setting_of_stgkd_train_only():
    import argparse

    from stgkd.commands import distill, train
    from stgkd.engine.trainer import TrainConfig
    from stgkd.errors import ConfigError

    with pytest.raises(ConfigError, match="loss 'l1'"):
        TrainConfig(loss="l1")
    assert TrainConfig.from_dict({"epochs": 3}).loss == "mae"  # a checkpoint written before the setting
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(["--dataset", "d", "--out", "o", "--loss", "mse"])
    assert train.train_config_from_args(args).loss == "mse"
    parser = argparse.ArgumentParser()
    distill.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--teacher", "t.pt", "--out", "o", "--loss", "mse"])
