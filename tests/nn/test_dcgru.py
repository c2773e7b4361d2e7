"""The diffusion-recurrent student: contract, size, the cell against an explicit reference."""

from __future__ import annotations

import pytest
import torch

from stgkd.errors import ConfigError
from stgkd.nn import build
from stgkd.nn.dcgru import diffuse
from stgkd.nn.layers.supports import diffusion_supports

from .contract import ModelContract, random_graph, single_thread  # noqa: F401  (autouse fixture)

EMBEDDINGS = {"source_embedding": 0, "target_embedding": 0}


class TestDCGRU(ModelContract):
    name = "dcgru"
    hparams = {"hidden": 8, "embed_dim": 4}
    node_params = EMBEDDINGS


class TestDCGRUFullStatic(ModelContract):
    name = "dcgru"
    hparams = {"hidden": 8, "mixing": "full", "adaptive": False, "order": 1}
    compile_check = False  # same module types as TestDCGRU


class TestDCGRUEmbeddings(ModelContract):
    name = "dcgru"
    hparams = {"hidden": 8, "embed_dim": 4, "node_embed": 3, "tod_embed": 2, "tod_slots": 12, "order": 3}
    compile_check = False  # one embedding lookup more than TestDCGRU
    node_params = {**EMBEDDINGS, "node_embedding": 0}


def test_diffuse_matches_explicit_powers():
    g = torch.Generator().manual_seed(0)
    supports = torch.rand(2, 5, 5, generator=g)
    x = torch.randn(5, 3, 4, generator=g)  # node-major (N, B, C)
    out = diffuse(x, supports, 2)
    expected = [x]
    for s in supports:
        expected += [torch.einsum("mn,nbc->mbc", s, x), torch.einsum("mn,nbc->mbc", s @ s, x)]
    assert out.shape == (5, 5, 3, 4)
    for got, want in zip(out, expected):
        torch.testing.assert_close(got, want)


def test_cell_against_an_explicit_reference():
    """The forward pass, step by step with plain tensor algebra, 'full' mixing (DCRNN's form)."""
    torch.manual_seed(0)
    n, d = 5, 4
    adj = random_graph(n, seed=1)
    model = build("dcgru", num_nodes=n, graph=adj, hidden=d, order=1, mixing="full", embed_dim=3).eval()
    x = torch.randn(2, 12, n, 2)
    sup = [*diffusion_supports(adj), model.adaptive_adjacency().t()]
    cell = model.cell
    h = torch.zeros(2, n, d)
    for t in range(12):
        xt = x[:, t]
        xs = torch.cat([xt] + [s @ xt for s in sup], dim=-1)
        hs = torch.cat([h] + [s @ h for s in sup], dim=-1)
        gx, gh = cell.x_lin(xs), cell.h_lin(hs)
        r = torch.sigmoid(gx[..., :d] + gh[..., :d])
        u = torch.sigmoid(gx[..., d : 2 * d] + gh[..., d : 2 * d])
        c = torch.tanh(gx[..., 2 * d :] + r * gh[..., 2 * d :])
        h = u * h + (1 - u) * c
    expected = model.head(h).transpose(1, 2)
    out, feats = model(x, return_features=True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feats["hidden"], h, rtol=1e-5, atol=1e-5)


def test_separable_mixing_weights_each_hop_per_channel():
    torch.manual_seed(0)
    n, d = 4, 3
    adj = random_graph(n, seed=2)
    model = build("dcgru", num_nodes=n, graph=adj, hidden=d, order=2, adaptive=False).eval()
    h = torch.randn(n, 1, d)
    gx = torch.zeros(n, 1, 3 * d)
    sup = model.supports()
    copies = [h] + [torch.einsum("mn,nbc->mbc", torch.linalg.matrix_power(s, k), h) for s in sup for k in (1, 2)]
    mixed = sum(theta * c for theta, c in zip(model.cell.theta, copies))
    gh = model.cell.h_lin(mixed)
    r, u = torch.sigmoid(gh[..., :d]), torch.sigmoid(gh[..., d : 2 * d])
    expected = u * h + (1 - u) * torch.tanh(r * gh[..., 2 * d :])
    torch.testing.assert_close(model.cell(gx, h, sup), expected)


def test_under_a_tenth_of_graph_wavenet_at_width_64():
    adj = random_graph(207, seed=0, density=0.04)
    teacher = build("graph-wavenet", num_nodes=207, graph=adj).num_parameters()
    student = build("dcgru", num_nodes=207, graph=adj, hidden=64, node_embed=16).num_parameters()
    assert teacher == 300_952
    assert student <= teacher / 10


def test_inherits_the_teachers_operator():
    from stgkd.distill import inherit_adjacency

    adj = random_graph(5, seed=3)
    teacher = build("graph-wavenet", num_nodes=5, graph=adj, residual_channels=4, dilation_channels=4,
                    skip_channels=8, end_channels=8, blocks=1)
    student = build("dcgru", num_nodes=5, graph=adj, hidden=4)
    inherit_adjacency(student, teacher)
    signal = torch.randn(5, 2)
    torch.testing.assert_close(student.supports()[-1] @ signal, teacher.supports()[-1] @ signal)
    torch.testing.assert_close(student.supports()[:2], torch.stack(teacher.supports()[:2]))


@pytest.mark.parametrize("kw, match", [
    ({"order": 4}, "order"), ({"mixing": "dense"}, "mixing"), ({"adaptive": False, "static_graph": False}, "gru"),
    ({"tod_embed": 2, "time_channel": 5}, "time of day"), ({"hidden": 0}, "hidden"),
])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        build("dcgru", num_nodes=4, **kw)
