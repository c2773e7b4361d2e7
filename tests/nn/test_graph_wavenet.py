"""Graph WaveNet: contract, architecture and parameter count."""

from __future__ import annotations

import pytest
import torch

from stgkd.errors import ConfigError
from stgkd.nn import GraphWaveNet, build

from .contract import ModelContract, random_graph, single_thread  # noqa: F401  (autouse fixture)

TINY = {
    "residual_channels": 8,
    "dilation_channels": 8,
    "skip_channels": 16,
    "end_channels": 16,
    "embed_dim": 4,
    "dropout": 0.0,
}


class TestGraphWaveNet(ModelContract):
    name = "graph-wavenet"
    hparams = TINY
    node_params = {"source_embedding": 0, "target_embedding": 0}


class TestGraphWaveNetStaticOnly(ModelContract):
    name = "graph-wavenet"
    hparams = {**TINY, "adaptive": False, "order": 1}
    compile_check = False  # same modules as above


def official_parameter_count(n: int, c_in: int = 2, r: int = 32, d: int = 32, s: int = 256, e: int = 512,
                             out: int = 12, supports: int = 3, order: int = 2, layers: int = 8,
                             emb: int = 10, unused_residual: bool = True) -> int:
    """Parameter count of the official gwnet (github.com/nnzhan/Graph-WaveNet, model.py), by hand."""
    start = c_in * r + r
    per_layer = (
        2 * (r * d * 2 + d)  # filter and gate Conv2d(kernel (1, 2))
        + (d * r + r) * int(unused_residual)  # residual 1x1 convs (built, unused when gcn_bool)
        + d * s + s  # skip 1x1
        + 2 * r  # BatchNorm2d weight and bias
        + (order * supports + 1) * d * r + r  # gcn mlp
    )
    end = s * e + e + e * out + out
    return start + layers * per_layer + end + 2 * n * emb


def test_default_parameter_count_matches_official_code() -> None:
    model = build("graph-wavenet", num_nodes=207, graph=random_graph(207))
    assert official_parameter_count(207) == 309_400  # the figure the official code prints
    assert model.num_parameters() == official_parameter_count(207, unused_residual=False) == 300_952


def test_receptive_field_and_output_length() -> None:
    model = GraphWaveNet(num_nodes=5, graph=random_graph(5), **TINY)
    assert model.receptive_field == 13  # 1 + 4 blocks * (1 + 2)
    x = torch.randn(2, 12, 5, 2)
    out, feats = model.eval()(x, return_features=True)
    assert out.shape == (2, 12, 5)
    assert feats["hidden"].shape == (2, 1, 5, 8)  # 12 steps padded to 13, 12 consumed
    assert feats["skip"].shape == (2, 5, 16) and feats["head"].shape == (2, 5, 16)
    longer = GraphWaveNet(num_nodes=5, graph=random_graph(5), in_steps=16, **TINY).eval()
    _, feats = longer(torch.randn(2, 16, 5, 2), return_features=True)
    assert feats["hidden"].shape == (2, 4, 5, 8)


def test_forecast_depends_only_on_last_13_steps() -> None:
    model = GraphWaveNet(num_nodes=4, graph=random_graph(4), in_steps=16, **TINY).eval()
    x = torch.randn(1, 16, 4, 2)
    y = x.clone()
    y[:, :3] = torch.randn(1, 3, 4, 2)  # steps outside the receptive field of the last output
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(y))
        z = x.clone()
        z[:, 3] += 1.0  # the oldest step inside it reaches the forecast through one path only
        assert (model(x) - model(z)).abs().max() > 0


def test_adaptive_adjacency_is_row_stochastic() -> None:
    model = GraphWaveNet(num_nodes=6, graph=random_graph(6), **TINY)
    adj = model.adaptive_adjacency()
    assert adj.shape == (6, 6) and (adj >= 0).all()
    torch.testing.assert_close(adj.sum(1), torch.ones(6))
    adj.sum().backward()  # differentiable, so relation distillation can train it
    static = GraphWaveNet(num_nodes=6, graph=random_graph(6), **{**TINY, "adaptive": False})
    with pytest.raises(ConfigError, match="adaptive"):
        static.adaptive_adjacency()


def test_no_graph_convolution_variant_uses_residual_convs() -> None:
    model = GraphWaveNet(num_nodes=4, graph=None, static_graph=False, adaptive=False, **TINY)
    assert not model.graph_conv
    assert model(torch.randn(2, 12, 4, 2)).shape == (2, 12, 4)


@pytest.mark.parametrize("bad", [{"residual_channels": 0}, {"dropout": 1.0}, {"blocks": 0}])
def test_bad_hparams_raise(bad: dict) -> None:
    with pytest.raises(ConfigError, match="graph-wavenet"):
        GraphWaveNet(num_nodes=4, **{**TINY, **bad})
