"""Writing an exported student: :func:`export_student`, for every format (see :mod:`stgkd.export`)."""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from stgkd.errors import CheckpointError, ConfigError
from stgkd.export.aoti import AOTI_SUFFIX, compile_aoti, compiled_for, load_aoti, package_aoti
from stgkd.export.checks import deployment_checks
from stgkd.export.int8 import QUANTIZE, quantize_int8
from stgkd.export.metadata import METADATA_FILE, backend_of, metadata_from_payload, read_checkpoint
from stgkd.export.onnx import onnx_program_or_none, to_onnx, write_onnx
from stgkd.export.torch_export import to_torch_export
from stgkd.export.torchscript import freeze_for_inference, to_torchscript
from stgkd.export.wrapper import build_forecaster_module, example_inputs, rewrap
from stgkd.formats import CPU_PROGRAM, EXPORT_FORMATS

__all__ = ["CPU_FORMATS", "CPU_PROGRAM", "FORMATS", "default_format", "export_student"]

#: ``stgkd export --format`` choices (see :mod:`stgkd.export`); the first is the CPU's default
FORMATS = EXPORT_FORMATS
#: formats built for the CPU only (their programs are tuned for, or compiled to, this machine's CPU)
CPU_FORMATS = ("torchscript-frozen", "aoti")


def default_format(device: str | torch.device = "cpu", quantize: str | None = None) -> str:
    """The format ``export_student(format=None)`` writes: ``"torch.export"`` for an fp32 student on the CPU
    (the file :meth:`~stgkd.Forecaster.load` compiles for the machine that loads it, :data:`CPU_PROGRAM`); ``"torchscript"``
    for ``quantize="int8"`` (torch.ao's int8 kernels are exported through TorchScript only) and for a CUDA
    export (the program whose CUDA-graph replay is measured)."""
    if quantize is not None or torch.device(device).type != "cpu":
        return "torchscript"
    return FORMATS[0]


def export_student(
    ckpt_path: str | Path,
    out_path: str | Path,
    *,
    format: str | None = None,
    device: str = "cpu",
    atol: float = 1e-4,
    quantize: str | None = None,
    int8_layers: Sequence[str] = ("linear", "recurrent"),
    checks: bool | None = None,
    dataset: Any = None,
    data_dir: str | Path | None = None,
    latency_iters: int = 30,
) -> Path:
    """Write the checkpoint's student as one self-contained file (see the module docstring).

    Args:
        ckpt_path: an ``stgkd/1`` checkpoint (teacher checkpoints export too; the role is recorded).
        out_path: the file to write (written to a temporary file and moved into place); ``.pt2`` for
            ``format="aoti"``.
        format: one of :data:`FORMATS`: ``"torch.export"``, ``"torchscript"``, ``"torchscript-frozen"``
            (CPU), ``"aoti"`` (CPU; needs a C++ compiler) or ``"onnx"``; ``None`` (default):
            :func:`default_format` (torch.export on the CPU, TorchScript for int8 or CUDA).
        device: device the student is traced/exported on (``"cpu"`` files load on CUDA too unless the
            model creates tensors on a fixed device; export on ``"cuda"`` for CUDA-only deployment).
        atol: the exported program's forecasts must match the eager wrapper's within ``atol``
            (relative to the scaler's std) on example inputs at batch sizes 1 and 3, or export fails
            (for int8, the eager int8 wrapper's: quantisation error is measured by ``checks``, not here).
        quantize: ``None`` (fp32) or ``"int8"``: dynamic int8 linear/recurrent layers
            (:func:`quantize_int8`); TorchScript on the CPU only.
        int8_layers: the layer groups ``quantize="int8"`` converts (default: linear and recurrent).
        checks: record ``deployment_checks`` in the metadata (test-split accuracy against fp32 and CPU
            latency at batch 1 and 64 on one thread; see :func:`deployment_checks`) (default: None, i.e. on
            for int8 and ONNX exports, off otherwise). A CPU torch.export file is checked as
            ``Forecaster.load`` runs it: compiled for this CPU (``"aoti-cached"``) where a C++ compiler is found.
        dataset, data_dir: the series for the accuracy check, as for ``stgkd evaluate`` (default: the one
            the checkpoint names).
        latency_iters: timed calls per latency figure (default: 30).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: unreadable/wrong checkpoint, or a model that does not export faithfully.
        ConfigError: an unknown format or quantisation, int8 with another format or on CUDA, a CPU format
            (:data:`CPU_FORMATS`) on CUDA, ONNX asked for without the ``onnx`` package, or AOTInductor
            without a C++ compiler.
    """
    if format is None:
        format = default_format(device, quantize)
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}: choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"quantize={quantize!r}: choose one of {', '.join(QUANTIZE)} (or None for fp32)")
    dev = torch.device(device)
    if format in CPU_FORMATS and dev.type != "cpu":
        raise ConfigError(f"format={format!r} builds a program for the CPU; got device={dev.type!r} (use "
                          "device='cpu', or format='torchscript' for CUDA)")
    if quantize and (format != "torchscript" or dev.type != "cpu"):
        raise ConfigError(
            f"quantize={quantize!r} needs format='torchscript' and device='cpu' (got {format!r} on {dev.type}): "
            "torch.ao's dynamic int8 kernels run on the CPU and are exported through TorchScript"
        )
    ckpt_path, out_path = Path(ckpt_path), Path(out_path)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{ckpt_path}: an export for device={device!r} is traced on that GPU, and CUDA is not available here "
            f"(torch {torch.__version__}); export on a machine with CUDA, or on the CPU (the default: that file "
            "loads on CUDA too, Forecaster.load(path, device='cuda'))"
        )
    if format == "aoti" and out_path.suffix != AOTI_SUFFIX:
        raise ConfigError(f"{out_path}: format='aoti' writes a PT2 archive, which torch loads by a {AOTI_SUFFIX} name "
                          f"(e.g. --out {out_path.with_suffix(AOTI_SUFFIX).name})")
    payload = read_checkpoint(ckpt_path)
    module = build_forecaster_module(payload, where=str(ckpt_path)).to(dev)
    metadata = metadata_from_payload(payload, str(ckpt_path))
    metadata["export_format"] = format
    metadata["exported_on"] = dev.type
    metadata["precision"] = quantize or "fp32"
    target = module
    if quantize:
        student, metadata["quantized_layers"] = quantize_int8(module.student, int8_layers)
        target = rewrap(module, student)
    backend = backend_of("onnx" if format == "onnx" else format, metadata)
    metadata["backend"] = backend
    if format == "torch.export" and dev.type == "cpu":
        metadata["cpu_program"] = CPU_PROGRAM
    if format == "aoti":
        metadata["compiled_for"] = compiled_for()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.tmp{out_path.suffix}")
    examples = [tuple(t.to(dev) for t in example_inputs(module, b, seed=b)) for b in (1, 3)]
    with torch.no_grad():
        expected = [target(*c) for c in examples]
    try:
        onnx_bytes = None
        if format in ("torchscript", "torchscript-frozen"):
            program = to_torchscript(target, dev, str(ckpt_path))
            if format == "torchscript-frozen":
                program = freeze_for_inference(program, str(ckpt_path))
            run = program
        elif format == "aoti":
            program = compile_aoti(target, dev, str(ckpt_path))
            run = load_aoti(package_aoti(program), metadata, trust_native_code=True, where=str(ckpt_path))
        elif format == "torch.export":
            program = to_torch_export(target, dev, str(ckpt_path))
            run = program.module()
        else:
            onnx_bytes = to_onnx(target, examples[1], str(ckpt_path))
            run = onnx_program_or_none(onnx_bytes)
            metadata["checked_with"] = "onnxruntime" if run is not None else None
        if run is not None:
            with torch.no_grad():
                for c, want in zip(examples, expected):
                    got = run(*c)
                    err = float((got.to(want.device) - want).abs().max())
                    if err > atol * module.std:
                        raise CheckpointError(
                            f"{ckpt_path}: the {format} program's forecasts differ from the model's by "
                            f"{err:.3g} at batch {c[0].shape[0]}; the model does not export faithfully"
                        )
        if quantize:
            with torch.no_grad():
                fp32 = [module(*c) for c in examples]
            metadata["int8_max_abs_diff_examples"] = max(float((q - f).abs().max()) for q, f in zip(expected, fp32))
        if checks if checks is not None else bool(quantize or format == "onnx"):
            from stgkd.export.programs import compile_by_default

            checked, checked_backend = run, backend  # checked as Forecaster.load runs it on the CPU
            with tempfile.TemporaryDirectory(prefix="stgkd-compile-") as tmp_dir:
                if compile_by_default(format, metadata, dev):
                    checked, checked_backend = _compiled_or_warn(program, module, Path(tmp_dir), str(ckpt_path), run,
                                                                 backend)
                metadata["deployment_checks"] = deployment_checks(
                    payload, module, checked, checked_backend, onnx_bytes=onnx_bytes, dataset=dataset,
                    data_dir=data_dir, latency_iters=latency_iters, where=str(ckpt_path),
                )
        meta_json = json.dumps(metadata)
        if format in ("torchscript", "torchscript-frozen"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.jit.save(program, str(tmp), _extra_files={METADATA_FILE: meta_json})
        elif format == "torch.export":
            buf = io.BytesIO()  # a buffer: torch.export.save insists on a .pt2 name for paths
            torch.export.save(program, buf, extra_files={METADATA_FILE: meta_json})
            tmp.write_bytes(buf.getvalue())
        elif format == "aoti":
            tmp.write_bytes(package_aoti(program, {METADATA_FILE: meta_json}))
        else:
            write_onnx(onnx_bytes, tmp, meta_json)
        tmp.replace(out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def _compiled_or_warn(program: Any, module: Any, tmp_dir: Path, where: str, run: Any, backend: str) -> tuple[Any, str]:
    """``(program, backend)`` a CPU torch.export file runs as under ``Forecaster.load``: compiled by AOTInductor
    (:func:`~stgkd.export.program_cache.compile_package`, into ``tmp_dir``), or where that is not possible
    here, ``(run, backend)`` uncompiled with a ``RuntimeWarning`` saying why."""
    from stgkd.export.aoti import cpp_compiler
    from stgkd.export.program_cache import BACKEND, CachedProgram, compile_package
    from stgkd.export.programs import FAITHFUL_ATOL

    try:
        if cpp_compiler() is None:
            raise ConfigError(f"{where}: compiling for the CPU needs a C++ compiler (g++, or $CXX)")
        package = compile_package(program, lambda b: example_inputs(module, b, seed=b), tmp_dir / "program.pt2", where,
                                  atol=FAITHFUL_ATOL)
        return CachedProgram(package), BACKEND
    except (CheckpointError, ConfigError) as exc:
        warnings.warn(f"{exc}; the deployment checks time it uncompiled", RuntimeWarning, stacklevel=3)
        return run, backend
