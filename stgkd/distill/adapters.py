"""Learned adapters that map a student's tapped features into the teacher's feature space.

Feature matching happens per node: a feature laid out in time, ``(B, T, N, D)``, is first pooled
over time to ``(B, N, D)`` (:func:`pool_time`: ``"mean"`` over the steps, the default, or the
``"last"`` step), on both sides, so a recurrent student's final state can be matched with a
convolutional teacher's skip sum or with a per-step representation whatever the two time lengths.
The teacher cache stores its features already pooled the same way.

Adapters are training-only: the :class:`~stgkd.distill.objective.DistillationObjective` owns them
in its own ``nn.ModuleDict``, never the student, so an exported student carries none.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from stgkd.errors import ConfigError
from stgkd.registry import Registry

__all__ = ["TIME_POOLS", "pool_time", "FeatureAdapter"]

#: ways to reduce a ``(B, T, N, D)`` feature to ``(B, N, D)``, by name.
TIME_POOLS: Registry[Callable[[Tensor], Tensor]] = Registry("time pool")
TIME_POOLS.register("mean", lambda x: x.mean(dim=1))
TIME_POOLS.register("last", lambda x: x[:, -1])


def pool_time(x: Tensor, mode: str = "mean") -> Tensor:
    """Reduce a time-laid-out feature to nodes; node features pass through unchanged.

    Shapes:
        x: ``(B, T, N, D)`` or ``(B, N, D)``; returns ``(B, N, D)``.
    """
    if x.dim() == 3:
        return x
    if x.dim() == 4:
        return TIME_POOLS.get(mode)(x)
    raise ConfigError(f"distill.adapters.pool_time: features must be (B, N, D) or (B, T, N, D), got {tuple(x.shape)}")


class FeatureAdapter(nn.Module):
    r"""Per-node linear projection (a 1×1 convolution) from the student's feature width to the
    teacher's: :math:`a(h_{bn}) = W \, \mathrm{pool}(h)_{bn} + c`, :math:`W \in \mathbb{R}^{D_t \times D_s}`.

    Args:
        student_dim: the student feature's last dim :math:`D_s`.
        teacher_dim: the teacher feature's last dim :math:`D_t`.
        time_pool: how a ``(B, T, N, D_s)`` input is reduced to nodes first, ``"mean"`` or
            ``"last"`` (default: ``"mean"``).
        bias: learn the offset :math:`c` (default: ``True``).
    """

    def __init__(self, student_dim: int, teacher_dim: int, *, time_pool: str = "mean", bias: bool = True) -> None:
        super().__init__()
        if student_dim < 1 or teacher_dim < 1:
            raise ConfigError(
                f"distill.adapters.FeatureAdapter: dims must be positive, got {student_dim} -> {teacher_dim}"
            )
        TIME_POOLS.get(time_pool)
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim
        self.time_pool = time_pool
        self.proj = nn.Linear(student_dim, teacher_dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """Pool over time if needed, then project.

        Shapes:
            x: ``(B, N, D_s)`` or ``(B, T, N, D_s)``; returns ``(B, N, D_t)``.
        """
        if x.shape[-1] != self.student_dim:
            raise ConfigError(
                f"distill.adapters.FeatureAdapter: expected feature dim {self.student_dim}, got shape {tuple(x.shape)}"
            )
        return self.proj(pool_time(x, self.time_pool))

    def extra_repr(self) -> str:
        return f"time_pool={self.time_pool!r}"
