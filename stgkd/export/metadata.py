"""What an exported file records: the checkpoint it is built from (:func:`read_checkpoint`), its
metadata (:func:`metadata_from_payload`) and the backend it runs on (:func:`backend_of`)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import torch

from stgkd.errors import CheckpointError
from stgkd.files import to_jsonable
from stgkd.formats import METADATA_FILE
from stgkd.version import package_version

__all__ = ["EXPORT_FORMAT", "METADATA_FILE", "backend_of", "check_format", "metadata_from_payload", "read_checkpoint"]

#: the layout of an exported file's metadata and program interface; a file of a later number was written by a
#: newer stgkd and is refused with a message saying so (:func:`check_format`)
EXPORT_FORMAT = "stgkd-export/1"
_FORMAT_PREFIX, _FORMAT_NUMBER = EXPORT_FORMAT.rsplit("/", 1)


def check_format(metadata: Any, where: str) -> None:
    """That ``metadata`` (an exported file's) is of a layout this stgkd reads, :data:`EXPORT_FORMAT`.

    Raises:
        CheckpointError: no stgkd metadata (a file not written by ``stgkd export``), or a later layout: a
            file written by a newer stgkd, with the version that wrote it where recorded and what to do.
    """
    fmt = metadata.get("format") if isinstance(metadata, dict) else None
    if fmt == EXPORT_FORMAT:
        return
    prefix, _, number = str(fmt).rpartition("/")
    if prefix == _FORMAT_PREFIX and number.isdigit() and int(number) > int(_FORMAT_NUMBER):
        from stgkd.version import __version__

        wrote = metadata.get("stgkd_version")
        raise CheckpointError(
            f"{where}: written by a newer stgkd{f' ({wrote})' if wrote else ''} in format {fmt}; this stgkd "
            f"({__version__}) reads {EXPORT_FORMAT}: upgrade stgkd where the file is loaded (pip install -U stgkd), "
            "or export the checkpoint again with this version (stgkd export CHECKPOINT)"
        )
    raise CheckpointError(f"{where}: no stgkd metadata (was it written by `stgkd export`?)")


def backend_of(kind: str, metadata: dict[str, Any]) -> str:
    """How a file of ``kind`` (:func:`file_kind`) runs: ``"torchscript-fp32"``, ``"torchscript-int8"``,
    ``"torchscript-frozen"`` (frozen and optimised for CPU inference), ``"torch.export"``, ``"aoti"`` (an
    AOTInductor package), ``"onnxruntime"`` or ``"checkpoint"`` (the eager model, rebuilt in memory)."""
    if kind in ("torchscript", "torchscript-frozen"):
        if metadata.get("export_format") == "torchscript-frozen":
            return "torchscript-frozen"
        return f"torchscript-{metadata.get('precision', 'fp32')}"
    return {"onnx": "onnxruntime"}.get(kind, kind)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint as :func:`stgkd.engine.checkpoint.load_checkpoint` reads it (``weights_only``, no
    code runs), checked for the entries an exported student is built from.

    Raises:
        CheckpointError: missing, corrupt, unsafe (pickled objects), not an stgkd checkpoint, or lacking
            an entry export needs; the message names the file.
    """
    from stgkd.engine.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    if "graph" not in payload:
        raise CheckpointError(f"{path}: checkpoint lacks the 'graph' entry")
    data = payload["data"]
    for key in ("in_steps", "out_steps", "input_features", "sensor_ids", "interval_minutes"):
        if not isinstance(data, dict) or key not in data:
            raise CheckpointError(f"{path}: checkpoint's 'data' entry lacks {key!r}")
    return payload


def _history_steps(data: dict[str, Any]) -> int:
    """Readings per sensor the exported program reads: ``T_in``, or a season with seasonal-lag channels."""
    from stgkd.data.windows import history_steps

    return history_steps(int(data["in_steps"]), data["input_features"], int(data["interval_minutes"]))


def metadata_from_payload(payload: dict[str, Any], source: str) -> dict[str, Any]:
    """The metadata stored in an exported file (JSON-serialisable)."""
    data = payload["data"]
    return {
        "format": EXPORT_FORMAT,
        "role": payload.get("role", "student"),
        "sensor_ids": [str(s) for s in data["sensor_ids"]],
        "interval_minutes": int(data["interval_minutes"]),
        "input_steps": _history_steps(data),
        "horizon": int(data["out_steps"]),
        "input_features": [str(f) for f in data["input_features"]],
        "missing": str(data.get("missing", "zero")),
        "scaler": {"mean": float(payload["scaler"]["mean"]), "std": float(payload["scaler"]["std"])},
        "model": payload["model"],
        "dataset": {
            "name": data.get("name"),
            "source": [str(s) for s in data.get("source", [])],
            "split": data.get("split"),
        },
        "metrics": to_jsonable(payload.get("metrics", {})),
        "epoch": payload.get("epoch"),
        "distill": to_jsonable(payload.get("distill")),
        "checkpoint": source,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "stgkd_version": package_version(),
    }
