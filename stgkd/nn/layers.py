"""Building blocks shared by our models: graph operators (pure functions) and the modules that use them.

Graph convention (as :class:`~stgkd.data.TrafficData`): ``adj[i, j]`` is the weight of the edge
``i -> j`` (row = source, column = target). Every operator below is returned as a *support*
``S`` of shape ``(N, N)`` that is applied as ``out = S @ x`` over the node axis, i.e.
``out[m] = sum_n S[m, n] x[n]``: row ``m`` of a support lists what node ``m`` aggregates.

Tensor layouts are channels-last throughout: ``(B, T, N, C)`` sequences, ``(B, N, C)`` node states.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stgkd.data.graph import sym_norm_adj, to_edge_index, transition_matrices
from stgkd.errors import ConfigError

__all__ = [
    "diffusion_supports",
    "gcn_support",
    "adaptive_adjacency",
    "dense_to_edges",
    "batch_edges",
    "apply_support",
    "AdaptiveAdjacency",
    "DiffusionGraphConv",
    "DenseGraphConv",
    "GatedTemporalConv",
    "ChannelBatchNorm",
]


# --------------------------------------------------------------------------------------------
# Pure functions: graph normalisations
# --------------------------------------------------------------------------------------------


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


def adaptive_adjacency(source: Tensor, target: Tensor) -> Tensor:
    """Graph WaveNet's self-adaptive adjacency ``softmax(ReLU(E1 E2^T))`` (row-wise softmax).

    Shapes:
        source ``(N, D)``, target ``(N, D)`` -> ``(N, N)``
    """
    return torch.softmax(F.relu(source @ target.t()), dim=1)


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


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class DiffusionGraphConv(nn.Module):
    r"""Diffusion graph convolution (Li et al., ICLR 2018; as used in Graph WaveNet).

    .. math::
        Z = \Big[X \,\|\, S_1 X \,\|\, S_1^2 X \,\|\dots\|\, S_1^K X \,\|\, S_2 X \,\|\dots\|\, S_M^K X\Big] W + b

    i.e. ``Z = X W_0 + sum_s sum_k S_s^k X W_{s,k} + b``, followed by dropout.

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels.
        num_supports: number of supports ``M`` passed to :meth:`forward`.
        order: diffusion steps ``K`` per support (default: 2).
        dropout: dropout on the output (default: 0.0).
    """

    def __init__(self, in_channels: int, out_channels: int, num_supports: int, *, order: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if num_supports < 1 or order < 1:
            raise ConfigError(f"DiffusionGraphConv: num_supports and order must be >= 1, got {num_supports}, {order}")
        self.num_supports = num_supports
        self.order = order
        self.dropout = dropout
        self.mlp = nn.Linear((order * num_supports + 1) * in_channels, out_channels)

    def forward(self, x: Tensor, supports: list[Tensor]) -> Tensor:
        """Diffuse ``x`` over every support for ``order`` hops and mix the results.

        Shapes:
            x ``(..., N, C_in)`` (e.g. ``(B, T, N, C_in)``), supports ``M`` x ``(N, N)``
            -> ``(..., N, C_out)``
        """
        if len(supports) != self.num_supports:
            raise ConfigError(f"DiffusionGraphConv: expected {self.num_supports} supports, got {len(supports)}")
        out = [x]
        for support in supports:
            h = x
            for _ in range(self.order):
                h = apply_support(support, h)
                out.append(h)
        h = self.mlp(torch.cat(out, dim=-1))
        return F.dropout(h, self.dropout, training=self.training)


class DenseGraphConv(nn.Module):
    r"""Graph convolution with precomputed dense supports: ``Z = sum_s S_s X W_s + b``.

    With one support ``S = D^-1/2 (A^T + I) D^-1/2`` this is GCN (Kipf & Welling, ICLR 2017).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        num_supports: number of supports passed to :meth:`forward` (default: 1).
        bias: learn an additive bias (default: True).
    """

    def __init__(self, in_channels: int, out_channels: int, num_supports: int = 1, *, bias: bool = True) -> None:
        super().__init__()
        if num_supports < 1:
            raise ConfigError(f"DenseGraphConv: num_supports must be >= 1, got {num_supports}")
        self.num_supports = num_supports
        self.lin = nn.Linear(num_supports * in_channels, out_channels, bias=bias)

    def forward(self, x: Tensor, supports: list[Tensor]) -> Tensor:
        """Aggregate with every support, then one linear map over the concatenation.

        Shapes:
            x ``(..., N, C_in)``, supports ``num_supports`` x ``(N, N)`` -> ``(..., N, C_out)``
        """
        if len(supports) != self.num_supports:
            raise ConfigError(f"DenseGraphConv: expected {self.num_supports} supports, got {len(supports)}")
        if self.num_supports == 1:
            return self.lin(apply_support(supports[0], x))
        return self.lin(torch.cat([apply_support(s, x) for s in supports], dim=-1))


class GatedTemporalConv(nn.Module):
    r"""Gated dilated causal temporal convolution (WaveNet; Graph WaveNet's TCN).

    .. math::
        h_t = \tanh(W_f [x_{t-d} \| x_t] + b_f) \odot \sigma(W_g [x_{t-d} \| x_t] + b_g)

    Equal to a pair of ``Conv2d(kernel_size=(1, 2), dilation=d)`` (filter and gate) in
    channels-first layout, computed channels-last as one matmul. The output is ``(kernel - 1) * d``
    steps shorter than the input (no padding: causal, "valid").

    Args:
        in_channels: input channels.
        out_channels: output channels of the filter and of the gate.
        dilation: dilation ``d`` (default: 1).
        kernel_size: taps (default: 2).
    """

    def __init__(self, in_channels: int, out_channels: int, *, dilation: int = 1, kernel_size: int = 2) -> None:
        super().__init__()
        if dilation < 1 or kernel_size < 1:
            raise ConfigError(f"GatedTemporalConv: dilation and kernel_size must be >= 1, got {dilation}, {kernel_size}")
        self.dilation = dilation
        self.kernel_size = kernel_size
        self.out_channels = out_channels
        self.lin = nn.Linear(kernel_size * in_channels, 2 * out_channels)

    @property
    def shrink(self) -> int:
        """Steps the output loses relative to the input."""
        return (self.kernel_size - 1) * self.dilation

    def forward(self, x: Tensor) -> Tensor:
        """Gated causal convolution along the time axis.

        Shapes:
            x ``(B, T, N, C_in)`` -> ``(B, T - (kernel_size - 1) * dilation, N, C_out)``
        """
        steps = x.shape[1] - self.shrink
        if steps < 1:
            raise ConfigError(f"GatedTemporalConv: input has {x.shape[1]} steps, needs more than {self.shrink}")
        taps = [x[:, k * self.dilation : k * self.dilation + steps] for k in range(self.kernel_size)]
        filt, gate = self.lin(torch.cat(taps, dim=-1)).chunk(2, dim=-1)
        return torch.tanh(filt) * torch.sigmoid(gate)


class ChannelBatchNorm(nn.BatchNorm1d):
    """Batch norm over the last (channel) axis, statistics over all other axes.

    Same parameters and statistics as ``BatchNorm2d`` on the channels-first layout.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Normalise every channel.

        Shapes:
            x ``(..., C)`` -> ``(..., C)``
        """
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


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
        """Create the two ``(N, embed_dim)`` embedding tables (standard normal, as the official code)."""
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

