"""What the peer wrappers share: PGT imported on demand, argument checks, DCRNN's diffusion
normalisation and batching of edge lists."""

from __future__ import annotations

import types

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import dense_to_sparse

from stgkd.compat import import_torch_geometric_temporal
from stgkd.errors import ConfigError
from stgkd.nn.base import as_adjacency

__all__ = ["batch_edges", "check_positive", "diffusion_norms", "graph_tensor", "pgt"]


def pgt() -> types.ModuleType:
    """torch-geometric-temporal, imported when a peer is built (:func:`stgkd.compat.import_torch_geometric_temporal`)."""
    return import_torch_geometric_temporal()


def check_positive(**values: int) -> None:
    """A :class:`ConfigError` naming the first argument below 1."""
    for name, value in values.items():
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")


def graph_tensor(graph: Tensor | np.ndarray | None, num_nodes: int) -> Tensor:
    """``graph`` as a dense ``(N, N)`` adjacency (identity when ``None``); a bad one is a :class:`ConfigError`."""
    try:
        return as_adjacency(graph, num_nodes)
    except ValueError as exc:
        raise ConfigError(f"graph: {exc}") from None


def diffusion_norms(adj: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Edge lists and per-edge weights of DCRNN's two random-walk diffusions.

    For ``W = adj`` the forward transition is ``P_f = D_O^{-1} W`` and the backward one
    ``P_b = D_I^{-1} W^T``; the reference implementation diffuses with their transposes,
    ``x' = P_f^T x`` and ``x' = P_b^T x = W D_I^{-1} x``. As PyG messages (``source -> target``,
    ``out[target] += norm * x[source]``) that is edge ``i -> j`` with ``norm = W_ij / d_out(i)``, and
    the reversed edge ``j -> i`` with ``norm = W_ij / d_in(j)``.

    Args:
        adj: dense ``(N, N)`` non-negative adjacency.

    Returns:
        ``(edge_index, norm_out, reverse_edge_index, norm_in)``, edge indices ``(2, E)``, norms ``(E,)``.
    """
    edge_index, weight = dense_to_sparse(adj)
    d_out = adj.sum(dim=1)
    d_in = adj.sum(dim=0)
    norm_out = weight / d_out[edge_index[0]]
    norm_in = weight / d_in[edge_index[1]]
    return edge_index, norm_out, edge_index.flip(0), norm_in


def batch_edges(edge_index: Tensor, batch: int, num_nodes: int) -> Tensor:
    """``(2, E)`` edges of one graph → ``(2, B*E)`` edges of ``B`` disjoint copies (node ``b*N + i``)."""
    offsets = torch.arange(batch, device=edge_index.device).mul_(num_nodes).view(1, batch, 1)
    return (edge_index.unsqueeze(1) + offsets).reshape(2, -1)

