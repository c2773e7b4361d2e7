"""Dense graph supports: the normalisations our models apply as ``S @ x`` over the node axis, and their
edge lists for PyG message passing.

Graph convention (as :class:`~stgkd.data.TrafficData`): ``adj[i, j]`` is the weight of the edge
``i -> j`` (row = source, column = target). Every operator below is returned as a *support*
``S`` of shape ``(N, N)`` that is applied as ``out = S @ x`` over the node axis, i.e.
``out[m] = sum_n S[m, n] x[n]``: row ``m`` of a support lists what node ``m`` aggregates.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stgkd.data.graph import sym_norm_adj, to_edge_index, transition_matrices
from stgkd.errors import ConfigError

__all__ = ["apply_support", "batch_edges", "dense_to_edges", "diffusion_supports", "gcn_support"]


def _as_tensor(adj: Tensor, where: str) -> Tensor:
    adj = torch.as_tensor(adj, dtype=torch.float32)
    if adj.dim() != 2 or adj.shape[0] != adj.shape[1]:
        raise ConfigError(f"{where}: adjacency must be a square (N, N) matrix, got shape {tuple(adj.shape)}")
    return adj


def diffusion_supports(adj: Tensor) -> tuple[Tensor, Tensor]:
    """Forward and backward diffusion supports of DCRNN / Graph WaveNet.

    With ``(P_f, P_b) = (D_O^-1 A, D_I^-1 A^T)`` (:func:`stgkd.data.graph.transition_matrices`)
    the supports are ``(P_f^T, P_b^T)``: node ``m`` receives ``sum_n P_f[n, m] x[n]``, the signal
    diffused one step forward along the edges (and backward for ``P_b``). This is what the official
    Graph WaveNet code computes with ``einsum('ncvl,vw->ncwl', x, P)``.

    Shapes:
        adj ``(N, N)`` -> two ``(N, N)``
    """
    forward, backward = transition_matrices(_as_tensor(adj, "diffusion_supports"))
    return forward.t().contiguous(), backward.t().contiguous()


def gcn_support(adj: Tensor, *, add_self_loops: bool = True) -> Tensor:
    """GCN operator ``D^-1/2 (A^T + I) D^-1/2`` with ``D`` the in-degree (+1), applied as ``S @ x``.

    This is exactly what PyG's ``GCNConv`` (``gcn_norm``, flow source -> target) computes for the
    edge list of ``adj``, i.e. :func:`stgkd.data.graph.sym_norm_adj` of ``A^T``; for a symmetric
    ``adj`` it is the familiar ``D^-1/2 (A + I) D^-1/2``.

    Shapes:
        adj ``(N, N)`` -> ``(N, N)``
    """
    return sym_norm_adj(_as_tensor(adj, "gcn_support").t().contiguous(), add_self_loops=add_self_loops)


def dense_to_edges(support: Tensor) -> tuple[Tensor, Tensor]:
    """Edge list of a support for PyG message passing (flow source -> target).

    ``out = support @ x`` becomes messages ``n -> m`` with weight ``support[m, n]``, i.e. the
    :func:`stgkd.data.graph.to_edge_index` of ``support^T``.

    Shapes:
        support ``(N, N)`` -> edge_index ``(2, E)`` long, edge_weight ``(E,)``
    """
    return to_edge_index(_as_tensor(support, "dense_to_edges").t())


def batch_edges(edge_index: Tensor, edge_weight: Tensor, num_nodes: int, batch_size: int) -> tuple[Tensor, Tensor]:
    """Repeat one graph's edges for ``batch_size`` disjoint copies (node ids offset by ``b * N``).

    Shapes:
        edge_index ``(2, E)``, edge_weight ``(E,)`` -> ``(2, B * E)``, ``(B * E,)``
    """
    offsets = torch.arange(batch_size, device=edge_index.device) * num_nodes
    batched = (edge_index[:, None, :] + offsets[None, :, None]).reshape(2, -1)
    return batched, edge_weight.repeat(batch_size)


def apply_support(support: Tensor, x: Tensor) -> Tensor:
    """``support @ x`` over the node axis (the second-to-last axis of ``x``), batched over the rest.

    Shapes:
        support ``(N, N)``, x ``(..., N, C)`` -> ``(..., N, C)``
    """
    return torch.einsum("mn,...nc->...mc", support, x)
