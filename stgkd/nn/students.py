"""Small, fast students: a graph-free GRU and a GRU followed by graph convolution."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel, as_adjacency
from stgkd.nn.layers.adaptive import AdaptiveAdjacency
from stgkd.nn.layers.graph_conv import DenseGraphConv
from stgkd.nn.layers.supports import batch_edges, dense_to_edges, diffusion_supports, gcn_support
from stgkd.nn.registry import register_model

__all__ = ["GRUStudent", "GCNGRUStudent", "GRAPH_OPS"]

#: Static-graph operators of ``gcn-gru``: precomputed dense matrix, PyG ``GCNConv``, or none.
GRAPH_OPS = ("dense", "gcnconv", "none")


class _NodeGRU(nn.Module):
    """One GRU shared by all nodes: nodes are folded into the batch."""

    def __init__(self, in_channels: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.gru = nn.GRU(in_channels, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Encode every node's series independently.

        Shapes:
            x ``(B, T, N, C)`` -> sequence ``(B, T, N, D)``, last state ``(B, N, D)``
        """
        b, t, n, c = x.shape
        seq, _ = self.gru(x.permute(0, 2, 1, 3).reshape(b * n, t, c))
        seq = seq.reshape(b, n, t, -1)
        return seq.permute(0, 2, 1, 3), seq[:, :, -1]


def _check_common(name: str, hidden: int, layers: int, dropout: float) -> None:
    if hidden < 1 or layers < 1:
        raise ConfigError(f"{name}: hidden and layers must be >= 1, got hidden={hidden}, layers={layers}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"{name}: dropout must be in [0, 1), got {dropout}")


@register_model("gru")
class GRUStudent(ForecastModel):
    r"""Graph-free GRU student (the GRU baseline of DCRNN, Li et al., ICLR 2018, one model for all
    sensors; Cho et al., 2014 for the cell).

    .. math::
        h_t = \mathrm{GRU}(x_t, h_{t-1}) \ \text{(per node, shared weights)}, \qquad
        \hat y_{1..T_{out}} = W h_{T_{in}} + b

    Args:
        num_nodes: number of sensors ``N``.
        graph: ignored (accepted so every model builds the same way) (default: None).
        in_steps: input steps (default: 12).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels (default: 2).
        hidden: GRU width ``D`` (default: 32).
        layers: stacked GRU layers (default: 1).
        dropout: dropout between GRU layers and before the head (default: 0.0).
    """

    role = "student"
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
        hidden: int = 32,
        layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
        )
        _check_common("gru", hidden, layers, dropout)
        self.dropout = dropout
        self.encoder = _NodeGRU(in_channels, hidden, layers, dropout)
        self.head = nn.Linear(hidden, out_steps)

    def forward(self, x: Tensor, return_features: bool = False):
        """Encode each node's history, read all horizons off the last state.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; features ``"hidden"``
            ``(B, N, hidden)`` (last GRU state), ``"sequence"`` ``(B, T_in, N, hidden)``.
        """
        self._check_input(x)
        seq, h = self.encoder(x)
        out = self.head(F.dropout(h, self.dropout, training=self.training)).transpose(1, 2)
        if return_features:
            return out, {"hidden": h, "sequence": seq}
        return out


class _GraphLayer(nn.Module):
    """One graph convolution of ``gcn-gru``: static operator (dense / GCNConv / none) plus an
    optional adaptive dense operator, summed. Both are applied as ``out = S @ h`` (row ``m`` of ``S``
    lists what node ``m`` aggregates): ``S = D^-1/2 (A^T + I) D^-1/2`` for the static graph and
    ``S = A_adp^T`` for the adaptive one."""

    def __init__(self, hidden: int, graph_op: str, adaptive: bool) -> None:
        super().__init__()
        self.graph_op = graph_op
        if graph_op == "dense":
            self.static = DenseGraphConv(hidden, hidden)
        elif graph_op == "gcnconv":
            from torch_geometric.nn import GCNConv  # heavy import; only this operator needs it

            # normalisation is precomputed once (gcn_support), so GCNConv only propagates
            self.static = GCNConv(hidden, hidden, normalize=False, add_self_loops=False)
        self.learned = DenseGraphConv(hidden, hidden, bias=graph_op == "none") if adaptive else None

    def forward(self, h: Tensor, support: Tensor, edges: tuple[Tensor, Tensor], adaptive: Tensor | None) -> Tensor:
        """Aggregate node states over the graph(s): ``support @ h`` (or its edge list) plus
        ``adaptive @ h``, where ``adaptive`` is the applied operator ``A_adp^T``.

        Shapes:
            h ``(B, N, D)``, support ``(N, N)``, edges ``(2, E)`` / ``(E,)``, adaptive ``(N, N)`` or None
            -> ``(B, N, D)``
        """
        out: Tensor | None = None
        if self.graph_op == "dense":
            out = self.static(h, [support])
        elif self.graph_op == "gcnconv":
            b, n, d = h.shape
            edge_index, edge_weight = batch_edges(edges[0], edges[1], n, b)
            out = self.static(h.reshape(b * n, d), edge_index, edge_weight).reshape(b, n, -1)
        if self.learned is not None:
            assert adaptive is not None
            learned = self.learned(h, [adaptive])
            out = learned if out is None else out + learned
        assert out is not None  # constructor rejects graph_op="none" without adaptive
        return out


@register_model("gcn-gru")
class GCNGRUStudent(AdaptiveAdjacency, ForecastModel):
    r"""GRU encoder followed by graph convolution (a lightweight T-GCN-style student; Zhao et al.,
    "T-GCN", IEEE T-ITS 2019 put the graph convolution inside the cell, here it runs once on the
    final states, which is what makes the student fast).

    .. math::
        \tilde x_t = [x_t \,\|\, P_f^{\top k} x_t \,\|\, P_b^{\top k} x_t]_{k=1..K}, \quad
        h = \mathrm{GRU}(\tilde x_{1..T_{in}}) \ \text{(per node)}, \quad
        z_0 = h, \quad z_{l} = \mathrm{ReLU}(\hat A z_{l-1} W_l + \tilde A_{adp}^\top z_{l-1} V_l + b_l),
        \quad g = h + z_L, \quad \hat y = W [g \,\|\, e_n] + b

    with ``\hat A = D^{-1/2}(A^\top + I)D^{-1/2}`` (GCN, in-degree) and, when ``adaptive``, the
    Graph WaveNet adjacency ``\tilde A_{adp} = \mathrm{SoftMax}(\mathrm{ReLU}(E_1 E_2^\top))``, applied
    transposed as Graph WaveNet applies it (node ``m`` aggregates column ``m``), so an adjacency inherited
    from the teacher acts on the student's states exactly as it acted on the teacher's.
    With ``input_hops = K > 0`` each node's GRU also reads its neighbourhood's readings diffused
    ``1..K`` steps forward and backward along the roads (DCRNN's transition matrices ``P_f = D_O^{-1} A``,
    ``P_b = D_I^{-1} A^\top``), so spatial context enters before the temporal encoding as well as after.
    With ``node_embed = E > 0`` the head also reads a learned identity ``e_n`` of each sensor (as STID,
    Shao et al., CIKM 2022, does), so one shared model can still forecast sensor-specific patterns.

    Args:
        num_nodes: number of sensors ``N``.
        graph: dense raw ``(N, N)`` weighted adjacency (default: None, i.e. self-loops only).
        in_steps: input steps (default: 12).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels (default: 2).
        hidden: GRU and graph width ``D`` (default: 32).
        layers: stacked GRU layers (default: 1).
        graph_layers: graph convolutions after the GRU, 1 or 2 (default: 1).
        graph_op: static-graph operator: ``"dense"`` (precomputed normalised matrix, one matmul),
            ``"gcnconv"`` (PyG ``GCNConv`` message passing, batched by node offset) or ``"none"``
            (adaptive adjacency only) (default: ``"dense"``: as a graph layer it measured 2.4-2.6x faster
            than ``"gcnconv"`` on the CPU (one thread) at B=1 and B=64 with N=207, D=32 and METR-LA's graph;
            whole-student times are dominated by the GRU; see ``benchmarks/results/graph_op.md``).
        adaptive: add a learned adaptive adjacency (default: False).
        embed_dim: node-embedding size of the adaptive adjacency (default: 10).
        input_hops: diffusion steps ``K`` of the inputs appended to each node's GRU input, 0 to 3
            (default: 0, the node's own readings only).
        node_embed: size ``E`` of a learned per-sensor embedding the head reads (default: 0, none).
        dropout: dropout between GRU layers and before the head (default: 0.0).
    """

    role = "student"
    feature_names = ("hidden", "graph")
    distill_feature = "graph"
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
        layers: int = 1,
        graph_layers: int = 1,
        graph_op: str = "dense",
        adaptive: bool = False,
        embed_dim: int = 10,
        input_hops: int = 0,
        node_embed: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            hidden=hidden,
            layers=layers,
            graph_layers=graph_layers,
            graph_op=graph_op,
            adaptive=adaptive,
            embed_dim=embed_dim,
            input_hops=input_hops,
            node_embed=node_embed,
            dropout=dropout,
        )
        _check_common("gcn-gru", hidden, layers, dropout)
        if graph_layers not in (1, 2):
            raise ConfigError(f"gcn-gru: graph_layers must be 1 or 2, got {graph_layers}")
        if graph_op not in GRAPH_OPS:
            raise ConfigError(f"gcn-gru: graph_op must be one of {', '.join(GRAPH_OPS)}, got {graph_op!r}")
        if graph_op == "none" and not adaptive:
            raise ConfigError("gcn-gru: graph_op='none' needs adaptive=True (without any graph use the 'gru' student)")
        if embed_dim < 1:
            raise ConfigError(f"gcn-gru: embed_dim must be >= 1, got {embed_dim}")
        if input_hops not in (0, 1, 2, 3):
            raise ConfigError(f"gcn-gru: input_hops must be 0, 1, 2 or 3, got {input_hops}")
        if node_embed < 0:
            raise ConfigError(f"gcn-gru: node_embed must be >= 0, got {node_embed}")
        self.graph_op = graph_op
        self.adaptive = adaptive
        self.dropout = dropout

        adj = as_adjacency(graph, num_nodes, where="gcn-gru")
        support = gcn_support(adj)
        self.input_hops = input_hops
        if input_hops:
            powers = []
            for step in diffusion_supports(adj):
                power = step
                for _ in range(input_hops):
                    powers.append(power)
                    power = step @ power
            self.register_buffer("input_supports", torch.stack(powers), persistent=False)
        edge_index, edge_weight = dense_to_edges(support)
        self.register_buffer("support", support, persistent=False)
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_weight", edge_weight, persistent=False)
        if adaptive:
            self.init_adaptive(num_nodes, embed_dim)

        self.encoder = _NodeGRU(in_channels * (1 + 2 * input_hops), hidden, layers, dropout)
        self.graph_layers = nn.ModuleList(_GraphLayer(hidden, graph_op, adaptive) for _ in range(graph_layers))
        self.node_embedding = nn.Parameter(0.1 * torch.randn(num_nodes, node_embed)) if node_embed else None
        self.head = nn.Linear(hidden + node_embed, out_steps)



    def forward(self, x: Tensor, return_features: bool = False):
        """Encode each node's history with the shared GRU, mix the states over the graph, forecast.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; features ``"hidden"``
            ``(B, N, hidden)`` (last GRU state), ``"graph"`` ``(B, N, hidden)`` (after the graph
            convolutions and the residual connection, the input of the head).
        """
        self._check_input(x)
        if self.input_hops:
            # (S, N, N) x (B, T, N, C) -> (B, T, N, S*C): every diffused copy of the inputs, side by side
            diffused = torch.einsum("smn,btnc->btmsc", self.input_supports, x).flatten(-2)
            x = torch.cat([x, diffused], dim=-1)
        _, h = self.encoder(x)
        adaptive = self.adaptive_support() if self.adaptive else None
        z = h
        for layer in self.graph_layers:
            z = F.relu(layer(z, self.support, (self.edge_index, self.edge_weight), adaptive))
        g = h + z
        head_in = F.dropout(g, self.dropout, training=self.training)
        if self.node_embedding is not None:
            head_in = torch.cat([head_in, self.node_embedding.expand(g.shape[0], -1, -1)], dim=-1)
        out = self.head(head_in).transpose(1, 2)
        if return_features:
            return out, {"hidden": h, "graph": g}
        return out
