"""Each loss term against values worked out by hand on a few elements."""

from __future__ import annotations

import math

import pytest
import torch

from stgkd.distill.losses import (
    adjacency_relation_distillation,
    cosine_similarity_matrix,
    effective_sample_size,
    feature_matching,
    masked_mae,
    output_distillation,
    relation_distillation,
    relation_kl,
    relative_temperature,
    trust_weights,
)
from stgkd.errors import ConfigError

E = math.e


def t(values, **kw) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, **kw)


def kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def softmax(xs: list[float]) -> list[float]:
    z = sum(math.exp(x) for x in xs)
    return [math.exp(x) / z for x in xs]


# ---------------------------------------------------------------- supervised


def test_masked_mae_hand_value_ignores_missing_nan():
    pred = t([[[1.0, 2.0], [3.0, 4.0]]], requires_grad=True)
    target = t([[[2.0, 2.0], [float("nan"), 1.0]]])
    mask = torch.tensor([[[True, True], [False, True]]])
    loss = masked_mae(pred, target, mask)
    assert loss.item() == pytest.approx((1 + 0 + 3) / 3)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[0, 1, 0] == 0


def test_masked_mae_all_missing_is_zero_with_graph():
    pred = torch.ones(1, 2, 2, requires_grad=True)
    loss = masked_mae(pred, torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros(1, 2, 2))


# ---------------------------------------------------------------- trust weights / output distillation

# Teacher errors 0, 1, 3 on three observed elements; a fourth element is missing.
TEACHER = t([[[0.0, 1.0, 3.0, 5.0]]])
TARGET = t([[[0.0, 0.0, 0.0, float("nan")]]])
MASK = torch.tensor([[[True, True, True, False]]])
Z = 1 + math.exp(-1) + math.exp(-3)
W_TAU1 = [3 / Z, 3 * math.exp(-1) / Z, 3 * math.exp(-3) / Z, 1.0]


def test_trust_weights_hand_value_and_missing_weight_one():
    w = trust_weights(TEACHER, TARGET, MASK, tau=1.0)
    assert torch.allclose(w, t([[W_TAU1]]), atol=1e-6)
    assert w[MASK].mean().item() == pytest.approx(1.0)


def test_trust_weights_tau_two_halves_the_exponent():
    w = trust_weights(TEACHER, TARGET, MASK, tau=2.0)
    z = 1 + math.exp(-0.5) + math.exp(-1.5)
    assert torch.allclose(w, t([[[3 / z, 3 * math.exp(-0.5) / z, 3 * math.exp(-1.5) / z, 1.0]]]), atol=1e-6)


def test_trust_weights_large_tau_is_uniform():
    assert torch.equal(trust_weights(TEACHER, TARGET, MASK, tau=math.inf), torch.ones(1, 1, 4))
    assert torch.allclose(trust_weights(TEACHER, TARGET, MASK, tau=1e6), torch.ones(1, 1, 4), atol=1e-5)


def test_trust_weights_small_tau_concentrates_on_best_elements():
    w = trust_weights(TEACHER, TARGET, MASK, tau=1e-3)
    assert torch.allclose(w, t([[[3.0, 0.0, 0.0, 1.0]]]), atol=1e-6)
    # A tie between the two best elements splits the mass.
    w = trust_weights(t([[[0.0, 0.0, 2.0]]]), t([[[0.0, 0.0, 0.0]]]), torch.ones(1, 1, 3, dtype=torch.bool), tau=1e-3)
    assert torch.allclose(w, t([[[1.5, 1.5, 0.0]]]), atol=1e-6)


def test_trust_weights_all_missing_and_bad_tau():
    none = torch.zeros(1, 1, 4, dtype=torch.bool)
    assert torch.equal(trust_weights(TEACHER, TARGET, none, tau=1.0), torch.ones(1, 1, 4))
    with pytest.raises(ConfigError, match="tau"):
        trust_weights(TEACHER, TARGET, MASK, tau=0.0)


def test_relative_temperature_is_tau_times_the_teachers_mean_error():
    # observed teacher errors 0, 1, 3 (the missing element's 5 is not read): mean 4/3
    assert relative_temperature(TEACHER, TARGET, MASK, 1.0).item() == pytest.approx(4 / 3)
    assert relative_temperature(TEACHER, TARGET, MASK, 0.5).item() == pytest.approx(2 / 3)
    assert math.isinf(relative_temperature(TEACHER, TARGET, MASK, math.inf).item())
    # a perfect teacher or an all-missing batch: a tiny positive temperature, uniform weights
    perfect = relative_temperature(TARGET.nan_to_num(), TARGET.nan_to_num(), MASK, 1.0)
    assert 0 < perfect.item() < 1e-30
    assert torch.allclose(trust_weights(TARGET.nan_to_num(), TARGET.nan_to_num(), MASK, perfect), torch.ones(1, 1, 4))
    with pytest.raises(ConfigError, match="tau"):
        relative_temperature(TEACHER, TARGET, MASK, -1.0)


def test_trust_weights_with_a_relative_temperature_hand_value():
    # tau_eff = 4/3: exponents 0, -3/4, -9/4; an error of twice the mean (8/3) would get e^-2 of e^0
    w = trust_weights(TEACHER, TARGET, MASK, relative_temperature(TEACHER, TARGET, MASK, 1.0))
    z = 1 + math.exp(-0.75) + math.exp(-2.25)
    assert torch.allclose(w, t([[[3 / z, 3 * math.exp(-0.75) / z, 3 * math.exp(-2.25) / z, 1.0]]]), atol=1e-6)
    # the relative temperature is invariant to the units: errors x10, same weights
    w10 = trust_weights(10 * TEACHER, TARGET, MASK, relative_temperature(10 * TEACHER, TARGET, MASK, 1.0))
    assert torch.allclose(w10, w, atol=1e-6)


def test_effective_sample_size_hand_value():
    w = trust_weights(TEACHER, TARGET, MASK, tau=1.0)
    # (sum w)^2 / sum w^2 / M over the three observed elements, with w = 3 e^-e / Z
    expected = Z**2 / (3 * (1 + math.exp(-2) + math.exp(-6)))
    assert effective_sample_size(w, MASK).item() == pytest.approx(expected, rel=1e-6)
    assert effective_sample_size(torch.ones(1, 1, 4), MASK).item() == pytest.approx(1.0)
    one_hot = t([[[3.0, 0.0, 0.0, 1.0]]])
    assert effective_sample_size(one_hot, MASK).item() == pytest.approx(1 / 3)
    assert effective_sample_size(one_hot, torch.zeros(1, 1, 4, dtype=torch.bool)).item() == 1.0


def test_output_distillation_takes_precomputed_weights():
    student = t([[[1.0, 1.0, 1.0, 1.0]]])
    w = trust_weights(TEACHER, TARGET, MASK, tau=1.0)
    given = output_distillation(student, TEACHER, TARGET, MASK, weights=w, tau=123.0)
    assert given.item() == pytest.approx(output_distillation(student, TEACHER, TARGET, MASK, tau=1.0).item())
    with pytest.raises(ConfigError, match="shapes differ"):
        output_distillation(student, TEACHER, TARGET, MASK, weights=w[..., :2])


def test_output_distillation_l1_l2_huber_hand_values():
    student = t([[[1.0, 1.0, 1.0, 1.0]]], requires_grad=True)  # |s - t| = 1, 0, 2, 4
    w0, _, w2, w3 = W_TAU1
    l1 = output_distillation(student, TEACHER, TARGET, MASK, tau=1.0)
    assert l1.item() == pytest.approx((w0 * 1 + w2 * 2 + w3 * 4) / 4, rel=1e-6)
    l2 = output_distillation(student, TEACHER, TARGET, MASK, tau=1.0, kind="l2")
    assert l2.item() == pytest.approx((w0 * 1 + w2 * 4 + w3 * 16) / 4, rel=1e-6)
    huber = output_distillation(student, TEACHER, TARGET, MASK, tau=1.0, kind="huber", huber_delta=1.0)
    assert huber.item() == pytest.approx((w0 * 0.5 + w2 * 1.5 + w3 * 3.5) / 4, rel=1e-6)
    with pytest.raises(ConfigError, match="output loss"):
        output_distillation(student, TEACHER, TARGET, MASK, kind="l3")


def test_output_distillation_uniform_limit_and_no_teacher_gradient():
    student = t([[[1.0, 1.0, 1.0, 1.0]]], requires_grad=True)
    teacher = TEACHER.clone().requires_grad_(True)
    loss = output_distillation(student, teacher, TARGET, MASK, tau=math.inf)
    assert loss.item() == pytest.approx((1 + 0 + 2 + 4) / 4)
    loss.backward()
    assert teacher.grad is None
    # d/ds mean |s - t| = sign(s - t) / 4
    assert torch.allclose(student.grad, t([[[0.25, 0.0, -0.25, -0.25]]]))


# ---------------------------------------------------------------- feature matching


def test_feature_mse_is_scale_and_offset_invariant():
    s = t([[[1.0, 2.0, 3.0]]])
    assert feature_matching(s, 2 * s + 7, "mse").item() == pytest.approx(0.0, abs=1e-6)


def test_feature_mse_hand_value():
    # Both vectors standardise to +-1 (up to eps = 1e-5); differences +-2, squared 4.
    loss = feature_matching(t([[[1.0, -1.0]]]), t([[[-1.0, 1.0]]]), "mse")
    assert loss.item() == pytest.approx(4 / (1 + 1e-5), rel=1e-6)


def test_feature_cosine_hand_value():
    s = t([[[1.0, 0.0], [0.0, 1.0]]])
    tt = t([[[1.0, 1.0], [0.0, -1.0]]])
    assert feature_matching(s, tt, "cosine").item() == pytest.approx(((1 - 1 / math.sqrt(2)) + 2) / 2, rel=1e-6)


def test_feature_matching_shape_mismatch():
    with pytest.raises(ConfigError, match="shapes differ"):
        feature_matching(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))


# ---------------------------------------------------------------- relations (3 nodes)

C = 1 / math.sqrt(2)
T_FEAT = t([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # cos: [[1,0,c],[0,1,c],[c,c,1]]
S_FEAT = t([[[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]])  # cos: [[1,1,0],[1,1,0],[0,0,1]]


def test_cosine_similarity_matrix_hand_value():
    expected = t([[[1, 0, C], [0, 1, C], [C, C, 1]]])
    assert torch.allclose(cosine_similarity_matrix(T_FEAT), expected, atol=1e-6)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_relation_distillation_three_nodes_hand_value(tau):
    # Off-diagonal rows: teacher [0, c], [0, c], [c, c]; student [1, 0], [1, 0], [0, 0].
    p = softmax([0 / tau, C / tau])
    q = softmax([1 / tau, 0 / tau])
    expected = (kl(p, q) + kl(p, q) + 0.0) / 3 * tau**2
    s = S_FEAT.clone().requires_grad_(True)
    loss = relation_distillation(s, T_FEAT, tau)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_relation_distillation_with_self_similarity():
    rows_t = [[1, 0, C], [0, 1, C], [C, C, 1]]
    rows_s = [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    expected = sum(kl(softmax(a), softmax(b)) for a, b in zip(rows_t, rows_s)) / 3
    loss = relation_distillation(S_FEAT, T_FEAT, 1.0, exclude_self=False)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_relation_identical_features_give_zero_and_teacher_gets_no_gradient():
    teacher = T_FEAT.clone().requires_grad_(True)
    student = (3 * T_FEAT).requires_grad_(True)
    loss = relation_distillation(student, teacher, 0.3)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert teacher.grad is None


def test_adjacency_relation_hand_value():
    adj = t([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])
    q = softmax([1.0, 0.0])
    # tau = 1: teacher rows without the diagonal, renormalised.
    expected = (kl([0.6, 0.4], q) + kl([0.25, 0.75], q) + kl([0.5, 0.5], [0.5, 0.5])) / 3
    assert adjacency_relation_distillation(S_FEAT, adj, 1.0).item() == pytest.approx(expected, rel=1e-5)
    # tau = 0.5: P ∝ A^2 on the teacher side, student logits doubled, times tau^2.
    q2 = softmax([2.0, 0.0])
    p0 = [0.09 / 0.13, 0.04 / 0.13]
    p1 = [0.01 / 0.10, 0.09 / 0.10]
    expected = (kl(p0, q2) + kl(p1, q2) + 0.0) / 3 * 0.25
    assert adjacency_relation_distillation(S_FEAT, adj, 0.5).item() == pytest.approx(expected, rel=1e-5)


def test_adjacency_softmax_tempering_matches_logits():
    # A = softmax(z) row-wise: the tempered teacher is softmax(z / tau), same as relation_kl on z.
    z = t([[[0.0, 0.3, -0.4], [1.0, 0.2, 0.1], [-0.5, 0.7, 0.0]]])
    adj = torch.softmax(z[0], dim=-1)
    s = t([[[1.0, 0.2], [0.3, 1.0], [-1.0, 0.5]]])
    via_adj = adjacency_relation_distillation(s, adj, 0.7, exclude_self=False)
    via_logits = relation_kl(cosine_similarity_matrix(s), z, 0.7, exclude_self=False)
    assert via_adj.item() == pytest.approx(via_logits.item(), rel=1e-5)


def test_standardized_relation_three_nodes_hand_value():
    # Off-diagonal rows: teacher [0, c], [0, c], [c, c]; student [1, 0], [1, 0], [0, 0]. Standardised
    # over their two entries: teacher [-1, 1], [-1, 1], [0, 0]; student [1, -1], [1, -1], [0, 0]
    # (up to the eps of 1e-5 in the variance).
    for tau in (1.0, 0.5):
        p, q = softmax([-1 / tau, 1 / tau]), softmax([1 / tau, -1 / tau])
        expected = (kl(p, q) + kl(p, q) + 0.0) / 3 * tau**2
        loss = relation_distillation(S_FEAT, T_FEAT, tau, standardize_scores=True)
        assert loss.item() == pytest.approx(expected, rel=1e-3)


def test_standardized_relation_ignores_per_row_scale_and_offset():
    torch.manual_seed(0)
    teacher, student = torch.randn(2, 5, 5), torch.randn(2, 5, 5, requires_grad=True)
    scale, offset = torch.rand(2, 5, 1) + 0.1, torch.randn(2, 5, 1)
    base = relation_kl(student, teacher, 0.5, standardize_scores=True)
    moved = relation_kl(scale * student + offset, 3 * teacher - 7, 0.5, standardize_scores=True)
    assert moved.item() == pytest.approx(base.item(), rel=1e-4)
    assert relation_kl(0.1 * teacher + 2, teacher, 0.5, standardize_scores=True).item() == pytest.approx(0, abs=1e-5)
    # without it, squeezing the student's scores changes the loss
    plain = relation_kl(student, teacher, 0.5)
    assert relation_kl(0.01 * student, teacher, 0.5).item() != pytest.approx(plain.item(), rel=1e-2)
    base.backward()
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0


def test_standardized_relation_lifts_near_uniform_relations():
    # features whose cosines all lie near 1 (as post-ReLU features do) give nearly uniform relation
    # distributions: raw KL is tiny, standardised it is of order one
    torch.manual_seed(1)
    teacher = 5 + 0.3 * torch.randn(4, 8, 6)
    student = 5 + 0.3 * torch.randn(4, 8, 6)
    raw = relation_distillation(student, teacher, 0.5).item()
    std = relation_distillation(student, teacher, 0.5, standardize_scores=True).item()
    assert raw < 1e-3 and std > 0.1


def test_adjacency_relation_standardized_is_relation_kl_of_log_adjacency():
    adj = t([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])
    via_adj = adjacency_relation_distillation(S_FEAT, adj, 0.5, standardize_scores=True)
    via_kl = relation_kl(cosine_similarity_matrix(S_FEAT), torch.log(adj), 0.5, standardize_scores=True)
    assert via_adj.item() == pytest.approx(via_kl.item(), rel=1e-5)
    # a sharper adjacency with the same order (A^2, renormalised) differs only in row scale: same loss
    sharp = adj.square() / adj.square().sum(-1, keepdim=True)
    assert adjacency_relation_distillation(S_FEAT, sharp, 0.5, standardize_scores=True).item() == pytest.approx(
        via_adj.item(), rel=1e-4)


def test_relation_single_node_and_bad_inputs():
    assert relation_distillation(torch.ones(2, 1, 3), torch.ones(2, 1, 4), 1.0).item() == 0.0
    with pytest.raises(ConfigError, match="tau"):
        relation_kl(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), 0.0)
    with pytest.raises(ConfigError, match="adjacency"):
        adjacency_relation_distillation(S_FEAT, torch.ones(4, 4), 1.0)
