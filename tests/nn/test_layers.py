"""Layers and graph operators against naive dense references, and FLOP counting by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stgkd.errors import ConfigError
from stgkd.nn import count_flops
from stgkd.nn.layers.adaptive import adaptive_adjacency
from stgkd.nn.layers.graph_conv import DenseGraphConv, DiffusionGraphConv
from stgkd.nn.layers.norm import ChannelBatchNorm
from stgkd.nn.layers.supports import batch_edges, dense_to_edges, diffusion_supports, gcn_support
from stgkd.nn.layers.temporal_conv import GatedTemporalConv

from .contract import random_graph, single_thread  # noqa: F401  (autouse fixture)


def test_diffusion_supports_follow_the_edges() -> None:
    # path 0 -> 1 -> 2: one forward step moves a signal from node 0 to node 1
    adj = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    fwd, bwd = diffusion_supports(adj)
    signal = torch.tensor([[1.0], [0.0], [0.0]])
    torch.testing.assert_close(fwd @ signal, torch.tensor([[0.0], [1.0], [0.0]]))
    torch.testing.assert_close(bwd @ torch.tensor([[0.0], [0.0], [1.0]]), torch.tensor([[0.0], [1.0], [0.0]]))


def test_gcn_support_matches_pyg_gcn_norm() -> None:
    from torch_geometric.nn import GCNConv

    adj = random_graph(6)
    adj.fill_diagonal_(0.0)
    conv = GCNConv(3, 4, normalize=True, add_self_loops=True)
    x = torch.randn(6, 3)
    src, dst = adj.nonzero(as_tuple=True)
    expected = conv(x, torch.stack([src, dst]), adj[src, dst])
    dense = gcn_support(adj) @ conv.lin(x) + conv.bias
    torch.testing.assert_close(dense, expected, rtol=1e-5, atol=1e-5)
    # symmetric graphs give the textbook D^-1/2 (A + I) D^-1/2
    sym = adj + adj.t()
    a = sym + torch.eye(6)
    d = a.sum(1).rsqrt()
    torch.testing.assert_close(gcn_support(sym), d[:, None] * a * d[None, :])


def test_dense_to_edges_and_batching_round_trip() -> None:
    support = gcn_support(random_graph(5))
    edge_index, weight = dense_to_edges(support)
    rebuilt = torch.zeros(5, 5)
    rebuilt[edge_index[1], edge_index[0]] = weight
    torch.testing.assert_close(rebuilt, support)
    batched, bw = batch_edges(edge_index, weight, 5, 3)
    assert batched.shape == (2, 3 * edge_index.shape[1])
    torch.testing.assert_close(batched[:, -edge_index.shape[1]:], edge_index + 10)
    torch.testing.assert_close(bw, weight.repeat(3))


def test_diffusion_graph_conv_matches_naive_reference() -> None:
    torch.manual_seed(0)
    n, c_in, c_out, order = 5, 3, 4, 2
    supports = list(diffusion_supports(random_graph(n))) + [adaptive_adjacency(torch.randn(n, 2), torch.randn(n, 2))]
    layer = DiffusionGraphConv(c_in, c_out, len(supports), order=order)
    x = torch.randn(2, 4, n, c_in)  # (B, T, N, C)
    out = layer(x, supports)
    # naive: explicit sum over supports, hops, nodes, with the weight block of each term
    w = layer.mlp.weight  # (C_out, (order * M + 1) * C_in), blocks in the order [x, S1 x, S1^2 x, S2 x, ...]
    blocks = w.split(c_in, dim=1)
    expected = torch.zeros(2, 4, n, c_out)
    for b in range(2):
        for t in range(4):
            for m in range(n):
                acc = layer.mlp.bias.clone() + blocks[0] @ x[b, t, m]
                j = 1
                for s in supports:
                    power = torch.eye(n)
                    for _ in range(order):
                        power = power @ s
                        for k in range(n):
                            acc = acc + power[m, k] * (blocks[j] @ x[b, t, k])
                        j += 1
                expected[b, t, m] = acc
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="supports"):
        layer(x, supports[:2])


def test_dense_graph_conv_two_supports() -> None:
    n = 4
    s1, s2 = torch.rand(n, n), torch.rand(n, n)
    layer = DenseGraphConv(3, 2, num_supports=2)
    x = torch.randn(2, n, 3)
    w1, w2 = layer.lin.weight.split(3, dim=1)
    expected = s1 @ x @ w1.t() + s2 @ x @ w2.t() + layer.lin.bias
    torch.testing.assert_close(layer(x, [s1, s2]), expected)


@pytest.mark.parametrize("dilation", [1, 2])
def test_gated_temporal_conv_equals_conv2d_pair(dilation: int) -> None:
    torch.manual_seed(0)
    layer = GatedTemporalConv(3, 4, dilation=dilation)
    filt = nn.Conv2d(3, 4, kernel_size=(1, 2), dilation=dilation)
    gate = nn.Conv2d(3, 4, kernel_size=(1, 2), dilation=dilation)
    # our weight: (2 * C_out, 2 * C_in) with taps [x_{t-d} | x_t] and outputs [filter | gate]
    w = layer.lin.weight.detach()
    for conv, rows in ((filt, w[:4]), (gate, w[4:])):
        conv.weight.data = torch.stack([rows[:, :3], rows[:, 3:]], dim=-1)[:, :, None, :]
    filt.bias.data, gate.bias.data = layer.lin.bias.detach()[:4], layer.lin.bias.detach()[4:]
    x = torch.randn(2, 7, 5, 3)  # (B, T, N, C)
    xc = x.permute(0, 3, 2, 1)  # official layout (B, C, N, T)
    expected = (torch.tanh(filt(xc)) * torch.sigmoid(gate(xc))).permute(0, 3, 2, 1)
    out = layer(x)
    assert out.shape == (2, 7 - dilation, 5, 4)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="steps"):
        layer(torch.randn(1, dilation, 5, 3))


def test_channel_batch_norm_equals_batchnorm2d() -> None:
    ours, ref = ChannelBatchNorm(3), nn.BatchNorm2d(3)
    x = torch.randn(2, 4, 5, 3)
    torch.testing.assert_close(ours(x), ref(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)


def test_adaptive_adjacency_by_hand() -> None:
    e1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    e2 = torch.tensor([[2.0, 0.0], [0.0, -1.0]])
    # E1 E2^T = [[2, 0], [0, -1]] -> ReLU [[2, 0], [0, 0]] -> row softmax
    e = torch.exp(torch.tensor(2.0))
    expected = torch.tensor([[e / (e + 1), 1 / (e + 1)], [0.5, 0.5]])
    torch.testing.assert_close(adaptive_adjacency(e1, e2), expected)


# ------------------------------------------------------------------------------ FLOPs


def test_flops_linear_by_hand() -> None:
    assert count_flops(nn.Linear(10, 5), torch.randn(4, 10)) == 2 * 4 * 10 * 5  # bias not counted


@pytest.mark.parametrize("batch_first", [True, False])
def test_flops_gru_by_hand(batch_first: bool) -> None:
    gru = nn.GRU(3, 4, batch_first=batch_first)
    x = torch.randn(2, 5, 3) if batch_first else torch.randn(5, 2, 3)
    # 3 gates x (input 3 + hidden 4) x hidden 4, multiply-add = 2 FLOPs, over B=2, T=5
    assert count_flops(gru, x) == 2 * 2 * 5 * 3 * 4 * (3 + 4) == 1680


def test_flops_two_layer_gru_and_cell() -> None:
    gru = nn.GRU(3, 4, num_layers=2, batch_first=True)
    assert count_flops(gru, torch.randn(2, 5, 3)) == 2 * 2 * 5 * 3 * 4 * ((3 + 4) + (4 + 4))
    cell = nn.GRUCell(3, 4)
    assert count_flops(cell, torch.randn(2, 3)) == 2 * 2 * 3 * 4 * (3 + 4)


def test_flops_gru_student_by_hand() -> None:
    from stgkd.nn import build

    model = build("gru", num_nodes=6, hidden=8)
    x = torch.randn(2, 12, 6, 2)
    gru = 2 * (2 * 6) * 12 * 3 * 8 * (2 + 8)
    head = 2 * (2 * 6) * 8 * 12
    assert count_flops(model, x) == gru + head


def test_flops_message_passing_counted() -> None:
    from torch_geometric.nn import GCNConv

    conv = GCNConv(3, 4, normalize=False, add_self_loops=False)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Shapes: x (N, 3) -> (N, 4)"""
            return self.conv(x, edge_index)

    # linear 2 * N * 3 * 4 plus 2 FLOPs per edge and channel for propagate
    assert count_flops(Wrap(), torch.randn(4, 3)) == 2 * 4 * 3 * 4 + 2 * 4 * 4
