"""Graph convolutions over dense supports (:mod:`stgkd.nn.layers.supports`): diffusion convolution
(DCRNN, Graph WaveNet) and GCN-style convolution with one linear map over the supports.

Tensor layouts are channels-last: ``(B, T, N, C)`` sequences, ``(B, N, C)`` node states.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stgkd.errors import ConfigError
from stgkd.nn.layers.supports import apply_support

__all__ = ["DenseGraphConv", "DiffusionGraphConv"]


class DiffusionGraphConv(nn.Module):
    r"""Diffusion graph convolution (Li et al., ICLR 2018; as used in Graph WaveNet).

    .. math::
        Z = \Big[X \,\|\, S_1 X \,\|\, S_1^2 X \,\|\dots\|\, S_1^K X \,\|\, S_2 X \,\|\dots\|\, S_M^K X\Big] W + b

    i.e. ``Z = X W_0 + sum_s sum_k S_s^k X W_{s,k} + b``, followed by dropout.

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels.
        num_supports: number of supports ``M`` passed to :meth:`forward`.
        order: diffusion steps ``K`` per support (default: 2).
        dropout: dropout on the output (default: 0.0).
    """

    def __init__(self, in_channels: int, out_channels: int, num_supports: int, *, order: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if num_supports < 1 or order < 1:
            raise ConfigError(f"DiffusionGraphConv: num_supports and order must be >= 1, got {num_supports}, {order}")
        self.num_supports = num_supports
        self.order = order
        self.dropout = dropout
        self.mlp = nn.Linear((order * num_supports + 1) * in_channels, out_channels)

    def forward(self, x: Tensor, supports: list[Tensor]) -> Tensor:
        """Diffuse ``x`` over every support for ``order`` hops and mix the results.

        Shapes:
            x ``(..., N, C_in)`` (e.g. ``(B, T, N, C_in)``), supports ``M`` x ``(N, N)``
            -> ``(..., N, C_out)``
        """
        if len(supports) != self.num_supports:
            raise ConfigError(f"DiffusionGraphConv: expected {self.num_supports} supports, got {len(supports)}")
        out = [x]
        for support in supports:
            h = x
            for _ in range(self.order):
                h = apply_support(support, h)
                out.append(h)
        h = self.mlp(torch.cat(out, dim=-1))
        return F.dropout(h, self.dropout, training=self.training)


class DenseGraphConv(nn.Module):
    r"""Graph convolution with precomputed dense supports: ``Z = sum_s S_s X W_s + b``.

    With one support ``S = D^-1/2 (A^T + I) D^-1/2`` this is GCN (Kipf & Welling, ICLR 2017).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        num_supports: number of supports passed to :meth:`forward` (default: 1).
        bias: learn an additive bias (default: True).
    """

    def __init__(self, in_channels: int, out_channels: int, num_supports: int = 1, *, bias: bool = True) -> None:
        super().__init__()
        if num_supports < 1:
            raise ConfigError(f"DenseGraphConv: num_supports must be >= 1, got {num_supports}")
        self.num_supports = num_supports
        self.lin = nn.Linear(num_supports * in_channels, out_channels, bias=bias)

    def forward(self, x: Tensor, supports: list[Tensor]) -> Tensor:
        """Aggregate with every support, then one linear map over the concatenation.

        Shapes:
            x ``(..., N, C_in)``, supports ``num_supports`` x ``(N, N)`` -> ``(..., N, C_out)``
        """
        if len(supports) != self.num_supports:
            raise ConfigError(f"DenseGraphConv: expected {self.num_supports} supports, got {len(supports)}")
        if self.num_supports == 1:
            return self.lin(apply_support(supports[0], x))
        return self.lin(torch.cat([apply_support(s, x) for s in supports], dim=-1))
