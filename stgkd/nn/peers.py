"""Peer teachers: published spatio-temporal models built from PyTorch Geometric Temporal layers.

Each class wraps PGT 0.56.2 layers (imported through :func:`stgkd.compat.import_torch_geometric_temporal`,
never copied) behind the common :class:`~stgkd.nn.base.ForecastModel` interface: input
``(B, T_in, N, C)``, forecast ``(B, T_out, N)``, features ``(B, N, D)`` / ``(B, T, N, D)``.

PGT's layers do not share one layout, so each wrapper converts explicitly, and
``tests/nn/test_peers.py`` checks every conversion against a direct call of the PGT layer:

=============  ==========================================  ==========================================
wrapper        PGT layer and its native layout              what the wrapper does
=============  ==========================================  ==========================================
``dcrnn``      ``BatchedDCRNN`` cell, ``(B*N, F)`` per step  batch as node offsets ``b*N + i``; one
               (its own ``forward`` takes ``(B, T, N, F)``   step at a time (the decoder needs the
               but only runs from a zero state)              encoder state); diffusion weights fixed,
                                                            see :class:`DCRNN`
``stgcn``      ``STConv`` ``(B, T, N, C)``; its forward     same sub-layers, ChebConv applied once to
               loops over every ``(b, t)`` in Python        ``(B*T', N, C)`` (PyG ``node_dim=-2``)
``agcrn``      ``AGCRN`` cell ``(B, N, F)`` per step         used as is
``mtgnn``      ``MTGNN`` ``(B, C, N, T)`` → ``(B, T_out, N, 1)``  permutes in and out
=============  ==========================================  ==========================================

``pgt-tgcn``, ``pgt-a3tgcn`` and ``pgt-gconvgru`` (:class:`PGTRecurrent`) are PGT's own recurrent cells
(``TGCN2``, ``A3TGCN2``, ``GConvGRU``) wrapped as PGT's METR-LA example uses them, the benchmarks' peers:
the cell reads the input steps and a linear layer maps its last hidden state to every horizon.

The classes are registered at import even where PGT is missing; building one then raises
:class:`stgkd.compat.MissingDependencyError` with the install command.
"""

from __future__ import annotations

import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import dense_to_sparse

from stgkd.compat import import_torch_geometric_temporal
from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel, as_adjacency
from stgkd.nn.registry import register_model

__all__ = ["DCRNN", "STGCN", "AGCRN", "MTGNN", "PGTRecurrent", "PGTTGCN", "PGTA3TGCN", "PGTGConvGRU", "diffusion_norms"]


def _pgt() -> types.ModuleType:
    return import_torch_geometric_temporal()


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")


def _graph_tensor(graph: Tensor | np.ndarray | None, num_nodes: int) -> Tensor:
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


def _batch_edges(edge_index: Tensor, batch: int, num_nodes: int) -> Tensor:
    """``(2, E)`` edges of one graph → ``(2, B*E)`` edges of ``B`` disjoint copies (node ``b*N + i``)."""
    offsets = torch.arange(batch, device=edge_index.device).mul_(num_nodes).view(1, batch, 1)
    return (edge_index.unsqueeze(1) + offsets).reshape(2, -1)


@register_model("dcrnn")
class DCRNN(ForecastModel):
    r"""DCRNN, the diffusion-convolutional recurrent network of Li et al., "Diffusion Convolutional
    Recurrent Neural Network: Data-Driven Traffic Forecasting" (ICLR 2018), built from PGT's
    ``BatchedDCRNN`` cells (diffusion-convolutional GRUs).

    Diffusion convolution over ``K`` steps in both directions,

    .. math::
        X \star_G f_\theta = \sum_{k=0}^{K} \big(\theta_{k,1} (P_f^\top)^k + \theta_{k,2} (P_b^\top)^k\big) X,
        \quad P_f = D_O^{-1} W,\ P_b = D_I^{-1} W^\top,

    replaces the matrix products of a GRU; an encoder of ``layers`` cells reads the ``T_in`` inputs,
    a decoder of ``layers`` cells, started from the encoder state and a zero "GO" input, emits
    ``T_out`` steps, feeding each prediction back as the next input. Scheduled sampling (feeding
    ground truth during training) is not used: the decoder always sees its own predictions, as at
    test time. The powers follow PGT's (and the reference code's) Chebyshev-like recursion
    ``T_k = 2 P^T T_{k-1} - T_{k-2}``.

    PGT's ``BatchedDConv`` ignores edge weights in its messages (they enter only the degrees) and
    indexes the backward norms by the wrong endpoint; this wrapper supplies the correct per-edge
    norms (:func:`diffusion_norms`) through the layer's cache (``_cached_norm_out``,
    ``_cached_norm_in``, ``_cached_reverse_edge_index``, used with ``cached_idx=True``), so the
    weighted graph is honoured. On an unweighted regular graph both agree (tested).

    Args:
        num_nodes: number of sensors ``N``.
        graph: dense ``(N, N)`` weighted adjacency ``W`` (default: identity).
        in_steps: input steps ``T_in`` (default: 12).
        out_steps: forecast steps ``T_out`` (default: 12).
        in_channels: input channels ``C`` (default: 2).
        hidden: GRU state width (default: 64).
        layers: stacked cells in encoder and in decoder (default: 2).
        diffusion_steps: maximum diffusion hops ``K`` (default: 2; PGT's filter size is ``K + 1``).
    """

    role = "teacher"
    feature_names = ("encoder", "decoder")
    distill_feature = "encoder"
    uses_graph = True

    def __init__(
        self,
        *,
        num_nodes: int,
        graph: Tensor | np.ndarray | None = None,
        in_steps: int = 12,
        out_steps: int = 12,
        in_channels: int = 2,
        hidden: int = 64,
        layers: int = 2,
        diffusion_steps: int = 2,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            hidden=hidden,
            layers=layers,
            diffusion_steps=diffusion_steps,
        )
        _positive(hidden=hidden, layers=layers, diffusion_steps=diffusion_steps)
        cell = _pgt().nn.recurrent.BatchedDCRNN
        k = diffusion_steps + 1
        self.hidden = hidden
        self.encoder = nn.ModuleList(
            cell(in_channels if i == 0 else hidden, hidden, k) for i in range(layers)
        )
        self.decoder = nn.ModuleList(cell(1 if i == 0 else hidden, hidden, k) for i in range(layers))
        self.project = nn.Linear(hidden, 1)
        edge_index, norm_out, reverse_index, norm_in = diffusion_norms(_graph_tensor(graph, num_nodes))
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("reverse_edge_index", reverse_index, persistent=False)
        self.register_buffer("norm_out", norm_out, persistent=False)
        self.register_buffer("norm_in", norm_in, persistent=False)

    def _prime(self, batch: int) -> Tensor:
        """Load the ``batch``-copy graph's norms into every PGT ``BatchedDConv`` and return its edges."""
        n = self.num_nodes
        edge_index = _batch_edges(self.edge_index, batch, n)
        reverse = _batch_edges(self.reverse_edge_index, batch, n)
        norm_out = self.norm_out.repeat(batch)
        norm_in = self.norm_in.repeat(batch)
        for cell in (*self.encoder, *self.decoder):
            for conv in (cell.conv_x_z, cell.conv_x_r, cell.conv_x_h):
                conv._cached_norm_out = norm_out
                conv._cached_norm_in = norm_in
                conv._cached_reverse_edge_index = reverse
        return edge_index

    @staticmethod
    def _step(cell: nn.Module, x: Tensor, h: Tensor, edge_index: Tensor) -> Tensor:
        # One step of PGT's BatchedDCRNN.forward loop body, from a given state.
        z = cell._calculate_update_gate(x, edge_index, None, h, True)
        r = cell._calculate_reset_gate(x, edge_index, None, h, True)
        h_tilde = cell._calculate_candidate_state(x, edge_index, None, h, r, True)
        return cell._calculate_hidden_state(z, h, h_tilde)

    def forward(self, x: Tensor, return_features: bool = False):
        """Encode ``T_in`` steps, decode ``T_out`` steps.

        Shapes:
            - x: ``(B, T_in, N, C)``
            - output: ``(B, T_out, N)``
            - features (``return_features=True``): ``encoder`` ``(B, N, hidden)`` (last encoder
              layer's final state), ``decoder`` ``(B, T_out, N, hidden)`` (last decoder layer's states).
        """
        self._check_input(x)
        b, _, n, c = x.shape
        edge_index = self._prime(b)
        states = [x.new_zeros(b * n, self.hidden) for _ in self.encoder]
        for t in range(self.in_steps):
            inp = x[:, t].reshape(b * n, c)
            for i, cell in enumerate(self.encoder):
                states[i] = inp = self._step(cell, inp, states[i], edge_index)
        encoder_state = states[-1]
        prev = x.new_zeros(b * n, 1)
        outputs, decoder_states = [], []
        for _ in range(self.out_steps):
            inp = prev
            for i, cell in enumerate(self.decoder):
                states[i] = inp = self._step(cell, inp, states[i], edge_index)
            prev = self.project(inp)
            outputs.append(prev)
            decoder_states.append(inp)
        forecast = torch.stack(outputs, dim=1).view(b, n, self.out_steps).transpose(1, 2)
        if not return_features:
            return forecast
        features = {
            "encoder": encoder_state.view(b, n, self.hidden),
            "decoder": torch.stack(decoder_states, dim=1).view(b, n, self.out_steps, self.hidden).transpose(1, 2),
        }
        return forecast, features


@register_model("stgcn")
class STGCN(ForecastModel):
    r"""STGCN of Yu et al., "Spatio-Temporal Graph Convolutional Networks: A Deep Learning Framework
    for Traffic Forecasting" (IJCAI 2018), built from PGT's ``STConv`` blocks.

    Each block is a gated temporal convolution, a Chebyshev graph convolution and a second gated
    temporal convolution ("sandwich"), then batch normalisation over nodes:

    .. math::
        \Gamma *_\tau X = P \odot \sigma(Q) \ (\text{GLU, PGT adds a residual conv and ReLU}),\qquad
        \Theta *_G X = \sum_{k=0}^{K-1} \theta_k T_k(\tilde L) X,\quad
        \tilde L = \tfrac{2}{\lambda_{max}} L - I,\ L = I - D^{-1/2} W D^{-1/2}

    with PyG's default :math:`\lambda_{max} = 2 \max_i L_{ii} = 2` (``STConv`` passes none), so
    :math:`\tilde L = -D^{-1/2} W D^{-1/2}` (self-loops of ``W`` are dropped). ``blocks`` blocks
    shorten the sequence to ``T' = T_in - 2 * blocks * (kernel_size - 1)``; the output layer maps the
    ``(T', hidden)`` features of each node through a linear layer, layer norm and ReLU (the paper's
    output temporal convolution over all ``T'`` steps) and a linear layer to ``T_out`` steps.

    PGT's ``STConv.forward`` calls ChebConv once per ``(batch, time)`` pair in a Python loop; this
    wrapper runs the same sub-layers (``_temporal_conv1``, ``_graph_conv``, ``_temporal_conv2``,
    ``_batch_norm``) with one ChebConv call on ``(B*T', N, hidden)`` (PyG propagates along
    ``node_dim=-2``), which equals ``STConv.forward`` (tested).

    Args:
        num_nodes: number of sensors ``N``.
        graph: dense ``(N, N)`` weighted adjacency (default: identity, i.e. no edges).
        in_steps: input steps (default: 12).
        out_steps: forecast steps (default: 12).
        in_channels: input channels (default: 2).
        hidden: channels of every temporal and graph convolution (default: 64).
        blocks: number of ST-Conv blocks (default: 2).
        kernel_size: temporal kernel size (default: 3).
        cheb_k: Chebyshev filter size ``K`` (default: 3).
    """

    role = "teacher"
    feature_names = ("blocks", "hidden")
    distill_feature = "hidden"
    uses_graph = True

    def __init__(
        self,
        *,
        num_nodes: int,
        graph: Tensor | np.ndarray | None = None,
        in_steps: int = 12,
        out_steps: int = 12,
        in_channels: int = 2,
        hidden: int = 64,
        blocks: int = 2,
        kernel_size: int = 3,
        cheb_k: int = 3,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            hidden=hidden,
            blocks=blocks,
            kernel_size=kernel_size,
            cheb_k=cheb_k,
        )
        _positive(hidden=hidden, blocks=blocks, kernel_size=kernel_size, cheb_k=cheb_k)
        self.time_out = in_steps - 2 * blocks * (kernel_size - 1)
        if self.time_out < 1:
            raise ConfigError(
                f"stgcn: in_steps={in_steps} is too short for {blocks} blocks with kernel_size={kernel_size} "
                f"(each block removes {2 * (kernel_size - 1)} steps)"
            )
        block = _pgt().nn.attention.STConv
        self.hidden = hidden
        self.blocks = nn.ModuleList(
            block(num_nodes, in_channels if i == 0 else hidden, hidden, hidden, kernel_size, cheb_k)
            for i in range(blocks)
        )
        self.output_time = nn.Linear(self.time_out * hidden, hidden)
        self.output_norm = nn.LayerNorm(hidden)
        self.output = nn.Linear(hidden, out_steps)
        edge_index, edge_weight = dense_to_sparse(_graph_tensor(graph, num_nodes))
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_weight", edge_weight, persistent=False)

    @staticmethod
    def block_forward(block: nn.Module, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        """``STConv.forward`` with one batched ChebConv call instead of a loop over ``(b, t)``.

        Shapes:
            - x: ``(B, T, N, C_in)``
            - output: ``(B, T - 2 * (kernel_size - 1), N, C_out)``
        """
        h = block._temporal_conv1(x)
        b, t, n, c = h.shape
        h = block._graph_conv(h.reshape(b * t, n, c), edge_index, edge_weight).view(b, t, n, c)
        h = block._temporal_conv2(F.relu(h))
        return block._batch_norm(h.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: Tensor, return_features: bool = False):
        """Shapes:
            - x: ``(B, T_in, N, C)``
            - output: ``(B, T_out, N)``
            - features (``return_features=True``): ``blocks`` ``(B, T', N, hidden)`` (last block),
              ``hidden`` ``(B, N, hidden)`` (output layer, before the final projection).
        """
        self._check_input(x)
        h = x
        for block in self.blocks:
            h = self.block_forward(block, h, self.edge_index, self.edge_weight)
        b, t, n, c = h.shape
        z = F.relu(self.output_norm(self.output_time(h.permute(0, 2, 1, 3).reshape(b, n, t * c))))
        forecast = self.output(z).transpose(1, 2)
        if not return_features:
            return forecast
        return forecast, {"blocks": h, "hidden": z}


@register_model("agcrn")
class AGCRN(ForecastModel):
    r"""AGCRN of Bai et al., "Adaptive Graph Convolutional Recurrent Network for Traffic
    Forecasting" (NeurIPS 2020), built from PGT's ``AGCRN`` cells.

    Node-adaptive graph convolution with a graph learned from node embeddings
    :math:`E \in \mathbb{R}^{N \times d}`,

    .. math::
        Z = \sum_{k=0}^{K-1} T_k(S)\, X\, (E\, W_{pool})_k + E\, b_{pool},\quad
        S = \mathrm{softmax}(\mathrm{ReLU}(E E^\top)),

    replaces the matrix products of a GRU. ``layers`` cells share ``E``; the last layer's final state
    is mapped to ``T_out`` steps by a linear layer (the paper's ``(1, hidden)`` convolution). The
    predefined graph is not used.

    Args:
        num_nodes: number of sensors ``N``.
        graph: accepted for the common interface and ignored (default: None).
        in_steps: input steps (default: 12).
        out_steps: forecast steps (default: 12).
        in_channels: input channels (default: 2).
        hidden: GRU state width (default: 64).
        layers: stacked cells (default: 2).
        embed_dim: node embedding size ``d`` (default: 10).
        cheb_k: Chebyshev order ``K`` of the adaptive support (default: 2).
    """

    role = "teacher"
    feature_names = ("hidden", "sequence")
    distill_feature = "hidden"
    uses_graph = False

    def __init__(
        self,
        *,
        num_nodes: int,
        graph: Tensor | np.ndarray | None = None,
        in_steps: int = 12,
        out_steps: int = 12,
        in_channels: int = 2,
        hidden: int = 64,
        layers: int = 2,
        embed_dim: int = 10,
        cheb_k: int = 2,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            hidden=hidden,
            layers=layers,
            embed_dim=embed_dim,
            cheb_k=cheb_k,
        )
        _positive(hidden=hidden, layers=layers, embed_dim=embed_dim)
        if cheb_k < 2:
            raise ConfigError(f"agcrn: cheb_k must be >= 2 (identity plus the adaptive support), got {cheb_k}")
        cell = _pgt().nn.recurrent.AGCRN
        self.hidden = hidden
        self.node_embeddings = nn.Parameter(torch.randn(num_nodes, embed_dim))
        self.cells = nn.ModuleList(
            cell(num_nodes, in_channels if i == 0 else hidden, hidden, cheb_k, embed_dim) for i in range(layers)
        )
        self.head = nn.Linear(hidden, out_steps)

    def forward(self, x: Tensor, return_features: bool = False):
        """Shapes:
            - x: ``(B, T_in, N, C)``
            - output: ``(B, T_out, N)``
            - features (``return_features=True``): ``hidden`` ``(B, N, hidden)`` (last layer's final
              state), ``sequence`` ``(B, T_in, N, hidden)`` (last layer's states).
        """
        self._check_input(x)
        b, _, n, _ = x.shape
        states = [x.new_zeros(b, n, self.hidden) for _ in self.cells]
        sequence = []
        for t in range(self.in_steps):
            inp = x[:, t]
            for i, cell in enumerate(self.cells):
                states[i] = inp = cell(inp, self.node_embeddings, states[i])
            sequence.append(inp)
        forecast = self.head(states[-1]).transpose(1, 2)
        if not return_features:
            return forecast
        return forecast, {"hidden": states[-1], "sequence": torch.stack(sequence, dim=1)}


@register_model("mtgnn")
class MTGNN(ForecastModel):
    r"""MTGNN of Wu et al., "Connecting the Dots: Multivariate Time Series Forecasting with Graph
    Neural Networks" (KDD 2020), PGT's ``MTGNN`` in its METR-LA configuration.

    A graph learning layer builds a sparse directed adjacency from two node embeddings,

    .. math::
        A = \mathrm{ReLU}(\tanh(\alpha (M_1 M_2^\top - M_2 M_1^\top))),\ \text{top-}k \text{ per row},\quad
        M_i = \tanh(\alpha E_i \Theta_i),

    and ``layers`` layers of dilated inception temporal convolutions (kernels 2, 3, 6, 7) and
    mix-hop propagation :math:`H^{(k)} = \beta X + (1 - \beta) \tilde A H^{(k-1)}` (both
    directions) feed skip connections, which end convolutions map to ``T_out`` steps at once.
    The predefined graph is not used (the paper's METR-LA setting learns it). The wrapper calls
    PGT's ``MTGNN`` with the adjacency from its own ``_graph_constructor`` (see
    :meth:`learned_adjacency`), which is what PGT's ``build_adj=True`` path computes.

    Args:
        num_nodes: number of sensors ``N``.
        graph: accepted for the common interface and ignored (default: None).
        in_steps: input steps (default: 12).
        out_steps: forecast steps (default: 12).
        in_channels: input channels (default: 2).
        layers: MTGNN layers (default: 3).
        conv_channels: inception channels, a multiple of 4 (default: 32).
        residual_channels: residual channels (default: 32).
        skip_channels: skip channels (default: 64).
        end_channels: end convolution channels (default: 128).
        gcn_depth: mix-hop depth (default: 2).
        subgraph_size: neighbours ``k`` kept per node in the learned graph, at most ``N`` (default: 20).
        node_dim: node embedding size (default: 40).
        dilation_exponential: dilation growth per layer (default: 1).
        dropout: dropout rate (default: 0.3).
        propalpha: retain ratio ``beta`` of mix-hop propagation (default: 0.05).
        tanhalpha: saturation ``alpha`` of the graph learning layer (default: 3.0).
    """

    role = "teacher"
    feature_names = ("skip",)
    distill_feature = "skip"
    uses_graph = False
    kernel_set = (2, 3, 6, 7)

    def __init__(
        self,
        *,
        num_nodes: int,
        graph: Tensor | np.ndarray | None = None,
        in_steps: int = 12,
        out_steps: int = 12,
        in_channels: int = 2,
        layers: int = 3,
        conv_channels: int = 32,
        residual_channels: int = 32,
        skip_channels: int = 64,
        end_channels: int = 128,
        gcn_depth: int = 2,
        subgraph_size: int = 20,
        node_dim: int = 40,
        dilation_exponential: int = 1,
        dropout: float = 0.3,
        propalpha: float = 0.05,
        tanhalpha: float = 3.0,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            layers=layers,
            conv_channels=conv_channels,
            residual_channels=residual_channels,
            skip_channels=skip_channels,
            end_channels=end_channels,
            gcn_depth=gcn_depth,
            subgraph_size=subgraph_size,
            node_dim=node_dim,
            dilation_exponential=dilation_exponential,
            dropout=dropout,
            propalpha=propalpha,
            tanhalpha=tanhalpha,
        )
        _positive(
            layers=layers,
            conv_channels=conv_channels,
            residual_channels=residual_channels,
            skip_channels=skip_channels,
            end_channels=end_channels,
            gcn_depth=gcn_depth,
            subgraph_size=subgraph_size,
            node_dim=node_dim,
            dilation_exponential=dilation_exponential,
        )
        if conv_channels % len(self.kernel_set):
            raise ConfigError(f"mtgnn: conv_channels must be a multiple of 4, got {conv_channels}")
        if subgraph_size > num_nodes:
            raise ConfigError(f"mtgnn: subgraph_size={subgraph_size} exceeds num_nodes={num_nodes}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"mtgnn: dropout must be in [0, 1), got {dropout}")
        self.net = _pgt().nn.attention.MTGNN(
            gcn_true=True,
            build_adj=False,  # the learned graph is built in forward (see there), by PGT's own layer
            gcn_depth=gcn_depth,
            num_nodes=num_nodes,
            kernel_set=list(self.kernel_set),
            kernel_size=max(self.kernel_set),
            dropout=dropout,
            subgraph_size=subgraph_size,
            node_dim=node_dim,
            dilation_exponential=dilation_exponential,
            conv_channels=conv_channels,
            residual_channels=residual_channels,
            skip_channels=skip_channels,
            end_channels=end_channels,
            seq_length=in_steps,
            in_dim=in_channels,
            out_dim=out_steps,
            layers=layers,
            propalpha=propalpha,
            tanhalpha=tanhalpha,
            layer_norm_affline=True,
        )
        # PGT (like the reference code) builds a 1x1 residual conv per layer that only the
        # graph-free variant (gcn_true=False) calls; drop it so every parameter is trained.
        for layer in self.net._mtgnn_layers:
            del layer._residual_conv
        # Node ids as a buffer: PGT would copy its CPU ``_idx`` to the device on every forward.
        self.register_buffer("node_index", torch.arange(num_nodes), persistent=False)

    def learned_adjacency(self) -> Tensor:
        """The ``(N, N)`` learned adjacency (PGT's ``GraphConstructor``), always computed in float32:
        under bf16 autocast PGT's top-k mask (float32) and the scores (bf16) would not scatter."""
        with torch.autocast(device_type=self.node_index.device.type, enabled=False):
            return self.net._graph_constructor(self.node_index)

    def forward(self, x: Tensor, return_features: bool = False):
        """Shapes:
            - x: ``(B, T_in, N, C)`` (PGT's MTGNN takes ``(B, C, N, T_in)``)
            - output: ``(B, T_out, N)`` (PGT returns ``(B, T_out, N, 1)``)
            - features (``return_features=True``): ``skip`` ``(B, N, skip_channels)``, the summed
              skip connections after ReLU (input of the end convolutions).
        """
        self._check_input(x)
        native = x.permute(0, 3, 2, 1)
        adj = self.learned_adjacency()
        if not return_features:
            return self.net(native, A_tilde=adj, idx=self.node_index).squeeze(-1)
        captured: dict[str, Tensor] = {}
        handle = self.net._end_conv_1.register_forward_hook(
            lambda module, inputs, output: captured.__setitem__("skip", inputs[0])
        )
        try:
            forecast = self.net(native, A_tilde=adj, idx=self.node_index).squeeze(-1)
        finally:
            handle.remove()
        return forecast, {"skip": captured["skip"].squeeze(-1).transpose(1, 2)}


# --------------------------------------------------------------------------- PGT's own recurrent cells


class PGTRecurrent(ForecastModel):
    """Common wrapper of a torch-geometric-temporal recurrent cell.

    ``h_t = cell(x_t, h_{t-1})`` over the ``T_in`` inputs (graph: the raw weighted adjacency as PGT's
    METR-LA loader passes it, edge weights = adjacency entries), then ``ŷ = W h_{T_in} + b``.

    Args:
        num_nodes: number of sensors ``N``.
        graph: dense raw ``(N, N)`` weighted adjacency (default: identity).
        in_steps, out_steps, in_channels: window shape (default: 12, 12, 2).
        hidden: width of the cell (default: 32, as PGT's METR-LA example).
    """

    role = "teacher"
    feature_names = ("hidden",)
    distill_feature = "hidden"
    uses_graph = True

    def __init__(self, *, num_nodes: int, graph: Tensor | np.ndarray | None = None, in_steps: int = 12,
                 out_steps: int = 12, in_channels: int = 2, hidden: int = 32) -> None:
        super().__init__(num_nodes=num_nodes, in_steps=in_steps, out_steps=out_steps, in_channels=in_channels,
                         hidden=hidden)
        if hidden < 1:
            raise ConfigError(f"{self.registry_name}: hidden must be >= 1, got {hidden}")
        self._pgt = _pgt()
        edge_index, edge_weight = dense_to_sparse(_graph_tensor(graph, num_nodes))
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_weight", edge_weight, persistent=False)
        self.hidden = hidden
        self.cell = self._make_cell(in_channels, hidden)
        self.head = nn.Linear(hidden, out_steps)

    def _make_cell(self, in_channels: int, hidden: int) -> nn.Module:  # pragma: no cover - overridden
        raise ConfigError(f"{type(self).__name__} does not define a cell")

    def _encode(self, x: Tensor) -> Tensor:
        """``(B, T, N, C)`` -> last hidden state ``(B, N, D)``."""
        h = None
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], self.edge_index, self.edge_weight, h)
        return h

    def forward(self, x: Tensor, return_features: bool = False):
        """Run the cell over the inputs and read all horizons off its last state.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; feature ``"hidden"`` ``(B, N, hidden)``.
        """
        self._check_input(x)
        h = self._encode(x)
        out = self.head(h).transpose(1, 2)
        if return_features:
            return out, {"hidden": h}
        return out


@register_model("pgt-tgcn")
class PGTTGCN(PGTRecurrent):
    """PGT's ``TGCN2`` cell (Zhao et al., "T-GCN", IEEE T-ITS 2020): a GRU whose gates read a
    ``GCNConv`` of the input, batched over ``(B, N, F)``. See :class:`PGTRecurrent` for the arguments."""

    def _make_cell(self, in_channels: int, hidden: int) -> nn.Module:
        return self._pgt.nn.recurrent.TGCN2(in_channels, hidden, batch_size=1)


@register_model("pgt-a3tgcn")
class PGTA3TGCN(PGTRecurrent):
    """PGT's ``A3TGCN2`` (Zhu et al., "A3T-GCN", 2020): a TGCN cell applied to every input step and
    the states combined by a learned softmax attention over steps. PGT's implementation starts every
    step from a zero state (it passes the same ``H=None`` to each), kept as is. See
    :class:`PGTRecurrent` for the arguments."""

    def _make_cell(self, in_channels: int, hidden: int) -> nn.Module:
        cell = self._pgt.nn.recurrent.A3TGCN2(in_channels, hidden, periods=self.in_steps, batch_size=1)
        return cell

    def _encode(self, x: Tensor) -> Tensor:
        # A3TGCN2 takes (B, N, F, T)
        return self.cell(x.permute(0, 2, 3, 1), self.edge_index, self.edge_weight)


@register_model("pgt-gconvgru")
class PGTGConvGRU(PGTRecurrent):
    """PGT's ``GConvGRU`` (Seo et al., "Structured Sequence Modeling with Graph Convolutional
    Recurrent Networks", 2018): a GRU with Chebyshev graph convolutions (``K = 2``) in its gates, on
    ``(B, N, F)``. See :class:`PGTRecurrent` for the arguments."""

    def _make_cell(self, in_channels: int, hidden: int) -> nn.Module:
        return self._pgt.nn.recurrent.GConvGRU(in_channels, hidden, K=2)

    def _encode(self, x: Tensor) -> Tensor:
        b, _, n, _ = x.shape
        h = x.new_zeros(b, n, self.hidden)  # its own default state is (B, D), wrong for batched input
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], self.edge_index, self.edge_weight, h)
        return h
