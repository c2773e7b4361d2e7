"""Which kind of file stgkd is handed, told from its structure without unpickling anything.

stgkd reads two kinds of model file: training checkpoints (``best.pt`` / ``last.pt``, a ``torch.save``
zip read by :func:`stgkd.engine.checkpoint.load_checkpoint`) and exported students (``stgkd export``:
TorchScript, torch.export, AOTInductor or ONNX, read by :func:`stgkd.export.load_exported`). Both often end in
``.pt``; :func:`file_kind` tells them apart, so a command handed the wrong one can say what it got and
what to pass instead, and :func:`archive_metadata` reads what an exported TorchScript / torch.export /
AOTInductor file records about itself (the checkpoint it was exported from, its precision) without loading its
program.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from stgkd.errors import CheckpointError

__all__ = ["CPU_PROGRAM", "EXPORTED_KINDS", "EXPORT_FORMATS", "METADATA_FILE", "archive_metadata", "file_kind"]

#: the entry of an exported file that holds its metadata (JSON)
METADATA_FILE = "metadata.json"
#: ``stgkd export --format`` choices, the CPU's default first (``torchscript-frozen`` files are of kind
#: ``"torchscript"``; the others' kinds share their names; which one a plain ``stgkd export`` writes:
#: :func:`stgkd.export.write.default_format`)
EXPORT_FORMATS = ("torch.export", "torchscript", "torchscript-frozen", "aoti", "onnx")
#: the program a torch.export file written on the CPU runs as there, recorded in its metadata
#: (``"cpu_program"``) and followed by :meth:`stgkd.Forecaster.load`: the file's program compiled by torch's
#: compiler (inductor) on the machine that loads it (:mod:`stgkd.export.program_cache`), the fastest faithful
#: CPU program, in which nothing read from the file runs as code (``benchmarks/results/cpu-programs-*.md``)
CPU_PROGRAM = "torch.compile"
#: the kinds of exported student, by :func:`file_kind` name -> the format's name in messages
EXPORTED_KINDS = {"torchscript": "TorchScript", "torch.export": "torch.export", "aoti": "AOTInductor", "onnx": "ONNX"}


def file_kind(path: str | Path) -> str:
    """``"torchscript"``, ``"torch.export"``, ``"aoti"`` (an AOTInductor package: a PT2 archive holding a
    compiled library), ``"onnx"`` or ``"checkpoint"`` (a ``torch.save`` zip), judged from the file's
    structure without unpickling or loading anything.

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
        if any("/data/aotinductor/" in n for n in names):
            return "aoti"
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


def archive_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata a TorchScript, torch.export or AOTInductor export records (its ``extra/metadata.json``), read
    from the archive without loading the program; ``{}`` when there is none or it is unreadable (loading
    the file then reports the problem)."""
    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(f"/extra/{METADATA_FILE}")), None)
            meta = json.loads(zf.read(name)) if name else {}
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}
