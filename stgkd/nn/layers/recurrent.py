"""Recurrent helpers: the final state of a GRU over many independent sequences, chunked on the CPU in
training so its cost per sequence stays flat as the network grows (:func:`gru_final_state`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GRU_CPU_CHUNK", "gru_final_state"]

#: sequences per call of a CPU GRU in training (:func:`gru_final_state`). PyTorch's CPU GRU forward and
#: backward over one batch of many sequences slows down as the batch grows past the caches: at 12 steps,
#: 2 inputs, 32 hidden, one thread, 31 us per sequence at 13,248 sequences (207 sensors x 64 windows) and
#: 37 at 68,800 (8,600 x 8), against 16 and 14 in chunks of 2,048 (1,024: 14 and 13; 8,192: 22 and 19);
#: ``benchmarks/results/gru-chunk-cpu-2026-12-04.md`` (by the retired ``benchmarks/gru_chunk.py``, in the history at ``33ba39a``).
GRU_CPU_CHUNK = 2048


def gru_final_state(gru: nn.GRU, seqs: Tensor, chunk: int = GRU_CPU_CHUNK) -> Tensor:
    """The last layer's final hidden state of a ``batch_first`` GRU over independent sequences. In training
    on the CPU, more than ``chunk`` sequences run ``chunk`` at a time (the same result: the sequences never
    interact), which keeps the cost per sequence flat as the network grows (:data:`GRU_CPU_CHUNK`).
    Elsewhere (eval mode, as exported; CUDA) one call.

    Shapes:
        seqs ``(S, T, C)`` -> ``(S, hidden)``
    """
    if gru.training and seqs.device.type == "cpu" and seqs.shape[0] > chunk:
        return torch.cat([gru(part)[1][-1] for part in seqs.split(chunk)])
    return gru(seqs)[1][-1]
