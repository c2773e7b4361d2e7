"""The training loop, its callbacks, metrics accumulation and the two recipes."""

from __future__ import annotations

import io
import json
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from stgkd.data.scalers import StandardScaler
from stgkd.engine import (
    EarlyStopping,
    HorizonAccumulator,
    LambdaCallback,
    ProgressBar,
    TensorBoard,
    TrainConfig,
    distill_student,
    load_checkpoint,
    train_model,
)
from stgkd.engine.callbacks import tensorboard_available
from stgkd.engine.steps import SupervisedStep
from stgkd.errors import ConfigError

from .conftest import TINY_STUDENT


def _cfg(**kw):
    base = dict(epochs=1, batch_size=64, device="cpu", seed=0, patience=0)
    base.update(kw)
    return TrainConfig(**base)


def test_horizon_accumulator_matches_dense_reference():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(10, 12, 4, generator=g) * 60
    true = torch.rand(10, 12, 4, generator=g) * 60 + 1
    mask = torch.rand(10, 12, 4, generator=g) > 0.2
    true[~mask] = 0.0
    acc = HorizonAccumulator(12)
    for chunk in (slice(0, 3), slice(3, 4), slice(4, 10)):  # uneven batches
        acc.update(pred[chunk], true[chunk], mask[chunk])
    got = acc.compute()
    p, t, m = pred.double().numpy(), true.double().numpy(), mask.numpy()
    for key, step in (("15min", 3), ("30min", 6), ("60min", 12)):
        e, mm = (p - t)[:, step - 1][m[:, step - 1]], t[:, step - 1][m[:, step - 1]]
        assert got[key]["mae"] == pytest.approx(np.abs(e).mean(), rel=1e-12)
        assert got[key]["rmse"] == pytest.approx(np.sqrt((e**2).mean()), rel=1e-12)
        assert got[key]["mape"] == pytest.approx((np.abs(e) / mm).mean(), rel=1e-12)
    # "avg" pools every observed entry of every step (not the mean of per-step MAEs)
    assert got["avg"]["mae"] == pytest.approx(np.abs(p - t)[m].mean(), rel=1e-12)
    assert set(got) == {"15min", "30min", "60min", "avg"}
    short = HorizonAccumulator(4)
    short.update(pred[:, :4], true[:, :4], mask[:, :4])
    assert set(short.compute()) == {"15min", "avg"}  # steps beyond the horizon are left out


class _Constant(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.full((x.shape[0], 2, x.shape[2]), self.value) + 0 * self.dummy


def test_supervised_loss_is_masked_mae_in_raw_units():
    scaler = StandardScaler(mean=50.0, std=10.0)
    step = SupervisedStep(_Constant(0.5), scaler)  # forecasts 0.5 in z-units = 55 raw
    y = torch.tensor([[[60.0, 0.0], [40.0, 55.0]]])  # (1, 2, 2), one missing
    mask = y != 0
    loss, pred, _ = step(torch.zeros(1, 3, 2, 1), y, mask, torch.zeros(1, dtype=torch.long))
    assert torch.allclose(pred, torch.full_like(y, 55.0))
    assert loss.item() == pytest.approx((5.0 + 15.0 + 0.0) / 3)


def test_early_stopping_counts_epochs_without_improvement():
    class T:
        should_stop = False

    trainer, cb = T(), EarlyStopping(patience=2, min_delta=0.1)
    for epoch, mae in enumerate([5.0, 4.0, 3.95, 3.99, 3.0], start=1):
        cb.on_epoch_end(trainer, epoch, {"val_mae": mae})
        if trainer.should_stop:
            break
    assert (epoch, cb.best, cb.wait) == (4, 4.0, 2)  # 3.95 is not 0.1 better than 4.0
    restored = EarlyStopping(patience=2)
    restored.load_state_dict(cb.state_dict())
    fresh = T()
    restored.on_fit_start(fresh)  # a run resumed after the stopping epoch stays stopped
    assert fresh.should_stop


def test_config_validation():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="unknown lr schedule 'warm'"):
        TrainConfig(schedule="warm")
    with pytest.raises(ConfigError, match="unknown keys"):
        TrainConfig.from_dict({"epochs": 2, "momentum": 0.9})


def test_fit_logs_every_epoch_and_a_callback_can_stop(tmp_path, tiny_data):
    stop_at_2 = LambdaCallback(on_epoch_end=lambda trainer, epoch, logs: setattr(trainer, "should_stop", epoch == 2))
    result = train_model(tiny_data, "gru", tmp_path / "run", hparams=TINY_STUDENT, progress=False,
                         config=_cfg(epochs=4, lr=1e-2, limit_batches=2, schedule="cosine", min_lr_ratio=0.0),
                         callbacks=[stop_at_2])
    assert result.epochs_run == 2 and result.stopped_early
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for r in lines:
        assert {"train_loss", "train_mae", "val_mae", "val_rmse", "val_mape", "lr", "seconds"} <= set(r)
        assert set(r["val"]) == {"15min", "30min", "60min", "avg"}
    assert lines[0]["lr"] == pytest.approx(1e-2)
    assert lines[1]["lr"] == pytest.approx(1e-2 * (1 + math.cos(math.pi / 4)) / 2)  # cosine over 4 epochs
    assert result.best_epoch in (1, 2)
    assert result.best_val_mae == pytest.approx(min(r["val_mae"] for r in lines))
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["best_epoch"] == result.best_epoch


def test_time_limit_stops_after_the_epoch_that_passes_it(tiny_data):
    import time

    from stgkd.engine import TimeLimit

    passed = TimeLimit(until=time.monotonic() - 1.0)  # already past: one epoch still runs
    result = train_model(tiny_data, "gru", None, hparams=TINY_STUDENT, progress=False,
                         config=_cfg(epochs=3, limit_batches=1), callbacks=[passed])
    assert result.epochs_run == 1 and result.stopped_early and passed.fired and passed.stopped_epoch == 1
    ample = TimeLimit(seconds=3600)
    result = train_model(tiny_data, "gru", None, hparams=TINY_STUDENT, progress=False,
                         config=_cfg(epochs=2, limit_batches=1), callbacks=[ample])
    assert result.epochs_run == 2 and not result.stopped_early and not ample.fired
    with pytest.raises(ConfigError):
        TimeLimit()
    with pytest.raises(ConfigError):
        TimeLimit(seconds=0)


def test_multistep_schedule_and_gradient_clipping(tiny_data):
    norms = []

    def grad_norm(trainer, step, logs):
        norms.append(torch.sqrt(sum(p.grad.square().sum() for p in trainer.params if p.grad is not None)).item())

    result = train_model(tiny_data, "gru", None, hparams=TINY_STUDENT, progress=False,
                         config=_cfg(epochs=3, limit_batches=2, schedule="multistep", milestones=(2,), gamma=0.1,
                                     clip_grad=1e-3),
                         callbacks=[LambdaCallback(on_batch_end=grad_norm)])
    assert [h["lr"] for h in result.history] == pytest.approx([1e-3, 1e-3, 1e-4])
    assert len(norms) == 6
    assert max(norms) <= 1e-3 * (1 + 1e-5)  # clipped (unclipped norms of a fresh model are far larger)


def test_same_seed_same_weights(tiny_data):
    runs = [
        train_model(tiny_data, "gru", None, hparams=TINY_STUDENT, progress=False, config=_cfg(limit_batches=2, seed=s))
        for s in (7, 7, 8)
    ]
    a, b, c = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_progress_bar_prints_a_line_per_epoch(tiny_data):
    stream = io.StringIO()
    train_model(tiny_data, "gru", None, hparams=TINY_STUDENT, progress=False, config=_cfg(epochs=2, limit_batches=1),
                callbacks=[ProgressBar(bar=False, stream=stream)])
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert "val MAE" in lines[0] and "ETA" in lines[0]


def test_tensorboard_needs_its_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as where it is not installed
    assert not tensorboard_available()
    with pytest.raises(ConfigError, match="tensorboard"):
        TensorBoard(tmp_path)


def test_tensorboard_logs_every_epoch(tmp_path, tiny_data):
    # tensorboard is in the dev extra: the run writes tensorboard/ beside log.jsonl
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    result = train_model(tiny_data, "gru", out, hparams=TINY_STUDENT, progress=False,
                         config=_cfg(epochs=2, limit_batches=1))
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/train_loss", "train/train_mae", "val/val_mae", "val/val_rmse", "misc/lr"} <= tags
    for tag in tags:  # one point per epoch, the value the epoch's log holds
        key = tag.split("/", 1)[1]
        points = events.Scalars(tag)
        assert [p.step for p in points] == [1, 2], tag
        assert [p.value for p in points] == pytest.approx([h[key] for h in result.history], rel=1e-6), tag


def test_distill_with_zero_weights_is_plain_training(data_dir, teacher_ckpt):
    cfg = _cfg(limit_batches=2, seed=3)
    plain = train_model(str(data_dir), "gcn-gru", None, hparams=TINY_STUDENT, config=cfg, progress=False)
    zero = distill_student(teacher_ckpt, "gcn-gru", None, hparams={"hidden": 8}, config=cfg, progress=False,
                           distill={"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0})
    a, b = plain.model.state_dict(), zero.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert zero.best_val_mae == plain.best_val_mae


def test_distill_can_start_from_the_teachers_adjacency(teacher_ckpt):
    from stgkd.engine.checkpoint import model_from_checkpoint

    teacher = model_from_checkpoint(load_checkpoint(teacher_ckpt))
    cfg = _cfg(limit_batches=1, lr=1e-9, weight_decay=0.0)  # one step that cannot move the embeddings far
    runs = {flag: distill_student(teacher_ckpt, "gcn-gru", None, hparams={"hidden": 8, "adaptive": True}, config=cfg,
                                  progress=False, distill={"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0,
                                                           "inherit_adjacency": flag})
            for flag in (False, True)}
    for flag, result in runs.items():
        close = torch.allclose(result.model.source_embedding, teacher.source_embedding, atol=1e-6)
        assert close is flag
    torch.testing.assert_close(runs[True].model.adaptive_adjacency(), teacher.adaptive_adjacency(), atol=1e-5, rtol=0)


def test_distill_reuses_a_given_teacher_cache(teacher_ckpt, monkeypatch):
    from stgkd.distill import TeacherCache
    from stgkd.engine.checkpoint import model_from_checkpoint
    from stgkd.data.rebuild import prepare_from_meta

    cfg = _cfg(limit_batches=2, seed=1)
    kd = {"w_out": 1.0, "w_feat": 0.5, "w_rel": 0.1}
    own = distill_student(teacher_ckpt, "gcn-gru", None, hparams={"hidden": 8}, config=cfg, progress=False, distill=kd)
    payload = load_checkpoint(teacher_ckpt)
    prepared = prepare_from_meta(payload["data"])
    cache = TeacherCache.build(model_from_checkpoint(payload), prepared.train, ["skip"], "cpu")

    def no_teacher_pass(*args, **kwargs):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(TeacherCache, "build", no_teacher_pass)
    shared = distill_student(teacher_ckpt, "gcn-gru", None, hparams={"hidden": 8}, config=cfg, progress=False, distill=kd,
                             cache=cache)
    a, b = own.model.state_dict(), shared.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    short = TeacherCache(cache.forecast[:3], {k: v[:3] for k, v in cache.features.items()}, adjacency=cache.adjacency)
    with pytest.raises(ConfigError, match="holds 3 windows, the training split"):
        distill_student(teacher_ckpt, "gcn-gru", None, hparams={"hidden": 8}, config=cfg, progress=False, distill=kd, cache=short)


def test_distillation_trains_and_checkpoints_its_state(tmp_path, teacher_ckpt):
    result = distill_student(teacher_ckpt, "gcn-gru", tmp_path / "st", hparams={"hidden": 8}, progress=False,
                             config=_cfg(epochs=1, limit_batches=3),
                             distill={"w_out": 1.0, "w_feat": 0.5, "w_rel": 0.1, "tau": 2.0})
    ckpt = load_checkpoint(tmp_path / "st" / "last.pt")
    assert ckpt["role"] == "student" and ckpt["model"]["hparams"]["hidden"] == 8
    assert ckpt["teacher_checkpoint"] == str(teacher_ckpt.resolve())
    assert ckpt["distill"]["tau"] == 2.0 and ckpt["distill"]["pairs"] == ["graph:skip"]
    assert set(ckpt["adapters"]) == {"graph:skip.proj.weight", "graph:skip.proj.bias"}
    assert ckpt["adapters"]["graph:skip.proj.weight"].shape == (16, 8)  # student width 8 -> teacher skip 16
    assert not any(k.startswith("adapters") for k in ckpt["state_dict"])  # adapters stay out of the student
    logs = result.history[0]
    assert logs["train_out"] > 0 and logs["train_feat"] > 0 and logs["train_rel"] > 0
    teacher = load_checkpoint(teacher_ckpt)
    assert ckpt["data"] == teacher["data"] and ckpt["scaler"] == teacher["scaler"]


def _fit_recording_dtypes(data, **config) -> tuple[list[torch.dtype], list[torch.dtype], object]:
    """Train a GRU student for one short epoch; the dtype of its output layer's activations in the
    training forwards and in the validation forwards."""
    train_dtypes: list[torch.dtype] = []
    val_dtypes: list[torch.dtype] = []

    def record(module, args, output):
        (train_dtypes if module.training else val_dtypes).append(output.dtype)

    def hook(trainer):
        trainer.model.head.register_forward_hook(record)

    result = train_model(data, "gru", None, hparams=TINY_STUDENT, progress=False, log=False,
                         config=_cfg(limit_batches=2, **config), callbacks=[LambdaCallback(on_fit_start=hook)])
    assert train_dtypes and val_dtypes
    assert next(result.model.parameters()).dtype == torch.float32  # autocast, not a bf16 model
    assert math.isfinite(result.best_val_mae)
    return train_dtypes, val_dtypes, result


def test_fit_on_cpu_runs_in_fp32_and_under_the_steps_autocast(tiny_data, monkeypatch):
    # on the CPU amp is ignored: fp32 activations throughout
    train, val, _ = _fit_recording_dtypes(tiny_data, device="cpu")
    assert set(train) == set(val) == {torch.float32}
    # with the CUDA rule applied on the CPU (bf16 when amp is on), fit's training forwards run in bf16 and
    # validation in fp32; amp=False turns it off
    from stgkd.engine import steps
    from stgkd.precision import autocast

    monkeypatch.setattr(steps, "training_autocast", lambda device, enabled=True: autocast(device, "bf16" if enabled else "fp32"))
    train, val, _ = _fit_recording_dtypes(tiny_data, device="cpu")
    assert set(train) == {torch.bfloat16} and set(val) == {torch.float32}
    train, val, _ = _fit_recording_dtypes(tiny_data, device="cpu", amp=False)
    assert set(train) == set(val) == {torch.float32}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_autocast_on_cuda(tiny_data):
    train, val, _ = _fit_recording_dtypes(tiny_data, device="cuda")
    assert set(train) == {torch.bfloat16} and set(val) == {torch.float32}
    train, _, _ = _fit_recording_dtypes(tiny_data, device="cuda", amp=False)
    assert set(train) == {torch.float32}


def test_train_windows_trains_on_the_most_recent_windows_only(tiny_data, monkeypatch):
    from stgkd.data.windows import WindowSplit

    seen: list[int] = []
    sizes: dict[str, int] = {}
    original = WindowSplit.batch

    def recording(self, idx):
        if self.name == "train":
            sizes["train"] = len(self)
            seen.extend(torch.as_tensor(idx).tolist())
        return original(self, idx)

    monkeypatch.setattr(WindowSplit, "batch", recording)
    train_model(tiny_data, "gcn-gru", None, hparams=TINY_STUDENT, config=_cfg(epochs=2, batch_size=16, train_windows=40),
                progress=False, log=False)
    n = sizes["train"]
    assert n > 40
    # each epoch visits exactly the last 40 windows, each once
    assert sorted(seen) == sorted(list(range(n - 40, n)) * 2)
    with pytest.raises(ConfigError, match="train_windows"):
        TrainConfig(train_windows=0)


def test_train_days_counts_windows_from_the_data_interval(tiny_data, monkeypatch):
    import argparse

    from stgkd.commands.train import add_training_arguments, train_config_from_args
    from stgkd.data.windows import WindowSplit
    from stgkd.engine.trainer import recent_windows

    # 1440 minutes a day: 288 windows at 5 minutes, 12 windows for half a day at an hour
    assert recent_windows(TrainConfig(train_days=1), 5) == 288
    assert recent_windows(TrainConfig(train_days=0.5), 60) == 12
    assert recent_windows(TrainConfig(train_windows=7), 5) == 7
    assert recent_windows(TrainConfig(), 5) is None
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(train_windows=7, train_days=1)
    with pytest.raises(ConfigError, match="train_days"):
        TrainConfig(train_days=0)

    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    config = train_config_from_args(parser.parse_args(["--train-days", "0.125", "--epochs", "1"]))
    assert config.train_days == 0.125

    seen: list[int] = []
    sizes: dict[str, int] = {}
    original = WindowSplit.batch

    def recording(self, idx):
        if self.name == "train":
            sizes["train"] = len(self)
            seen.extend(torch.as_tensor(idx).tolist())
        return original(self, idx)

    monkeypatch.setattr(WindowSplit, "batch", recording)
    assert tiny_data.interval_minutes == 5
    train_model(tiny_data, "gcn-gru", None, hparams=TINY_STUDENT, progress=False, log=False,
                config=_cfg(epochs=1, batch_size=16, train_days=0.125, device="cpu"))
    n = sizes["train"]
    assert sorted(seen) == list(range(n - 36, n))  # an eighth of a day at 5 minutes: 36 windows


def test_an_unset_budget_is_100_epochs_or_1600_steps_where_epochs_are_short():
    from stgkd.engine.trainer import TrainConfig, default_epochs, with_epochs

    assert default_epochs(22) == 100 and default_epochs(375) == 100  # the METR-LA week, the full METR-LA
    assert default_epochs(8) == 200 and default_epochs(3) == 534 and default_epochs(0) == 1600
    cfg = TrainConfig()
    assert cfg.epochs is None
    assert with_epochs(cfg, 504).epochs == 200  # 31 days of hourly counts: 504 training windows, 8 batches of 64
    assert with_epochs(cfg, 520).epochs == 178  # 9 batches
    assert with_epochs(cfg, 504, world_size=2).epochs == 400  # 4 batches a rank
    assert with_epochs(TrainConfig(limit_batches=2), 504).epochs == 200  # a quick run's cap is not the budget
    assert with_epochs(TrainConfig(epochs=3), 504).epochs == 3  # a set budget is kept
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        TrainConfig(epochs=0)


def test_a_run_without_a_budget_records_the_resolved_one(tiny_data, tmp_path):
    """The trainer resolves the budget before its schedule: a stop after the first epoch shows the epochs
    the cosine schedule was laid over, and the checkpoint keeps them for a resume."""
    from stgkd.engine.trainer import default_epochs

    def stop(trainer, epoch, logs):
        trainer.should_stop = True

    result = train_model(tiny_data, "gru", tmp_path / "run", hparams=TINY_STUDENT, progress=False, log=False,
                         config=_cfg(epochs=None, limit_batches=2), callbacks=[LambdaCallback(on_epoch_end=stop)])
    want = default_epochs(math.ceil(len(result.data.train) / 64))
    assert want > 100 and result.train_config.epochs == want and result.epochs_run == 1
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train_config"]["epochs"] == want

    fitted = train_model(tiny_data, "last-value", tmp_path / "lv", progress=False, log=False, config=_cfg(epochs=None))
    assert isinstance(fitted.train_config.epochs, int)  # a fitted baseline's checkpoint reads like any other
    from stgkd.engine.checkpoint import run_progress

    assert run_progress(load_checkpoint(tmp_path / "lv" / "last.pt")).epochs == 0


def test_a_time_limit_lets_a_run_reach_its_minimum_epochs():
    import time

    from stgkd.engine import TimeLimit

    class Trainer:
        should_stop = False
        config = type("Config", (), {"epochs": 30})()

    limit, trainer = TimeLimit(until=time.monotonic() - 1.0, min_epochs=10), Trainer()  # its share already spent
    for epoch in range(1, 10):
        limit.on_epoch_end(trainer, epoch, {})
        assert not trainer.should_stop and not limit.fired
    limit.on_epoch_end(trainer, 10, {})
    assert trainer.should_stop and limit.stopped_epoch == 10
    free = TimeLimit(until=time.monotonic() - 1.0)  # no minimum: stops after the first epoch
    free.on_epoch_end(Trainer(), 1, {})
    assert free.fired
