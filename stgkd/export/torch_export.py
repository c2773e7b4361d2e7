"""The torch.export format: ``torch.export.export`` of the raw-units wrapper with a dynamic batch dimension."""

from __future__ import annotations

import torch

from stgkd.errors import CheckpointError
from stgkd.export.wrapper import RawUnitsForecaster, example_inputs

__all__ = ["to_torch_export"]


def to_torch_export(module: RawUnitsForecaster, dev: torch.device, where: str):
    """``torch.export.export`` of ``module`` on ``dev`` with a dynamic batch dimension; a failure is a
    :class:`CheckpointError` starting with ``where``."""
    values, stamps = (t.to(dev) for t in example_inputs(module, 2, seed=2))
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        return torch.export.export(
            module,
            (values, stamps),
            dynamic_shapes={"values": {0: batch}, "timestamps": {0: batch}},
        )
    except Exception as exc:
        raise CheckpointError(
            f"{where}: torch.export failed for {type(module.student).__name__}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
