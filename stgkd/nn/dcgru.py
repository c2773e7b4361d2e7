"""A student with graph diffusion inside the recurrence, able to take over Graph WaveNet's graph."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel, as_adjacency
from stgkd.nn.layers.adaptive import AdaptiveAdjacency
from stgkd.nn.layers.supports import diffusion_supports
from stgkd.nn.registry import register_model

__all__ = ["DCGRUStudent", "DIFFUSION_MIXING", "diffuse"]

#: how a cell mixes the diffused copies of its state: one weight per channel, support and hop
#: (``"separable"``), or a full matrix per support and hop as in DCRNN (``"full"``).
DIFFUSION_MIXING = ("separable", "full")


def diffuse(x: Tensor, supports: Tensor, order: int) -> Tensor:
    """``x`` and its diffusions ``S_s^k x`` for every support ``s`` and hop ``k = 1..order``, stacked.

    Node-major layout, so that every hop of every support is one batched matrix product with no
    transposition: each support is applied as ``out = S @ x`` over the node axis (row ``m`` of ``S``
    lists what node ``m`` aggregates). Copies along the first axis in the order ``x, S_1 x, ...,
    S_1^K x, S_2 x, ..., S_M^K x``; one stacked tensor, so the backward pass accumulates into one
    buffer instead of one per copy.

    Shapes:
        x ``(N, ..., C)``, supports ``(M, N, N)`` -> ``(1 + M * order, N, ..., C)``
    """
    if supports.shape[0] == 0:
        return x.unsqueeze(0)
    flat = x.reshape(x.shape[0], -1)  # (N, rest)
    hop = torch.matmul(supports, flat)  # (M, N, rest)
    hops = [hop]
    for _ in range(order - 1):
        hop = torch.bmm(supports, hop)
        hops.append(hop)
    # (K, M, N, rest) -> support-major, hop-minor (M * K, N, rest)
    stacked = torch.stack(hops, dim=1).reshape(-1, *flat.shape)
    return torch.cat([flat.unsqueeze(0), stacked]).reshape(-1, *x.shape)


def _channels_last(copies: Tensor) -> Tensor:
    """``(K', N, ..., C) -> (N, ..., K' * C)``: the copies side by side along the channels."""
    return copies.movedim(0, -2).flatten(-2)


class _DiffusionGRUCell(nn.Module):
    r"""GRU cell whose state is diffused over the graph before it enters the gates ("reset after",
    as ``torch.nn.GRU``):

    .. math::
        g = W_x \tilde x_t + W_h\, \mathcal D(h_{t-1}) + b, \quad
        r, u = \sigma(g_r), \sigma(g_u), \quad
        c = \tanh(g^x_c + r \odot g^h_c), \quad h_t = u \odot h_{t-1} + (1 - u) \odot c

    with ``\mathcal D(h) = \theta_0 \odot h + \sum_{s,k} \theta_{s,k} \odot S_s^k h`` (``"separable"``:
    a weight per channel, support and hop, then ``W_h`` mixes channels) or the concatenation
    ``[h \| S_1 h \| \dots \| S_M^K h]`` (``"full"``: DCRNN's diffusion convolution).
    """

    def __init__(self, in_channels: int, hidden: int, num_supports: int, order: int, mixing: str) -> None:
        super().__init__()
        copies = 1 + num_supports * order
        self.order = order
        self.mixing = mixing
        self.x_lin = nn.Linear(in_channels, 3 * hidden)
        if mixing == "separable":
            self.theta = nn.Parameter(torch.full((copies, hidden), 1.0 / copies))
            self.h_lin = nn.Linear(hidden, 3 * hidden)
        else:
            self.h_lin = nn.Linear(copies * hidden, 3 * hidden)

    def forward(self, gx: Tensor, h: Tensor, supports: Tensor) -> Tensor:
        """One step; ``gx`` is ``x_lin`` of the (diffused) input, computed for all steps beforehand.
        Node-major layout (see :func:`diffuse`).

        Shapes:
            gx ``(N, B, 3D)``, h ``(N, B, D)``, supports ``(M, N, N)`` -> ``(N, B, D)``
        """
        copies = diffuse(h, supports, self.order)  # (K', N, B, D)
        if self.mixing == "separable":
            gh = self.h_lin((copies * self.theta[:, None, None, :]).sum(0))
        else:
            gh = self.h_lin(_channels_last(copies))
        xr, xu, xc = gx.chunk(3, dim=-1)
        hr, hu, hc = gh.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        u = torch.sigmoid(xu + hu)
        c = torch.tanh(xc + r * hc)
        return u * h + (1.0 - u) * c


@register_model("dcgru")
class DCGRUStudent(AdaptiveAdjacency, ForecastModel):
    r"""Diffusion-convolutional GRU student: the graph acts inside the recurrence at every step, as in
    DCRNN (Li et al., ICLR 2018), over the same operators Graph WaveNet uses (Wu et al., IJCAI 2019),
    so a teacher's learned graph can be handed over and acts identically.

    Supports (applied as ``out = S @ x``, row ``m`` = what node ``m`` aggregates): the forward and
    backward transitions ``P_f^\top, P_b^\top`` of the road graph (``P_f = D_O^{-1} A``,
    ``P_b = D_I^{-1} A^\top``) and, when ``adaptive``, ``\tilde A_{adp}^\top`` with
    ``\tilde A_{adp} = \mathrm{SoftMax}(\mathrm{ReLU}(E_1 E_2^\top))``. Each step reads the input
    diffused ``1..K`` hops along every support, ``\tilde x_t = [x_t \| S_s^k x_t]``, and diffuses the
    state before the gates (:class:`_DiffusionGRUCell`); all horizons are read off the last state:

    .. math::
        h_t = \mathrm{DCGRU}(\tilde x_t, h_{t-1}), \qquad
        \hat y_{1..T_{out}} = W [h_{T_{in}} \| e_n \| e_{tod}] + b

    with optional learned per-sensor (``e_n``, as STID, Shao et al., CIKM 2022) and time-of-day
    (``e_{tod}``) embeddings. ``"separable"`` mixing keeps the cell at about the size of a plain GRU:
    at 207 sensors and width 64 with ``order=2``, adaptive adjacency and a 16-dim sensor embedding it
    has about 24 k parameters, under a tenth of Graph WaveNet's 301 k.

    Args:
        num_nodes: number of sensors ``N``.
        graph: dense raw ``(N, N)`` weighted adjacency (default: None, i.e. self-loops only).
        in_steps: input steps (default: 12).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels (default: 2).
        hidden: state width ``D`` (default: 32).
        order: diffusion hops ``K`` per support, 1 to 3 (default: 2, as DCRNN and Graph WaveNet).
        static_graph: use the road graph's forward and backward transitions (default: True).
        adaptive: learn an adaptive adjacency (default: True; inherit the teacher's with
            :func:`stgkd.distill.inherit_adjacency`).
        embed_dim: node-embedding size of the adaptive adjacency (default: 10, Graph WaveNet's).
        mixing: ``"separable"`` or ``"full"`` (see :data:`DIFFUSION_MIXING`) (default: ``"separable"``).
        node_embed: size of a learned per-sensor embedding the head reads (default: 0, none).
        tod_embed: size of a learned time-of-day embedding the head reads, indexed by input channel
            ``time_channel`` of the last step (minutes since midnight / 1440) (default: 0, none).
        tod_slots: time-of-day slots of that embedding (default: 288, five minutes).
        time_channel: input channel holding the time of day (default: 1).
        dropout: dropout before the head (default: 0.0).
    """

    role = "student"
    feature_names = ("hidden", "sequence")
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
        hidden: int = 32,
        order: int = 2,
        static_graph: bool = True,
        adaptive: bool = True,
        embed_dim: int = 10,
        mixing: str = "separable",
        node_embed: int = 0,
        tod_embed: int = 0,
        tod_slots: int = 288,
        time_channel: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            hidden=hidden,
            order=order,
            static_graph=static_graph,
            adaptive=adaptive,
            embed_dim=embed_dim,
            mixing=mixing,
            node_embed=node_embed,
            tod_embed=tod_embed,
            tod_slots=tod_slots,
            time_channel=time_channel,
            dropout=dropout,
        )
        if hidden < 1:
            raise ConfigError(f"dcgru: hidden must be >= 1, got {hidden}")
        if order not in (1, 2, 3):
            raise ConfigError(f"dcgru: order must be 1, 2 or 3, got {order}")
        if not (static_graph or adaptive):
            raise ConfigError("dcgru: needs static_graph=True or adaptive=True (without any graph use the 'gru' student)")
        if mixing not in DIFFUSION_MIXING:
            raise ConfigError(f"dcgru: mixing must be one of {', '.join(DIFFUSION_MIXING)}, got {mixing!r}")
        if embed_dim < 1 or node_embed < 0 or tod_embed < 0 or tod_slots < 1:
            raise ConfigError(
                f"dcgru: embed_dim >= 1, node_embed >= 0, tod_embed >= 0 and tod_slots >= 1 required, got "
                f"{embed_dim}, {node_embed}, {tod_embed}, {tod_slots}"
            )
        if tod_embed and not 0 <= time_channel < in_channels:
            raise ConfigError(f"dcgru: tod_embed needs the time of day in input channel {time_channel}, "
                              f"but there are {in_channels} channels")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dcgru: dropout must be in [0, 1), got {dropout}")
        self.order = order
        self.static_graph = static_graph
        self.adaptive = adaptive
        self.dropout = dropout
        self.tod_slots = tod_slots
        self.time_channel = time_channel

        static = torch.stack(diffusion_supports(as_adjacency(graph, num_nodes, where="dcgru"))) if static_graph else torch.zeros(0, num_nodes, num_nodes)
        self.register_buffer("static_supports", static, persistent=False)
        if adaptive:
            self.init_adaptive(num_nodes, embed_dim)
        num_supports = static.shape[0] + int(adaptive)
        self.cell = _DiffusionGRUCell(in_channels * (1 + num_supports * order), hidden, num_supports, order, mixing)
        self.node_embedding = nn.Parameter(0.1 * torch.randn(num_nodes, node_embed)) if node_embed else None
        self.tod_embedding = nn.Embedding(tod_slots, tod_embed) if tod_embed else None
        self.head = nn.Linear(hidden + node_embed + tod_embed, out_steps)



    def supports(self) -> Tensor:
        """Every operator the cell applies, stacked: ``P_f^T``, ``P_b^T`` (static), ``A_adp^T``.

        Shapes:
            output ``(M, N, N)``
        """
        if not self.adaptive:
            return self.static_supports
        return torch.cat([self.static_supports, self.adaptive_support().unsqueeze(0)])

    def forward(self, x: Tensor, return_features: bool = False):
        """Run the diffusion GRU over the input steps, forecast every horizon from the last state.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; features ``"hidden"`` ``(B, N, hidden)``
            (the last state, after spatial mixing at every step), ``"sequence"`` ``(B, T_in, N, hidden)``.
        """
        self._check_input(x)
        supports = self.supports()
        xn = x.permute(2, 1, 0, 3)  # node-major (N, T, B, C): one matmul per support and hop
        gx = self.cell.x_lin(_channels_last(diffuse(xn, supports, self.order)))  # (N, T, B, 3D), all steps
        h = gx.new_zeros(self.num_nodes, x.shape[0], self.cell.h_lin.out_features // 3)
        states = []
        for g in gx.unbind(1):  # one backward buffer for all steps (indexing would zero-fill gx per step)
            h = self.cell(g, h, supports)
            states.append(h)
        seq = torch.stack(states).permute(2, 0, 1, 3)  # (B, T, N, D)
        h = seq[:, -1]
        head_in = [F.dropout(h, self.dropout, training=self.training)]
        if self.node_embedding is not None:
            head_in.append(self.node_embedding.expand(x.shape[0], -1, -1))
        if self.tod_embedding is not None:
            slot = (x[:, -1, :, self.time_channel] * self.tod_slots).long().clamp(0, self.tod_slots - 1)
            head_in.append(self.tod_embedding(slot))
        out = self.head(torch.cat(head_in, dim=-1) if len(head_in) > 1 else head_in[0]).transpose(1, 2)
        if return_features:
            return out, {"hidden": h, "sequence": seq}
        return out
