"""Temporal convolution: WaveNet's gated dilated causal convolution, as Graph WaveNet's TCN uses it,
computed channels-last on ``(B, T, N, C)``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError

__all__ = ["GatedTemporalConv"]


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
