"""The torch.export format: ``torch.export.export`` of the raw-units wrapper with a dynamic batch dimension,
and the check that reading such a file back runs no code from it (:func:`check_archive_pickles`)."""

from __future__ import annotations

import io
import json
import posixpath
import warnings
import zipfile
from pathlib import Path

import torch

from stgkd.errors import CheckpointError
from stgkd.export.wrapper import RawUnitsForecaster, example_inputs

__all__ = ["check_archive_pickles", "to_torch_export"]


def to_torch_export(module: RawUnitsForecaster, dev: torch.device, where: str):
    """``torch.export.export`` of ``module`` on ``dev`` with a dynamic batch dimension; a failure is a
    :class:`CheckpointError` starting with ``where``."""
    values, stamps = (t.to(dev) for t in example_inputs(module, 2, seed=2))
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        with warnings.catch_warnings():
            # nn.GRU's ``_flat_weights`` are views of its registered parameters, which the program holds;
            # export warns about them as plain tensor attributes (the program is checked against the model)
            warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights", category=UserWarning)
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


def check_archive_pickles(path: str | Path) -> None:
    """Refuse a torch.export archive (``.pt2``) whose pickles could run code when it is read.

    ``torch.export.load`` unpickles some of an archive's entries with ``torch.load(weights_only=False)``:
    weights and constants its configs mark ``use_pickle`` (and, when loading them with ``weights_only=True``
    fails, the sample inputs), so a crafted file runs whatever its pickles call. Every entry under the
    archive's ``data/`` that is not a raw tensor payload named in a config (``use_pickle: false``) or a
    JSON config must load with ``torch.load(weights_only=True)`` (tensors and plain containers only) before
    the archive is read; what ``stgkd export`` writes always does.

    Raises:
        CheckpointError: an entry that does not, or an archive that is not a readable zip; names the file
            and the entry.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            raw = set()
            for name in names:
                if name.endswith("_config.json") and "/data/" in f"/{name}":
                    config = json.loads(archive.read(name)).get("config", {})
                    folder = posixpath.dirname(name)
                    raw.update(posixpath.join(folder, str(entry.get("path_name")))
                               for entry in config.values() if isinstance(entry, dict) and not entry.get("use_pickle"))
            for name in names:
                inside_data = "/data/" in f"/{name}" and not name.endswith("/")
                if not inside_data or name in raw or name.endswith(".json"):
                    continue
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception as exc:
                    raise CheckpointError(
                        f"{path}: {name} is a pickle that does not load with weights_only=True "
                        f"({type(exc).__name__}); reading it could run code from the file, so it is not read"
                    ) from None
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a readable torch.export archive ({type(exc).__name__}: {exc})") from None
