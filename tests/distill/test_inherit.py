"""Handing the teacher's learned adjacency to the student."""

from __future__ import annotations

import pytest
import torch

from stgkd.distill import DistillConfig, inherit_adjacency
from stgkd.errors import ConfigError
from stgkd.nn import build

N = 5
TEACHER = {"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8,
           "blocks": 1, "layers": 2}


def _teacher(**kw):
    torch.manual_seed(1)
    return build("graph-wavenet", num_nodes=N, graph=torch.eye(N), **{**TEACHER, **kw})


def _student(**kw):
    torch.manual_seed(2)
    return build("gcn-gru", num_nodes=N, graph=torch.eye(N), hidden=4, **kw)


def test_student_adjacency_becomes_the_teachers_and_stays_its_own():
    teacher, student = _teacher(), _student(adaptive=True)
    assert not torch.allclose(student.adaptive_adjacency(), teacher.adaptive_adjacency())
    inherit_adjacency(student, teacher)
    torch.testing.assert_close(student.adaptive_adjacency(), teacher.adaptive_adjacency(), rtol=0, atol=0)
    # a copy, not shared storage: training the student leaves the frozen teacher untouched
    before = teacher.source_embedding.detach().clone()
    with torch.no_grad():
        student.source_embedding.add_(1.0)
    assert torch.equal(teacher.source_embedding, before)
    assert student.source_embedding.requires_grad


def test_student_without_adaptive_adjacency_is_refused():
    with pytest.raises(ConfigError, match=r"student 'gcn-gru' has no adaptive adjacency.*adaptive=True"):
        inherit_adjacency(_student(), _teacher())


def test_teacher_without_adaptive_adjacency_is_refused():
    with pytest.raises(ConfigError, match="teacher 'graph-wavenet' has no adaptive adjacency"):
        inherit_adjacency(_student(adaptive=True), _teacher(adaptive=False))


def test_embedding_size_mismatch_names_the_fix():
    with pytest.raises(ConfigError, match=r"student \(5, 3\), teacher \(5, 10\).*embed_dim=10"):
        inherit_adjacency(_student(adaptive=True, embed_dim=3), _teacher())


def test_config_flag_round_trips_and_is_validated():
    cfg = DistillConfig(inherit_adjacency=True)
    assert DistillConfig.from_json(cfg.to_json()).inherit_adjacency is True
    assert DistillConfig().inherit_adjacency is False
    with pytest.raises(ConfigError, match="inherit_adjacency must be true or false"):
        DistillConfig(inherit_adjacency="yes")


def test_inherited_operator_acts_on_a_node_signal_as_the_teachers_does():
    """Equal matrices are not enough: both models must apply them in the same direction."""
    teacher, student = _teacher(), _student(adaptive=True)
    with torch.no_grad():  # a sharply peaked, clearly asymmetric adjacency
        teacher.source_embedding.mul_(3.0)
    inherit_adjacency(student, teacher)
    signal = torch.randn(N, 3)
    torch.testing.assert_close(student.adaptive_support() @ signal, teacher.adaptive_support() @ signal)
    # and the teacher's own diffusion convolution applies exactly that operator
    assert torch.equal(teacher.supports()[-1], teacher.adaptive_support())
    # the operator differs from the plain matrix here, so the direction is actually tested
    adj = teacher.adaptive_adjacency()
    assert not torch.allclose(adj @ signal, teacher.adaptive_support() @ signal, atol=1e-3)


def test_student_graph_layer_applies_the_transposed_adaptive_adjacency():
    student = _student(adaptive=True, graph_op="none").eval()
    with torch.no_grad():
        student.source_embedding.mul_(3.0)
    h = torch.randn(2, N, 4)
    layer = student.graph_layers[0]
    expected = layer.learned.lin(student.adaptive_adjacency().t() @ h)
    torch.testing.assert_close(layer(h, student.support, (student.edge_index, student.edge_weight),
                                     student.adaptive_support()), expected)


def test_cache_stores_the_operator_the_teacher_applies():
    from stgkd.distill.cache import ADJACENCY_KEY, TeacherCache
    from stgkd.data.windows import prepare
    from stgkd.data.synthetic import generate

    data, _ = generate(num_nodes=N, num_days=1, seed=0)
    prepared = prepare(data)
    teacher = build("graph-wavenet", num_nodes=N, graph=prepared.adj, **TEACHER)
    cache = TeacherCache.build(teacher, prepared.train, [], "cpu")
    _, feats = cache.lookup(torch.arange(2))
    torch.testing.assert_close(feats[ADJACENCY_KEY], teacher.adaptive_support().detach())
