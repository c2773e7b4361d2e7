"""Graph WaveNet, the default teacher."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel, as_adjacency
from stgkd.nn.layers.adaptive import AdaptiveAdjacency
from stgkd.nn.layers.graph_conv import DiffusionGraphConv
from stgkd.nn.layers.norm import ChannelBatchNorm
from stgkd.nn.layers.supports import diffusion_supports
from stgkd.nn.layers.temporal_conv import GatedTemporalConv
from stgkd.nn.registry import register_model

__all__ = ["GraphWaveNet"]


@register_model("graph-wavenet")
class GraphWaveNet(AdaptiveAdjacency, ForecastModel):
    r"""Graph WaveNet (Wu, Pan, Long, Jiang, Zhang: "Graph WaveNet for Deep Spatial-Temporal Graph
    Modeling", IJCAI 2019).

    Each layer ``l`` is a gated dilated causal temporal convolution followed by a diffusion graph
    convolution over the forward / backward transition matrices and the self-adaptive adjacency:

    .. math::
        H = \tanh(\Theta_f \star_{d_l} X) \odot \sigma(\Theta_g \star_{d_l} X), \qquad
        Z = \sum_{k=0}^{K} P_f^k H W_{k1} + P_b^k H W_{k2} + \tilde A_{adp}^k H W_{k3},
        \qquad \tilde A_{adp} = \mathrm{SoftMax}(\mathrm{ReLU}(E_1 E_2^\top))

    with ``X_{l+1} = BN(Z + X_l)`` (residual) and a 1x1 skip projection of ``H`` summed over layers;
    the forecast is ``W_2 ReLU(W_1 ReLU(\sum_l skip_l))``, all horizons at once. Kernel 2 with
    dilations 1, 2 in each of 4 blocks gives a receptive field of 13 steps (12 inputs are left-padded
    to 13, as in the official code). Defaults are the paper's METR-LA setting: 300,952 parameters at
    207 nodes (the official code reports 309,400 because it also builds 8 residual 1x1 convolutions
    it never uses when the graph convolution is on).

    Supports follow DCRNN: ``P_f = D_O^{-1} A`` and ``P_b = D_I^{-1} A^T``, applied as ``P^T X``
    (signal diffused along the edges ``row -> column``), as the official implementation does.

    Args:
        num_nodes: number of sensors ``N``.
        graph: dense raw ``(N, N)`` weighted adjacency (default: None, i.e. no static edges).
        in_steps: input steps ``T_in`` (default: 12).
        out_steps: forecast horizons ``T_out`` (default: 12).
        in_channels: input channels ``C`` (default: 2).
        residual_channels: channels of the residual stream (default: 32).
        dilation_channels: channels of the gated TCN output (default: 32).
        skip_channels: channels of the skip connections (default: 256).
        end_channels: hidden width of the output head (default: 512).
        kernel_size: temporal kernel size (default: 2).
        blocks: number of blocks (default: 4).
        layers: layers per block, dilations ``1, 2, ..., 2^(layers-1)`` (default: 2).
        order: diffusion steps ``K`` (default: 2).
        dropout: dropout after each graph convolution (default: 0.3).
        static_graph: use the forward / backward transition matrices of ``graph`` (default: True).
        adaptive: learn the self-adaptive adjacency (default: True).
        embed_dim: node-embedding size of the adaptive adjacency (default: 10).
    """

    role = "teacher"
    feature_names = ("hidden", "skip", "head")
    distill_feature = "skip"
    uses_graph = True

    def __init__(
        self,
        *,
        num_nodes: int,
        graph: Tensor | np.ndarray | None = None,
        in_steps: int = 12,
        out_steps: int = 12,
        in_channels: int = 2,
        residual_channels: int = 32,
        dilation_channels: int = 32,
        skip_channels: int = 256,
        end_channels: int = 512,
        kernel_size: int = 2,
        blocks: int = 4,
        layers: int = 2,
        order: int = 2,
        dropout: float = 0.3,
        static_graph: bool = True,
        adaptive: bool = True,
        embed_dim: int = 10,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            residual_channels=residual_channels,
            dilation_channels=dilation_channels,
            skip_channels=skip_channels,
            end_channels=end_channels,
            kernel_size=kernel_size,
            blocks=blocks,
            layers=layers,
            order=order,
            dropout=dropout,
            static_graph=static_graph,
            adaptive=adaptive,
            embed_dim=embed_dim,
        )
        for key, value in {
            "residual_channels": residual_channels,
            "dilation_channels": dilation_channels,
            "skip_channels": skip_channels,
            "end_channels": end_channels,
            "kernel_size": kernel_size,
            "blocks": blocks,
            "layers": layers,
            "order": order,
            "embed_dim": embed_dim,
        }.items():
            if value < 1:
                raise ConfigError(f"graph-wavenet: {key} must be >= 1, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"graph-wavenet: dropout must be in [0, 1), got {dropout}")
        self.static_graph = static_graph
        self.adaptive = adaptive

        forward_p, backward_p = diffusion_supports(as_adjacency(graph, num_nodes, where="graph-wavenet"))
        self.register_buffer("support_forward", forward_p, persistent=False)
        self.register_buffer("support_backward", backward_p, persistent=False)
        if adaptive:
            self.init_adaptive(num_nodes, embed_dim)
        num_supports = 2 * int(static_graph) + int(adaptive)
        self.graph_conv = num_supports > 0

        self.start = nn.Linear(in_channels, residual_channels)
        self.temporal = nn.ModuleList()
        self.skips = nn.ModuleList()
        self.mixers = nn.ModuleList()  # diffusion graph convs, or 1x1 residual convs without a graph
        self.norms = nn.ModuleList()
        receptive_field = 1
        for _ in range(blocks):
            for i in range(layers):
                tcn = GatedTemporalConv(residual_channels, dilation_channels, dilation=2**i, kernel_size=kernel_size)
                receptive_field += tcn.shrink
                self.temporal.append(tcn)
                self.skips.append(nn.Linear(dilation_channels, skip_channels))
                if self.graph_conv:
                    self.mixers.append(
                        DiffusionGraphConv(dilation_channels, residual_channels, num_supports, order=order, dropout=dropout)
                    )
                else:
                    self.mixers.append(nn.Linear(dilation_channels, residual_channels))
                self.norms.append(ChannelBatchNorm(residual_channels))
        self.receptive_field = receptive_field
        self.end1 = nn.Linear(skip_channels, end_channels)
        self.end2 = nn.Linear(end_channels, out_steps)



    def supports(self) -> list[Tensor]:
        """The supports every diffusion convolution applies (``out = S @ x``: ``P_f^T``, ``P_b^T``,
        ``A_adp^T``), static first, adaptive last."""
        out = [self.support_forward, self.support_backward] if self.static_graph else []
        if self.adaptive:
            out.append(self.adaptive_support())
        return out

    def forward(self, x: Tensor, return_features: bool = False):
        """Forecast all horizons at once.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``. With ``return_features=True`` also a
            dict of
            ``"hidden"`` ``(B, T', N, residual_channels)``: output of the last layer, ``T' = 1`` for
            ``T_in <= 13`` with the default stack (``max(T_in, 13) - 12`` in general);
            ``"skip"`` ``(B, N, skip_channels)``: the summed skip connections at the last step, the
            input of the output head (the natural distillation match);
            ``"head"`` ``(B, N, end_channels)``: after the first end layer and its ReLU.
        """
        self._check_input(x)
        if x.shape[1] < self.receptive_field:
            x = F.pad(x, (0, 0, 0, 0, self.receptive_field - x.shape[1], 0))
        supports = self.supports() if self.graph_conv else []
        h = self.start(x)
        skip: Tensor | None = None
        for tcn, skip_lin, mixer, norm in zip(self.temporal, self.skips, self.mixers, self.norms):
            residual = h
            g = tcn(h)
            s = skip_lin(g)
            skip = s if skip is None else s + skip[:, -s.shape[1] :]
            h = mixer(g, supports) if self.graph_conv else mixer(g)
            h = norm(h + residual[:, -h.shape[1] :])
        assert skip is not None  # at least one layer (checked in __init__)
        skip_last = skip[:, -1]
        head = F.relu(self.end1(F.relu(skip_last)))
        out = self.end2(head).transpose(1, 2)
        if return_features:
            return out, {"hidden": h, "skip": skip_last, "head": head}
        return out
