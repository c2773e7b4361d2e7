"""Several frozen teachers behaving as one: their forecasts combined, one of them the source of features.

Distilling an ensemble (Hinton et al., 2015) hands the student targets that no single model trained
on the labels gives. :class:`TeacherEnsemble` holds ``K`` frozen teachers and behaves like a teacher,
so :class:`~stgkd.distill.TeacherCache`, the objective and the training step take it unchanged:

* ``forward(x)``: the combined z-scored forecast ``ŷ[b, h, n] = Σ_k w[k, h, n] · ŷ_k[b, h, n]``;
* ``forward(x, return_features=True)``: that forecast and the *feature teacher*'s features (one named
  member: feature matching and relation distillation read one model's representation, not an average
  of unrelated ones);
* ``adaptive_support()``, ``feature_names``, ``distill_feature`` and the adaptive node embeddings
  (:func:`~stgkd.distill.inherit.inherit_adjacency`) are the feature teacher's.

The weights ``w`` ``(K, H, N)`` sum to 1 over the teachers at every horizon step and sensor. They come
from :data:`TEACHER_COMBINES`, by name (``DistillConfig.teacher_combine``):

* ``"mean"``: ``w[k] = 1 / K``;
* ``"inverse-error"``: ``w[k, h, n] = (1 / e[k, h, n]) / Σ_j (1 / e[j, h, n])`` from each teacher's
  validation masked MAE ``e[k, h, n]`` at step ``h`` and sensor ``n`` (computed once, on the validation
  split, by :func:`stgkd.engine.teachers.validation_errors`): a teacher twice as accurate at a sensor
  and step gets twice the say there. Where a sensor has no observed validation reading at a step, the
  teachers are weighted equally there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError
from stgkd.registry import Registry

__all__ = ["TEACHER_COMBINES", "TeacherEnsemble", "combine_forecasts", "inverse_error_weights", "mean_weights",
           "weights_summary"]


def mean_weights(errors: Tensor) -> Tensor:
    """Equal weights ``1 / K`` of the shape of ``errors`` (read for its shape only).

    Shapes:
        errors: ``(K, H, N)``; returns ``(K, H, N)``.
    """
    return torch.full_like(errors, 1.0 / errors.shape[0], dtype=torch.float32)


def inverse_error_weights(errors: Tensor, *, eps: float = 1e-8) -> Tensor:
    r"""Weights proportional to the inverse error, normalised over the teachers.

    .. math::
        w_{k,h,n} = \frac{1 / \max(e_{k,h,n}, \epsilon)}{\sum_j 1 / \max(e_{j,h,n}, \epsilon)}

    Where any teacher's error at ``(h, n)`` is not finite (no observed validation reading there),
    every teacher gets ``1 / K`` at ``(h, n)``.

    Shapes:
        errors: ``(K, H, N)`` non-negative masked MAEs; returns ``(K, H, N)`` float32, summing to 1 over ``K``.
    """
    e = errors.to(torch.float64)
    if e.dim() != 3:
        raise ConfigError(f"inverse_error_weights: errors must be (K, H, N), got {tuple(e.shape)}")
    known = torch.isfinite(e).all(0, keepdim=True).expand_as(e)
    inv = 1.0 / e.clamp_min(eps).nan_to_num(nan=1.0, posinf=1.0)
    w = inv / inv.sum(0, keepdim=True)
    return torch.where(known, w, torch.full_like(w, 1.0 / e.shape[0])).float()


#: how the teachers' forecasts are weighted, by name: ``weights(errors (K, H, N)) -> (K, H, N)``.
TEACHER_COMBINES: Registry[Callable[[Tensor], Tensor]] = Registry("teacher combination")
TEACHER_COMBINES.register("mean", mean_weights)
TEACHER_COMBINES.register("inverse-error", inverse_error_weights)


def combine_forecasts(forecasts: Tensor, weights: Tensor) -> Tensor:
    """``Σ_k w[k, h, n] · forecasts[k, b, h, n]``.

    Shapes:
        forecasts: ``(K, B, H, N)``; weights: ``(K, H, N)``; returns ``(B, H, N)``.
    """
    if forecasts.dim() != 4 or weights.shape != (forecasts.shape[0], *forecasts.shape[2:]):
        raise ConfigError(f"combine_forecasts: forecasts (K, B, H, N) {tuple(forecasts.shape)} and weights (K, H, N) "
                          f"{tuple(weights.shape)} do not match")
    return (forecasts * weights.to(forecasts)[:, None]).sum(0)


def weights_summary(weights: Tensor, names: Sequence[str]) -> dict[str, Any]:
    """A JSON-sized account of ``(K, H, N)`` weights: per teacher its mean weight, its mean weight at
    each horizon step (over the sensors), and its smallest and largest weight."""
    w = weights.detach().float().cpu()
    return {
        "teachers": list(names),
        "mean": [round(float(v), 4) for v in w.mean((1, 2))],
        "per_step": [[round(float(v), 4) for v in row] for row in w.mean(2)],
        "min": [round(float(v), 4) for v in w.amin((1, 2))],
        "max": [round(float(v), 4) for v in w.amax((1, 2))],
    }


class TeacherEnsemble(nn.Module):
    """``K`` frozen teachers combined per horizon step and sensor; features from one of them.

    Args:
        members: the trained teachers (each maps ``(B, T, N, C)`` to ``(B, H, N)`` z-scores), frozen
            and in eval mode here.
        weights: ``(K, H, N)`` combination weights, summing to 1 over the teachers
            (:data:`TEACHER_COMBINES`).
        feature_teacher: position of the member whose features, relations and adaptive adjacency the
            ensemble exposes (default: ``0``).
        names: a label per member, e.g. its checkpoint path (default: ``"teacher0"``, ...).
    """

    def __init__(self, members: Sequence[nn.Module], weights: Tensor, *, feature_teacher: int = 0,
                 names: Sequence[str] | None = None) -> None:
        super().__init__()
        if len(members) < 1:
            raise ConfigError("TeacherEnsemble: needs at least one teacher")
        k = len(members)
        if weights.dim() != 3 or weights.shape[0] != k:
            raise ConfigError(f"TeacherEnsemble: weights must be (K={k}, H, N), got {tuple(weights.shape)}")
        total = weights.sum(0)
        if not torch.allclose(total, torch.ones_like(total), atol=1e-4):
            raise ConfigError("TeacherEnsemble: the weights must sum to 1 over the teachers at every step and sensor")
        if not 0 <= feature_teacher < k:
            raise ConfigError(f"TeacherEnsemble: feature_teacher={feature_teacher} is not a member (0..{k - 1})")
        self.members = nn.ModuleList(members)
        for p in self.members.parameters():
            p.requires_grad_(False)
        self.members.eval()
        self.register_buffer("weights", weights.detach().float().clone())
        self.feature_teacher = int(feature_teacher)
        self.names = list(names) if names is not None else [f"teacher{i}" for i in range(k)]
        if len(self.names) != k:
            raise ConfigError(f"TeacherEnsemble: {len(self.names)} names for {k} teachers")

    @property
    def feature_model(self) -> nn.Module:
        """The member whose features and relations the ensemble exposes."""
        return self.members[self.feature_teacher]

    def forward(self, x: Tensor, return_features: bool = False):
        """Shapes:
            x: ``(B, T, N, C)``; returns the combined forecast ``(B, H, N)`` (z-scored), and with
            ``return_features`` also the feature teacher's features ``{name: (B, N, D) or (B, T, N, D)}``.
        """
        feats = None
        outs = []
        for i, member in enumerate(self.members):
            if return_features and i == self.feature_teacher:
                out, feats = member(x, return_features=True)
            else:
                out = member(x)
                out = out[0] if isinstance(out, tuple) else out
            outs.append(out.float())
        combined = combine_forecasts(torch.stack(outs), self.weights)
        return (combined, feats) if return_features else combined

    # ---- what the distillation pipeline reads from a teacher: the feature teacher's

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.feature_model, "feature_names", ()))

    @property
    def distill_feature(self) -> str:
        return getattr(self.feature_model, "distill_feature", "")

    @property
    def out_steps(self) -> int:
        return int(self.weights.shape[1])

    @property
    def adaptive(self) -> bool:
        """Whether the feature teacher has an adaptive adjacency (what :class:`TeacherCache` stores)."""
        model = self.feature_model
        return bool(getattr(model, "adaptive", True)) and callable(getattr(model, "adaptive_support", None))

    def adaptive_support(self) -> Tensor:
        """The feature teacher's applied adaptive operator ``(N, N)`` (rows = receivers)."""
        if not self.adaptive:
            raise ConfigError(f"TeacherEnsemble: the feature teacher {self.names[self.feature_teacher]} has no "
                              "adaptive adjacency")
        return self.feature_model.adaptive_support()

    @property
    def source_embedding(self) -> Tensor:
        return self._embedding("source_embedding")

    @property
    def target_embedding(self) -> Tensor:
        return self._embedding("target_embedding")

    def _embedding(self, name: str) -> Tensor:
        value = getattr(self.feature_model, name, None)
        if not isinstance(value, Tensor):
            raise AttributeError(name)
        return value

    def train(self, mode: bool = True) -> "TeacherEnsemble":
        """Members stay in eval mode: a teacher is frozen (no dropout, no moving statistics)."""
        super().train(mode)
        self.members.eval()
        return self

    def extra_repr(self) -> str:
        return f"teachers={self.names}, feature_teacher={self.feature_teacher}"
