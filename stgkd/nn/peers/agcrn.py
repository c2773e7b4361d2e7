"""AGCRN (Bai et al., NeurIPS 2020) built from PGT's ``AGCRN`` cell."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel
from stgkd.nn.peers.common import check_positive, pgt
from stgkd.nn.registry import register_model

__all__ = ["AGCRN"]


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
        check_positive(hidden=hidden, layers=layers, embed_dim=embed_dim)
        if cheb_k < 2:
            raise ConfigError(f"agcrn: cheb_k must be >= 2 (identity plus the adaptive support), got {cheb_k}")
        cell = pgt().nn.recurrent.AGCRN
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
