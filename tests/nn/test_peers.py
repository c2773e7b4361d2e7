"""Peer teachers wrapped from PyTorch Geometric Temporal: layout checks against the PGT layers."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch_geometric_temporal") is None,
    reason="torch-geometric-temporal is not installed (pip install --no-deps torch-geometric-temporal==0.56.2)",
)

from stgkd import compat  # noqa: E402
from stgkd.errors import ConfigError  # noqa: E402
from stgkd.nn import peers  # noqa: E402
from stgkd.nn.registry import build, from_config  # noqa: E402

from .contract import ModelContract, single_thread  # noqa: E402, F401  (autouse fixture)

N, T_IN, T_OUT, C = 5, 6, 4, 2

TINY = {
    "dcrnn": {"hidden": 6, "layers": 2, "diffusion_steps": 2},
    "stgcn": {"hidden": 6, "blocks": 2, "kernel_size": 2, "cheb_k": 3},
    "agcrn": {"hidden": 6, "layers": 2, "embed_dim": 3, "cheb_k": 2},
    "mtgnn": {
        "layers": 2,
        "conv_channels": 8,
        "residual_channels": 6,
        "skip_channels": 7,
        "end_channels": 9,
        "subgraph_size": 3,
        "node_dim": 4,
    },
    "pgt-gconvgru": {"hidden": 6},
}


def weighted_digraph(n: int = N, seed: int = 0) -> torch.Tensor:
    """Directed weighted graph, every node with in- and out-edges, distinct weights."""
    g = torch.Generator().manual_seed(seed)
    adj = torch.rand(n, n, generator=g) * (torch.rand(n, n, generator=g) > 0.5)
    adj.fill_diagonal_(0.0)
    idx = torch.arange(n)
    adj[idx, (idx + 1) % n] = 0.5 + torch.rand(n, generator=g)  # a directed ring keeps degrees > 0
    return adj


def two_components() -> torch.Tensor:
    """Nodes {0, 1, 2} and {3, 4} are disconnected."""
    adj = torch.zeros(N, N)
    for i, j, w in [(0, 1, 0.9), (1, 2, 0.4), (2, 0, 0.7), (1, 0, 0.3), (3, 4, 0.8), (4, 3, 0.6)]:
        adj[i, j] = w
    return adj


def make(name: str, graph: torch.Tensor | None = None, seed: int = 0, **override) -> peers.ForecastModel:
    torch.manual_seed(seed)
    hparams = {**TINY[name], **override}
    return build(name, num_nodes=N, graph=graph, in_steps=T_IN, out_steps=T_OUT, in_channels=C, **hparams).eval()


def inputs(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, T_IN, N, C, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ shared contract
# Widths of 16 and 4 output steps: enough capacity for the contract's "overfit one batch" check
# (loss / 10 in 40-80 Adam steps, settings measured) while a forward stays in the millisecond range.
class TestDCRNN(ModelContract):
    name = "dcrnn"
    hparams = {"hidden": 16, "layers": 1, "diffusion_steps": 2}
    in_steps, out_steps, other_steps = 6, 4, (5, 2)
    overfit_steps, overfit_lr = 80, 3e-2


class TestSTGCN(ModelContract):
    name = "stgcn"
    hparams = {"hidden": 16, "blocks": 2, "kernel_size": 2, "cheb_k": 3}
    in_steps, out_steps, other_steps = 8, 4, (6, 2)
    overfit_steps, overfit_lr = 40, 1e-2
    # BatchNorm2d(num_nodes) inside each STConv is per node but identical across nodes at init, so
    # it is not listed here (the contract wants node_params to matter at init); see
    # test_stgcn_batch_norm_is_per_node for the trained case.


class TestAGCRN(ModelContract):
    name = "agcrn"
    hparams = {"hidden": 16, "layers": 1, "embed_dim": 4, "cheb_k": 2}
    in_steps, out_steps, other_steps = 8, 4, (6, 2)
    overfit_steps, overfit_lr = 40, 3e-2
    node_params = {"node_embeddings": 0}


class TestMTGNN(ModelContract):
    name = "mtgnn"
    hparams = {
        "layers": 2,
        "conv_channels": 16,
        "residual_channels": 16,
        "skip_channels": 16,
        "end_channels": 32,
        "subgraph_size": 3,
        "node_dim": 4,
        "dropout": 0.0,
    }
    in_steps, out_steps, other_steps = 8, 4, (10, 2)
    overfit_steps, overfit_lr = 40, 1e-2
    node_params = {
        "net._graph_constructor._embedding1.weight": 0,
        "net._graph_constructor._embedding2.weight": 0,
        **{f"net._mtgnn_layers.{i}._normalization.{p}": 1 for i in range(2) for p in ("_weight", "_bias")},
    }


class TestPGTGConvGRU(ModelContract):
    name = "pgt-gconvgru"
    hparams = {"hidden": 16}
    in_steps, out_steps, other_steps = 6, 4, (5, 2)
    overfit_steps, overfit_lr = 80, 3e-2


# --------------------------------------------------------------------------------------------- DCRNN
def dense_dconv(conv, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """DCRNN's diffusion convolution written densely: sum_k theta_k,f T_k(P_f^T) x + theta_k,b T_k(P_b^T) x."""
    pf_t = (adj / adj.sum(1, keepdim=True)).t()  # (D_O^-1 W)^T
    pb_t = (adj.t() / adj.sum(0).unsqueeze(1)).t()  # (D_I^-1 W^T)^T = W D_I^-1
    w = conv.weight
    out = x @ w[0, 0] + x @ w[1, 0] + conv.bias
    for d, p in enumerate((pf_t, pb_t)):
        prev, cur = x, p @ x
        out = out + cur @ w[d, 1]
        for k in range(2, w.shape[1]):
            prev, cur = cur, 2.0 * (p @ cur) - x  # PGT's and the reference code's recursion (T_0 = x)
            out = out + cur @ w[d, k]
    return out


def test_dcrnn_diffusion_matches_dense_reference_on_weighted_digraph():
    adj = weighted_digraph()
    model = make("dcrnn", adj, diffusion_steps=2)
    batch = 2
    edge_index = model._prime(batch)
    conv = model.encoder[0].conv_x_z
    x = torch.randn(batch * N, conv.in_channels)
    got = conv(x, edge_index, None, cached_idx=True).view(batch, N, -1)
    for b in range(batch):
        want = dense_dconv(conv, x.view(batch, N, -1)[b], adj)
        assert torch.allclose(got[b], want, atol=1e-5)


def test_pgt_batched_dconv_ignores_edge_weights():
    # The reason DCRNN supplies its own norms: PGT's message passes x_j * 1/deg, without W_ij.
    adj = weighted_digraph()
    model = make("dcrnn", adj)
    conv = model.encoder[0].conv_x_z
    x = torch.randn(N, conv.in_channels)
    edge_index, weight = peers.dense_to_sparse(adj)
    native = conv(x, edge_index, weight, cached_idx=False)
    assert not torch.allclose(native, dense_dconv(conv, x, adj), atol=1e-3)


def test_dcrnn_encoder_matches_pgt_batched_dcrnn_on_regular_graph():
    # On an unweighted ring (all degrees 2) PGT's own norms are right, so its native
    # (B, T, N, F) BatchedDCRNN.forward must equal the wrapper's step loop with node offsets.
    idx = torch.arange(N)
    adj = torch.zeros(N, N)
    adj[idx, (idx + 1) % N] = 1.0
    adj[(idx + 1) % N, idx] = 1.0
    model = make("dcrnn", adj, layers=1)
    x = inputs()
    with torch.no_grad():
        _, feats = model(x, return_features=True)
        edge_index, weight = peers.dense_to_sparse(adj)
        native = model.encoder[0](x, edge_index, weight)  # (B, T, N, hidden)
    assert native.shape == (3, T_IN, N, 6)
    assert torch.allclose(feats["encoder"], native[:, -1], atol=1e-5)


def test_dcrnn_decoder_feeds_back_its_predictions():
    # The first decoder cell's input at step k is the forecast of step k - 1 (a "GO" symbol of zeros at
    # step 0), read where PGT's cell receives it: its update gate's diffusion convolution gets
    # cat([input, state]), so column 0 is the fed-back value.
    model = make("dcrnn", weighted_digraph())
    x = inputs()
    fed: list[torch.Tensor] = []
    gate = model.decoder[0].conv_x_z
    handle = gate.register_forward_pre_hook(lambda module, args: fed.append(args[0][:, 0].clone()))
    try:
        with torch.no_grad():
            forecast, feats = model(x, return_features=True)  # (B, T_out, N)
    finally:
        handle.remove()
    b = x.shape[0]
    assert len(fed) == T_OUT
    # the "decoder" feature is laid out (B, T_out, N, hidden): its states project to the forecast
    assert torch.allclose(model.project(feats["decoder"]).squeeze(-1), forecast, atol=1e-6)
    got = torch.stack(fed, dim=1).view(b, N, T_OUT).transpose(1, 2)  # rows of the batched graph: b * N + n
    assert torch.equal(got[:, 0], torch.zeros(b, N)), "step 0 is fed zeros"
    assert torch.allclose(got[:, 1:], forecast[:, :-1], atol=1e-6), "step k is fed forecast step k - 1"
    assert not torch.allclose(forecast[:, :-1], torch.zeros_like(forecast[:, :-1]), atol=1e-3)  # a real signal


# --------------------------------------------------------------------------------------------- STGCN
@pytest.mark.parametrize("train", [False, True])
def test_stgcn_batched_block_equals_stconv_forward(train):
    adj = weighted_digraph()
    model = make("stgcn", adj)
    model.train(train)
    block = model.blocks[0]
    x = inputs()
    edge_index, weight = peers.dense_to_sparse(adj)
    with torch.no_grad():
        got = model.block_forward(block, x, edge_index, weight)
        native = block(x, edge_index, weight)  # PGT's loop over (b, t)
    assert got.shape == native.shape == (3, T_IN - 2, N, 6)
    assert torch.allclose(got, native, atol=1e-5)


def test_stgcn_chebconv_is_applied_per_time_step_with_the_graph():
    # Batched ChebConv on (B*T, N, C) equals ChebConv on each (N, C) slice (not mixing B, T or N).
    adj = weighted_digraph()
    model = make("stgcn", adj)
    conv = model.blocks[0]._graph_conv
    h = torch.randn(4, N, 6)
    with torch.no_grad():
        batched = conv(h, model.edge_index, model.edge_weight)
        for i in range(4):
            assert torch.allclose(batched[i], conv(h[i], model.edge_index, model.edge_weight), atol=1e-6)


def test_stgcn_batch_norm_is_per_node():
    # STConv's BatchNorm2d(num_nodes) normalises the node axis: with per-node statistics (as after
    # training) relabelling nodes needs those statistics relabelled too, and then commutes.
    adj = weighted_digraph()
    perm = torch.tensor([4, 2, 0, 3, 1])
    model = make("stgcn", adj)
    g = torch.Generator().manual_seed(3)
    for block in model.blocks:
        bn = block._batch_norm
        for buf in (bn.weight.data, bn.bias.data, bn.running_mean):
            buf.copy_(torch.randn(N, generator=g))
        bn.running_var.copy_(torch.rand(N, generator=g) + 0.5)
    state = model.state_dict()
    for key in list(state):
        if "_batch_norm" in key and state[key].dim() == 1:
            state[key] = state[key][perm]
    relabelled = make("stgcn", adj[perm][:, perm])
    relabelled.load_state_dict(state)
    stale = make("stgcn", adj[perm][:, perm])
    stale.load_state_dict(model.state_dict())
    x = inputs()
    with torch.no_grad():
        want = model(x)[:, :, perm]
        assert torch.allclose(relabelled(x[:, :, perm]), want, atol=1e-5)
        assert not torch.allclose(stale(x[:, :, perm]), want, atol=1e-3)


# --------------------------------------------------------------------------------------------- AGCRN
def test_agcrn_cell_layout_is_batch_node_feature():
    model = make("agcrn")
    x = inputs()
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        out = model(x)
        # Relabelling nodes (inputs and their embeddings) relabels the forecast.
        model.node_embeddings.copy_(model.node_embeddings[perm])
        permuted = model(x[:, :, perm])
    assert torch.allclose(permuted, out[:, :, perm], atol=1e-5)


# --------------------------------------------------------------------------------------------- MTGNN
def test_mtgnn_wrapper_feeds_pgt_its_native_layout():
    model = make("mtgnn")
    x = inputs()
    native = x.permute(0, 3, 2, 1).contiguous()  # (B, C, N, T)
    perm = torch.tensor([2, 4, 0, 1, 3])
    with torch.no_grad():
        out, feats = model(x, return_features=True)
        direct = model.net(native, A_tilde=model.learned_adjacency())  # (B, T_out, N, 1)
        relabelled = model.net(native[:, :, perm], A_tilde=model.net._graph_constructor(perm), idx=perm)
    assert direct.shape == (3, T_OUT, N, 1)
    assert torch.allclose(out, direct[..., 0])
    # PGT's idx relabels embeddings and layer-norm weights; the node axis must follow it.
    assert torch.allclose(relabelled[..., 0], out[:, :, perm], atol=1e-5)
    assert feats["skip"].shape == (3, N, 7)


# ------------------------------------------------------------------------------------------ GConvGRU
def test_gconvgru_wrapper_runs_the_pgt_cell_per_sample_from_a_zero_state():
    # PGT's GConvGRU reads one graph signal (N, F) from a zero state (N, hidden); the wrapper feeds it the
    # batch (B, N, F) from a (B, N, hidden) zero state: per sample, the same as PGT's own loop
    model = make("pgt-gconvgru", weighted_digraph())
    x = inputs()
    with torch.no_grad():
        _, feats = model(x, return_features=True)
        for b in range(x.shape[0]):
            h = None
            for t in range(T_IN):
                h = model.cell(x[b, t], model.edge_index, model.edge_weight, h)
            assert h.shape == (N, 6)
            torch.testing.assert_close(feats["hidden"][b], h, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- all
@pytest.mark.parametrize("name", sorted(TINY))
def test_samples_in_a_batch_are_independent(name):
    model = make(name, weighted_digraph())
    x = inputs()
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(x.shape[0])])
    assert together.shape == (3, T_OUT, N)
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("name", ["dcrnn", "stgcn"])
def test_output_ignores_unreachable_nodes(name):
    model = make(name, two_components())
    x = inputs()
    changed = x.clone()
    changed[:, :, 3:] += 5.0
    with torch.no_grad():
        base, moved = model(x), model(changed)
    assert torch.allclose(base[:, :, :3], moved[:, :, :3], atol=1e-6)
    assert not torch.allclose(base[:, :, 3:], moved[:, :, 3:], atol=1e-3)


@pytest.mark.parametrize("name", ["dcrnn", "stgcn"])
def test_static_graph_models_are_permutation_equivariant(name):
    adj = weighted_digraph()
    perm = torch.tensor([4, 2, 0, 3, 1])
    model = make(name, adj)
    relabelled = make(name, adj[perm][:, perm])
    x = inputs()
    with torch.no_grad():
        assert torch.allclose(relabelled(x[:, :, perm]), model(x)[:, :, perm], atol=1e-5)


@pytest.mark.parametrize("name", sorted(TINY))
def test_features_have_documented_shapes(name):
    model = make(name, weighted_digraph())
    with torch.no_grad():
        _, feats = model(inputs(), return_features=True)
    assert tuple(feats) == model.feature_names
    assert model.distill_feature in feats and model.role == "teacher"
    for tensor in feats.values():
        assert tensor.shape[0] == 3 and tensor.shape[-2 if tensor.dim() == 3 else 2] == N


def test_default_sizes_at_metr_la_scale():
    counts = {
        name: build(name, num_nodes=207, graph=weighted_digraph(207)).num_parameters() for name in sorted(TINY)
    }
    # DCRNN: 2x2 cells x 3 gates x 2*(K+1) diffusion matrices (PGT keeps both k=0 terms) + projection.
    h, k = 64, 3
    dcrnn = sum(3 * (2 * k * (c + h) * h + h) for c in (2, h, 1, h)) + h + 1
    assert counts["dcrnn"] == dcrnn
    # AGCRN: 207x10 embeddings + per layer gate/update pools + head (paper reports ~749k on PEMS04).
    agcrn = 207 * 10 + sum(10 * 2 * (c + h) * 3 * h + 10 * 3 * h for c in (2, h)) + h * 12 + 12
    assert counts["agcrn"] == agcrn


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="too short"):
        build("stgcn", num_nodes=N, in_steps=4, blocks=2, kernel_size=3)
    with pytest.raises(ConfigError, match="subgraph_size"):
        build("mtgnn", num_nodes=N, subgraph_size=20)
    with pytest.raises(ConfigError, match="graph"):
        build("dcrnn", num_nodes=N, graph=torch.ones(3, 3))
    with pytest.raises(TypeError):
        build("agcrn", num_nodes=N, hiden=3)


@pytest.mark.parametrize("name", sorted(TINY))
def test_config_round_trip(name):
    adj = weighted_digraph()
    model = make(name, adj)
    clone = from_config(model.config(), adj)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    x = inputs()
    with torch.no_grad():
        assert torch.allclose(clone(x), model(x))


def test_building_without_pgt_says_how_to_install(monkeypatch):
    for mod in [m for m in sys.modules if m == "torch_geometric_temporal" or m.startswith("torch_geometric_temporal.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(compat.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(compat.MissingDependencyError, match="pip install --no-deps"):
        build("dcrnn", num_nodes=N)
