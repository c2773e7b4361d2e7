"""DCRNN (Li et al., ICLR 2018) built from PGT's ``BatchedDCRNN`` cell."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.nn.base import ForecastModel
from stgkd.nn.peers.common import batch_edges, check_positive, diffusion_norms, graph_tensor, pgt
from stgkd.nn.registry import register_model

__all__ = ["DCRNN"]


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
        check_positive(hidden=hidden, layers=layers, diffusion_steps=diffusion_steps)
        cell = pgt().nn.recurrent.BatchedDCRNN
        k = diffusion_steps + 1
        self.hidden = hidden
        self.encoder = nn.ModuleList(
            cell(in_channels if i == 0 else hidden, hidden, k) for i in range(layers)
        )
        self.decoder = nn.ModuleList(cell(1 if i == 0 else hidden, hidden, k) for i in range(layers))
        self.project = nn.Linear(hidden, 1)
        edge_index, norm_out, reverse_index, norm_in = diffusion_norms(graph_tensor(graph, num_nodes))
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("reverse_edge_index", reverse_index, persistent=False)
        self.register_buffer("norm_out", norm_out, persistent=False)
        self.register_buffer("norm_in", norm_in, persistent=False)

    def _prime(self, batch: int) -> Tensor:
        """Load the ``batch``-copy graph's norms into every PGT ``BatchedDConv`` and return its edges."""
        n = self.num_nodes
        edge_index = batch_edges(self.edge_index, batch, n)
        reverse = batch_edges(self.reverse_edge_index, batch, n)
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
