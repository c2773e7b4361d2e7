"""Reading exported students: :func:`load_exported` (which kind a file is: :func:`stgkd.formats.file_kind`)."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from stgkd.errors import CheckpointError, ConfigError
from stgkd.export.aoti import load_aoti
from stgkd.export.metadata import METADATA_FILE, check_format
from stgkd.export.onnx import OnnxProgram
from stgkd.export.torch_export import check_archive_pickles
from stgkd.export.torchscript import torchscript_precision
from stgkd.formats import archive_metadata, file_kind

__all__ = ["load_exported", "read_torch_export"]


def read_torch_export(path: str | Path, extra_files: dict[str, Any] | None = None) -> Any:
    """The ``torch.export.ExportedProgram`` of a torch.export file, its archive checked first
    (``torch.export.load`` unpickles some entries with ``weights_only=False``: only torch's own types may be
    named there, :func:`~stgkd.export.torch_export.check_archive_pickles`); ``extra_files`` (name -> "") is
    filled as ``torch.export.load`` fills it.

    Raises:
        CheckpointError: an entry that would unpickle something else (the file named).
    """
    check_archive_pickles(path)
    with open(path, "rb") as fh:
        return torch.export.load(io.BytesIO(fh.read()), extra_files=extra_files)


def load_exported(path: str | Path, *, device: str | torch.device = "cpu", threads: int | None = None,
                  trust_native_code: bool = False) -> tuple[Any, dict[str, Any], str]:
    """Load an exported student: ``(callable module, metadata, kind)``.

    TorchScript and torch.export files need nothing from stgkd beyond this function (the file holds the
    code); an ONNX file runs through onnxruntime (:class:`OnnxProgram`, CPU only, ``threads`` intra-op
    threads). An int8 or frozen (``torchscript-frozen``) TorchScript file runs on the CPU only. An
    AOTInductor package (``aoti``) runs on the CPU under the torch that compiled it, and only with
    ``trust_native_code=True``: it is a shared library, and loading it runs native code. A torch.export
    program names the device it was exported on; off that device it is moved with torch's
    ``move_to_device_pass`` (every device argument and tensor), not with ``.to()``.

    Raises:
        CheckpointError: not an exported student, corrupt, or without stgkd metadata.
        ConfigError: an ONNX file without onnxruntime; an int8, frozen, AOTInductor or ONNX file asked for
            on CUDA; an AOTInductor package without ``trust_native_code`` or under another torch.
    """
    path = Path(path)
    kind = file_kind(path)
    dev = torch.device(device)
    extra = {METADATA_FILE: ""}
    if kind == "onnx" and dev.type != "cpu":
        raise ConfigError(f"{path}: ONNX exports run on the CPU (onnxruntime); use device='cpu', or the "
                          "TorchScript export on CUDA")
    if kind == "aoti" and dev.type != "cpu":
        raise ConfigError(f"{path}: an AOTInductor package is compiled for the CPU; use device='cpu', or the "
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
                if dev.type != "cpu" and archive_metadata(path).get("export_format") == "torchscript-frozen":
                    raise ConfigError(
                        f"{path}: a torchscript-frozen export is frozen and optimised for the CPU; load it with "
                        "device='cpu', or export with --format torchscript for CUDA"
                    )
                module = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
                module.eval()
            elif kind == "aoti":
                meta = archive_metadata(path)
                check_format(meta, str(path))  # before any library is loaded
                module = load_aoti(path, meta, trust_native_code=trust_native_code, where=str(path))
                extra[METADATA_FILE] = json.dumps(meta) if meta else ""
            elif kind == "onnx":
                module = OnnxProgram(path, threads=threads)
                extra[METADATA_FILE] = module.metadata_props.get("stgkd_metadata", "")
            elif kind == "torch.export":
                program = read_torch_export(path, extra)
                # the program names the device it was exported on (device arguments, asserts), which .to()
                # would miss: moved as a whole to the device asked for, wherever it was exported
                from torch.export.passes import move_to_device_pass

                module = move_to_device_pass(program, dev).module()
            else:
                raise CheckpointError(
                    f"{path}: a {kind} file; expected an exported student (stgkd export) in torchscript, "
                    "torch.export, aoti or onnx format"
                )
    except (CheckpointError, ConfigError):
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable exported student ({type(exc).__name__}: {exc})") from None
    try:
        metadata = json.loads(extra[METADATA_FILE] or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: its {METADATA_FILE} is not valid JSON ({exc})") from None
    check_format(metadata, str(path))
    return module, metadata, kind
