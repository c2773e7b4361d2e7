"""Numeric precision by name: the context a forward pass runs in.

``"fp32"`` runs as is; ``"bf16"`` and ``"fp16"`` run under :func:`torch.autocast` (weights stay
float32, matrix products run in the low precision). Training uses bf16 autocast on CUDA only
(:func:`training_autocast`); the latency measurements and the benchmarks name the precision they time.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["DTYPES", "autocast", "training_autocast"]

#: precision names -> the dtype autocast computes in
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, dtype: str, *, cache_enabled: bool = True):
    """The context for a forward pass on ``device`` at precision ``dtype`` (a key of :data:`DTYPES`):
    nothing for ``"fp32"``, else :func:`torch.autocast` to that dtype (``cache_enabled=False`` while a
    CUDA graph is captured)."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype], cache_enabled=cache_enabled)


def training_autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA when ``enabled`` (``TrainConfig.amp``); float32 elsewhere."""
    return autocast(device, "bf16" if enabled and device.type == "cuda" else "fp32")
