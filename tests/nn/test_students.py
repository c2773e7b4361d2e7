"""Students: contract, size relative to the teacher, dense vs GCNConv equivalence."""

from __future__ import annotations

import pytest
import torch

from stgkd.errors import ConfigError
from stgkd.nn import GCNGRUStudent, build

from .contract import ModelContract, random_graph, single_thread  # noqa: F401  (autouse fixture)


class TestGRU(ModelContract):
    name = "gru"
    hparams = {"hidden": 16}


class TestGRUDeep(ModelContract):
    name = "gru"
    hparams = {"hidden": 16, "layers": 2}
    compile_check = False  # same modules as TestGRU


class TestGCNGRUDense(ModelContract):
    name = "gcn-gru"
    hparams = {"hidden": 16, "graph_op": "dense"}


class TestGCNGRUConvAdaptive(ModelContract):
    name = "gcn-gru"
    hparams = {"hidden": 16, "graph_op": "gcnconv", "graph_layers": 2, "adaptive": True, "embed_dim": 4}
    node_params = {"source_embedding": 0, "target_embedding": 0}


class TestGCNGRUAdaptiveOnly(ModelContract):
    name = "gcn-gru"
    hparams = {"hidden": 16, "graph_op": "none", "adaptive": True, "embed_dim": 4}
    compile_check = False  # its modules are covered by TestGCNGRUDense / TestGCNGRUConvAdaptive
    graph_matters = False  # learned adjacency only: the static graph is not read
    node_params = {"source_embedding": 0, "target_embedding": 0}


class TestGCNGRUInputHops(ModelContract):
    name = "gcn-gru"
    hparams = {"hidden": 16, "input_hops": 2}
    compile_check = False  # one einsum more than TestGCNGRUDense


class TestGCNGRUNodeEmbedding(ModelContract):
    name = "gcn-gru"
    hparams = {"hidden": 16, "node_embed": 4}
    compile_check = False  # one concatenation more than TestGCNGRUDense
    node_params = {"node_embedding": 0}


def test_node_embedding_gives_each_sensor_its_own_forecast() -> None:
    model = build("gcn-gru", num_nodes=5, graph=torch.eye(5), hidden=4, node_embed=3).eval()
    x = torch.randn(1, 12, 1, 2).expand(2, 12, 5, 2).contiguous()  # every sensor reads the same history
    out = model(x)
    assert not torch.allclose(out[..., 0], out[..., 1])  # identity breaks the tie
    plain = build("gcn-gru", num_nodes=5, graph=torch.eye(5), hidden=4).eval()
    torch.testing.assert_close(plain(x)[..., 0], plain(x)[..., 1])  # without it, identical sensors tie
    with pytest.raises(ConfigError, match="node_embed must be >= 0"):
        build("gcn-gru", num_nodes=5, node_embed=-1)


def test_input_hops_feed_the_gru_the_diffused_readings() -> None:
    from stgkd.nn.layers.supports import apply_support, diffusion_supports

    graph = random_graph(6, density=0.4)
    model = build("gcn-gru", num_nodes=6, graph=graph, hidden=4, input_hops=2).eval()
    x = torch.randn(3, 12, 6, 2)
    seen = {}
    model.encoder.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    model(x)
    fwd, bwd = diffusion_supports(torch.as_tensor(graph, dtype=torch.float32))
    expected = torch.cat([x, apply_support(fwd, x), apply_support(fwd @ fwd, x),
                          apply_support(bwd, x), apply_support(bwd @ bwd, x)], dim=-1)
    torch.testing.assert_close(seen["x"], expected)
    assert model.encoder.gru.input_size == 2 * 5
    with pytest.raises(ConfigError, match="input_hops must be 0, 1, 2 or 3"):
        build("gcn-gru", num_nodes=6, graph=graph, input_hops=4)


@pytest.mark.parametrize("hidden", [32, 64])
@pytest.mark.parametrize(
    "name,extra",
    [("gru", {}), ("gcn-gru", {}), ("gcn-gru", {"graph_op": "gcnconv"}), ("gcn-gru", {"adaptive": True}),
     ("gcn-gru", {"input_hops": 2, "node_embed": 16})],
)
def test_students_are_a_tenth_of_the_teacher(name: str, extra: dict, hidden: int) -> None:
    graph = random_graph(207, density=0.05)
    teacher = build("graph-wavenet", num_nodes=207, graph=graph).num_parameters()
    student = build(name, num_nodes=207, graph=graph, hidden=hidden, **extra).num_parameters()
    assert student * 10 <= teacher, (name, hidden, student, teacher)


def test_gru_parameter_count_by_hand() -> None:
    model = build("gru", num_nodes=207, hidden=32)
    assert model.num_parameters() == 3 * 32 * (2 + 32 + 2) + 32 * 12 + 12  # GRU gates + head


def _copy_dense_to_gcnconv(dense: GCNGRUStudent, conv: GCNGRUStudent) -> None:
    state = dict(dense.state_dict())
    for i in range(len(dense.graph_layers)):
        w = state.pop(f"graph_layers.{i}.static.lin.weight")
        b = state.pop(f"graph_layers.{i}.static.lin.bias")
        state[f"graph_layers.{i}.static.lin.weight"] = w
        state[f"graph_layers.{i}.static.bias"] = b
    conv.load_state_dict(state)


@pytest.mark.parametrize("graph_layers", [1, 2])
@pytest.mark.parametrize("adaptive", [False, True])
def test_dense_and_gcnconv_compute_the_same_function(graph_layers: int, adaptive: bool) -> None:
    graph = random_graph(7)
    kw = {"num_nodes": 7, "graph": graph, "hidden": 8, "graph_layers": graph_layers, "adaptive": adaptive}
    dense = GCNGRUStudent(graph_op="dense", **kw).eval()
    conv = GCNGRUStudent(graph_op="gcnconv", **kw).eval()
    _copy_dense_to_gcnconv(dense, conv)
    x = torch.randn(3, 12, 7, 2)
    with torch.no_grad():
        out_d, f_d = dense(x, return_features=True)
        out_c, f_c = conv(x, return_features=True)
    torch.testing.assert_close(out_c, out_d, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f_c["graph"], f_d["graph"], rtol=1e-5, atol=1e-5)


def test_graph_residual_feature() -> None:
    model = GCNGRUStudent(num_nodes=5, graph=random_graph(5), hidden=8).eval()
    x = torch.randn(2, 12, 5, 2)
    with torch.no_grad():
        _, feats = model(x, return_features=True)
        layer = model.graph_layers[0]
        by_hand = feats["hidden"] + torch.relu(model.support @ feats["hidden"] @ layer.static.lin.weight.T + layer.static.lin.bias)
    torch.testing.assert_close(feats["graph"], by_hand)


def test_gru_student_ignores_graph_and_nodes_are_independent() -> None:
    a = build("gru", num_nodes=4, graph=random_graph(4), hidden=8)
    torch.manual_seed(0)
    b = build("gru", num_nodes=4, graph=None, hidden=8)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 12, 4, 2)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
        y = x.clone()
        y[:, :, 0] += 1.0  # touching node 0 leaves the others' forecasts unchanged
        assert torch.equal(a(y)[:, :, 1:], a(x)[:, :, 1:])
        assert not torch.allclose(a(y)[:, :, 0], a(x)[:, :, 0])


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"graph_op": "sparse"}, "graph_op"),
        ({"graph_op": "none"}, "adaptive=True"),
        ({"graph_layers": 3}, "graph_layers"),
        ({"hidden": 0}, "hidden"),
    ],
)
def test_bad_student_hparams_raise(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GCNGRUStudent(num_nodes=4, **bad)


def test_adaptive_adjacency_requires_adaptive() -> None:
    with pytest.raises(ConfigError, match="adaptive"):
        GCNGRUStudent(num_nodes=4).adaptive_adjacency()
    adj = GCNGRUStudent(num_nodes=4, adaptive=True).adaptive_adjacency()
    torch.testing.assert_close(adj.sum(1), torch.ones(4))
