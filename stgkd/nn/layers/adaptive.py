"""Graph WaveNet's self-adaptive adjacency ``softmax(ReLU(E1 E2^T))``: the pure function
(:func:`adaptive_adjacency`) and the mixin that gives a model its node-embedding tables and the operator
in the direction the official code applies it (:class:`AdaptiveAdjacency`). Dense ``(N, N)``: for a
learned graph whose cost grows linearly with the sensors see :mod:`stgkd.nn.layers.lowrank`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stgkd.errors import ConfigError
from stgkd.nn.base import check_dense_size

__all__ = ["AdaptiveAdjacency", "adaptive_adjacency"]


def adaptive_adjacency(source: Tensor, target: Tensor) -> Tensor:
    """Graph WaveNet's self-adaptive adjacency ``softmax(ReLU(E1 E2^T))`` (row-wise softmax).

    Shapes:
        source ``(N, D)``, target ``(N, D)`` -> ``(N, N)``
    """
    return torch.softmax(F.relu(source @ target.t()), dim=1)


class AdaptiveAdjacency:
    """Mixin: Graph WaveNet's self-adaptive adjacency for a model that holds the node-embedding tables
    ``source_embedding`` and ``target_embedding`` (built when ``self.adaptive``), with its direction.

    ``adaptive_adjacency()`` is the matrix ``A_adp = softmax(ReLU(E1 E2^T))`` (rows sum to 1);
    ``adaptive_support()`` the operator as applied, ``A_adp^T`` (``out = A_adp^T @ x``: node ``m``
    aggregates ``sum_n A_adp[n, m] x[n]``), as the official Graph WaveNet code applies it (einsum
    ``'ncvl,vw->ncwl'``), so a graph handed from teacher to student acts the same in both.
    """

    adaptive: bool
    source_embedding: nn.Parameter
    target_embedding: nn.Parameter

    def init_adaptive(self, num_nodes: int, embed_dim: int) -> None:
        """Create the two ``(N, embed_dim)`` embedding tables (standard normal, as the official code); refused
        above :data:`~stgkd.nn.base.DENSE_SENSOR_LIMIT` sensors, since every forward forms the ``(N, N)``
        matrix."""
        check_dense_size(num_nodes, where=getattr(self, "registry_name", "") or type(self).__name__)
        self.source_embedding = nn.Parameter(torch.randn(num_nodes, embed_dim))
        self.target_embedding = nn.Parameter(torch.randn(num_nodes, embed_dim))

    def adaptive_adjacency(self) -> Tensor:
        """The learned adjacency ``softmax(ReLU(E1 E2^T))`` (rows sum to 1).

        Shapes:
            output ``(N, N)``
        """
        if not self.adaptive:
            name = getattr(self, "registry_name", "") or type(self).__name__
            raise ConfigError(f"{name}: adaptive_adjacency() needs adaptive=True")
        return adaptive_adjacency(self.source_embedding, self.target_embedding)

    def adaptive_support(self) -> Tensor:
        """The adaptive operator as applied, ``A_adp^T``; its columns sum to 1, not its rows.

        Shapes:
            output ``(N, N)``
        """
        return self.adaptive_adjacency().t()
