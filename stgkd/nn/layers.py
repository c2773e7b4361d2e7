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
from stgkd.nn.base import DENSE_SENSOR_LIMIT, check_dense_size

__all__ = [
    "diffusion_supports",
    "gcn_support",
    "adaptive_adjacency",
    "dense_to_edges",
    "batch_edges",
    "apply_support",
    "graph_edges",
    "transition_edges",
    "propagate",
    "lowrank_adjacency",
    "apply_lowrank_adjacency",
    "factorise_adjacency",
    "gru_final_state",
    "GRU_CPU_CHUNK",
    "EdgePropagation",
    "AdaptiveAdjacency",
    "LowRankAdjacency",
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
# Pure functions: sparse and low-rank operators (cost linear in sensors + edges)
# --------------------------------------------------------------------------------------------


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
    """The diffusion supports of :func:`diffusion_supports`, ``P_f^T`` and ``P_b^T``, as edge lists for
    :func:`propagate`, in ``O(E)``: forward messages ``i -> j`` weighted ``A[i, j] / d_out(i)``,
    backward messages ``j -> i`` weighted ``A[i, j] / d_in(j)``.

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


def lowrank_adjacency(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    r"""The factors of a row-stochastic rank-``r`` adjacency ``A = \Theta B^\top``:
    ``\Theta = \mathrm{softmax}_r(E_1)`` (each sensor's mixture over ``r`` communities, rows sum to 1) and
    ``B = \mathrm{softmax}_N(E_2)`` (each community's distribution over target sensors, columns sum to 1),
    so ``A[n, m] = \sum_k \Theta[n, k] B[m, k]`` is a softmax-normalised positive kernel whose rows sum
    to 1 by construction, with no ``N x N`` normaliser to compute.

    Shapes:
        source ``(N, r)``, target ``(N, r)`` -> ``(N, r)``, ``(N, r)``
    """
    return torch.softmax(source, dim=1), torch.softmax(target, dim=0)


def apply_lowrank_adjacency(theta: Tensor, beta: Tensor, x: Tensor) -> Tensor:
    r"""``A^\top x`` for ``A = \Theta B^\top`` (node ``m`` aggregates ``\sum_n A[n, m] x[n]``, the direction
    Graph WaveNet applies its adaptive adjacency in) as ``B (\Theta^\top x)``: ``O(N r F)``, never ``N x N``.

    Shapes:
        theta, beta ``(N, r)``, x ``(N, ...)`` node-major -> ``(N, ...)``
    """
    flat = x.reshape(x.shape[0], -1)
    return (beta @ (theta.t() @ flat)).reshape(x.shape)


#: sequences per call of a CPU GRU in training (:func:`gru_final_state`). PyTorch's CPU GRU forward and
#: backward over one batch of many sequences slows down as the batch grows past the caches: at 12 steps,
#: 2 inputs, 32 hidden, one thread, 31 us per sequence at 13,248 sequences (207 sensors x 64 windows) and
#: 37 at 68,800 (8,600 x 8), against 16 and 14 in chunks of 2,048 (1,024: 14 and 13; 8,192: 22 and 19);
#: ``python -m benchmarks.gru_chunk``, ``benchmarks/results/gru-chunk-cpu-2026-12-04.md``.
GRU_CPU_CHUNK = 2048


def gru_final_state(gru: nn.GRU, seqs: Tensor, chunk: int = GRU_CPU_CHUNK) -> Tensor:
    """The last layer's final hidden state of a ``batch_first`` GRU over independent sequences. In training
    on the CPU, more than ``chunk`` sequences run ``chunk`` at a time (the same result: the sequences never
    interact), which keeps the cost per sequence flat as the network grows (:data:`GRU_CPU_CHUNK`).
    Elsewhere (eval mode, as exported; CUDA) one call.

    Shapes:
        seqs ``(S, T, C)`` -> ``(S, hidden)``
    """
    if gru.training and seqs.device.type == "cpu" and seqs.shape[0] > chunk:
        return torch.cat([gru(part)[1][-1] for part in seqs.split(chunk)])
    return gru(seqs)[1][-1]


def factorise_adjacency(adj: Tensor, rank: int, *, iters: int = 300, seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""Fit ``A \approx \Theta B^\top`` (:func:`lowrank_adjacency`'s form) to a row-stochastic ``adj`` by
    probabilistic latent semantic analysis (Hofmann, 1999): the EM updates of KL-divergence NMF with
    ``\Theta`` row-stochastic and ``B`` column-stochastic, from a seeded positive start. Exact at
    ``rank = N`` in the limit; below, the best approximation this family admits in KL.
    Costs ``O(N^2 r)`` per iteration, once, where a teacher's dense ``(N, N)`` adjacency is handed over.

    Shapes:
        adj ``(N, N)`` -> theta ``(N, r)``, beta ``(N, r)`` (float64)
    """
    a = adj.detach().double().cpu()
    n = a.shape[0]
    if not 1 <= rank <= n:
        raise ConfigError(f"factorise_adjacency: rank must be in 1..{n} (the number of sensors), got {rank}")
    a = a / a.sum(1, keepdim=True).clamp_min(1e-300)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, rank, generator=gen, dtype=torch.float64) + 0.5
    theta /= theta.sum(1, keepdim=True)
    beta = torch.rand(n, rank, generator=gen, dtype=torch.float64) + 0.5
    beta /= beta.sum(0, keepdim=True)
    for _ in range(iters):
        ratio = a / (theta @ beta.t()).clamp_min(1e-300)
        theta, beta = theta * (ratio @ beta), beta * (ratio.t() @ theta)
        theta /= theta.sum(1, keepdim=True).clamp_min(1e-300)
        beta /= beta.sum(0, keepdim=True).clamp_min(1e-300)
    return theta, beta


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


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



class LowRankAdjacency:
    r"""Mixin: a learned adaptive adjacency of rank ``r`` applied in ``O(N r d)`` (:func:`lowrank_adjacency`,
    :func:`apply_lowrank_adjacency`), for a model with ``self.adaptive``; the tables ``source_factors`` and
    ``target_factors`` ``(N, r)`` are built by :meth:`init_lowrank`.

    Same direction as :class:`AdaptiveAdjacency`: ``adaptive_support()`` is ``A^\top`` (node ``m`` aggregates
    ``\sum_n A[n, m] x[n]``), so a teacher's graph handed over with :meth:`load_adjacency` acts the same.
    """

    adaptive: bool
    source_factors: nn.Parameter
    target_factors: nn.Parameter

    def init_lowrank(self, num_nodes: int, rank: int) -> None:
        """Create the two ``(N, rank)`` factor tables (standard normal)."""
        if not 1 <= rank <= num_nodes:
            name = getattr(self, "registry_name", "") or type(self).__name__
            raise ConfigError(f"{name}: rank must be in 1..{num_nodes} (the number of sensors), got {rank}")
        self.source_factors = nn.Parameter(torch.randn(num_nodes, rank))
        self.target_factors = nn.Parameter(torch.randn(num_nodes, rank))

    def adaptive_factors(self) -> tuple[Tensor, Tensor]:
        """``(Theta, B)`` with ``A = Theta B^T`` (:func:`lowrank_adjacency`).

        Shapes:
            output two ``(N, r)``
        """
        return lowrank_adjacency(self.source_factors, self.target_factors)

    def apply_adaptive(self, x: Tensor) -> Tensor:
        """``A^T x`` without forming ``A``.

        Shapes:
            x ``(N, ...)`` node-major -> ``(N, ...)``
        """
        theta, beta = self.adaptive_factors()
        return apply_lowrank_adjacency(theta, beta, x)

    #: most sensors :meth:`adaptive_adjacency` forms a dense matrix for
    dense_limit: int = DENSE_SENSOR_LIMIT

    def adaptive_adjacency(self) -> Tensor:
        """The learned adjacency as a dense ``(N, N)`` matrix (rows sum to 1): for inspection, tests and
        relation distillation; the forward pass never forms it.

        Raises:
            ConfigError: more than :attr:`dense_limit` sensors (use :meth:`adaptive_factors`).

        Shapes:
            output ``(N, N)``
        """
        name = getattr(self, "registry_name", "") or type(self).__name__
        if not self.adaptive:
            raise ConfigError(f"{name}: adaptive_adjacency() needs adaptive=True")
        n = self.source_factors.shape[0]
        if n > self.dense_limit:
            raise ConfigError(f"{name}: adaptive_adjacency() would form a dense {n} x {n} matrix "
                              f"({n * n * 4 / 2**30:.1f} GiB), above dense_limit={self.dense_limit} sensors; "
                              "the factors (adaptive_factors()) apply it in O(N r d)")
        theta, beta = self.adaptive_factors()
        return theta @ beta.t()

    def adaptive_support(self) -> Tensor:
        """``A^T`` as a dense ``(N, N)`` matrix (see :meth:`adaptive_adjacency`).

        Shapes:
            output ``(N, N)``
        """
        return self.adaptive_adjacency().t()

    @torch.no_grad()
    def load_adjacency(self, adj: Tensor, *, iters: int = 300) -> float:
        """Hand over a row-stochastic adjacency (e.g. a teacher's ``softmax(ReLU(E1 E2^T))``): fit the factors
        to it with :func:`factorise_adjacency` and return the relative error of the applied operator on
        a standard-normal node signal, ``||A_s^T x - A^T x|| / ||A^T x||``.

        Shapes:
            adj ``(N, N)``
        """
        rank = self.source_factors.shape[1]
        theta, beta = factorise_adjacency(adj, rank, iters=iters)
        tiny = torch.finfo(torch.float32).tiny
        self.source_factors.copy_(theta.clamp_min(tiny).log())
        self.target_factors.copy_(beta.clamp_min(tiny).log())
        signal = torch.randn(adj.shape[0], 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        ref = adj.detach().double().cpu().t() @ signal
        got = apply_lowrank_adjacency(*(f.double().cpu() for f in self.adaptive_factors()), signal)
        return float((got - ref).norm() / ref.norm().clamp_min(1e-300))
