"""Sparse graph operators held as edge lists, cost linear in sensors + edges: an adjacency's edges
(:func:`graph_edges`), the diffusion supports as edges (:func:`transition_edges`), message passing
(:func:`propagate`) and the module that holds one support (:class:`EdgePropagation`).

Same convention as :mod:`stgkd.nn.layers.supports`: an edge ``source -> target`` of weight ``w`` is the
support entry ``S[target, source] = w``, applied as ``out = S @ x`` (node-major).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError

__all__ = ["EdgePropagation", "graph_edges", "propagate", "transition_edges"]


def graph_edges(graph: Tensor, num_nodes: int, *, where: str = "graph", chunk_rows: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The non-zero entries of an adjacency as an edge list ``(source, target, weight)``: ``graph[i, j]``
    is the edge ``i -> j``.

    ``graph`` is a dense ``(N, N)`` tensor or array (scanned ``chunk_rows`` rows at a time, so no ``(N, N)``
    temporary is made) or a sparse COO/CSR tensor (never densified).

    Shapes:
        graph ``(N, N)`` -> source ``(E,)`` long, target ``(E,)`` long, weight ``(E,)`` float32

    Raises:
        ConfigError: not ``(N, N)``, or a negative or non-finite weight (naming ``where``).
    """
    if isinstance(graph, Tensor) and graph.layout != torch.strided:
        if tuple(graph.shape) != (num_nodes, num_nodes):
            raise ConfigError(f"{where}: must be ({num_nodes}, {num_nodes}), got {tuple(graph.shape)}")
        coo = graph.to_sparse_coo().coalesce()
        src, dst = coo.indices()
        weight = coo.values().float()
        keep = weight != 0
        src, dst, weight = src[keep], dst[keep], weight[keep]
    else:
        dense = torch.as_tensor(graph)
        if dense.dim() != 2 or tuple(dense.shape) != (num_nodes, num_nodes):
            raise ConfigError(f"{where}: must be ({num_nodes}, {num_nodes}), got {tuple(dense.shape)}")
        rows = chunk_rows or max(1, 2**20 // max(1, num_nodes))
        parts = []
        for begin in range(0, num_nodes, rows):
            block = dense[begin : begin + rows]
            i, j = block.nonzero(as_tuple=True)
            parts.append((i + begin, j, block[i, j].float()))
        src = torch.cat([p[0] for p in parts]).long()
        dst = torch.cat([p[1] for p in parts]).long()
        weight = torch.cat([p[2] for p in parts])
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise ConfigError(f"{where}: edge weights must be finite and non-negative")
    return src.cpu(), dst.cpu(), weight.cpu()


def transition_edges(source: Tensor, target: Tensor, weight: Tensor, num_nodes: int) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
    """The diffusion supports of :func:`~stgkd.nn.layers.supports.diffusion_supports`, ``P_f^T`` and
    ``P_b^T``, as edge lists for :func:`propagate`, in ``O(E)``: forward messages ``i -> j`` weighted
    ``A[i, j] / d_out(i)``, backward messages ``j -> i`` weighted ``A[i, j] / d_in(j)``.

    A sensor with no out-edges (in-edges) sends no forward (backward) message: its row of the
    transition matrix is zero, as :func:`stgkd.data.graph.random_walk` leaves it, and no degree is
    divided by zero. An isolated sensor thus receives nothing over the road graph.

    Shapes:
        source, target, weight ``(E,)`` -> two ``(source, target, weight)`` triples of ``(E,)``
    """
    d_out = torch.zeros(num_nodes, dtype=weight.dtype).index_add_(0, source, weight)
    d_in = torch.zeros(num_nodes, dtype=weight.dtype).index_add_(0, target, weight)
    forward = (source, target, weight / d_out[source])
    backward = (target, source, weight / d_in[target])
    return forward, backward


def propagate(x: Tensor, source: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Messages along edges, summed at their targets: ``out[m] = sum_{e: target_e = m} weight_e x[source_e]``,
    i.e. ``S @ x`` for the support ``S[target_e, source_e] = weight_e``, in ``O(E * F)`` (node-major).

    Shapes:
        x ``(N, ...)``, source, target, weight ``(E,)`` -> ``(N, ...)``
    """
    flat = x.reshape(x.shape[0], -1)
    messages = flat.index_select(0, source) * weight.to(flat.dtype)[:, None]
    # scatter_add_, not index_add_: the ONNX exporter writes index_add_ as a ScatterND that keeps one of
    # several edges into the same sensor, so an exported stgru would lose messages
    index = target[:, None].expand_as(messages)
    return torch.zeros_like(flat).scatter_add_(0, index, messages).reshape(x.shape)


class EdgePropagation(nn.Module):
    """One sparse support held as an edge list, applied with :func:`propagate` (``out = S @ x``, node-major).

    The FLOP counter cannot see gathers and scatters; :meth:`extra_flops` declares ``2 E F`` per call (a
    multiply by the edge weight and an add per edge and channel), as :mod:`stgkd.nn.flops` counts PyG's
    message passing.

    Args:
        source, target, weight: the ``(E,)`` edges (kept as non-persistent buffers: rebuilt from the graph).
    """

    def __init__(self, source: Tensor, target: Tensor, weight: Tensor) -> None:
        super().__init__()
        self.register_buffer("source", source.long(), persistent=False)
        self.register_buffer("target", target.long(), persistent=False)
        self.register_buffer("weight", weight.float(), persistent=False)

    @property
    def num_edges(self) -> int:
        return int(self.source.numel())

    def forward(self, x: Tensor) -> Tensor:
        """Aggregate along the edges.

        Shapes:
            x ``(N, ...)`` -> ``(N, ...)``
        """
        return propagate(x, self.source, self.target, self.weight)

    def extra_flops(self, args: tuple, output: Tensor) -> int:
        return 2 * self.num_edges * (output.numel() // max(1, output.shape[0]))
