"""Feature adapters, time pooling and the choice of feature pairs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stgkd.distill.adapters import FeatureAdapter, pool_time
from stgkd.distill.taps import FeaturePair, auto_pairs, default_pairs, parse_pairs, probe_features, resolve_pairs
from stgkd.errors import ConfigError


class FakeModel(nn.Module):
    """Returns features of fixed shapes; N = 3 nodes."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], distill_feature: str) -> None:
        super().__init__()
        self.shapes = shapes
        self.feature_names = tuple(shapes)
        self.distill_feature = distill_feature
        self.calls = 0

    def forward(self, x, return_features=False):
        self.calls += 1
        assert not self.training and not torch.is_grad_enabled()
        out = x[..., 0]
        feats = {k: torch.zeros(x.shape[0], *s) for k, s in self.shapes.items()}
        return (out, feats) if return_features else out


def test_pool_time_mean_last_and_passthrough():
    x = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).view(2, 3, 1, 1)  # (B=2, T=3, N=1, D=1)
    assert torch.equal(pool_time(x, "mean").flatten(), torch.tensor([1.0, 4.0]))
    assert torch.equal(pool_time(x, "last").flatten(), torch.tensor([2.0, 5.0]))
    nodes = torch.randn(2, 4, 5)
    assert pool_time(nodes, "last") is nodes
    with pytest.raises(ConfigError, match="time pool"):
        pool_time(x, "max")
    with pytest.raises(ConfigError, match=r"\(B, N, D\)"):
        pool_time(torch.zeros(2), "mean")


def test_feature_adapter_projects_node_and_time_layouts():
    adapter = FeatureAdapter(2, 3)
    with torch.no_grad():
        adapter.proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
        adapter.proj.bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
    nodes = torch.tensor([[[1.0, 2.0]]])  # (1, 1, 2)
    assert torch.equal(adapter(nodes), torch.tensor([[[1.0, 4.0, 13.0]]]))
    seq = torch.tensor([[[[0.0, 0.0]], [[2.0, 4.0]]]])  # (1, T=2, 1, 2), mean = [1, 2]
    assert torch.equal(adapter(seq), torch.tensor([[[1.0, 4.0, 13.0]]]))
    last = FeatureAdapter(2, 3, time_pool="last")
    last.load_state_dict(adapter.state_dict())
    assert torch.equal(last(seq), torch.tensor([[[2.0, 8.0, 16.0]]]))
    with pytest.raises(ConfigError, match="feature dim 2"):
        adapter(torch.zeros(1, 1, 5))
    with pytest.raises(ConfigError, match="positive"):
        FeatureAdapter(0, 3)


def test_parse_pairs():
    assert parse_pairs("h:skip, g:block.1") == [FeaturePair("h", "skip"), FeaturePair("g", "block.1")]
    assert FeaturePair("g", "block.1").key == "g:block_1"
    assert parse_pairs(["a:b"]) == [FeaturePair("a", "b")]
    for bad in ("ab", "a:", "a:b:c"):
        with pytest.raises(ConfigError, match="student_feature:teacher_feature"):
            parse_pairs(bad)
    with pytest.raises(ConfigError, match="duplicate"):
        parse_pairs(["a:b", "a:b"])


def test_default_pairs_use_distill_feature():
    student = FakeModel({"h": (3, 8)}, "h")
    teacher = FakeModel({"skip": (3, 16)}, "skip")
    assert default_pairs(student, teacher) == [FeaturePair("h", "skip")]
    with pytest.raises(ConfigError, match="distill_feature"):
        default_pairs(student, FakeModel({"skip": (3, 16)}, ""))


def test_auto_pairs_match_rank_and_relative_depth():
    teacher = {"a": (2, 12, 3, 16), "b": (2, 6, 3, 16), "skip": (2, 3, 32)}
    assert auto_pairs({"h": (2, 3, 8)}, teacher) == [FeaturePair("h", "skip")]
    assert auto_pairs({"seq": (2, 12, 3, 8), "h": (2, 3, 8)}, teacher) == [
        FeaturePair("seq", "a"),
        FeaturePair("h", "skip"),
    ]
    assert auto_pairs({"seq": (2, 12, 3, 8)}, teacher) == [FeaturePair("seq", "b")]
    # No teacher feature of the rank: any rank with the same node count, deepest first.
    assert auto_pairs({"h": (2, 3, 8)}, {"a": (2, 12, 3, 16), "b": (2, 6, 3, 16)}) == [FeaturePair("h", "b")]
    with pytest.raises(ConfigError, match="node count"):
        auto_pairs({"h": (2, 5, 8)}, teacher)


def test_resolve_pairs_auto_probes_and_checks_names():
    student = FakeModel({"h": (3, 8)}, "h")
    teacher = FakeModel({"a": (4, 3, 16), "skip": (3, 32)}, "skip")
    x = torch.zeros(2, 4, 3, 2)
    student.train()
    assert probe_features(student, x) == {"h": (2, 3, 8)}
    assert student.training  # mode restored
    assert resolve_pairs("auto", student, teacher, sample_x=x) == [FeaturePair("h", "skip")]
    assert resolve_pairs(None, student, teacher) == [FeaturePair("h", "skip")]
    assert resolve_pairs(["h:a"], student, teacher) == [FeaturePair("h", "a")]
    with pytest.raises(ConfigError, match="student has no feature 'x'"):
        resolve_pairs("x:a", student, teacher)
    with pytest.raises(ConfigError, match="teacher has no feature 'zz'"):
        resolve_pairs("h:zz", student, teacher)
    with pytest.raises(ConfigError, match="sample_x"):
        resolve_pairs("auto", student, teacher)
