"""Reading exported students: which kind a file is (:func:`file_kind`, from its structure, nothing
unpickled) and :func:`load_exported`."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from stgkd.errors import CheckpointError, ConfigError
from stgkd.export.metadata import EXPORT_FORMAT, METADATA_FILE
from stgkd.export.onnx import OnnxProgram
from stgkd.export.torchscript import torchscript_precision

__all__ = ["file_kind", "load_exported"]


def file_kind(path: str | Path) -> str:
    """``"torchscript"``, ``"torch.export"``, ``"onnx"`` or ``"checkpoint"`` (a ``torch.save`` zip),
    judged from the file's structure without unpickling anything.

    Raises:
        CheckpointError: the file is missing or none of these.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"{path}: corrupt archive ({exc})") from None
        if any(n.endswith("archive_format") or "/models/" in n for n in names):
            return "torch.export"
        if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "checkpoint"
        raise CheckpointError(f"{path}: a zip archive, but neither a checkpoint nor an exported student")
    with open(path, "rb") as fh:
        head = fh.read(64)
    if path.suffix == ".onnx" or (head[:1] == b"\x08" and b"onnx" in head.lower()):
        return "onnx"
    raise CheckpointError(
        f"{path}: not an stgkd checkpoint or exported student (unrecognised file format; "
        "is it truncated or another kind of file?)"
    )


def load_exported(path: str | Path, *, device: str | torch.device = "cpu",
                  threads: int | None = None) -> tuple[Any, dict[str, Any], str]:
    """Load an exported student: ``(callable module, metadata, kind)``.

    TorchScript and torch.export files need nothing from stgkd beyond this function (the file holds the
    code); an ONNX file runs through onnxruntime (:class:`OnnxProgram`, CPU only, ``threads`` intra-op
    threads). An int8 TorchScript file runs on the CPU only.

    Raises:
        CheckpointError: not an exported student, corrupt, or without stgkd metadata.
        ConfigError: an ONNX file without onnxruntime, or an int8 or ONNX file asked for on CUDA.
    """
    path = Path(path)
    kind = file_kind(path)
    dev = torch.device(device)
    extra = {METADATA_FILE: ""}
    if kind == "onnx" and dev.type != "cpu":
        raise ConfigError(f"{path}: ONNX exports run on the CPU (onnxruntime); use device='cpu', or the "
                          "TorchScript export on CUDA")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if kind == "torchscript":
                if dev.type != "cpu" and torchscript_precision(path) != "fp32":
                    raise ConfigError(
                        f"{path}: an {torchscript_precision(path)} export runs on the CPU only (torch.ao's "
                        "quantised kernels); load it with device='cpu', or export without --quantize for CUDA"
                    )
                module = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
                module.eval()
            elif kind == "onnx":
                module = OnnxProgram(path, threads=threads)
                extra[METADATA_FILE] = module.metadata_props.get("stgkd_metadata", "")
            elif kind == "torch.export":
                with open(path, "rb") as fh:
                    program = torch.export.load(io.BytesIO(fh.read()), extra_files=extra)
                module = program.module().to(torch.device(device))
            else:
                raise CheckpointError(
                    f"{path}: a {kind} file; expected an exported student (stgkd export) in torchscript, "
                    "torch.export or onnx format"
                )
    except (CheckpointError, ConfigError):
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable exported student ({type(exc).__name__}: {exc})") from None
    try:
        metadata = json.loads(extra[METADATA_FILE] or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: its {METADATA_FILE} is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path}: no stgkd metadata (was it written by `stgkd export`?)")
    return module, metadata, kind
