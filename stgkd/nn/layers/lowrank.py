"""A learned adaptive adjacency of rank ``r``, applied in ``O(N r d)`` and never formed as ``N x N``: its
pure functions (:func:`lowrank_adjacency`, :func:`apply_lowrank_adjacency`, :func:`factorise_adjacency`
to hand a dense teacher graph over) and the mixin a model holds its factors with (:class:`LowRankAdjacency`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError
from stgkd.nn.base import DENSE_SENSOR_LIMIT

__all__ = ["LowRankAdjacency", "apply_lowrank_adjacency", "factorise_adjacency", "lowrank_adjacency"]


def lowrank_adjacency(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    r"""The factors of a row-stochastic rank-``r`` adjacency ``A = \Theta B^\top``:
    ``\Theta = \mathrm{softmax}_r(E_1)`` (each sensor's mixture over ``r`` communities, rows sum to 1) and
    ``B = \mathrm{softmax}_N(E_2)`` (each community's distribution over target sensors, columns sum to 1),
    so ``A[n, m] = \sum_k \Theta[n, k] B[m, k]`` is a softmax-normalised positive kernel whose rows sum
    to 1 by construction, with no ``N x N`` normaliser to compute.

    Shapes:
        source ``(N, r)``, target ``(N, r)`` -> ``(N, r)``, ``(N, r)``
    """
    return torch.softmax(source, dim=1), torch.softmax(target, dim=0)


def apply_lowrank_adjacency(theta: Tensor, beta: Tensor, x: Tensor) -> Tensor:
    r"""``A^\top x`` for ``A = \Theta B^\top`` (node ``m`` aggregates ``\sum_n A[n, m] x[n]``, the direction
    Graph WaveNet applies its adaptive adjacency in) as ``B (\Theta^\top x)``: ``O(N r F)``, never ``N x N``.

    Shapes:
        theta, beta ``(N, r)``, x ``(N, ...)`` node-major -> ``(N, ...)``
    """
    flat = x.reshape(x.shape[0], -1)
    return (beta @ (theta.t() @ flat)).reshape(x.shape)


def factorise_adjacency(adj: Tensor, rank: int, *, iters: int = 300, seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""Fit ``A \approx \Theta B^\top`` (:func:`lowrank_adjacency`'s form) to a row-stochastic ``adj`` by
    probabilistic latent semantic analysis (Hofmann, 1999): the EM updates of KL-divergence NMF with
    ``\Theta`` row-stochastic and ``B`` column-stochastic, from a seeded positive start. Exact at
    ``rank = N`` in the limit; below, the best approximation this family admits in KL.
    Costs ``O(N^2 r)`` per iteration, once, where a teacher's dense ``(N, N)`` adjacency is handed over.

    Shapes:
        adj ``(N, N)`` -> theta ``(N, r)``, beta ``(N, r)`` (float64)
    """
    a = adj.detach().double().cpu()
    n = a.shape[0]
    if not 1 <= rank <= n:
        raise ConfigError(f"factorise_adjacency: rank must be in 1..{n} (the number of sensors), got {rank}")
    a = a / a.sum(1, keepdim=True).clamp_min(1e-300)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, rank, generator=gen, dtype=torch.float64) + 0.5
    theta /= theta.sum(1, keepdim=True)
    beta = torch.rand(n, rank, generator=gen, dtype=torch.float64) + 0.5
    beta /= beta.sum(0, keepdim=True)
    for _ in range(iters):
        ratio = a / (theta @ beta.t()).clamp_min(1e-300)
        theta, beta = theta * (ratio @ beta), beta * (ratio.t() @ theta)
        theta /= theta.sum(1, keepdim=True).clamp_min(1e-300)
        beta /= beta.sum(0, keepdim=True).clamp_min(1e-300)
    return theta, beta


class LowRankAdjacency:
    r"""Mixin: a learned adaptive adjacency of rank ``r`` applied in ``O(N r d)`` (:func:`lowrank_adjacency`,
    :func:`apply_lowrank_adjacency`), for a model with ``self.adaptive``; the tables ``source_factors`` and
    ``target_factors`` ``(N, r)`` are built by :meth:`init_lowrank`.

    Same direction as :class:`~stgkd.nn.layers.adaptive.AdaptiveAdjacency`: ``adaptive_support()`` is
    ``A^\top`` (node ``m`` aggregates ``\sum_n A[n, m] x[n]``), so a teacher's graph handed over with
    :meth:`load_adjacency` acts the same.
    """

    adaptive: bool
    source_factors: nn.Parameter
    target_factors: nn.Parameter

    def init_lowrank(self, num_nodes: int, rank: int) -> None:
        """Create the two ``(N, rank)`` factor tables (standard normal)."""
        if not 1 <= rank <= num_nodes:
            name = getattr(self, "registry_name", "") or type(self).__name__
            raise ConfigError(f"{name}: rank must be in 1..{num_nodes} (the number of sensors), got {rank}")
        self.source_factors = nn.Parameter(torch.randn(num_nodes, rank))
        self.target_factors = nn.Parameter(torch.randn(num_nodes, rank))

    def adaptive_factors(self) -> tuple[Tensor, Tensor]:
        """``(Theta, B)`` with ``A = Theta B^T`` (:func:`lowrank_adjacency`).

        Shapes:
            output two ``(N, r)``
        """
        return lowrank_adjacency(self.source_factors, self.target_factors)

    def apply_adaptive(self, x: Tensor) -> Tensor:
        """``A^T x`` without forming ``A``.

        Shapes:
            x ``(N, ...)`` node-major -> ``(N, ...)``
        """
        theta, beta = self.adaptive_factors()
        return apply_lowrank_adjacency(theta, beta, x)

    #: most sensors :meth:`adaptive_adjacency` forms a dense matrix for
    dense_limit: int = DENSE_SENSOR_LIMIT

    def adaptive_adjacency(self) -> Tensor:
        """The learned adjacency as a dense ``(N, N)`` matrix (rows sum to 1): for inspection, tests and
        relation distillation; the forward pass never forms it.

        Raises:
            ConfigError: more than :attr:`dense_limit` sensors (use :meth:`adaptive_factors`).

        Shapes:
            output ``(N, N)``
        """
        name = getattr(self, "registry_name", "") or type(self).__name__
        if not self.adaptive:
            raise ConfigError(f"{name}: adaptive_adjacency() needs adaptive=True")
        n = self.source_factors.shape[0]
        if n > self.dense_limit:
            raise ConfigError(f"{name}: adaptive_adjacency() would form a dense {n} x {n} matrix "
                              f"({n * n * 4 / 2**30:.1f} GiB), above dense_limit={self.dense_limit} sensors; "
                              "the factors (adaptive_factors()) apply it in O(N r d)")
        theta, beta = self.adaptive_factors()
        return theta @ beta.t()

    def adaptive_support(self) -> Tensor:
        """``A^T`` as a dense ``(N, N)`` matrix (see :meth:`adaptive_adjacency`).

        Shapes:
            output ``(N, N)``
        """
        return self.adaptive_adjacency().t()

    @torch.no_grad()
    def load_adjacency(self, adj: Tensor, *, iters: int = 300) -> float:
        """Hand over a row-stochastic adjacency (e.g. a teacher's ``softmax(ReLU(E1 E2^T))``): fit the factors
        to it with :func:`factorise_adjacency` and return the relative error of the applied operator on
        a standard-normal node signal, ``||A_s^T x - A^T x|| / ||A^T x||``.

        Shapes:
            adj ``(N, N)``
        """
        rank = self.source_factors.shape[1]
        theta, beta = factorise_adjacency(adj, rank, iters=iters)
        tiny = torch.finfo(torch.float32).tiny
        self.source_factors.copy_(theta.clamp_min(tiny).log())
        self.target_factors.copy_(beta.clamp_min(tiny).log())
        signal = torch.randn(adj.shape[0], 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        ref = adj.detach().double().cpu().t() @ signal
        got = apply_lowrank_adjacency(*(f.double().cpu() for f in self.adaptive_factors()), signal)
        return float((got - ref).norm() / ref.norm().clamp_min(1e-300))
