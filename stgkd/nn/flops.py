"""FLOP estimates per forward pass.

Counts follow :class:`torch.utils.flop_counter.FlopCounterMode`: a matmul of ``(M, K) @ (K, N)``
is ``2 M K N`` FLOPs, convolutions likewise; biases, activations, norms and other elementwise work
are not counted. Two things the counter misses or counts device-dependently are handled here:

- recurrent layers (``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` and their ``*Cell``): on CPU they
  decompose into matmuls the counter sees, on CUDA they run as one cuDNN kernel it does not see;
  whatever the counter saw inside such a module is replaced by the analytic count
  ``2 * B * T * gates * H * (I + H)`` per layer and direction (gates: GRU 3, LSTM 4, RNN 1);
- PyG message passing (``MessagePassing.propagate``): gather and scatter-add are invisible to the
  counter; each propagate adds ``2 * E * D`` (one multiply by the edge weight and one add per edge
  and channel);
- any module with an ``extra_flops(args, output) -> int`` method declares what the counter cannot see
  of its own work, added once per call (e.g. :class:`stgkd.nn.layers.edges.EdgePropagation`: ``2 * E * D``).
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "rnn_flops"]

_GATES = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1, nn.GRUCell: 3, nn.LSTMCell: 4, nn.RNNCell: 1}


def _gates(module: nn.Module) -> int | None:
    for cls, gates in _GATES.items():
        if isinstance(module, cls):
            return gates
    return None


def rnn_flops(module: nn.Module, x: Tensor) -> int:
    """Analytic matmul FLOPs of one call of a recurrent module on input ``x``.

    Shapes:
        x: ``(B, T, I)`` if ``batch_first`` else ``(T, B, I)``, or ``(T, I)`` unbatched for the
        sequence modules; ``(B, I)`` or ``(I,)`` for the cells.
    """
    gates = _gates(module)
    if gates is None:
        raise TypeError(f"rnn_flops: {type(module).__name__} is not a GRU/LSTM/RNN (cell)")
    if isinstance(module, nn.RNNCellBase):
        batch = x.shape[0] if x.dim() == 2 else 1
        return 2 * batch * gates * module.hidden_size * (module.input_size + module.hidden_size)
    assert isinstance(module, nn.RNNBase)
    if x.dim() == 2:
        steps, batch = x.shape[0], 1
    elif module.batch_first:
        batch, steps = x.shape[0], x.shape[1]
    else:
        steps, batch = x.shape[0], x.shape[1]
    hidden = module.hidden_size
    proj = getattr(module, "proj_size", 0) or 0
    recurrent = proj or hidden
    dirs = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        inp = module.input_size if layer == 0 else recurrent * dirs
        per_step = gates * hidden * (inp + recurrent) + (hidden * proj if proj else 0)
        total += 2 * batch * steps * per_step * dirs
    return total


def count_flops(model: nn.Module, x: Tensor, **kwargs: Any) -> int:
    """Estimated FLOPs of ``model(x, **kwargs)`` (one forward, no gradient).

    Shapes:
        x: whatever ``model`` takes, e.g. ``(B, T, N, C)`` for a :class:`~stgkd.nn.ForecastModel`.
    """
    handles = []
    extra = [0]
    counter = FlopCounterMode(display=False)
    stack: list[int] = []

    def rnn_pre(module: nn.Module, args: tuple) -> None:
        stack.append(counter.get_total_flops())

    def rnn_post(module: nn.Module, args: tuple, output: Any) -> None:
        seen = counter.get_total_flops() - stack.pop()
        inp = args[0]
        if isinstance(inp, nn.utils.rnn.PackedSequence):
            raise TypeError("count_flops: PackedSequence inputs to recurrent layers are not supported")
        extra[0] += rnn_flops(module, inp) - seen

    def propagate_post(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        edge_index = inputs[0]
        if isinstance(edge_index, Tensor) and isinstance(output, Tensor):
            extra[0] += 2 * int(edge_index.shape[1]) * int(output.shape[-1])

    message_passing = None
    if "torch_geometric" in sys.modules:  # only models that imported PyG can contain its layers
        from torch_geometric.nn import MessagePassing as message_passing

    def declared_post(module: nn.Module, args: tuple, output: Any) -> None:
        extra[0] += int(module.extra_flops(args, output))

    for module in model.modules():
        if callable(getattr(module, "extra_flops", None)):
            handles.append(module.register_forward_hook(declared_post))
        if _gates(module) is not None:
            handles.append(module.register_forward_pre_hook(rnn_pre))
            handles.append(module.register_forward_hook(rnn_post))
        elif message_passing is not None and isinstance(module, message_passing):
            handles.append(module.register_propagate_forward_hook(propagate_post))
    try:
        with torch.no_grad(), counter:
            model(x, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return int(counter.get_total_flops() + extra[0])
