"""Teacher-labelled augmented windows: each perturbation by hand, the specs, and the training step that
sends the views to the teacher and the student."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from stgkd.data.synthetic import generate
from stgkd.data.windows import Batch, prepare
from stgkd.distill import DistillConfig
from stgkd.distill.augment import (
    Augmenter,
    add_noise,
    drop_readings,
    format_augment,
    mix_windows,
    parse_augment,
    shift_sensors,
)
from stgkd.engine.steps import DistillStep, make_distill_step
from stgkd.errors import ConfigError


@pytest.fixture(scope="module")
def prepared():
    data, _ = generate(num_nodes=4, num_days=2, seed=0)
    return prepare(data)


def test_noise_is_added_to_the_scaled_reading_only():
    x = torch.randn(2, 3, 4, 2)
    eps = torch.randn(2, 3, 4)
    out = add_noise(x, eps, 0.5)
    assert torch.allclose(out[..., 0], x[..., 0] + 0.5 * eps)
    assert torch.equal(out[..., 1], x[..., 1])  # the time of day is not a reading


def test_dropout_zeroes_exactly_the_dropped_readings():
    x = torch.randn(2, 3, 4, 2) + 5.0  # no reading is 0 before
    drop = torch.zeros(2, 3, 4, dtype=torch.bool)
    drop[0, 1, 2] = drop[1, 0, 0] = drop[1, 2, 3] = True
    out = drop_readings(x, drop)
    assert torch.equal(out[..., 0] == 0, drop)
    assert torch.equal(out[..., 0][~drop], x[..., 0][~drop])
    assert torch.equal(out[..., 1], x[..., 1])


def test_mixup_is_the_convex_combination_of_readings_and_targets():
    x, x2 = torch.randn(2, 3, 4, 2), torch.randn(2, 3, 4, 2)
    y, y2 = torch.rand(2, 5, 4) * 60, torch.rand(2, 5, 4) * 60
    mask, mask2 = torch.ones(2, 5, 4, dtype=torch.bool), torch.ones(2, 5, 4, dtype=torch.bool)
    mask2[1, 0, 0] = False
    lam = torch.tensor([0.7, 0.9])
    xm, ym, mm = mix_windows(x, y, mask, x2, y2, mask2, lam, channels=1)
    assert torch.allclose(xm[0, ..., 0], 0.7 * x[0, ..., 0] + 0.3 * x2[0, ..., 0])
    assert torch.allclose(xm[1, ..., 0], 0.9 * x[1, ..., 0] + 0.1 * x2[1, ..., 0])
    assert torch.equal(xm[..., 1], x[..., 1])  # the anchor keeps its calendar features
    assert torch.allclose(ym[1, 2, 3], 0.9 * y[1, 2, 3] + 0.1 * y2[1, 2, 3])
    assert not mm[1, 0, 0] and ym[1, 0, 0] == 0 and int(mm.sum()) == mm.numel() - 1


def test_shift_moves_each_sensor_and_fetches_its_targets_from_the_series(prepared):
    split = prepared.train
    raw = prepared.data.values[..., 0]  # (T, N), NaN = missing
    index = torch.tensor([10, 40])
    shifts = torch.tensor([[0, 2, -3, 1], [5, -1, 0, 0]])
    batch = shift_sensors(split, index, shifts)
    t_in, h = split.in_steps, split.out_steps
    for b in range(2):
        for n in range(4):
            s = int(split.starts[index[b]]) + int(shifts[b, n])
            truth = raw[s + t_in : s + t_in + h, n]
            assert np.array_equal(batch.mask[b, :, n].numpy(), np.isfinite(truth))
            assert np.allclose(batch.y[b, :, n].numpy(), np.nan_to_num(truth, nan=0.0))
            assert torch.allclose(batch.x[b, :, n, :], split.batch(torch.tensor([index[b] + shifts[b, n]])).x[0, :, n])
    # an unshifted sensor is the window itself; a shift past the split's first window stops there
    assert torch.equal(batch.x[0, :, 0], split.batch(index[:1]).x[0, :, 0])
    edge = shift_sensors(split, torch.tensor([1]), torch.tensor([[-3, 0, 0, 0]]))
    assert torch.equal(edge.x[0, :, 0], split.batch(torch.tensor([0])).x[0, :, 0])
    late = shift_sensors(split, torch.tensor([len(split) - 1]), torch.tensor([[0, 4, 0, 0]]))
    assert torch.equal(late.x[0, :, 1], split.batch(torch.tensor([len(split) - 1])).x[0, :, 1])
    recent = shift_sensors(split, torch.tensor([6]), torch.tensor([[0, -3, 0, 0]]), first=5)  # a run on windows 5..
    assert torch.equal(recent.x[0, :, 1], split.batch(torch.tensor([5])).x[0, :, 1])


def test_shift_keeps_the_seasonal_lag_channels_of_the_moved_window():
    # the default student reads yesterday's readings: a moved window carries them like any window
    data, _ = generate(num_nodes=4, num_days=4, seed=0)
    split = prepare(data, seasonal=("day",)).train
    index = torch.tensor([300, 320])
    shifts = torch.tensor([[0, 2, -3, 1], [0, 0, 0, 0]])
    batch = shift_sensors(split, index, shifts)
    assert batch.x.shape == split.batch(index).x.shape  # (B, T_in, N, 4): value, time of day, the lag, observed
    assert torch.equal(batch.x[1], split.batch(index[1:]).x[0])
    for n in range(4):
        moved = split.batch(torch.tensor([index[0] + shifts[0, n]])).x[0, :, n]
        assert torch.equal(batch.x[0, :, n], moved)


def test_specs_are_parsed_with_documented_defaults_and_checked():
    assert parse_augment("noise,dropout,mixup,shift") == {"noise": 0.1, "dropout": 0.1, "mixup": 0.4, "shift": 3.0}
    assert format_augment(parse_augment("shift:2, noise:0.3")) == "shift:2,noise:0.3"
    assert DistillConfig(augment="noise").augment == "noise:0.1"
    for bad, match in [("blur", "augmentation"), ("dropout:1.5", r"\(0, 1\)"), ("shift:1.5", "whole number"),
                       ("noise,noise", "twice"), ("noise:x", "not a number")]:
        with pytest.raises(ConfigError, match=match):
            parse_augment(bad)
    with pytest.raises(ConfigError, match="augment_fraction"):
        DistillConfig(augment="noise", augment_fraction=0.0)


def test_augmenter_draws_views_of_the_batch(prepared):
    batch = prepared.train.batch(torch.arange(8))
    torch.manual_seed(0)
    views = Augmenter(parse_augment("noise,dropout,mixup,shift"), 0.5, split=prepared.train)(batch)
    assert views.x.shape == (4, *batch.x.shape[1:]) and views.y.shape == (4, *batch.y.shape[1:])
    assert set(views.index.tolist()) <= set(range(8))
    torch.manual_seed(0)
    one = Augmenter({"noise": 0.1}, 0.1, split=prepared.train)(batch)
    assert len(one) == 1  # at least one view


class RecordingTeacher(nn.Module):
    """Forecasts the last scaled reading over the horizon; records what it is run on."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.seen: list[torch.Tensor] = []

    def forward(self, x, return_features=False):
        self.seen.append(x.clone())
        out = x[:, -1:, :, 0].expand(-1, self.horizon, -1)
        return (out, {}) if return_features else out


class RecordingStudent(nn.Module):
    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.bias = nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x, return_features=False):
        self.seen.append(x.clone())
        return x[:, -1:, :, 0].expand(-1, self.horizon, -1) + self.bias


def test_the_teacher_labels_the_augmented_input(prepared):
    h = prepared.out_steps
    teacher, student = RecordingTeacher(h), RecordingStudent(h)
    dcfg = DistillConfig(w_out=1.0, w_feat=0.0, w_rel=0.0, augment="noise:0.5,dropout:0.3", augment_fraction=0.5)
    step, _ = make_distill_step(student, teacher, prepared, dcfg, device="cpu", amp=False)
    assert isinstance(step, DistillStep)
    assert len(teacher.seen) > 0  # the cache was built over the clean windows
    teacher.seen.clear()
    student.seen.clear()
    batch = prepared.train.batch(torch.arange(6))
    torch.manual_seed(3)
    views = step.augmenter(batch)
    torch.manual_seed(3)
    step.train()
    loss, pred, _ = step(batch.x, batch.y, batch.mask, batch.index)
    assert len(teacher.seen) == 1 and torch.equal(teacher.seen[0], views.x)  # only the views, labelled on the fly
    assert not torch.equal(views.x, batch.x[views.index])  # they are perturbed
    assert torch.equal(student.seen[0], torch.cat([batch.x, views.x]))
    assert pred.shape == batch.y.shape and step.teacher_windows == len(views) == 3
    # the loss reads the cached labels of the clean windows and the teacher's labels of the views
    full = Batch(torch.cat([batch.x, views.x]), torch.cat([batch.y, views.y]), torch.cat([batch.mask, views.mask]),
                 torch.cat([batch.index, views.index]))
    labels = torch.cat([step.cache.lookup(batch.index)[0], teacher(views.x)])
    expected, _ = step.objective(student(full.x), None, full, labels, None, prepared.scaler)
    assert math.isclose(float(loss.detach()), float(expected.detach()), rel_tol=1e-6)
    anchors = torch.cat([step.cache.lookup(views.index)[0]])
    stale, _ = step.objective(student(full.x), None, full, torch.cat([labels[:6], anchors]), None, prepared.scaler)
    assert not math.isclose(float(loss.detach()), float(stale.detach()), rel_tol=1e-4)  # not the clean windows' cached labels
    # in eval mode (the gradient-share probe, validation) no view is drawn and the teacher does not run
    teacher.seen.clear()
    step.eval()
    step(batch.x, batch.y, batch.mask, batch.index)
    assert teacher.seen == []


def test_augmentation_without_distillation_never_runs_the_teacher(prepared):
    h = prepared.out_steps
    teacher, student = RecordingTeacher(h), RecordingStudent(h)
    dcfg = DistillConfig(w_out=0.0, w_feat=0.0, w_rel=0.0, augment="mixup")
    step, _ = make_distill_step(student, teacher, prepared, dcfg, device="cpu", amp=False)
    batch = prepared.train.batch(torch.arange(4))
    step.train()
    step(batch.x, batch.y, batch.mask, batch.index)
    assert teacher.seen == [] and student.seen[-1].shape[0] == 6
    assert step.cache is None
