"""A student reading seasonal-lag channels: distilled from a teacher trained without them (which still
reads only its own channels), its data option recorded in the checkpoint and rebuilt by evaluation."""

from __future__ import annotations

import pytest
import torch

from stgkd.engine import LambdaCallback, TrainConfig, distill_student, load_checkpoint, train_model
from stgkd.engine.checkpoint import model_from_checkpoint
from stgkd.engine.evaluate import evaluate_checkpoint
from stgkd.errors import ConfigError
from stgkd.nn import build
from stgkd.nn.base import SelectInputs

SEASONAL = ["value", "time_of_day", "seasonal_day", "seasonal_day_observed"]
STUDENT = {"hidden": 8, "rank": 3, "node_embed": 2, "tod_embed": 2, "window_embed": 4}


def _cfg(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 32, "device": "cpu", "seed": 0, "patience": 0,
                          "limit_batches": 2, **kw})


def test_the_teacher_reads_only_its_own_channels(teacher_ckpt, tmp_path):
    seen = {}

    def grab(trainer, epoch):
        seen["step"] = trainer.step_module

    result = distill_student(teacher_ckpt, "stgru", tmp_path / "st", hparams=STUDENT, seasonal=("day",),
                             progress=False, config=_cfg(),
                             distill={"w_out": 1.0, "w_feat": 0.5, "w_rel": 0.5, "inherit_adjacency": True},
                             callbacks=[LambdaCallback(on_epoch_start=grab)])
    assert result.data.input_features == SEASONAL
    assert load_checkpoint(tmp_path / "st" / "best.pt")["data"]["input_features"] == SEASONAL
    # the cached teacher forecasts are the teacher's own forward on its two channels
    teacher = model_from_checkpoint(load_checkpoint(teacher_ckpt)).eval()
    idx = torch.arange(4)
    batch = result.data.train.batch(idx)
    cached, _ = seen["step"].cache.lookup(idx)
    with torch.no_grad():
        want = teacher(batch.x[..., :2])
    torch.testing.assert_close(cached, want, atol=5e-3, rtol=0)  # float16 cache
    # and the fidelity comparison of `stgkd evaluate` feeds it the same way
    evaluation = evaluate_checkpoint(tmp_path / "st" / "best.pt", device="cpu")
    assert evaluation.teacher_metrics is not None and evaluation.fidelity is not None


def test_evaluation_rebuilds_the_seasonal_inputs(data_dir, tmp_path):
    result = train_model(str(data_dir), "stgru", tmp_path / "plain", hparams=STUDENT, seasonal=("day",),
                         config=_cfg(), progress=False, evaluate_test=True)
    evaluation = evaluate_checkpoint(tmp_path / "plain" / "best.pt", device="cpu")
    assert evaluation.prepared.input_features == SEASONAL
    assert evaluation.metrics["avg"]["mae"] == pytest.approx(result.test["avg"]["mae"], rel=1e-5)


def test_select_inputs_is_the_model_on_its_channels_and_refuses_what_is_absent():
    torch.manual_seed(0)
    model = build("gru", num_nodes=4, hidden=4).eval()
    wrapped = SelectInputs.for_features(model, SEASONAL, ["value", "time_of_day"])
    assert SelectInputs.for_features(model, SEASONAL[:2], SEASONAL[:2]) is model
    x = torch.randn(2, 12, 4, 4)
    torch.testing.assert_close(wrapped(x), model(x[..., :2]))
    assert wrapped.feature_names == model.feature_names and wrapped.num_nodes == 4
    picked = SelectInputs.for_features(model, ["seasonal_day", "value", "time_of_day"], ["value", "time_of_day"])
    torch.testing.assert_close(picked(x[..., [2, 0, 1]]), model(x[..., :2]))
    with pytest.raises(ConfigError, match="lacks \\['day_of_week'\\]"):
        SelectInputs.for_features(model, SEASONAL, ["value", "day_of_week"])


def test_select_inputs_picks_on_the_device_the_model_was_moved_to():
    """A teacher moved to the GPU before it is wrapped: the channel index must live beside its weights
    (index_select refuses a CPU index for a CUDA tensor). The meta device stands in for the GPU."""
    model = build("gru", num_nodes=4, hidden=4).to("meta")
    wrapped = SelectInputs.for_features(model, SEASONAL, ["value", "time_of_day"])
    assert wrapped.channels.device.type == "meta"
    assert wrapped(torch.empty(2, 12, 4, 4, device="meta")).device.type == "meta"


def test_an_exported_seasonal_student_reads_a_days_history(data_dir, tmp_path):
    """The exported program rebuilds the seasonal channels from raw readings: on every test window it
    forecasts what the trained model forecasts from the prepared inputs, and Forecaster asks for a day."""
    from stgkd import Forecaster
    from stgkd.engine.evaluate import evaluate_program, evaluate_split
    from stgkd.export import export_student, load_exported

    result = train_model(str(data_dir), "stgru", tmp_path / "plain", hparams=STUDENT, seasonal=("day",),
                         config=_cfg(), progress=False)
    path = export_student(tmp_path / "plain" / "best.pt", tmp_path / "student.pt")
    program = load_exported(path)[0]  # the plain export: a torch.export program
    exported = evaluate_program(program, result.data, split="test")
    eager = evaluate_split(result.model, result.data.test, result.data.scaler, device="cpu",
                           interval_minutes=int(result.data.data.interval_minutes))
    assert exported["avg"]["mae"] == pytest.approx(eager["avg"]["mae"], rel=1e-4)
    # the first training windows reach back before the series: their lag is missing, as in training
    assert evaluate_program(program, result.data, split="train")["avg"]["mae"] == pytest.approx(
        evaluate_split(result.model, result.data.train, result.data.scaler, device="cpu",
                       interval_minutes=5)["avg"]["mae"], rel=1e-4)
    fc = Forecaster.load(path, compile=False)
    assert fc.input_steps == 288 and fc.input_features == SEASONAL
    import pandas as pd

    data = result.data.data
    frame = pd.DataFrame(data.values[-288:, :, 0], index=data.timestamps[-288:], columns=data.sensor_ids)
    assert fc.predict(frame).shape == (12, data.num_nodes)
    with pytest.raises(Exception, match="needs at least 288 steps"):
        fc.predict(frame.iloc[-12:])
