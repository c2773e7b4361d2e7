"""MTGNN (Wu et al., KDD 2020): PGT's ``MTGNN`` in its METR-LA configuration."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel
from stgkd.nn.peers.common import check_positive, pgt
from stgkd.nn.registry import register_model

__all__ = ["MTGNN"]


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
        check_positive(
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
        self.net = pgt().nn.attention.MTGNN(
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
