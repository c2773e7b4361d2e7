"""Structural distillation: hand the teacher's learned graph to the student before training.

Graph WaveNet learns a self-adaptive adjacency ``softmax(ReLU(E1 E2^T))`` from two node-embedding
tables and applies it transposed. A ``gcn-gru`` or ``dcgru`` student built with ``adaptive=True`` has
the same two tables and applies the matrix the same way; copying the
teacher's into it starts the student with the spatial dependencies the teacher found, which the
student then keeps training. Relation distillation (``relation_source="adaptive"``) pulls towards
the same matrix through a loss; inheriting sets it directly and costs nothing per step.
"""

from __future__ import annotations

import torch
from torch import nn

from stgkd.errors import ConfigError

__all__ = ["EMBEDDINGS", "inherit_adjacency"]

#: the parameters that define an adaptive adjacency, in both teacher and student
EMBEDDINGS = ("source_embedding", "target_embedding")


def _embeddings(model: nn.Module, role: str) -> tuple[torch.Tensor, torch.Tensor]:
    found = [getattr(model, name, None) for name in EMBEDDINGS]
    if any(not isinstance(t, torch.Tensor) for t in found):
        name = getattr(model, "registry_name", "") or type(model).__name__
        hint = " (build it with adaptive=True)" if role == "student" else ""
        raise ConfigError(f"inherit_adjacency: the {role} {name!r} has no adaptive adjacency{hint}")
    return found[0], found[1]


@torch.no_grad()
def inherit_adjacency(student: nn.Module, teacher: nn.Module) -> None:
    """Copy the teacher's adaptive-adjacency node embeddings into the student, in place.

    Afterwards ``student.adaptive_adjacency()`` equals ``teacher.adaptive_adjacency()`` and, because
    both apply it transposed (``adaptive_support() = A_adp^T``, node ``m`` aggregates column ``m``),
    the two operators map any node signal to the same result. The student's embeddings stay
    trainable.

    Raises:
        ConfigError: either model lacks an adaptive adjacency, or their embeddings differ in shape
            (number of nodes or ``embed_dim``).
    """
    s_src, s_dst = _embeddings(student, "student")
    t_src, t_dst = _embeddings(teacher, "teacher")
    if s_src.shape != t_src.shape or s_dst.shape != t_dst.shape:
        raise ConfigError(
            f"inherit_adjacency: node embeddings differ in shape: student {tuple(s_src.shape)}, teacher "
            f"{tuple(t_src.shape)} (nodes, embed_dim); build the student with embed_dim={t_src.shape[1]}"
        )
    s_src.copy_(t_src)
    s_dst.copy_(t_dst)
