"""The terms of the distillation loss, as pure functions.

:class:`~stgkd.distill.objective.DistillationObjective` combines them as::

    L = w_sup · L_sup + w_out · L_out + w_feat · L_feat + w_rel · L_rel

Conventions (the objective passes tensors that follow them):

* forecasts ``(B, H, N)`` in one set of units, z-scored by default (see the objective);
* ``mask`` ``(B, H, N)`` bool, ``True`` where the truth is observed; unobserved truth values may be
  anything (``0``, ``nan``): they are never read into a loss value or a gradient;
* node features ``(B, N, D)``; time-laid-out features are pooled to nodes first
  (:func:`stgkd.distill.adapters.pool_time`).

Every function is vectorised over the whole batch (no Python loop over elements or nodes), so the
distillation terms add little to a student step.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from stgkd.errors import ConfigError
from stgkd.metrics import masked_mae  # the supervised term L_sup: the metric itself
from stgkd.registry import Registry

__all__ = [
    "ELEMENT_LOSSES",
    "FEATURE_LOSSES",
    "masked_mae",
    "relative_temperature",
    "trust_weights",
    "effective_sample_size",
    "output_distillation",
    "standardize",
    "feature_matching",
    "cosine_similarity_matrix",
    "relation_kl",
    "relation_distillation",
    "adjacency_relation_distillation",
]

#: element-wise penalties ``rho(student - teacher)`` for output distillation, by name.
ELEMENT_LOSSES: Registry[Callable[[Tensor, float], Tensor]] = Registry("output loss")
#: feature-matching losses ``(adapted student (B, N, D), teacher (B, N, D)) -> scalar``, by name.
FEATURE_LOSSES: Registry[Callable[[Tensor, Tensor], Tensor]] = Registry("feature loss")


@ELEMENT_LOSSES.register("l1")
def _l1(diff: Tensor, delta: float) -> Tensor:
    return diff.abs()


@ELEMENT_LOSSES.register("l2")
def _l2(diff: Tensor, delta: float) -> Tensor:
    return diff.square()


@ELEMENT_LOSSES.register("huber")
def _huber(diff: Tensor, delta: float) -> Tensor:
    # 0.5 d^2 for |d| <= delta, delta (|d| - 0.5 delta) beyond (torch's huber_loss).
    return F.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=delta)


def _check_same(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ConfigError(f"distill.losses.{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def relative_temperature(teacher: Tensor, target: Tensor, mask: Tensor, tau: float) -> Tensor:
    r"""A trust temperature expressed as a multiple of the teacher's own mean error on the batch.

    .. math::
        \tau_{eff} = \tau \cdot \bar e, \qquad
        \bar e = \frac{\sum_i m_i |t_i - y_i|}{\max(1, \sum_i m_i)}

    (the teacher's masked MAE over the batch's observed elements). With it the trust weights of
    :func:`trust_weights` are :math:`\propto e^{-(e_i / \bar e) / \tau}`: at ``tau = 1`` an element
    where the teacher errs by twice its mean error is trusted :math:`e^{-1}` times as much as one where
    it errs by its mean error, whatever the dataset, the units or how good the teacher is. (An absolute
    ``tau`` of one training std, against a teacher whose errors are a fraction of a std, leaves the
    weights nearly uniform.) ``tau = inf`` gives ``inf``; a teacher with no error at all (or an
    all-missing batch) gives the smallest positive float instead of ``0``, which leaves the weights
    uniform. No gradient.

    Shapes:
        teacher, target, mask: ``(B, H, N)``; returns a 0-dim float32 tensor (on their device, so
        computing it does not synchronise a GPU).
    """
    _check_same(teacher, target, "relative_temperature")
    _check_same(teacher, mask, "relative_temperature")
    if not tau > 0:
        raise ConfigError(f"distill.losses.relative_temperature: tau must be > 0 (or inf), got {tau}")
    if math.isinf(tau):
        return torch.full((), math.inf, device=teacher.device)
    with torch.no_grad():
        mean_err = masked_mae(teacher.float(), target.float(), mask)
        return (tau * mean_err).clamp(min=torch.finfo(torch.float32).tiny)


def trust_weights(teacher: Tensor, target: Tensor, mask: Tensor, tau: float | Tensor) -> Tensor:
    r"""How much to trust the teacher at each element, mean 1 over the observed elements.

    With the teacher's error :math:`e_i = |t_i - y_i|` on the :math:`M` observed elements of the
    batch (all samples, steps and nodes together),

    .. math::
        w_i = M \cdot \operatorname{softmax}_{j \in obs}(-e_j / \tau)_i
            = \frac{M \, e^{-e_i/\tau}}{\sum_{j \in obs} e^{-e_j/\tau}}
        \quad (i \text{ observed}), \qquad w_i = 1 \quad (i \text{ missing}).

    ``tau`` is in the units of the forecasts (z-scores by default: ``tau = 1`` means an error of one
    training standard deviation costs a factor ``e`` of trust). As ``tau -> inf`` every weight is 1
    (plain distillation; ``tau=math.inf`` is exact); as ``tau -> 0`` the weight concentrates on the
    elements where the teacher is closest to the truth. Where the truth is missing the teacher still
    teaches, with weight 1: the mean trust of the observed elements. An all-missing batch gives all
    ones. The weights carry no gradient.

    ``tau`` may be a 0-dim tensor, e.g. :func:`relative_temperature` (then it is not checked on the
    host, so a GPU is not synchronised; an infinite one gives all ones as well).

    Shapes:
        teacher, target, mask: ``(B, H, N)``; returns ``(B, H, N)``.
    """
    _check_same(teacher, target, "trust_weights")
    _check_same(teacher, mask, "trust_weights")
    if not isinstance(tau, Tensor) and not tau > 0:
        raise ConfigError(f"distill.losses.trust_weights: tau must be > 0 (or inf), got {tau}")
    ones = torch.ones_like(teacher, dtype=torch.float32)
    if not isinstance(tau, Tensor) and math.isinf(tau):
        return ones
    with torch.no_grad():
        err = (teacher.float() - target.float()).abs()
        logits = torch.where(mask, -err / tau, torch.full_like(err, -math.inf))
        soft = torch.softmax(logits.flatten(), dim=0).view_as(err)
        # All-missing batch: softmax of all -inf is nan, but no element selects it.
        return torch.where(mask, soft * mask.sum(), ones)


def effective_sample_size(weights: Tensor, mask: Tensor) -> Tensor:
    r"""Kish's effective sample size of the trust weights, as a fraction of the observed elements.

    .. math::
        \mathrm{ESS} = \frac{1}{M} \cdot \frac{(\sum_{i \in obs} w_i)^2}{\sum_{i \in obs} w_i^2}

    ``1`` for uniform weights (``tau = inf``), ``1/M`` when one element holds all the trust: the
    share of the batch's observed readings that effectively teach. An all-missing batch gives ``1``.
    A diagnostic; no gradient.

    Shapes:
        weights, mask: ``(B, H, N)``; returns a 0-dim float32 tensor.
    """
    _check_same(weights, mask, "effective_sample_size")
    with torch.no_grad():
        w = torch.where(mask, weights.float(), torch.zeros((), device=weights.device))
        m = mask.sum().float()
        ess = w.sum().square() / w.square().sum().clamp(min=torch.finfo(torch.float32).tiny) / m.clamp(min=1)
        return torch.where(m > 0, ess, torch.ones((), device=weights.device))


def output_distillation(
    student: Tensor,
    teacher: Tensor,
    target: Tensor,
    mask: Tensor,
    *,
    tau: float | Tensor = 1.0,
    kind: str = "l1",
    huber_delta: float = 1.0,
    weights: Tensor | None = None,
) -> Tensor:
    r"""Trust-weighted distance between the student's and the teacher's forecasts.

    .. math::
        L_{out} = \frac{1}{|B \cdot H \cdot N|} \sum_i w_i \, \rho(s_i - t_i)

    with :math:`w` from :func:`trust_weights` (``tau``) and :math:`\rho` the element loss ``kind``:
    ``"l1"`` :math:`|d|`, ``"l2"`` :math:`d^2` or ``"huber"`` (quadratic below ``huber_delta``).
    Every element counts, missing truth included (weight 1). The teacher gets no gradient.
    ``weights`` passes trust weights already computed with :func:`trust_weights` (``tau`` is then
    not used).

    Shapes:
        student, teacher, target, mask: ``(B, H, N)``; returns a scalar.
    """
    _check_same(student, teacher, "output_distillation")
    rho = ELEMENT_LOSSES.get(kind)
    if weights is None:
        w = trust_weights(teacher, target, mask, tau)
    else:
        _check_same(weights, student, "output_distillation")
        w = weights
    return (w * rho(student - teacher.detach(), huber_delta)).mean()


def standardize(x: Tensor, eps: float = 1e-5) -> Tensor:
    r"""LayerNorm without affine parameters over the last dim: :math:`(x - \mu) / \sqrt{\sigma^2 + \epsilon}`."""
    return F.layer_norm(x, x.shape[-1:], eps=eps)


@FEATURE_LOSSES.register("mse")
def _feature_mse(student: Tensor, teacher: Tensor) -> Tensor:
    return (standardize(student) - standardize(teacher)).square().mean()


@FEATURE_LOSSES.register("cosine")
def _feature_cosine(student: Tensor, teacher: Tensor) -> Tensor:
    return (1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)).mean()


def feature_matching(student: Tensor, teacher: Tensor, kind: str = "mse") -> Tensor:
    r"""Distance between the adapted student features and the teacher's, per node vector.

    ``"mse"`` (default): both sides standardised per vector over the feature dim (LayerNorm without
    affine, :func:`standardize`), then the mean squared difference over all elements

    .. math:: L_{feat} = \frac{1}{BND} \sum_{b,n,d} (\bar s_{bnd} - \bar t_{bnd})^2,
        \quad \bar x = (x - \mu_{bn}) / \sigma_{bn}

    which ignores the teacher's feature scale and offset and does not grow with ``D``.
    ``"cosine"``: :math:`\frac{1}{BN} \sum_{b,n} (1 - \cos(s_{bn}, t_{bn}))`.

    Shapes:
        student, teacher: ``(B, N, D)`` (or any equal shapes, last dim = features); returns a scalar.
    """
    _check_same(student, teacher, "feature_matching")
    return FEATURE_LOSSES.get(kind)(student, teacher.detach())


def cosine_similarity_matrix(x: Tensor, eps: float = 1e-8) -> Tensor:
    r"""Node-to-node cosine similarity per sample, :math:`S_{bij} = \cos(x_{bi}, x_{bj})`.

    Shapes:
        x: ``(B, N, D)``; returns ``(B, N, N)``.
    """
    unit = x / x.norm(dim=-1, keepdim=True).clamp(min=eps)
    return unit @ unit.transpose(-1, -2)


def _off_diagonal(x: Tensor) -> Tensor:
    """``(B, N, N) -> (B, N, N-1)``: each row without its diagonal entry (no copy of a mask)."""
    b, n, _ = x.shape
    return x.flatten(1)[:, 1:].reshape(b, n - 1, n + 1)[:, :, :-1].reshape(b, n, n - 1)


def relation_kl(
    student_scores: Tensor,
    teacher_scores: Tensor,
    tau: float = 1.0,
    *,
    exclude_self: bool = True,
    standardize_scores: bool = False,
) -> Tensor:
    r"""Row-wise KL between tempered relation distributions, times :math:`\tau^2`.

    .. math::
        P^{T}_{bi\cdot} = \operatorname{softmax}_j(S^T_{bij} / \tau), \quad
        P^{S}_{bi\cdot} = \operatorname{softmax}_j(S^S_{bij} / \tau), \quad
        L = \frac{\tau^2}{BN} \sum_{b,i} \mathrm{KL}(P^T_{bi\cdot} \,\|\, P^S_{bi\cdot})

    With ``exclude_self`` (default) the diagonal is dropped before the softmax: a node's similarity
    to itself is 1 for every model and carries nothing. The :math:`\tau^2` keeps the gradient scale
    independent of ``tau`` (Hinton et al., 2015). The teacher side gets no gradient.

    With ``standardize_scores`` each row of scores is first z-scored over its entries ``j`` (the
    diagonal already dropped), on both sides (:func:`standardize`):

    .. math::
        \bar S_{bij} = (S_{bij} - \mu_{bi}) / \sqrt{\sigma^2_{bi} + \epsilon}

    so ``tau`` is measured in standard deviations of the row and the loss no longer depends on how
    spread a model's raw scores are (logit standardisation, Sun et al., CVPR 2024). Without it,
    cosine similarities of features that are all alike (e.g. post-ReLU channels, cosines near 1)
    give near-uniform distributions on both sides, whose KL and gradient are tiny whatever the
    relations are; with it the distributions keep their shape and the term's gradient is of the
    order of the other terms'. The loss is then invariant to any per-row ``a·S + b`` (``a > 0``) of
    either side.

    The student comes first, as in every term of this module.

    Shapes:
        student_scores: ``(B, N, N)``;
        teacher_scores: ``(B, N, N)`` or ``(N, N)`` (shared by the batch); returns a scalar.
    """
    if not tau > 0 or math.isinf(tau):
        raise ConfigError(f"distill.losses.relation_kl: tau must be finite and > 0, got {tau}")
    if teacher_scores.dim() == 2:
        teacher_scores = teacher_scores.unsqueeze(0).expand_as(student_scores)
    _check_same(student_scores, teacher_scores, "relation_kl")
    n = student_scores.shape[-1]
    if exclude_self:
        if n < 2:
            return student_scores.sum() * 0.0
        teacher_scores, student_scores = _off_diagonal(teacher_scores), _off_diagonal(student_scores)
    if standardize_scores:
        teacher_scores, student_scores = standardize(teacher_scores.detach().float()), standardize(student_scores.float())
    log_p_t = torch.log_softmax(teacher_scores.detach().float() / tau, dim=-1)
    log_p_s = torch.log_softmax(student_scores.float() / tau, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return kl.mean() * tau * tau


def relation_distillation(
    student: Tensor, teacher: Tensor, tau: float = 1.0, *, exclude_self: bool = True, standardize_scores: bool = False
) -> Tensor:
    r"""Relation distillation from node features: :func:`relation_kl` of the cosine-similarity
    matrices, :math:`S^T = \cos(t_{bi}, t_{bj})`, :math:`S^S = \cos(s_{bi}, s_{bj})`. The feature
    dims of the two sides may differ (no adapter needed). ``standardize_scores``: see :func:`relation_kl`.

    Shapes:
        student: ``(B, N, D_s)``, teacher: ``(B, N, D_t)``; returns a scalar.
    """
    if student.shape[:-1] != teacher.shape[:-1]:
        raise ConfigError(
            f"distill.losses.relation_distillation: batch/node dims differ, "
            f"{tuple(student.shape)} vs {tuple(teacher.shape)}"
        )
    return relation_kl(cosine_similarity_matrix(student), cosine_similarity_matrix(teacher), tau,
                       exclude_self=exclude_self, standardize_scores=standardize_scores)


def adjacency_relation_distillation(
    student: Tensor,
    adjacency: Tensor,
    tau: float = 1.0,
    *,
    exclude_self: bool = True,
    eps: float = 1e-12,
    standardize_scores: bool = False,
) -> Tensor:
    r"""Relation distillation from the teacher's learned adjacency (Graph WaveNet's adaptive
    :math:`\tilde A = \operatorname{softmax}(\operatorname{ReLU}(E_1 E_2^\top))`).

    ``adjacency`` is the operator as the teacher applies it (``out = S @ x``, row ``i`` = the nodes
    node ``i`` aggregates from): Graph WaveNet applies :math:`S = \tilde A^\top`, so row ``i`` of ``S``
    is column ``i`` of :math:`\tilde A` (:class:`~stgkd.distill.TeacherCache` stores
    ``teacher.adaptive_support()``). The teacher's scores are :math:`\log(S_{ij} + \epsilon)`, so its
    tempered distribution is :math:`P^T_{i\cdot} \propto S_{i\cdot}^{1/\tau}` (each row renormalised),
    the same temperature as on the student's cosine similarities. Then :func:`relation_kl`.

    Shapes:
        student: ``(B, N, D)``, adjacency: ``(N, N)`` (or ``(B, N, N)``), non-negative; returns a scalar.
    """
    if adjacency.shape[-1] != student.shape[-2] or adjacency.shape[-2] != student.shape[-2]:
        raise ConfigError(
            f"distill.losses.adjacency_relation_distillation: adjacency {tuple(adjacency.shape)} does not "
            f"match {student.shape[-2]} nodes"
        )
    scores = torch.log(adjacency.detach().float().clamp(min=0) + eps)
    # with standardize_scores the log-adjacency rows are z-scored too (see relation_kl)
    return relation_kl(cosine_similarity_matrix(student), scores, tau, exclude_self=exclude_self,
                       standardize_scores=standardize_scores)
