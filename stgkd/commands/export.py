"""``stgkd export CKPT --out student.pt [--format torchscript|torch.export|onnx]``."""

from __future__ import annotations

import argparse
import json

HELP = "write a trained student as one self-contained file (raw units in and out, graph and metadata inside)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (stgkd/1 format, e.g. runs/.../best.pt)")
    parser.add_argument("--out", required=True, help="file to write (e.g. student.pt)")
    parser.add_argument(
        "--format",
        default="torchscript",
        choices=["torchscript", "torch.export", "onnx"],
        help="file format (default: torchscript)",
    )
    parser.add_argument("--device", default="cpu", help="device to trace on (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from stgkd.export import export_student, file_kind

    out = export_student(args.checkpoint, args.out, format=args.format, device=args.device)
    summary = {"out": str(out), "format": args.format, "bytes": out.stat().st_size}
    if args.format != "onnx":
        from stgkd.export import load_exported

        _, meta, _ = load_exported(out)
        summary.update(
            sensors=len(meta["sensor_ids"]),
            input_steps=meta["input_steps"],
            horizon=meta["horizon"],
            interval_minutes=meta["interval_minutes"],
            input_features=meta["input_features"],
            model=meta["model"].get("name"),
        )
    else:
        summary["kind"] = file_kind(out)
    print(json.dumps(summary, indent=2))
    return 0
