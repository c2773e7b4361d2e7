"""Normalisation in the channels-last layout: batch norm over the last (channel) axis."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ChannelBatchNorm"]


class ChannelBatchNorm(nn.BatchNorm1d):
    """Batch norm over the last (channel) axis, statistics over all other axes.

    Same parameters and statistics as ``BatchNorm2d`` on the channels-first layout.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Normalise every channel.

        Shapes:
            x ``(..., C)`` -> ``(..., C)``
        """
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)
