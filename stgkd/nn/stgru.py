"""A student for the accuracy-cost frontier: a GRU over time per sensor, graph mixing where it pays,
over sparse road supports and a low-rank adaptive graph, so its cost grows with sensors + edges."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel, day_channel_of
from stgkd.nn.layers.edges import EdgePropagation, graph_edges, transition_edges
from stgkd.nn.layers.lowrank import LowRankAdjacency
from stgkd.nn.layers.recurrent import gru_final_state
from stgkd.nn.registry import register_model

__all__ = ["STGRUStudent", "GRAPH_MIXING", "GraphOperators"]

#: where ``stgru`` mixes over the graph: on the last state only (LightCTS's last-shot), also on the
#: inputs of every step, or also on the state inside the recurrence at every step (as DCRNN).
GRAPH_MIXING = ("last", "input", "steps")


class GraphOperators(nn.Module):
    r"""The supports of ``stgru``, each applied node-major as ``out = S x`` in time linear in sensors + edges:
    the road graph's forward and backward transitions ``P_f^\top, P_b^\top`` as edge lists
    (:class:`~stgkd.nn.layers.edges.EdgePropagation`) and, given, an adaptive operator ``A^\top`` (a function, the
    owner's low-rank :meth:`~stgkd.nn.layers.lowrank.LowRankAdjacency.apply_adaptive`).

    Args:
        edges: ``(source, target, weight)`` of the raw adjacency, or None for no road supports.
        num_nodes: ``N``.
        order: hops ``K`` per support.
    """

    def __init__(self, edges: tuple[Tensor, Tensor, Tensor] | None, num_nodes: int, order: int) -> None:
        super().__init__()
        self.order = order
        if edges is None:
            self.road = nn.ModuleList()
        else:
            forward, backward = transition_edges(*edges, num_nodes)
            self.road = nn.ModuleList([EdgePropagation(*forward), EdgePropagation(*backward)])

    def copies(self, num_adaptive: int) -> int:
        """How many tensors :meth:`diffuse` returns: the input and ``K`` hops of every support."""
        return 1 + (len(self.road) + num_adaptive) * self.order

    def diffuse(self, x: Tensor, adaptive=None) -> Tensor:
        """``x`` and its diffusions ``S^k x``, ``k = 1..K``, along every support (road forward, road backward,
        adaptive), stacked in that order.

        Shapes:
            x ``(N, ...)`` node-major -> ``(1 + M K, N, ...)``
        """
        out = [x]
        ops = list(self.road) + ([adaptive] if adaptive is not None else [])
        for op in ops:
            h = x
            for _ in range(self.order):
                h = op(h)
                out.append(h)
        return torch.stack(out)


class _GraphLayer(nn.Module):
    """``z + ReLU(W [z || S_1 z || ... || S_M^K z] + b)``, node-major (a residual diffusion convolution)."""

    def __init__(self, hidden: int, copies: int) -> None:
        super().__init__()
        self.lin = nn.Linear(copies * hidden, hidden)

    def forward(self, z: Tensor, ops: GraphOperators, adaptive) -> Tensor:
        """Shapes:
            z ``(N, B, D)`` -> ``(N, B, D)``
        """
        copies = ops.diffuse(z, adaptive)  # (K', N, B, D)
        return z + F.relu(self.lin(copies.movedim(0, -2).flatten(-2)))


class _GraphGRUCell(nn.Module):
    r"""A GRU cell whose state is diffused before it enters the gates, with one weight per channel, support
    and hop (``"separable"`` as in ``dcgru``): ``\mathcal D(h) = \sum_c \theta_c \odot S_c h``, then
    ``g = g_x + W_h \mathcal D(h) + b`` and the usual reset-after GRU update."""

    def __init__(self, hidden: int, copies: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.full((copies, hidden), 1.0 / copies))
        self.h_lin = nn.Linear(hidden, 3 * hidden)

    def forward(self, gx: Tensor, h: Tensor, ops: GraphOperators, adaptive) -> Tensor:
        """Shapes:
            gx ``(N, B, 3D)``, h ``(N, B, D)`` -> ``(N, B, D)``
        """
        copies = ops.diffuse(h, adaptive)
        gh = self.h_lin((copies * self.theta[:, None, None, :]).sum(0))
        xr, xu, xc = gx.chunk(3, dim=-1)
        hr, hu, hc = gh.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        u = torch.sigmoid(xu + hu)
        c = torch.tanh(xc + r * hc)
        return u * h + (1.0 - u) * c


#: the adaptive graph's rank when none is given (capped at the number of sensors)
DEFAULT_RANK = 16


@register_model("stgru")
class STGRUStudent(LowRankAdjacency, ForecastModel):
    r"""Spatio-temporal GRU student for the accuracy-cost frontier: temporal operator first, the graph where
    it pays, identity embeddings beside it.

    A GRU shared by all sensors encodes each sensor's window (the sensors folded into the batch); the graph
    acts on the last state only ("last-shot", LightCTS, Lai et al., SIGMOD 2023), or also on every step's
    inputs, or also inside the recurrence (DCRNN, Li et al., ICLR 2018); the head reads the state beside a
    learned identity of each sensor, a time-of-day embedding and a linear embedding of the raw window
    (STID, Shao et al., CIKM 2022: identity embeddings carry much of what the graph carries):

    .. math::
        h = \mathrm{GRU}(\tilde x_{1..T_{in}}), \quad
        z_0 = W_f [h \,\|\, W_w \mathrm{vec}(x_{1..T_{in}}) \,\|\, e_n \,\|\, e_{tod}], \quad
        z_l = z_{l-1} + \mathrm{ReLU}\big(W_l [z_{l-1} \,\|\, S_s^k z_{l-1}]_{s,k}\big), \quad
        \hat y_{1..T_{out}} = W_2\, \mathrm{ReLU}(W_1 z_L)

    (without embeddings ``z_0 = h``). Supports ``S``, each applied as ``out = S z`` (row ``m`` = what sensor
    ``m`` aggregates), with cost linear in sensors + edges: the road graph's forward and backward
    transitions ``P_f^\top, P_b^\top`` (``P_f = D_O^{-1} A``, ``P_b = D_I^{-1} A^\top``) as edge lists, and a
    rank-``r`` adaptive adjacency ``A_{adp} = \Theta B^\top`` with ``\Theta = \mathrm{softmax}_r(E_1)``,
    ``B = \mathrm{softmax}_N(E_2)`` (rows sum to 1), applied as ``A_{adp}^\top z = B(\Theta^\top z)`` in
    ``O(N r D)`` (:class:`~stgkd.nn.layers.lowrank.LowRankAdjacency`; BigST, Han et al., VLDB 2024, applies its
    adaptive graph in linear time through random features). A teacher's ``softmax(ReLU(E_1 E_2^\top))`` is
    handed over by fitting the factors to it (:meth:`load_adjacency`, called by
    :func:`stgkd.distill.inherit_adjacency`). No ``N x N`` tensor is ever formed in the forward pass.

    Input channels: all of them enter the GRU and the window embedding; the time-of-day embedding reads
    channel ``time_channel`` of the last step (minutes since midnight / 1440, as :func:`stgkd.data.prepare`
    builds it). Seasonal-lag channels (``prepare(seasonal=("day",))``) need nothing more: the window
    embedding carries yesterday's readings for the 12 forecast steps straight to the head.

    Bad input: a ``rank`` given above the number of sensors is refused (the default is capped at it); a
    sensor without road edges receives
    nothing from the road supports (its transition rows are zero; the identity copy, the adaptive graph and
    its embeddings still reach it); a graph is read as an edge list (a dense matrix is scanned in row
    chunks, a sparse tensor is never densified).

    Args:
        num_nodes: number of sensors ``N``.
        graph: raw ``(N, N)`` weighted adjacency, dense or a sparse tensor (default: None, no road supports).
        in_steps: input steps (default: 12).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels (default: 2).
        hidden: GRU and graph width ``D`` (default: 32).
        mixing: where the graph acts, one of :data:`GRAPH_MIXING`: ``"last"`` (the last state only),
            ``"input"`` (also every step's inputs, diffused ``K`` hops before the GRU), ``"steps"`` (also the
            state inside the recurrence at every step, with the inputs diffused) (default: ``"last"``).
        graph_layers: residual graph convolutions on the last state, 0 to 3 (default: 1).
        order: hops ``K`` per support, 1 to 3 (default: 2).
        static_graph: use the road graph's transitions (default: True).
        adaptive: learn a low-rank adaptive adjacency (default: True).
        rank: its rank ``r``, at most ``N`` (default: ``None``, ``min(16, N)``).
        node_embed: size of a learned per-sensor embedding (default: 16; 0 for none).
        tod_embed: size of a learned time-of-day embedding (default: 16; 0 for none).
        tod_slots: time-of-day slots of that embedding (default: 288, five minutes).
        time_channel: input channel holding the time of day (default: 1).
        window_embed: size of a linear embedding of the raw input window, all channels (default: 32; 0 for none).
        dow_embed: size of a learned day-of-week embedding, read from channel ``day_channel`` of the last step
            (weekday / 7) (default: 0, none: the day of week enters as an input channel where the data has it).
        day_channel: input channel holding the day of week (default: None; :func:`stgkd.nn.build_for` gives the
            data's day-of-week channel where it has one).
        dropout: dropout before the head (default: 0.0).

    Training defaults (``default_lr``, ``default_seasons``): AdamW at 1e-2 and the seasonal-lag channels of
    one day where the data allows them (and, as for every family, the day of week where the series allows
    a week-long season: :func:`stgkd.engine.recipes.train_model`). On the METR-LA week (3 seeds, 30 epochs) the learning rate took the
    60-minute test MAE from 4.73 (1e-3) to 4.02; the day-old readings took seed 0 from 4.07 to 3.98 at 1e-2
    (4.94 to 4.64 at 1e-3) (``benchmarks/results/student-frontier-screen-cpu-2026-12-03.md``).
    """

    role = "student"
    default_lr = 1e-2
    default_seasons = ("day",)
    feature_names = ("hidden", "graph")
    distill_feature = "graph"
    uses_graph = True

    @classmethod
    def hparams_for_features(cls, input_features: list[str]) -> dict[str, Any]:
        """The day-of-week channel where the data has one (:func:`~stgkd.nn.base.day_channel_of`)."""
        return day_channel_of(input_features)

    @classmethod
    def default_hparams(cls, num_nodes: int) -> dict[str, Any]:
        """The constructor's defaults, the rank resolved: ``min(16, N)``."""
        hparams = super().default_hparams(num_nodes)
        if hparams.get("rank") is None:
            hparams["rank"] = min(DEFAULT_RANK, num_nodes)
        return hparams

    def __init__(
        self,
        *,
        num_nodes: int,
        graph: Tensor | np.ndarray | None = None,
        in_steps: int = 12,
        out_steps: int = 12,
        in_channels: int = 2,
        hidden: int = 32,
        mixing: str = "last",
        graph_layers: int = 1,
        order: int = 2,
        static_graph: bool = True,
        adaptive: bool = True,
        rank: int | None = None,
        node_embed: int = 16,
        tod_embed: int = 16,
        tod_slots: int = 288,
        time_channel: int = 1,
        window_embed: int = 32,
        dow_embed: int = 0,
        day_channel: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            hidden=hidden,
            mixing=mixing,
            graph_layers=graph_layers,
            order=order,
            static_graph=static_graph,
            adaptive=adaptive,
            rank=rank,
            node_embed=node_embed,
            tod_embed=tod_embed,
            tod_slots=tod_slots,
            time_channel=time_channel,
            window_embed=window_embed,
            dow_embed=dow_embed,
            day_channel=day_channel,
            dropout=dropout,
        )
        if hidden < 1:
            raise ConfigError(f"stgru: hidden must be >= 1, got {hidden}")
        if mixing not in GRAPH_MIXING:
            raise ConfigError(f"stgru: mixing must be one of {', '.join(GRAPH_MIXING)}, got {mixing!r}")
        if graph_layers not in (0, 1, 2, 3):
            raise ConfigError(f"stgru: graph_layers must be 0 to 3, got {graph_layers}")
        if order not in (1, 2, 3):
            raise ConfigError(f"stgru: order must be 1, 2 or 3, got {order}")
        graph_used = graph_layers > 0 or mixing != "last"
        if graph_used and not (static_graph or adaptive):
            raise ConfigError("stgru: graph mixing needs static_graph=True or adaptive=True "
                              "(for no graph at all, set graph_layers=0 with mixing='last')")
        if adaptive and not graph_used:
            raise ConfigError("stgru: adaptive=True has no effect without graph mixing (graph_layers=0 with "
                              "mixing='last'); pass adaptive=False")
        if node_embed < 0 or tod_embed < 0 or window_embed < 0 or tod_slots < 1:
            raise ConfigError(f"stgru: node_embed, tod_embed, window_embed >= 0 and tod_slots >= 1 required, got "
                              f"{node_embed}, {tod_embed}, {window_embed}, {tod_slots}")
        if tod_embed and not 0 <= time_channel < in_channels:
            raise ConfigError(f"stgru: tod_embed needs the time of day in input channel {time_channel}, but there "
                              f"are {in_channels} channels (set time_channel, or tod_embed=0)")
        if dow_embed < 0:
            raise ConfigError(f"stgru: dow_embed must be >= 0, got {dow_embed}")
        if dow_embed and (day_channel is None or not 0 <= day_channel < in_channels):
            raise ConfigError(f"stgru: dow_embed needs the day of week in an input channel (day_channel "
                              f"{day_channel}, {in_channels} channels): train with --day-of-week, or dow_embed=0")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"stgru: dropout must be in [0, 1), got {dropout}")
        self.mixing = mixing
        self.adaptive = adaptive
        self.dropout = dropout
        self.tod_slots = tod_slots
        self.time_channel = time_channel
        self.day_channel = day_channel
        self.hidden = hidden

        edges = graph_edges(graph, num_nodes, where="stgru: graph") if (static_graph and graph_used and graph is not None) else None
        self.ops = GraphOperators(edges, num_nodes, order)
        if self.adaptive:
            self.init_lowrank(num_nodes, min(DEFAULT_RANK, num_nodes) if rank is None else rank)
        copies = self.ops.copies(int(self.adaptive))
        gru_in = in_channels * (copies if mixing != "last" else 1)
        if mixing == "steps":
            self.x_lin = nn.Linear(gru_in, 3 * hidden)
            self.cell = _GraphGRUCell(hidden, copies)
        else:
            self.gru = nn.GRU(gru_in, hidden, batch_first=True)
        self.graph_layers = nn.ModuleList(_GraphLayer(hidden, copies) for _ in range(graph_layers))
        self.window = nn.Linear(in_steps * in_channels, window_embed) if window_embed else None
        self.node_embedding = nn.Parameter(0.1 * torch.randn(num_nodes, node_embed)) if node_embed else None
        self.tod_embedding = nn.Embedding(tod_slots, tod_embed) if tod_embed else None
        self.dow_embedding = nn.Embedding(7, dow_embed) if dow_embed else None
        extra = window_embed + node_embed + tod_embed + dow_embed
        self.fuse = nn.Linear(hidden + extra, hidden) if extra else None
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_steps))

    def _adaptive_op(self):
        return self.apply_adaptive if self.adaptive else None

    def _encode(self, x: Tensor, adaptive) -> Tensor:
        """The last GRU state of every sensor, node-major.

        Shapes:
            x ``(B, T, N, C)`` -> ``(N, B, D)``
        """
        b, t, n, c = x.shape
        xn = x.permute(2, 0, 1, 3)  # (N, B, T, C)
        if self.mixing != "last":
            xn = self.ops.diffuse(xn, adaptive).movedim(0, -2).flatten(-2)  # (N, B, T, K' C)
        if self.mixing == "steps":
            gx = self.x_lin(xn)  # (N, B, T, 3D), all steps at once
            h = gx.new_zeros(n, b, self.hidden)
            for g in gx.unbind(2):
                h = self.cell(g, h, self.ops, adaptive)
            return h
        return gru_final_state(self.gru, xn.reshape(n * b, t, -1)).reshape(n, b, self.hidden)

    def forward(self, x: Tensor, return_features: bool = False):
        """Encode each sensor's window, mix over the graph, forecast every horizon.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; features ``"hidden"`` ``(B, N, hidden)``
            (the last GRU state), ``"graph"`` ``(B, N, hidden)`` (after fusion and the graph layers, what
            the head reads).
        """
        self._check_input(x)
        b = x.shape[0]
        adaptive = self._adaptive_op()
        h = self._encode(x, adaptive)  # (N, B, D)
        z = h
        if self.fuse is not None:
            parts = [h]
            if self.window is not None:
                parts.append(self.window(x.permute(2, 0, 1, 3).flatten(-2)))  # (N, B, T*C) -> (N, B, E_w)
            if self.node_embedding is not None:
                parts.append(self.node_embedding[:, None, :].expand(-1, b, -1))
            if self.tod_embedding is not None:
                slot = (x[:, -1, :, self.time_channel] * self.tod_slots).long().clamp(0, self.tod_slots - 1)
                parts.append(self.tod_embedding(slot.t()))  # (N, B, E_t)
            if self.dow_embedding is not None:
                day = torch.round(x[:, -1, :, self.day_channel] * 7).long() % 7
                parts.append(self.dow_embedding(day.t()))  # (N, B, E_d)
            z = self.fuse(torch.cat(parts, dim=-1))
        for layer in self.graph_layers:
            z = layer(z, self.ops, adaptive)
        out = self.head(F.dropout(z, self.dropout, training=self.training))  # (N, B, H)
        out = out.permute(1, 2, 0)
        if return_features:
            return out, {"hidden": h.transpose(0, 1), "graph": z.transpose(0, 1)}
        return out
