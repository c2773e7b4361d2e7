"""PGT's own recurrent cells (``TGCN2``, ``A3TGCN2``, ``GConvGRU``) wrapped as PGT's METR-LA example
uses them: the cell reads the input steps and a linear layer maps its last hidden state to every horizon."""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn
from torch_geometric.utils import dense_to_sparse

from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel
from stgkd.nn.peers.common import graph_tensor, pgt
from stgkd.nn.registry import register_model

__all__ = ["PGTRecurrent", "PGTTGCN", "PGTA3TGCN", "PGTGConvGRU"]


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
        self._pgt = pgt()
        edge_index, edge_weight = dense_to_sparse(graph_tensor(graph, num_nodes))
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
    ``(B, N, F)`` from a zero state ``(B, N, hidden)``.

    Args:
        num_nodes: number of sensors ``N``.
        graph: dense raw ``(N, N)`` weighted adjacency (default: identity).
        in_steps, out_steps, in_channels: window shape (default: 12, 12, 2).
        hidden: width of the cell (default: 32, as PGT's METR-LA example).
    """

    def _make_cell(self, in_channels: int, hidden: int) -> nn.Module:
        return self._pgt.nn.recurrent.GConvGRU(in_channels, hidden, K=2)

    def _encode(self, x: Tensor) -> Tensor:
        b, _, n, _ = x.shape
        h = x.new_zeros(b, n, self.hidden)  # its own default state is (B, D), wrong for batched input
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], self.edge_index, self.edge_weight, h)
        return h
