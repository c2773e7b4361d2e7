"""The combined distillation objective and its config."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from stgkd.distill import (
    ADJACENCY_KEY,
    DistillationObjective,
    DistillConfig,
    FeaturePair,
    TeacherCache,
    adjacency_relation_distillation,
    feature_matching,
    masked_mae,
    output_distillation,
    relation_distillation,
    relative_temperature,
)
from stgkd.errors import ConfigError

B, T, N, C, H = 2, 3, 4, 2, 2


class Scaler:
    mean, std = 10.0, 2.0

    def transform(self, x):
        return (x - self.mean) / self.std

    def inverse_transform(self, x):
        return x * self.std + self.mean


class Student(nn.Module):
    feature_names = ("h", "seq")
    distill_feature = "h"

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(C, 3)
        self.head = nn.Linear(3, H)

    def forward(self, x, return_features=False):
        seq = torch.tanh(self.embed(x))  # (B, T, N, 3)
        h = seq[:, -1]  # (B, N, 3)
        out = self.head(h).transpose(1, 2)  # (B, H, N)
        return (out, {"h": h, "seq": seq}) if return_features else out


class Teacher(nn.Module):
    feature_names = ("seq", "skip")
    distill_feature = "skip"

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(C, 6)
        self.head = nn.Linear(6, H)
        self.nodes = nn.Parameter(torch.randn(N, N))

    def forward(self, x, return_features=False):
        seq = torch.relu(self.embed(x))
        skip = seq.mean(1)
        out = self.head(skip).transpose(1, 2)
        return (out, {"seq": seq, "skip": skip}) if return_features else out

    def adaptive_adjacency(self):
        return torch.softmax(torch.relu(self.nodes), dim=-1)

    def adaptive_support(self):
        return self.adaptive_adjacency().t()


@pytest.fixture
def setup():
    torch.manual_seed(0)
    x = torch.randn(B, T, N, C)
    y = 10 + 2 * torch.randn(B, H, N)
    mask = torch.rand(B, H, N) > 0.25
    y = torch.where(mask, y, torch.zeros(()))
    batch = SimpleNamespace(x=x, y=y, mask=mask, index=torch.arange(B))
    return Student(), Teacher(), batch


def test_config_json_round_trip_and_validation():
    cfg = DistillConfig(tau=math.inf, pairs="h:skip,seq:seq", feature_loss="cosine", relation_source="adaptive")
    assert cfg.pairs == ["h:skip", "seq:seq"]
    again = DistillConfig.from_json(cfg.to_json())
    assert again == cfg and math.isinf(again.tau)
    assert DistillConfig.from_json(DistillConfig().to_json()) == DistillConfig()
    with pytest.raises(ConfigError, match="unknown keys \\['beta'\\]"):
        DistillConfig.from_dict({"beta": 1})
    with pytest.raises(ConfigError, match="w_out"):
        DistillConfig(w_out=-1)
    with pytest.raises(ConfigError, match="tau"):
        DistillConfig(tau=0)
    with pytest.raises(ConfigError, match="feature loss"):
        DistillConfig(feature_loss="l7")
    with pytest.raises(ConfigError, match="relation source"):
        DistillConfig(relation_source="graph")
    with pytest.raises(ConfigError, match="invalid JSON"):
        DistillConfig.from_json("{")


def test_new_fields_defaults_and_checkpoints_that_predate_them():
    cfg = DistillConfig()
    assert cfg.tau_relative is True and cfg.relation_norm == "standardize" and cfg.stages is None
    # a config as checkpoints saved it before these fields existed
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("tau_relative", "relation_norm", "stages")}
    assert DistillConfig.from_dict(old) == cfg  # as overrides: today's defaults fill the rest
    legacy = DistillConfig.from_checkpoint(old)  # as a record: read the way it was written
    assert legacy.tau_relative is False and legacy.relation_norm == "none" and legacy.stages is None
    assert DistillConfig.from_checkpoint(cfg.to_dict()) == cfg  # a new record is read as written
    assert DistillConfig.from_json(DistillConfig(stages="kd:0.8,fine:0.2").to_json()).stages == "kd:0.8,fine:0.2"
    with pytest.raises(ConfigError, match="tau_relative"):
        DistillConfig(tau_relative="yes")
    with pytest.raises(ConfigError, match="relation norm"):
        DistillConfig(relation_norm="softmax")


def test_relative_tau_changes_the_trust_weights_of_a_good_teacher(setup):
    """A teacher whose errors are a fraction of a std: tau = 1 std trusts it almost uniformly, tau = 1
    teacher-MAE does not."""
    _, _, batch = setup
    target = Scaler().transform(batch.y)
    torch.manual_seed(1)
    teacher = target + 0.2 * torch.randn_like(target)  # errors of ~0.16 std
    student = torch.zeros_like(target)
    ess = {}
    for relative in (False, True):
        objective = DistillationObjective(DistillConfig(w_feat=0.0, w_rel=0.0, tau_relative=relative))
        ess[relative] = objective(student, None, batch, teacher, None, Scaler())[1]["trust_ess"]
    assert ess[False] > 0.98 and ess[True] < 0.85


def test_zero_distillation_weights_reduce_to_weighted_masked_mae():
    cfg = DistillConfig(w_sup=2.0, w_out=0.0, w_feat=0.0, w_rel=0.0)
    objective = DistillationObjective(cfg)
    # raw truth 12, (missing), 8, 14 -> scaled 1, -, -1, 2; student errors 0.5, -, 0, 1 -> MAE 0.5.
    student = torch.tensor([[[0.5, 3.0], [-1.0, 1.0]]], requires_grad=True)
    batch = SimpleNamespace(y=torch.tensor([[[12.0, 0.0], [8.0, 14.0]]]), mask=torch.tensor([[[True, False], [True, True]]]))
    loss, parts = objective(student, None, batch, None, None, Scaler())
    assert loss.item() == pytest.approx(2 * 0.5)
    assert parts == pytest.approx({"loss": 1.0, "sup": 0.5, "out": 0.0, "feat": 0.0, "rel": 0.0, "mae_raw": 1.0})
    assert all(isinstance(v, float) for v in parts.values())
    assert len(list(objective.parameters())) == 0


def test_full_loss_is_the_weighted_sum_of_the_terms(setup):
    student, teacher, batch = setup
    cfg = DistillConfig(w_sup=1.0, w_out=0.5, w_feat=0.3, w_rel=0.2, tau=0.7, relation_tau=0.4, pairs=["h:skip", "seq:seq"])
    objective = DistillationObjective(cfg)
    s_out, s_feats = student(batch.x, return_features=True)
    with torch.no_grad():
        t_out, t_feats = teacher(batch.x, return_features=True)
    loss, parts = objective(s_out, s_feats, batch, t_out, t_feats, Scaler())
    assert set(objective.adapters) == {"h:skip", "seq:seq"}  # built lazily from the widths

    # by default tau is relative to the teacher's mean error and relation scores are standardised
    target = Scaler().transform(batch.y)
    sup = masked_mae(s_out, target, batch.mask)
    tau_eff = 0.7 * (t_out - target).abs()[batch.mask].mean()
    assert relative_temperature(t_out, target, batch.mask, 0.7).item() == pytest.approx(tau_eff.item(), rel=1e-6)
    out = output_distillation(s_out, t_out, target, batch.mask, tau=tau_eff)
    feat = (
        feature_matching(objective.adapters["h:skip"](s_feats["h"]), t_feats["skip"])
        + feature_matching(objective.adapters["seq:seq"](s_feats["seq"]), t_feats["seq"].mean(1))
    ) / 2
    rel = (
        relation_distillation(s_feats["h"], t_feats["skip"], 0.4, standardize_scores=True)
        + relation_distillation(s_feats["seq"].mean(1), t_feats["seq"].mean(1), 0.4, standardize_scores=True)
    ) / 2
    expected = sup + 0.5 * out + 0.3 * feat + 0.2 * rel
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["sup"] == pytest.approx(sup.item()) and parts["rel"] == pytest.approx(rel.item(), rel=1e-6)
    assert parts["mae_raw"] == pytest.approx(2 * sup.item(), rel=1e-6)
    assert parts["tau_eff"] == pytest.approx(tau_eff.item(), rel=1e-6) and 0 < parts["trust_ess"] < 1

    loss.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.adapters.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_adapters_live_in_the_objective_not_the_student(setup):
    student, teacher, batch = setup
    objective = DistillationObjective.from_models(DistillConfig(w_feat=1.0), student, teacher, sample_x=batch.x)
    assert objective.pairs == [FeaturePair("h", "skip")]
    adapter = objective.adapters["h:skip"]
    assert (adapter.student_dim, adapter.teacher_dim) == (3, 6)  # built from the probed widths
    assert not any("adapter" in k for k in student.state_dict())
    assert set(objective.state_dict()) == {"adapters.h:skip.proj.weight", "adapters.h:skip.proj.bias"}
    assert objective.teacher_feature_names == ["skip"]
    assert objective.resolved_config().pairs == ["h:skip"]
    auto = DistillationObjective.from_models(DistillConfig(pairs="auto"), student, teacher, sample_x=batch.x)
    assert auto.pairs == [FeaturePair("h", "skip"), FeaturePair("seq", "seq")]
    fixed = DistillationObjective(DistillConfig(pairs=["h:skip"]), feature_dims={"h:skip": (3, 6)})
    assert fixed.adapters["h:skip"].proj.weight.shape == (6, 3)


def test_unresolved_pairs_and_missing_inputs(setup):
    student, teacher, batch = setup
    with pytest.raises(ConfigError, match="from_models"):
        DistillationObjective(DistillConfig())
    objective = DistillationObjective(DistillConfig(w_rel=0.0), pairs=["h:skip"])
    s_out, s_feats = student(batch.x, return_features=True)
    with pytest.raises(ConfigError, match="teacher_out"):
        objective(s_out, s_feats, batch, None, {}, Scaler())
    with pytest.raises(ConfigError, match="teacher features lack 'skip'"):
        objective(s_out, s_feats, batch, s_out.detach(), {"seq": torch.zeros(B, T, N, 6)}, Scaler())


def test_adaptive_relation_source_uses_the_teacher_adjacency(setup):
    student, teacher, batch = setup
    cfg = DistillConfig(w_out=0.0, w_feat=0.0, w_rel=1.0, relation_source="adaptive", relation_tau=0.5,
                        relation_norm="none")
    objective = DistillationObjective.from_models(cfg, student, teacher)
    assert objective.teacher_feature_names == []
    cache = TeacherCache.build(teacher, _Split(batch), objective.teacher_feature_names, "cpu")
    t_out, t_feats = cache.lookup(batch.index)
    s_out, s_feats = student(batch.x, return_features=True)
    loss, parts = objective(s_out, s_feats, batch, t_out, t_feats, Scaler())
    rel = adjacency_relation_distillation(s_feats["h"], teacher.adaptive_support(), 0.5)  # rows = receivers
    assert parts["rel"] == pytest.approx(rel.item(), rel=1e-5)
    with pytest.raises(ConfigError, match=ADJACENCY_KEY):
        objective(s_out, s_feats, batch, t_out, {}, Scaler())


class _Split:
    """A split of the fixture's windows: ``len`` and ``batch(idx)``."""

    def __init__(self, batch) -> None:
        self.b = batch

    def __len__(self) -> int:
        return self.b.x.shape[0]

    def batch(self, idx):
        return SimpleNamespace(x=self.b.x[idx], index=idx)


def test_raw_units_scale_the_output_term_by_std(setup):
    student, teacher, batch = setup
    s_out = student(batch.x)
    with torch.no_grad():
        t_out = teacher(batch.x)
    parts = {}
    for units in ("scaled", "raw"):
        cfg = DistillConfig(w_feat=0.0, w_rel=0.0, tau=math.inf, units=units)
        parts[units] = DistillationObjective(cfg)(s_out, None, batch, t_out, None, Scaler())[1]
    assert parts["raw"]["out"] == pytest.approx(2 * parts["scaled"]["out"], rel=1e-5)
    assert parts["raw"]["sup"] == pytest.approx(parts["scaled"]["mae_raw"], rel=1e-5)
    assert parts["raw"]["mae_raw"] == pytest.approx(parts["scaled"]["mae_raw"], rel=1e-5)


def test_from_models_with_output_distillation_only(setup):
    """No feature term: nothing to pair, and the loss is sup + out alone."""
    student, teacher, batch = setup
    cfg = DistillConfig(w_sup=1.0, w_out=1.0, w_feat=0.0, w_rel=0.0, tau=math.inf)
    objective = DistillationObjective.from_models(cfg, student, teacher, sample_x=batch.x)
    assert objective.pairs == [] and len(objective.adapters) == 0
    s_out = student(batch.x)
    t_out = teacher(batch.x)
    loss, parts = objective(s_out, {}, batch, t_out, {}, Scaler())
    # tau = inf: uniform trust, so L_out is the plain mean |student - teacher| over every element
    assert parts["out"] == pytest.approx((s_out - t_out).abs().mean().item(), rel=1e-5)
    assert loss.item() == pytest.approx(parts["sup"] + parts["out"], rel=1e-5)
