"""``stgkd export CKPT --out student.pt [--format torch.export|torchscript|torchscript-frozen|aoti|onnx]
[--quantize int8]``.

Without ``--format`` an fp32 student on the CPU is written as a torch.export file, which
``Forecaster.load`` compiles for the CPU of the machine that loads it, once (AOTInductor, kept in a private
cache: the fastest faithful CPU program, and nothing read from the file runs as code); ``--quantize int8`` and ``--device cuda`` write TorchScript.

``--format torchscript-frozen`` writes the TorchScript program frozen and optimised for CPU inference;
``--format aoti`` an AOTInductor package (``.pt2``: the program compiled for this machine's CPU; needs a
C++ compiler to write, the same torch to load, and ``Forecaster.load(..., trust_native_code=True)``).

``--quantize int8`` and ``--format onnx`` also measure, on this machine's CPU, what the file loses and
gains against the fp32 TorchScript program (accuracy on the test split, latency at batch 1 and 64 on one
thread) and record it in the file's metadata (``deployment_checks``); ``--no-checks`` skips that,
``--checks`` adds it to an fp32 export.
"""

from __future__ import annotations

import argparse
import json

HELP = "write a trained student as one self-contained file (raw units in and out, graph and metadata inside)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (stgkd/1 format, e.g. runs/.../best.pt)")
    parser.add_argument("--out", required=True, help="file to write (e.g. student.pt)")
    from stgkd.formats import EXPORT_FORMATS as FORMATS

    parser.add_argument(
        "--format",
        default=None,
        choices=list(FORMATS),
        help=f"file format (default: {FORMATS[0]} on the CPU, compiled by Forecaster.load where a C++ compiler "
             "is found; torchscript with --quantize int8 or --device cuda); torchscript-frozen and aoti are built "
             "for the CPU, aoti (a compiled .pt2 package) needs a C++ compiler",
    )
    parser.add_argument("--device", default="cpu", help="device to trace on (default: cpu)")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="dynamic int8 linear and recurrent layers (torch.ao; TorchScript, CPU only)")
    parser.add_argument("--int8-layers", nargs="+", choices=["linear", "recurrent"], default=["linear", "recurrent"],
                        help="layer groups --quantize int8 converts (default: both)")
    parser.add_argument("--checks", action=argparse.BooleanOptionalAction, default=None,
                        help="record test-split accuracy against fp32 and CPU latency at batch 1 and 64 "
                             "(default: on for --quantize and --format onnx)")
    parser.add_argument("--dataset", metavar="NAME_OR_PATH", help="series for the accuracy check instead of the checkpoint's")
    parser.add_argument("--data-dir", metavar="DIR", help="root of registered datasets")
    parser.add_argument("--latency-iters", type=int, default=30, help="timed calls per latency figure (default: 30)")


def run(args: argparse.Namespace) -> int:
    from stgkd.errors import ConfigError
    from stgkd.export import export_student, file_kind, load_exported

    out = export_student(args.checkpoint, args.out, format=args.format, device=args.device, quantize=args.quantize,
                         int8_layers=args.int8_layers, checks=args.checks, dataset=args.dataset,
                         data_dir=args.data_dir, latency_iters=args.latency_iters)
    from stgkd.export.write import default_format

    summary = {"out": str(out), "format": args.format or default_format(args.device, args.quantize),
               "bytes": out.stat().st_size, "kind": file_kind(out)}
    try:
        _, meta, _ = load_exported(out, trust_native_code=True)  # a package compiled just now, here
    except ConfigError as exc:  # an ONNX file where onnxruntime is absent
        summary["note"] = str(exc)
        meta = None
    if meta is not None:
        summary.update(
            sensors=len(meta["sensor_ids"]),
            input_steps=meta["input_steps"],
            horizon=meta["horizon"],
            interval_minutes=meta["interval_minutes"],
            input_features=meta["input_features"],
            model=meta["model"].get("name"),
            backend=meta.get("backend"),
            precision=meta.get("precision"),
        )
        if meta.get("cpu_program"):
            summary["cpu_program"] = meta["cpu_program"]
        checks = meta.get("deployment_checks")
        if checks:
            summary["checks"] = _check_summary(checks)
    print(json.dumps(summary, indent=2))
    return 0


def _check_summary(checks: dict) -> dict:
    """The headline of ``deployment_checks``: MAE change and latency per batch, or why not measured."""
    acc, lat = checks["accuracy"], checks["latency"]
    out: dict = {}
    if acc.get("made"):
        out["test_mae_change_pct"] = {h: round(v, 4) for h, v in acc["mae_change_pct"].items() if v is not None}
    else:
        out["accuracy"] = f"not checked: {acc['reason']}"
    if lat.get("made"):
        out["cpu_latency_ms_1_thread"] = {name: {b: round(r["median_ms"], 3) for b, r in per.items()}
                                          for name, per in lat["results"].items()}
        out["speedup_vs_fp32"] = {b: round(v, 2) for b, v in lat["speedup"].items()}
        out["load_average"] = lat["load_average"]["before"]
        if lat["busy"]:
            out["busy"] = "the CPU was shared with other work while timing (load average above the core count)"
    else:
        out["latency"] = f"not measured: {lat['reason']}"
    return out
