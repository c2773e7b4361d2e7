"""Structural distillation: hand the teacher's learned graph to the student before training.

Graph WaveNet learns a self-adaptive adjacency ``softmax(ReLU(E1 E2^T))`` from two node-embedding
tables and applies it transposed. A ``gcn-gru`` or ``dcgru`` student built with ``adaptive=True`` has
the same two tables and applies the matrix the same way; copying the
teacher's into it starts the student with the spatial dependencies the teacher found, which the
student then keeps training. Relation distillation (``relation_source="adaptive"``) pulls towards
the same matrix through a loss; inheriting sets it directly and costs nothing per step.

A student whose adaptive graph is low-rank (``stgru``: :class:`~stgkd.nn.layers.lowrank.LowRankAdjacency`, applied
in ``O(N r d)``) cannot hold the teacher's tables; it declares ``load_adjacency`` and is handed the
teacher's matrix, to which its factors are fitted (the closest rank-``r`` operator, exact at ``r = N``).
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
def inherit_adjacency(student: nn.Module, teacher: nn.Module) -> float:
    """Copy the teacher's adaptive-adjacency node embeddings into the student, in place.

    Afterwards ``student.adaptive_adjacency()`` equals ``teacher.adaptive_adjacency()`` and, because
    both apply it transposed (``adaptive_support() = A_adp^T``, node ``m`` aggregates column ``m``),
    the two operators map any node signal to the same result. The student's embeddings stay
    trainable.

    A student with ``load_adjacency`` (a low-rank adaptive graph) is fitted to the teacher's matrix
    instead; the relative error of its operator on a node signal is returned (``0.0`` for a copy).

    Raises:
        ConfigError: either model lacks an adaptive adjacency, or their embeddings differ in shape
            (number of nodes or ``embed_dim``).
    """
    if callable(getattr(student, "load_adjacency", None)):
        if not getattr(student, "adaptive", False):
            name = getattr(student, "registry_name", "") or type(student).__name__
            raise ConfigError(f"inherit_adjacency: the student {name!r} has no adaptive adjacency (build it with "
                              "adaptive=True)")
        _embeddings(teacher, "teacher")
        teacher_adj = teacher.adaptive_adjacency()
        if teacher_adj.shape[0] != student.num_nodes:
            raise ConfigError(f"inherit_adjacency: the teacher has {teacher_adj.shape[0]} nodes, the student "
                              f"{student.num_nodes}")
        return student.load_adjacency(teacher_adj)
    s_src, s_dst = _embeddings(student, "student")
    t_src, t_dst = _embeddings(teacher, "teacher")
    if s_src.shape != t_src.shape or s_dst.shape != t_dst.shape:
        raise ConfigError(
            f"inherit_adjacency: node embeddings differ in shape: student {tuple(s_src.shape)}, teacher "
            f"{tuple(t_src.shape)} (nodes, embed_dim); build the student with embed_dim={t_src.shape[1]}"
        )
    s_src.copy_(t_src)
    s_dst.copy_(t_dst)
    return 0.0
