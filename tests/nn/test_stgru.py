"""The frontier student: contract, its sparse and low-rank operators against dense references, the
teacher's graph handed over, cost linear in sensors + edges, and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stgkd.errors import ConfigError
from stgkd.nn import build, count_flops
from stgkd.nn.layers.edges import graph_edges, propagate, transition_edges
from stgkd.nn.layers.lowrank import apply_lowrank_adjacency, factorise_adjacency, lowrank_adjacency
from stgkd.nn.layers.recurrent import gru_final_state
from stgkd.nn.layers.supports import diffusion_supports

from .contract import ModelContract, random_graph, single_thread  # noqa: F401  (autouse fixture)

LOWRANK = {"source_factors": 0, "target_factors": 0}
SMALL = {"hidden": 16, "rank": 3, "node_embed": 3, "tod_embed": 2, "tod_slots": 12, "window_embed": 4}


class TestSTGRU(ModelContract):
    name = "stgru"
    hparams = SMALL
    node_params = {**LOWRANK, "node_embedding": 0}


class TestSTGRUWeekday(ModelContract):
    name = "stgru"
    hparams = {**SMALL, "dow_embed": 3, "day_channel": 2}
    in_channels = 3
    node_params = TestSTGRU.node_params
    compile_check = False  # an embedding as the time of day's: no new module type


def test_weekday_embedding_reads_the_last_steps_day_and_build_for_finds_its_channel() -> None:
    from types import SimpleNamespace

    from stgkd.nn import build_for

    torch.manual_seed(0)
    model = build("stgru", num_nodes=4, in_channels=3, **SMALL, dow_embed=3, day_channel=2).eval()
    with torch.no_grad():
        model.window.weight.zero_()  # the window embedding also sees the channel: only the embedding reads it
        model.gru.weight_ih_l0[:, 2] = 0.0
    x = torch.randn(2, 12, 4, 3)
    x[..., 2] = 1 / 7
    first = x.clone()
    first[:, 0, :, 2] = 4 / 7  # another day at the first step: not read
    last = x.clone()
    last[:, -1, :, 2] = 4 / 7
    with torch.no_grad():
        assert torch.equal(model(x), model(first)) and not torch.allclose(model(x), model(last))
    prepared = SimpleNamespace(num_nodes=4, adj=None, in_steps=12, out_steps=12, in_channels=3,
                               input_features=["value", "time_of_day", "day_of_week"])
    assert build_for("stgru", prepared).day_channel == 2 and build_for("staeformer", prepared).day_channel == 2
    assert build_for("stgru", prepared, dow_embed=4).dow_embedding is not None
    plain = SimpleNamespace(**{**vars(prepared), "in_channels": 2, "input_features": ["value", "time_of_day"]})
    assert build_for("stgru", plain).day_channel is None
    with pytest.raises(ConfigError, match="train with --day-of-week"):
        build_for("stgru", plain, dow_embed=4)


class TestSTGRUInputMixing(ModelContract):
    name = "stgru"
    hparams = {**SMALL, "mixing": "input", "order": 1}
    compile_check = False  # the modules of TestSTGRU, applied to the inputs as well
    node_params = {**LOWRANK, "node_embedding": 0}


class TestSTGRUStepMixing(ModelContract):
    name = "stgru"
    hparams = {**SMALL, "mixing": "steps", "graph_layers": 2}
    node_params = {**LOWRANK, "node_embedding": 0}


class TestSTGRURoadOnlyNoEmbeddings(ModelContract):
    name = "stgru"
    hparams = {"hidden": 16, "adaptive": False, "node_embed": 0, "tod_embed": 0, "window_embed": 0, "order": 3}
    compile_check = False  # a subset of TestSTGRU's modules


class TestSTGRUAdaptiveOnly(ModelContract):
    name = "stgru"
    hparams = {**SMALL, "static_graph": False}
    compile_check = False
    graph_matters = False  # the road graph is not read
    node_params = {**LOWRANK, "node_embedding": 0}


# ------------------------------------------------------------------ operators against dense references


def test_transition_edges_apply_the_diffusion_supports():
    adj = random_graph(7, seed=4)
    adj[2] = 0.0  # a sensor with no out-edges
    adj[:, 5] = 0.0  # and one with no in-edges
    forward, backward = transition_edges(*graph_edges(adj, 7), 7)
    dense_f, dense_b = diffusion_supports(adj)
    x = torch.randn(7, 3, 4)
    torch.testing.assert_close(propagate(x, *forward), torch.einsum("mn,nbc->mbc", dense_f, x))
    torch.testing.assert_close(propagate(x, *backward), torch.einsum("mn,nbc->mbc", dense_b, x))


def test_graph_edges_reads_a_sparse_graph_without_densifying_it():
    adj = random_graph(6, seed=1)
    dense = graph_edges(adj, 6)
    sparse = graph_edges(adj.to_sparse_csr(), 6)
    chunked = graph_edges(adj.numpy(), 6, chunk_rows=2)
    for got in (sparse, chunked):
        order_a = torch.argsort(dense[0] * 6 + dense[1])
        order_b = torch.argsort(got[0] * 6 + got[1])
        for a, b in zip(dense, got):
            torch.testing.assert_close(a[order_a], b[order_b])
    assert dense[0].numel() == int((adj != 0).sum())


def test_lowrank_operator_is_row_stochastic_and_applied_transposed():
    gen = torch.Generator().manual_seed(0)
    e1, e2 = torch.randn(6, 3, generator=gen), torch.randn(6, 3, generator=gen)
    theta, beta = lowrank_adjacency(e1, e2)
    adj = theta @ beta.t()
    torch.testing.assert_close(adj.sum(1), torch.ones(6))
    x = torch.randn(6, 2, 5, generator=gen)
    torch.testing.assert_close(apply_lowrank_adjacency(theta, beta, x), torch.einsum("nm,nbc->mbc", adj, x))
    # the direction is tested: A x differs from A^T x here
    assert not torch.allclose(torch.einsum("mn,nbc->mbc", adj, x), torch.einsum("nm,nbc->mbc", adj, x), atol=1e-3)


def test_graph_layer_equals_its_dense_formula():
    adj = random_graph(5, seed=2)
    model = build("stgru", num_nodes=5, graph=adj, hidden=4, rank=2, order=1, node_embed=0, tod_embed=0,
                  window_embed=0).eval()
    z = torch.randn(5, 2, 4)  # node-major (N, B, D)
    f, b = diffusion_supports(adj)
    a_t = model.adaptive_support()
    copies = [z] + [torch.einsum("mn,nbd->mbd", s, z) for s in (f, b, a_t)]
    layer = model.graph_layers[0]
    expected = z + torch.relu(layer.lin(torch.cat(copies, dim=-1)))
    torch.testing.assert_close(layer(z, model.ops, model.apply_adaptive), expected)


@pytest.mark.parametrize("order", [2, 3])
def test_every_hop_diffuses_the_previous_hop(order):
    """``diffuse`` stacks ``x, S x, S^2 x, ..., S^K x`` per support (road forward, road backward, adaptive):
    each hop applied to the last, checked against dense matrix powers."""
    adj = random_graph(6, seed=3)
    model = build("stgru", num_nodes=6, graph=adj, hidden=4, rank=2, order=order, node_embed=0, tod_embed=0,
                  window_embed=0).eval()
    x = torch.randn(6, 2, 3)  # node-major (N, B, D)
    f, b = diffusion_supports(adj)
    with torch.no_grad():
        expected = [x] + [torch.einsum("mn,nbd->mbd", torch.linalg.matrix_power(s, k), x)
                          for s in (f, b, model.adaptive_support()) for k in range(1, order + 1)]
        got = model.ops.diffuse(x, model.apply_adaptive)
    assert got.shape == (1 + 3 * order, 6, 2, 3)
    torch.testing.assert_close(got, torch.stack(expected))


def test_fused_state_equals_its_formula_with_the_last_steps_time_of_day():
    """``z_0 = W_f [h || W_w vec(x) || e_n || e_tod]``, ``e_tod`` looked up at the LAST input step's slot.
    Five-minute steps and 288 slots: every step has a slot of its own, so the first step's would differ."""
    torch.manual_seed(0)
    b, t, n = 2, 4, 5
    model = build("stgru", num_nodes=n, graph=random_graph(n), in_steps=t, out_steps=3, hidden=4,
                  graph_layers=0, adaptive=False, node_embed=2, tod_embed=3, tod_slots=288, window_embed=4).eval()
    start = torch.randint(0, 288 - t, (b, 1, n))  # slot of the first step, per window and sensor
    slots = start + torch.arange(t)[None, :, None]  # (B, T, N): 5-minute steps
    x = torch.randn(b, t, n, 2)
    x[..., 1] = (slots + 0.5) / 288  # minutes since midnight / 1440, mid-slot
    with torch.no_grad():
        _, feats = model(x, return_features=True)
        h = feats["hidden"]  # (B, N, D)
        window = model.window(x.permute(0, 2, 1, 3).reshape(b, n, t * 2))
        node = model.node_embedding.expand(b, -1, -1)
        tod = model.tod_embedding.weight[slots[:, -1]]  # (B, N, 3): the last step's slot
        expected = model.fuse(torch.cat([h, window, node, tod], dim=-1))
        assert not torch.allclose(tod, model.tod_embedding.weight[slots[:, 0]])
    torch.testing.assert_close(feats["graph"], expected)


# ------------------------------------------------------------------ the teacher's graph handed over


def _teacher(n: int, seed: int = 0):
    torch.manual_seed(seed)
    return build("graph-wavenet", num_nodes=n, graph=random_graph(n, seed=seed), residual_channels=4,
                 dilation_channels=4, skip_channels=8, end_channels=8, blocks=1, embed_dim=3)


def test_inherited_operator_approximates_the_teachers_on_a_node_signal():
    from stgkd.distill import inherit_adjacency

    n = 6
    teacher = _teacher(n)
    signal = torch.randn(n, 4, generator=torch.Generator().manual_seed(3))
    want = teacher.adaptive_support() @ signal
    errors = {}
    for rank in (1, 3, n):
        student = build("stgru", num_nodes=n, graph=random_graph(n), hidden=4, rank=rank)
        before = float((student.adaptive_support().detach() @ signal - want).norm() / want.norm())
        reported = inherit_adjacency(student, teacher)
        errors[rank] = float((student.adaptive_support().detach() @ signal - want).norm() / want.norm())
        assert errors[rank] < before
        assert 0.0 <= reported < 1.0
    assert errors[n] < 0.02  # full rank: the teacher's operator itself, up to the fit
    assert errors[n] <= errors[3] <= errors[1]


def test_factorisation_recovers_a_low_rank_adjacency():
    gen = torch.Generator().manual_seed(5)
    theta, beta = lowrank_adjacency(3 * torch.randn(8, 2, generator=gen), 3 * torch.randn(8, 2, generator=gen))
    adj = theta @ beta.t()
    fit_theta, fit_beta = factorise_adjacency(adj, 2, iters=2000)
    torch.testing.assert_close(fit_theta @ fit_beta.t(), adj.double(), atol=2e-3, rtol=0)


def test_inheritance_needs_an_adaptive_student():
    from stgkd.distill import inherit_adjacency

    student = build("stgru", num_nodes=6, graph=random_graph(6), hidden=4, adaptive=False)
    with pytest.raises(ConfigError, match="adaptive=True"):
        inherit_adjacency(student, _teacher(6))


# ------------------------------------------------------------------ cost and bad input


def test_flops_grow_linearly_with_sensors_and_edges():
    """Doubling the sensors (a ring, so the edges double too) doubles the work: no N^2 term."""

    def ring(n: int) -> torch.Tensor:
        adj = torch.eye(n)
        idx = torch.arange(n)
        adj[idx, (idx + 1) % n] = 1.0
        return adj.to_sparse()

    flops = {}
    for n in (50, 100, 200):
        model = build("stgru", num_nodes=n, graph=ring(n), hidden=8, rank=4, mixing="steps").eval()
        flops[n] = count_flops(model, torch.rand(1, 12, n, 2))
    assert flops[100] == 2 * flops[50] and flops[200] == 2 * flops[100]


def test_edge_propagation_is_counted():
    adj = random_graph(6)
    with_road = build("stgru", num_nodes=6, graph=adj, hidden=4, adaptive=False, order=1).eval()
    edges = int((adj != 0).sum())
    x = torch.rand(1, 12, 6, 2)
    baseline = count_flops(with_road, x)
    denser = adj.clone()
    denser[denser == 0] = 0.5  # every pair an edge now
    more = count_flops(build("stgru", num_nodes=6, graph=denser, hidden=4, adaptive=False, order=1).eval(), x)
    # two supports, one hop, width 4: 2 * (E' - E) * 4 FLOPs each
    assert more - baseline == 2 * 2 * (36 - edges) * 4


def test_isolated_sensor_gets_its_own_state_and_no_road_message():
    adj = random_graph(5, seed=6)
    adj[3, :] = 0.0
    adj[:, 3] = 0.0  # sensor 3 has no edge at all, not even a self-loop
    model = build("stgru", num_nodes=5, graph=adj, hidden=4, adaptive=False).eval()
    x = torch.randn(2, 12, 5, 2)
    out = model(x)
    assert torch.isfinite(out).all()
    x2 = x.clone()
    x2[:, :, 3] += 1.0  # only the isolated sensor's readings change
    out2 = model(x2)
    assert not torch.allclose(out2[..., 3], out[..., 3])
    torch.testing.assert_close(out2[..., [0, 1, 2, 4]], out[..., [0, 1, 2, 4]])


@pytest.mark.parametrize("kw, match", [
    ({"rank": 7}, "rank must be in 1..6"), ({"mixing": "dense"}, "mixing"), ({"order": 4}, "order"),
    ({"adaptive": False, "static_graph": False}, "graph_layers=0"), ({"time_channel": 5}, "time of day"),
    ({"hidden": 0}, "hidden"), ({"graph_layers": 4}, "graph_layers"), ({"graph_layers": 0}, "no effect"),
])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        build("stgru", num_nodes=6, graph=random_graph(6), **kw)


def test_bad_graph_is_refused():
    bad = random_graph(6)
    bad[0, 1] = -1.0
    with pytest.raises(ConfigError, match="stgru: graph"):
        build("stgru", num_nodes=6, graph=bad)
    with pytest.raises(ConfigError, match=r"must be \(6, 6\)"):
        build("stgru", num_nodes=6, graph=random_graph(5))


def test_no_graph_variant_ignores_the_graph():
    x = torch.randn(2, 12, 6, 2)
    kw = {"hidden": 4, "graph_layers": 0, "adaptive": False}
    torch.manual_seed(0)
    a = build("stgru", num_nodes=6, graph=random_graph(6, seed=1), **kw).eval()
    torch.manual_seed(0)
    b = build("stgru", num_nodes=6, graph=random_graph(6, seed=2), **kw).eval()
    torch.testing.assert_close(a(x), b(x))


def test_under_a_twentieth_of_graph_wavenets_flops_at_207_sensors():
    adj = random_graph(207, seed=0, density=0.04)
    x = torch.rand(1, 12, 207, 4)
    teacher = count_flops(build("graph-wavenet", num_nodes=207, graph=adj).eval(), x[..., :2])
    student = count_flops(build("stgru", num_nodes=207, graph=adj, in_channels=4).eval(), x)
    assert student <= teacher / 20


def test_a_dense_adjacency_of_a_large_network_is_refused_not_allocated():
    model = build("stgru", num_nodes=8, graph=random_graph(8), hidden=4, rank=2)
    model.dense_limit = 6  # as if the network were too large for a dense (N, N) matrix
    with pytest.raises(ConfigError, match="dense 8 x 8 matrix"):
        model.adaptive_adjacency()
    assert model(torch.randn(1, 12, 8, 2)).shape == (1, 12, 8)  # the forward pass never needs it


@pytest.mark.parametrize("name", ["graph-wavenet", "dcgru", "gcn-gru"])
def test_a_dense_model_refuses_a_network_too_large_for_its_operators(name, monkeypatch):
    import stgkd.nn.base as base

    monkeypatch.setattr(base, "DENSE_SENSOR_LIMIT", 8)  # as if 9 sensors were 100,000
    with pytest.raises(ConfigError, match=rf"{name}: a dense 9 x 9 graph operator .* above the limit of 8 sensors.*stgru"):
        build(name, num_nodes=9, graph=torch.eye(9))
    build(name, num_nodes=8, graph=torch.eye(8))  # at the limit it builds


def test_stgru_builds_above_the_dense_limit(monkeypatch):
    import stgkd.nn.base as base

    monkeypatch.setattr(base, "DENSE_SENSOR_LIMIT", 8)
    model = build("stgru", num_nodes=12, graph=torch.eye(12) + torch.diag(torch.ones(11), 1), hidden=4, rank=2)
    assert model(torch.randn(2, 12, 12, 2)).shape == (2, 12, 12)


def test_stgru_exported_to_onnx_keeps_every_edge_into_a_sensor():
    """Sensor 0 receives three road edges: an exporter that keeps one of several messages into the same
    target (``index_add_`` written as ONNX ScatterND) gives another forecast than the eager model."""
    import io
    import warnings

    import numpy as np
    import onnxruntime as ort  # the deploy extra, in dev

    torch.manual_seed(0)
    adj = torch.zeros(6, 6)
    adj[1, 0] = adj[2, 0] = adj[3, 0] = 1.0
    adj[0, 4] = adj[4, 5] = 0.5
    model = build("stgru", num_nodes=6, graph=adj, hidden=8, rank=2, node_embed=2, tod_embed=2, window_embed=4).eval()
    x = torch.randn(3, 12, 6, 2)
    x[..., 1] = torch.rand(3, 12, 6)  # time of day in [0, 1)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    got = ort.InferenceSession(buf.getvalue()).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_the_default_rank_is_capped_at_the_sensor_count_and_a_given_one_is_not():
    small = build("stgru", num_nodes=6, graph=torch.eye(6), hidden=4)
    assert small.source_factors.shape == (6, 6) and small.config()["hparams"]["rank"] is None
    assert build("stgru", num_nodes=20, graph=torch.eye(20), hidden=4).source_factors.shape == (20, 16)
    with pytest.raises(ConfigError, match=r"rank must be in 1\.\.6"):
        build("stgru", num_nodes=6, graph=torch.eye(6), hidden=4, rank=7)


def test_a_cpu_gru_in_training_runs_in_chunks_with_the_same_result_and_gradient():
    """Many sequences in chunks (the CPU GRU's cost per sequence stays flat) give what one call gives."""
    torch.manual_seed(0)
    gru = nn.GRU(2, 8, batch_first=True)
    seqs = torch.randn(10, 12, 2)
    calls = []
    handle = gru.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    chunked = gru_final_state(gru, seqs, chunk=4)
    (g_chunked,) = torch.autograd.grad(chunked.square().sum(), gru.weight_ih_l0)
    assert calls == [4, 4, 2]
    calls.clear()
    whole = gru(seqs)[1][-1]
    (g_whole,) = torch.autograd.grad(whole.square().sum(), gru.weight_ih_l0)
    torch.testing.assert_close(chunked, whole)
    torch.testing.assert_close(g_chunked, g_whole)
    gru.eval()  # as exported: one call
    gru_final_state(gru, seqs, chunk=4)
    assert calls == [10, 10]  # (the reference call above, then this one)
    handle.remove()


def test_a_chunked_cpu_gru_passes_the_gradient_to_its_input():
    """In chunks, the gradient reaches the sequences themselves (what feeds them: the diffused inputs of
    ``mixing="input"``, a teacher's features) as it does in one call."""
    torch.manual_seed(0)
    gru = nn.GRU(2, 8, batch_first=True)
    seqs = torch.randn(10, 12, 2, requires_grad=True)
    # materialize_grads: a cut gradient reads as zeros (a mismatch), not as an unused-tensor error
    (g_chunked,) = torch.autograd.grad(gru_final_state(gru, seqs, chunk=4).square().sum(), seqs,
                                       allow_unused=True, materialize_grads=True)
    (g_whole,) = torch.autograd.grad(gru(seqs)[1][-1].square().sum(), seqs)
    assert g_whole.abs().sum() > 0
    torch.testing.assert_close(g_chunked, g_whole)


def test_stgru_in_training_on_the_cpu_gets_the_same_input_gradient_in_chunks(monkeypatch):
    """The model's chunked path (12 sensor-windows in chunks of 5) against one GRU call: same forecast,
    same gradient to the input and to every parameter."""
    import functools

    import stgkd.nn.stgru as stgru

    torch.manual_seed(0)
    model = build("stgru", num_nodes=6, graph=random_graph(6), in_steps=4, out_steps=3, hidden=4, rank=2,
                  mixing="input", order=1, node_embed=0, tod_embed=0, window_embed=0).train()
    x = torch.randn(2, 4, 6, 2)

    def grads():
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        return (out, *torch.autograd.grad(out.square().sum(), [xg, *model.parameters()], allow_unused=True,
                                          materialize_grads=True))  # a cut gradient: zeros, a mismatch

    whole = grads()
    calls = []
    handle = model.gru.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    monkeypatch.setattr(stgru, "gru_final_state", functools.partial(gru_final_state, chunk=5))
    chunked = grads()
    handle.remove()
    assert calls == [5, 5, 2]  # the chunked path ran
    assert whole[1].abs().sum() > 0
    for a, b in zip(chunked, whole):
        torch.testing.assert_close(a, b)
