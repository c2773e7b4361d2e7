"""Dynamic int8 students (``quantize="int8"``): linear and recurrent layers quantised with ``torch.ao``."""

from __future__ import annotations

import copy
import warnings
from typing import Sequence

import torch
from torch import nn

from stgkd.errors import ConfigError

__all__ = ["INT8_LAYERS", "QUANTIZE", "quantize_int8"]

#: ``quantize=`` choices of :func:`export_student`
QUANTIZE = ("int8",)
#: layer groups :func:`quantize_int8` can convert, by name -> module types
INT8_LAYERS = {"linear": (nn.Linear,), "recurrent": (nn.GRU, nn.LSTM)}


def quantize_int8(student: nn.Module, layers: Sequence[str] = ("linear", "recurrent")) -> tuple[nn.Module, list[str]]:
    """A copy of ``student`` with its linear and/or recurrent layers quantised to dynamic int8.

    ``torch.ao.quantization.quantize_dynamic`` with ``torch.qint8``: each ``nn.Linear`` / ``nn.GRU`` /
    ``nn.LSTM`` keeps its weights as int8 (per tensor) and quantises its input activations on the fly at
    every call, so no calibration data is needed; the result is CPU-only and traces with
    ``torch.jit.trace``. What stays fp32: everything that is not one of those modules -- the graph products
    (``support @ H``), the GRU's gate nonlinearities, PyG ``GCNConv``'s own linear, the raw-units wrapper.

    Args:
        student: the fp32 model (left unchanged).
        layers: groups to convert, from ``"linear"`` and ``"recurrent"`` (default: both).

    Returns:
        ``(quantised copy in eval mode on the CPU, names of the converted modules)``.

    Raises:
        ConfigError: an unknown group, or nothing in the student to convert.
    """
    unknown = [name for name in layers if name not in INT8_LAYERS]
    if unknown or not layers:
        raise ConfigError(f"int8 layers {list(layers)!r}: choose from {', '.join(INT8_LAYERS)}")
    from torch.ao.quantization import quantize_dynamic

    types = {t for name in layers for t in INT8_LAYERS[name]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the torch.ao eager-mode API announces its move to torchao
        quantised = quantize_dynamic(copy.deepcopy(student).cpu().eval(), types, dtype=torch.qint8)
    from torch.ao.nn.quantized import dynamic as qdynamic

    converted = [name for name, m in quantised.named_modules()
                 if isinstance(m, (qdynamic.Linear, qdynamic.GRU, qdynamic.LSTM))]
    if not converted:
        raise ConfigError(
            f"{type(student).__name__} has no {' or '.join(layers)} layer (nn.Linear, nn.GRU, nn.LSTM) to quantise"
        )
    return quantised.eval(), converted
