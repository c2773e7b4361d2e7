"""Numeric precision by name: how a forward pass runs at ``"fp32"``, ``"bf16"`` or ``"fp16"``.

``"fp32"`` runs as is. At a low precision a model runs one of two ways (:func:`inference_precision`):

* **autocast** (most models): :func:`torch.autocast` to that dtype; the weights stay float32 and matrix
  products and convolutions run in the low precision;
* **cast** (models with recurrent layers, :data:`RECURRENT`): weights, buffers and inputs cast to the low
  precision, no autocast. Autocast cannot be trusted with a recurrent layer: on CUDA, autocast's rule
  for cuDNN's RNN kernel casts to float16 *whatever dtype was asked*, so a "bf16" GRU under autocast
  computes in fp16.

Either way every call does the same work: autocast is entered per call without its weight cache (a
request entering autocast anew pays the weight casts; a CUDA graph captured under it replays them), and
a cast model has nothing left to convert.

Training uses bf16 autocast on CUDA only (:func:`training_autocast`). A model with recurrent layers then
still computes those in fp16 (cuDNN's rule above), so its loss is scaled (:func:`grad_scaler`): fp16
gradients underflow without it.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["DTYPES", "RECURRENT", "METHODS", "InferencePrecision", "autocast", "has_recurrent",
           "inference_precision", "precision_label", "training_autocast", "needs_grad_scaler", "grad_scaler"]

#: precision names -> the dtype autocast computes in
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: the module types whose low-precision forward is cast rather than autocast
RECURRENT = (nn.RNNBase, nn.RNNCellBase)
#: how a forward runs at a precision (:class:`InferencePrecision`)
METHODS = ("fp32", "autocast", "cast")


def autocast(device: torch.device, dtype: str, *, cache_enabled: bool = True):
    """The context for a forward pass on ``device`` at precision ``dtype`` (a key of :data:`DTYPES`):
    nothing for ``"fp32"``, else :func:`torch.autocast` to that dtype (``cache_enabled=False`` while a
    CUDA graph is captured)."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype], cache_enabled=cache_enabled)


def has_recurrent(module: nn.Module) -> bool:
    """Whether ``module`` holds a recurrent layer (:data:`RECURRENT`: ``nn.GRU``, ``nn.LSTM``, ``nn.RNN``
    and their cells)."""
    return any(isinstance(m, RECURRENT) for m in module.modules())


@dataclass(frozen=True)
class InferencePrecision:
    """How a model's forward runs at precision ``dtype``.

    Attributes:
        dtype: the precision asked for (a key of :data:`DTYPES`).
        method: ``"fp32"``, ``"autocast"`` or ``"cast"`` (see the module docstring).
    """

    dtype: str
    method: str

    def prepare(self, model: nn.Module) -> nn.Module:
        """The module to call: ``model`` itself, or a copy cast to the low precision (``"cast"``; the
        caller's model keeps its float32 weights)."""
        if self.method != "cast":
            return model
        return copy.deepcopy(model).to(DTYPES[self.dtype])

    def inputs(self, x: Tensor) -> Tensor:
        """``x`` as the prepared module takes it (cast to the low precision for ``"cast"``)."""
        return x.to(DTYPES[self.dtype]) if self.method == "cast" else x

    def context(self, device: torch.device):
        """The context each call runs in: autocast without its weight cache (``"autocast"``), else nothing."""
        if self.method != "autocast":
            return contextlib.nullcontext()
        return autocast(device, self.dtype, cache_enabled=False)


def inference_precision(model: nn.Module, dtype: str) -> InferencePrecision:
    """How ``model`` runs at ``dtype``: ``"fp32"`` as is, ``"cast"`` when it has recurrent layers
    (:func:`has_recurrent`), ``"autocast"`` otherwise."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: choose one of {', '.join(DTYPES)}")
    if dtype == "fp32":
        return InferencePrecision(dtype, "fp32")
    return InferencePrecision(dtype, "cast" if has_recurrent(model) else "autocast")


def precision_label(dtype: str, method: str | None = None) -> str:
    """A precision as it ran, for tables: ``"bf16"`` (autocast or fp32) or ``"bf16, cast"`` (the model cast
    whole)."""
    return f"{dtype}, cast" if method == "cast" else str(dtype)


def training_autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA when ``enabled`` (``TrainConfig.amp``); float32 elsewhere."""
    return autocast(device, "bf16" if enabled and device.type == "cuda" else "fp32")


def needs_grad_scaler(model: nn.Module, device: torch.device, amp: bool) -> bool:
    """Whether training ``model`` under :func:`training_autocast` computes in fp16 somewhere and so needs
    loss scaling: amp on CUDA and a recurrent layer (cuDNN's RNN runs fp16 under autocast)."""
    return bool(amp) and torch.device(device).type == "cuda" and has_recurrent(model)


def grad_scaler(model: nn.Module, device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """The loss scaler of a training run: enabled when :func:`needs_grad_scaler`, else a pass-through
    (``scale`` returns the loss, ``unscale_`` does nothing, ``step`` steps the optimiser)."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(model, device, amp))
