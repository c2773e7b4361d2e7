"""The staged-distillation schedule: parsing, epoch bounds, and the objective's active terms."""

from __future__ import annotations

import pytest
import torch

from stgkd.distill import STAGES, DistillationObjective, DistillConfig, parse_stages, stage_at, stage_bounds
from stgkd.distill.stages import format_stages
from stgkd.errors import ConfigError

SPEC = "hint:0.2,kd:0.6,fine:0.2"


def test_parse_and_format():
    stages = parse_stages(" Hint:0.2, kd:0.6 ,fine:0.2")
    assert stages == [("hint", 0.2), ("kd", 0.6), ("fine", 0.2)]
    assert format_stages(stages) == SPEC
    assert parse_stages("kd:1") == [("kd", 1.0)]
    assert STAGES.get("hint") == ("sup", "feat") and STAGES.get("kd") == ("sup", "out", "rel")
    assert STAGES.get("fine") == ("sup",)


@pytest.mark.parametrize("bad, match", [
    ("hint:0.5,kd:0.4", "sum to 0.9"),
    ("hint:0.5,hint:0.5", "twice"),
    ("warmup:1", "distillation stage"),
    ("hint", "name:fraction"),
    ("hint:0,kd:1", "name:fraction"),
    ("hint:x", "name:fraction"),
    ("", "name:fraction"),
])
def test_parse_refuses(bad, match):
    with pytest.raises(ConfigError, match=match):
        parse_stages(bad)


def test_bounds_by_cumulative_rounding():
    stages = parse_stages(SPEC)
    assert stage_bounds(stages, 10) == [("hint", 1, 2), ("kd", 3, 8), ("fine", 9, 10)]
    assert stage_bounds(stages, 5) == [("hint", 1, 1), ("kd", 2, 4), ("fine", 5, 5)]
    # too few epochs: a stage shorter than half an epoch is skipped
    assert stage_bounds(stages, 2) == [("kd", 1, 2)]
    assert stage_bounds(stages, 1) == [("kd", 1, 1)]
    assert [stage_at(stages, e, 10) for e in range(1, 11)] == ["hint"] * 2 + ["kd"] * 6 + ["fine"] * 2
    assert stage_at(stages, 12, 10) == "fine"  # past the end: the last stage


def test_config_stores_the_canonical_schedule():
    assert DistillConfig(stages="HINT:0.25, fine:0.75").stages == "hint:0.25,fine:0.75"
    assert DistillConfig().stages is None
    with pytest.raises(ConfigError, match="sum to"):
        DistillConfig(stages="hint:0.5")


def test_objective_set_stage_switches_terms_off_at_their_weights():
    cfg = DistillConfig(w_sup=2.0, w_out=1.0, w_feat=0.5, w_rel=0.25, pairs=["h:h"])
    objective = DistillationObjective(cfg)
    assert objective.weights == {"sup": 2.0, "out": 1.0, "feat": 0.5, "rel": 0.25} and objective.active_terms is None
    objective.set_stage("hint")
    assert objective.weights == {"sup": 2.0, "out": 0.0, "feat": 0.5, "rel": 0.0}
    assert objective.active_terms == ("sup", "feat")
    objective.set_stage("fine")
    assert objective.weights == {"sup": 2.0, "out": 0.0, "feat": 0.0, "rel": 0.0}
    objective.set_stage(None)
    assert objective.weights == cfg.weights
    with pytest.raises(ConfigError, match="unknown terms"):
        objective.set_terms(["sup", "kd"])


def test_a_switched_off_term_is_not_computed():
    class Scaler:
        def transform(self, x):
            return x

        inverse_transform = transform

    from types import SimpleNamespace

    objective = DistillationObjective(DistillConfig(w_feat=0.0, w_rel=0.0))
    student = torch.tensor([[[1.0, 2.0]]], requires_grad=True)
    batch = SimpleNamespace(y=torch.tensor([[[1.5, 2.5]]]), mask=torch.ones(1, 1, 2, dtype=torch.bool))
    teacher = torch.tensor([[[0.0, 0.0]]])
    _, parts = objective(student, None, batch, teacher, None, Scaler())
    assert parts["out"] > 0 and "trust_ess" in parts
    objective.set_stage("fine")
    loss, parts = objective(student, None, batch, None, None, Scaler())  # no teacher needed
    assert parts["out"] == 0.0 and "trust_ess" not in parts and loss.item() == pytest.approx(0.5)
