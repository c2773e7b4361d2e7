"""The TorchScript format: the student traced at varying batch sizes, the raw-units wrapper scripted
around it (``torchscript``), and that program frozen and optimised for CPU inference
(``torchscript-frozen``); and the precision an archive records, read without loading its program."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from stgkd.errors import CheckpointError
from stgkd.export.wrapper import RawUnitsForecaster, rewrap
from stgkd.formats import archive_metadata

__all__ = ["freeze_for_inference", "to_torchscript", "torchscript_precision"]


def to_torchscript(module: RawUnitsForecaster, dev: torch.device, where: str) -> torch.jit.ScriptModule:
    """``module`` as a TorchScript program on ``dev``: its student traced (checked at batch sizes 1, 2 and 3),
    the wrapper scripted around it; a failure is a :class:`CheckpointError` starting with ``where``."""
    student = module.student
    gen = torch.Generator().manual_seed(1)
    shape = (module.in_steps, module.num_nodes, module.in_channels)
    ex = torch.randn(2, *shape, generator=gen).to(dev)
    others = [(torch.randn(b, *shape, generator=gen).to(dev),) for b in (1, 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(student, (ex,), check_inputs=others, check_tolerance=1e-4)
        except Exception as exc:  # tracing failures surface as many types
            raise CheckpointError(
                f"{where}: the student ({type(student).__name__}) cannot be traced at varying batch sizes: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        wrapper = rewrap(module, traced).to(dev)
        try:
            return torch.jit.script(wrapper)
        except Exception as exc:
            raise CheckpointError(f"{where}: scripting the raw-units wrapper failed: {exc}") from None


def freeze_for_inference(program: torch.jit.ScriptModule, where: str) -> torch.jit.ScriptModule:
    """``program`` frozen (``torch.jit.freeze``: parameters and attributes inlined as constants, so the
    graph optimiser sees the weights) and optimised for inference (``torch.jit.optimize_for_inference``:
    constant folding, linear/conv folding, fused add-relu and, where oneDNN is built in, oneDNN layouts),
    in eval mode. The result is tuned for the CPU it is built on; a failure is a :class:`CheckpointError`
    starting with ``where``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frozen = torch.jit.freeze(program.eval())
            return torch.jit.optimize_for_inference(frozen)
        except Exception as exc:  # the passes surface many error types
            raise CheckpointError(
                f"{where}: freezing the TorchScript program for inference failed: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None


def torchscript_precision(path: Path) -> str:
    """The ``precision`` recorded in a TorchScript export's metadata, read from the archive without
    loading the program (``"fp32"`` when absent or unreadable: loading then reports the problem)."""
    return str(archive_metadata(path).get("precision", "fp32"))
