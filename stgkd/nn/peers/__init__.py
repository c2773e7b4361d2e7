"""Peer teachers: published spatio-temporal models built from PyTorch Geometric Temporal layers.

Each class wraps PGT 0.56.2 layers (imported through :func:`stgkd.compat.import_torch_geometric_temporal`,
never copied) behind the common :class:`~stgkd.nn.base.ForecastModel` interface: input
``(B, T_in, N, C)``, forecast ``(B, T_out, N)``, features ``(B, N, D)`` / ``(B, T, N, D)``.

PGT's layers do not share one layout, so each wrapper converts explicitly, and
``tests/nn/test_peers.py`` checks every conversion against a direct call of the PGT layer:

=============  ==========================================  ==========================================
wrapper        PGT layer and its native layout              what the wrapper does
=============  ==========================================  ==========================================
``dcrnn``      ``BatchedDCRNN`` cell, ``(B*N, F)`` per step  batch as node offsets ``b*N + i``; one
               (its own ``forward`` takes ``(B, T, N, F)``   step at a time (the decoder needs the
               but only runs from a zero state)              encoder state); diffusion weights fixed,
                                                            see :class:`DCRNN`
``stgcn``      ``STConv`` ``(B, T, N, C)``; its forward     same sub-layers, ChebConv applied once to
               loops over every ``(b, t)`` in Python        ``(B*T', N, C)`` (PyG ``node_dim=-2``)
``agcrn``      ``AGCRN`` cell ``(B, N, F)`` per step         used as is
``mtgnn``      ``MTGNN`` ``(B, C, N, T)`` → ``(B, T_out, N, 1)``  permutes in and out
=============  ==========================================  ==========================================

``pgt-tgcn``, ``pgt-a3tgcn`` and ``pgt-gconvgru`` (:class:`PGTRecurrent`) are PGT's own recurrent cells
(``TGCN2``, ``A3TGCN2``, ``GConvGRU``) wrapped as PGT's METR-LA example uses them, the benchmarks' peers:
the cell reads the input steps and a linear layer maps its last hidden state to every horizon.

The classes are registered at import even where PGT is missing; building one then raises
:class:`stgkd.compat.MissingDependencyError` with the install command.

The package holds one module per model (:mod:`~stgkd.nn.peers.dcrnn`, :mod:`~stgkd.nn.peers.stgcn`,
:mod:`~stgkd.nn.peers.agcrn`, :mod:`~stgkd.nn.peers.mtgnn`), PGT's recurrent cells
(:mod:`~stgkd.nn.peers.pgt_cells`) and what they share (:mod:`~stgkd.nn.peers.common`).
"""

from __future__ import annotations

from torch_geometric.utils import dense_to_sparse  # noqa: F401  (reached as peers.dense_to_sparse)

from stgkd.nn.base import ForecastModel  # noqa: F401  (reached as peers.ForecastModel)
from stgkd.nn.peers.agcrn import AGCRN
from stgkd.nn.peers.common import diffusion_norms
from stgkd.nn.peers.dcrnn import DCRNN
from stgkd.nn.peers.mtgnn import MTGNN
from stgkd.nn.peers.pgt_cells import PGTA3TGCN, PGTGConvGRU, PGTRecurrent, PGTTGCN
from stgkd.nn.peers.stgcn import STGCN

__all__ = ["DCRNN", "STGCN", "AGCRN", "MTGNN", "PGTRecurrent", "PGTTGCN", "PGTA3TGCN", "PGTGConvGRU", "diffusion_norms"]
