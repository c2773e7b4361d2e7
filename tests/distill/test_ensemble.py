"""Several teachers as one: combination weights by hand, the ensemble's forecast, its features and
adaptive adjacency from the feature teacher, and a teacher cache built over it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from stgkd.distill import DistillConfig, TeacherCache
from stgkd.distill.cache import ADJACENCY_KEY
from stgkd.distill.ensemble import (
    TEACHER_COMBINES,
    TeacherEnsemble,
    combine_forecasts,
    inverse_error_weights,
    mean_weights,
    weights_summary,
)
from stgkd.errors import ConfigError

B, T, N, C, H = 3, 4, 2, 2, 2


class ConstantTeacher(nn.Module):
    """Forecasts ``value`` everywhere; features ``{"skip": (B, N, 1)}`` filled with ``value``."""

    feature_names = ("skip",)
    distill_feature = "skip"

    def __init__(self, value: float, *, adaptive: bool = False) -> None:
        super().__init__()
        self.value = value
        self.scale = nn.Parameter(torch.ones(()))
        self.adaptive = adaptive
        if adaptive:
            self.source_embedding = nn.Parameter(torch.full((N, 3), value))
            self.target_embedding = nn.Parameter(torch.full((N, 3), -value))

    def forward(self, x, return_features=False):
        out = torch.full((x.shape[0], H, N), self.value) * self.scale
        feats = {"skip": torch.full((x.shape[0], N, 1), self.value)}
        return (out, feats) if return_features else out

    def adaptive_support(self):
        return torch.full((N, N), self.value)


def test_inverse_error_weights_by_hand():
    # two teachers, H = 1, N = 3: errors 1 and 3 -> weights 3/4, 1/4; equal errors -> 1/2; one nan -> 1/2
    errors = torch.tensor([[[1.0, 2.0, float("nan")]], [[3.0, 2.0, 1.0]]])
    w = inverse_error_weights(errors)
    expected = torch.tensor([[[0.75, 0.5, 0.5]], [[0.25, 0.5, 0.5]]])
    assert torch.allclose(w, expected)
    # three teachers at one cell: 1/1, 1/2, 1/4 normalised by 7/4
    w3 = inverse_error_weights(torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1))
    assert torch.allclose(w3.flatten(), torch.tensor([4 / 7, 2 / 7, 1 / 7]))
    assert torch.allclose(mean_weights(errors), torch.full_like(errors, 0.5))
    assert TEACHER_COMBINES.get("inverse-error") is inverse_error_weights


def test_ensemble_forecast_is_the_mean_or_the_inverse_error_mix():
    x = torch.zeros(B, T, N, C)
    members = [ConstantTeacher(1.0), ConstantTeacher(4.0)]
    mean = TeacherEnsemble(members, mean_weights(torch.zeros(2, H, N)))
    assert torch.allclose(mean(x), torch.full((B, H, N), 2.5))
    # teacher 0 errs 1.0 at step 1 and 3.0 at step 2, teacher 1 errs 3.0 then 1.0, at every sensor
    errors = torch.tensor([[1.0, 3.0], [3.0, 1.0]])[:, :, None].expand(2, H, N)
    weighted = TeacherEnsemble(members, inverse_error_weights(errors))
    out = weighted(x)
    assert torch.allclose(out[:, 0], torch.full((B, N), 0.75 * 1.0 + 0.25 * 4.0))
    assert torch.allclose(out[:, 1], torch.full((B, N), 0.25 * 1.0 + 0.75 * 4.0))
    assert torch.allclose(combine_forecasts(torch.stack([m(x) for m in members]), weighted.weights), out)


def test_features_relations_and_adjacency_come_from_the_feature_teacher():
    x = torch.zeros(B, T, N, C)
    members = [ConstantTeacher(1.0), ConstantTeacher(4.0, adaptive=True)]
    ens = TeacherEnsemble(members, mean_weights(torch.zeros(2, H, N)), feature_teacher=1, names=["a.pt", "b.pt"])
    out, feats = ens(x, return_features=True)
    assert torch.allclose(out, torch.full((B, H, N), 2.5))
    assert torch.equal(feats["skip"], torch.full((B, N, 1), 4.0))
    assert ens.adaptive and torch.equal(ens.adaptive_support(), torch.full((N, N), 4.0))
    assert ens.source_embedding is members[1].source_embedding
    assert ens.distill_feature == "skip" and ens.feature_names == ("skip",)
    first = TeacherEnsemble(members, mean_weights(torch.zeros(2, H, N)))  # the first by default: no adjacency
    assert not first.adaptive and getattr(first, "source_embedding", None) is None
    with pytest.raises(ConfigError, match="no adaptive adjacency"):
        first.adaptive_support()
    # members are frozen and stay in eval mode
    ens.train()
    assert not any(m.training for m in ens.members)
    assert not any(p.requires_grad for p in ens.parameters())


def test_teacher_cache_over_an_ensemble_holds_the_combined_forecast():
    xs = torch.randn(5, T, N, C)
    split = type("S", (), {"__len__": lambda self: 5, "batch": lambda self, idx: SimpleNamespace(x=xs[idx], index=idx)})()
    errors = torch.tensor([1.0, 3.0]).view(2, 1, 1).expand(2, H, N)
    ens = TeacherEnsemble([ConstantTeacher(1.0), ConstantTeacher(4.0, adaptive=True)], inverse_error_weights(errors),
                          feature_teacher=1)
    cache = TeacherCache.build(ens, split, ["skip"], "cpu", dtype=torch.float32, batch_size=2)
    t_out, t_feats = cache.lookup(torch.tensor([0, 4]))
    assert torch.allclose(t_out, torch.full((2, H, N), 0.75 * 1.0 + 0.25 * 4.0))
    assert torch.equal(t_feats["skip"], torch.full((2, N, 1), 4.0))
    assert torch.equal(t_feats[ADJACENCY_KEY], torch.full((N, N), 4.0))


def test_bad_ensembles_and_configs_are_refused():
    members = [ConstantTeacher(1.0), ConstantTeacher(2.0)]
    with pytest.raises(ConfigError, match="sum to 1"):
        TeacherEnsemble(members, torch.full((2, H, N), 0.3))
    with pytest.raises(ConfigError, match=r"\(K=2, H, N\)"):
        TeacherEnsemble(members, torch.full((3, H, N), 1 / 3))
    with pytest.raises(ConfigError, match="feature_teacher=2"):
        TeacherEnsemble(members, torch.full((2, H, N), 0.5), feature_teacher=2)
    with pytest.raises(ConfigError, match="teacher combination"):
        DistillConfig(teacher_combine="median")
    assert DistillConfig.from_json(DistillConfig(teacher_combine="inverse-error").to_json()).teacher_combine == \
        "inverse-error"


def test_weights_summary_by_hand():
    w = torch.tensor([[[0.75, 0.25]], [[0.25, 0.75]]])  # K=2, H=1, N=2
    s = weights_summary(w, ["a", "b"])
    assert s == {"teachers": ["a", "b"], "mean": [0.5, 0.5], "per_step": [[0.5], [0.5]], "min": [0.25, 0.25],
                 "max": [0.75, 0.75]}
