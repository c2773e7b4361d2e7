"""CPU programs of one trained student: every way it can run on the CPU, each built from the eager
raw-units wrapper and checked faithful to it.

A *program* is a callable ``(values (B, T_hist, N), timestamps (B, T_hist)) -> (B, H, N)`` in raw units,
like :class:`~stgkd.export.wrapper.RawUnitsForecaster` itself. :data:`PROGRAMS` names each kind:

* ``eager``: the wrapper run eagerly (the reference every other program is checked against).
* ``torch.export`` / ``torch.export-compile`` / ``torch.export-aoti``: ``stgkd export``'s default file
  (``torch.export.export`` with a dynamic batch dimension) run uncompiled / compiled in process by
  :class:`CompiledProgram` / compiled by AOTInductor as ``Forecaster.load`` runs it on the CPU
  (:mod:`stgkd.export.program_cache`).
* ``torchscript``: the TorchScript file (student traced, wrapper scripted), what ``stgkd export`` writes for
  int8 and CUDA.
* ``torchscript-frozen``: that program frozen (``torch.jit.freeze``) and optimised for inference
  (``torch.jit.optimize_for_inference``); the file ``stgkd export --format torchscript-frozen`` writes.
* ``compile`` / ``compile-max-autotune``: ``torch.compile`` (inductor's C++ backend on the CPU, one
  graph; :class:`CompiledProgram`) of the eager wrapper in its default mode / ``"max-autotune-no-cudagraphs"``. In memory only: a compiled
  function is not a file; its file form is ``aoti``.
* ``aoti``: an AOTInductor package (``stgkd export --format aoti``): the torch.export program compiled by
  inductor into a shared library ahead of time; needs a C++ compiler to build.
* ``onnx-all`` / ``onnx-extended``: the ONNX file (``stgkd export --format onnx``) run by onnxruntime with
  graph optimisation level ``ORT_ENABLE_ALL`` / ``ORT_ENABLE_EXTENDED`` and ``threads`` intra-op threads.

Files round-trip before use (saved to bytes and loaded back), so a program is what loading its file
gives. :func:`build_program` builds one and checks it with :func:`check_faithful` (max absolute
difference from the eager wrapper, raw units, on the same example inputs at batch 1 and 64, within
:data:`FAITHFUL_ATOL`); a program that fails to build, to run or to match is reported with the reason,
never raised.
"""

from __future__ import annotations

import io
import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from stgkd.export.wrapper import RawUnitsForecaster, example_inputs

__all__ = ["FAITHFUL_ATOL", "FAITHFUL_BATCHES", "PROGRAMS", "CompiledProgram", "ProgramBuild", "ProgramKind",
           "build_program", "check_faithful", "compile_by_default"]

#: a program is faithful when its forecasts differ from the eager wrapper's by at most this, in raw units
FAITHFUL_ATOL = 1e-4
#: batch sizes the faithfulness check compares at
FAITHFUL_BATCHES = (1, 64)

_CPU = torch.device("cpu")


@dataclass(frozen=True)
class ProgramKind:
    """One way to run a student on the CPU.

    Attributes:
        name: its :data:`PROGRAMS` key.
        build: ``(eager wrapper, threads, where) -> program``.
        file_format: the ``stgkd export --format`` whose file loads as this program (``None``: in memory only).
        summary: one line on what it is.
    """

    name: str
    build: Callable[[RawUnitsForecaster, int, str], Any]
    file_format: str | None
    summary: str


#: CPU programs by name (see the module docstring), in the order they are tried and shown
PROGRAMS: dict[str, ProgramKind] = {}


def _program(name: str, file_format: str | None, summary: str):
    def register(build: Callable[[RawUnitsForecaster, int, str], Any]):
        PROGRAMS[name] = ProgramKind(name, build, file_format, summary)
        return build

    return register


def _jit_roundtrip(program: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """``program`` saved with ``torch.jit.save`` and loaded back: what its file gives."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(program, buf)
        buf.seek(0)
        return torch.jit.load(buf, map_location=_CPU).eval()


@_program("eager", None, "the raw-units wrapper run eagerly: the reference")
def _eager(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    return module


def _export_roundtrip(module: RawUnitsForecaster, where: str) -> torch.nn.Module:
    """``module``'s torch.export program saved with ``torch.export.save`` and loaded back: what its file gives."""
    from stgkd.export.torch_export import to_torch_export

    buf = io.BytesIO()
    torch.export.save(to_torch_export(module, _CPU, where), buf)
    buf.seek(0)
    return torch.export.load(buf).module()


@_program("torch.export", "torch.export", "stgkd export's default file (torch.export), run uncompiled")
def _torch_export(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    return _export_roundtrip(module, where)


@_program("torch.export-compile", "torch.export",
          "stgkd export's default file compiled in process by torch.compile (inductor C++)")
def _torch_export_compile(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    return CompiledProgram(_export_roundtrip(module, where))


@_program("torch.export-aoti", "torch.export",
          "stgkd export's default file as Forecaster.load runs it: compiled by AOTInductor on this machine")
def _torch_export_aoti(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    import tempfile
    from pathlib import Path

    from stgkd.export.program_cache import CachedProgram, compile_package
    from stgkd.export.torch_export import to_torch_export

    buf = io.BytesIO()
    torch.export.save(to_torch_export(module, _CPU, where), buf)
    buf.seek(0)
    with tempfile.TemporaryDirectory(prefix="stgkd-compile-") as tmp:
        package = compile_package(torch.export.load(buf), lambda b: example_inputs(module, b, seed=b),
                                  Path(tmp) / "program.pt2", where, atol=FAITHFUL_ATOL)
        return CachedProgram(package)


@_program("torchscript", "torchscript", "student traced, wrapper scripted (stgkd export's file for int8 and CUDA)")
def _torchscript(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    from stgkd.export.torchscript import to_torchscript

    return _jit_roundtrip(to_torchscript(module, _CPU, where))


@_program("torchscript-frozen", "torchscript-frozen",
          "TorchScript + torch.jit.freeze + torch.jit.optimize_for_inference")
def _torchscript_frozen(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    from stgkd.export.torchscript import freeze_for_inference, to_torchscript

    return _jit_roundtrip(freeze_for_inference(to_torchscript(module, _CPU, where), where))


#: held while any :class:`CompiledProgram` compiles: dynamo's configuration, patched for it, is the process's
_COMPILING = threading.Lock()


class CompiledProgram:
    """``torch.compile`` of a raw-units wrapper on the CPU (inductor, one graph).

    The first call compiles a program for its shapes; a call at a second batch size compiles one with a
    dynamic batch dimension (dynamo's automatic dynamic shapes), which then serves every batch size but
    1 (batch 1 gets a program of its own), so a forecaster compiles two or three programs, not one per
    batch size. Each new call signature (shapes,
    strides, dtypes, grad mode, CPU threads: what dynamo's guards check) that dynamo cannot serve compiles
    a program on its first call, with dynamo's ``allow_rnn`` set so the GRU layers are traced into
    the graph too and a recompilation limit that fails loudly instead of falling back to eager; later calls
    with that signature run the compiled program as it is (no configuration change per call), and one that
    dynamo recompiles all the same gets those settings again.

    Inductor's ``freezing`` (weights folded in as constants) was measured and not kept: on the week's
    ``stgru`` its program ran 1.03 / 91 ms at batch 1 / 64 against 1.01-1.04 / 87-96 ms without it
    (``benchmarks/results/cpu-programs-2026-12-04-week-frozen.md`` against ``...-week-default*.md``).

    Args:
        module: the eager wrapper.
        mode: ``torch.compile``'s mode (default: None, its default mode).
    """

    def __init__(self, module: RawUnitsForecaster, mode: str | None = None) -> None:
        self.module = module
        self.mode = mode
        self._fn = torch.compile(module, backend="inductor", mode=mode, dynamic=None, fullgraph=True)
        self._seen: set[tuple] = set()

    def __call__(self, values: Tensor, timestamps: Tensor) -> Tensor:
        """Shapes: values ``(B, T_hist, N)``, timestamps ``(B, T_hist)`` -> ``(B, H, N)``."""
        key = (values.shape, values.stride(), values.dtype, timestamps.shape, timestamps.stride(), timestamps.dtype,
               torch.is_inference_mode_enabled(), torch.is_grad_enabled(), torch.get_num_threads())
        if key in self._seen:
            try:
                return self._fn(values, timestamps)
            except Exception as exc:  # a recompilation the signature did not foresee, traced without allow_rnn
                from torch._dynamo.exc import Unsupported

                if not isinstance(exc, Unsupported):
                    raise
        from torch._dynamo import config as dynamo_config

        limit = max(int(dynamo_config.recompile_limit), 64)  # many signatures and modes share one forward
        with _COMPILING, dynamo_config.patch(allow_rnn=True, recompile_limit=limit, fail_on_recompile_limit_hit=True):
            out = self._fn(values, timestamps)
            self._seen.add(key)
        return out

    def eval(self) -> "CompiledProgram":
        return self


#: the files :func:`load_compiled` compiles: those a :class:`Forecaster` runs as an eager module
COMPILABLE_KINDS = ("checkpoint", "torch.export")


def check_compilable(kind: str, device: torch.device, where: str) -> None:
    """Whether a file of ``kind`` (:func:`stgkd.formats.file_kind`) can be compiled on ``device`` here
    (:func:`load_compiled`); asked before the file is read.

    Raises:
        ConfigError: neither the CPU nor an available CUDA GPU with Triton, a file that holds no eager program
            (TorchScript, ONNX, AOTInductor), or no C++ compiler; the message names ``where`` and what would do.
    """
    from stgkd.errors import ConfigError
    from stgkd.export.aoti import cpp_compiler

    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{where}: compile=True compiles for the CPU (inductor's C++ backend) or a CUDA GPU "
                          f"(Triton kernels); on {device.type!r} load the file without it")
    if device.type == "cuda" and not _has_triton():
        raise ConfigError(f"{where}: compile=True on {device} needs Triton (pip install triton, which CUDA "
                          "builds of torch normally bring); without it, load the file without compile=True")
    if kind not in COMPILABLE_KINDS:
        raise ConfigError(f"{where}: compile=True compiles an eager program: a training checkpoint or a "
                          f"torch.export file (what stgkd export writes on the CPU); this file is {kind!r}")
    if cpp_compiler() is None:
        raise ConfigError(f"{where}: compile=True needs a C++ compiler (g++, or the compiler named by $CXX; e.g. "
                          "apt-get install g++); without one, load the file without compile=True")


def _has_triton() -> bool:
    """Whether inductor can write Triton kernels for a CUDA GPU here."""
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return False
    return bool(has_triton())


def compile_by_default(kind: str, metadata: dict[str, Any], device: torch.device) -> bool:
    """Whether ``Forecaster.load(path)`` (``compile=None``) compiles a loaded file: on the CPU, when the file
    records ``"cpu_program": "torch.compile"`` (``stgkd export``'s default torch.export file)."""
    from stgkd.formats import CPU_PROGRAM

    return device.type == "cpu" and kind in COMPILABLE_KINDS and metadata.get("cpu_program") == CPU_PROGRAM


def load_compiled(source: Any, inputs: Callable[[int], tuple[Tensor, Tensor]], export: Callable[[], Any], where: str,
                  *, asked: bool = True, device: torch.device = torch.device("cpu")) -> Any:
    """The compiled program of the file ``source`` for ``device`` (``Forecaster.load``): from the program cache
    where this machine compiled it before, else compiled by AOTInductor from ``export()`` (its
    ``torch.export.ExportedProgram`` on ``device``), checked on ``inputs(batch)`` and kept
    (:func:`stgkd.export.program_cache.compiled_program`).
    Inductor writes and builds the C++ here, from a program read and checked: nothing read from a file a user
    was handed runs as code.

    ``asked=False`` (the file's own choice, not the caller's): where no C++ compiler is found or compiling
    fails, a ``RuntimeWarning`` says so and ``None`` is returned (the file then runs uncompiled).

    Raises:
        ConfigError: ``asked`` and no C++ compiler (on a cache miss).
        CheckpointError: ``asked`` and compiling failed or was not faithful.
    """
    from stgkd.errors import CheckpointError, ConfigError
    from stgkd.export.aoti import cpp_compiler
    from stgkd.export.program_cache import compiled_program, file_digest

    def build() -> Any:
        if cpp_compiler() is None:
            raise ConfigError(f"{where}: compiling for the CPU needs a C++ compiler (g++, or the compiler named by "
                              "$CXX; e.g. apt-get install g++); without one, load the file with compile=False")
        return export()

    try:
        return compiled_program(file_digest(source), inputs, build, where, atol=FAITHFUL_ATOL, device=device)
    except (CheckpointError, ConfigError) as exc:
        if asked:
            raise
        warnings.warn(f"{exc}; it runs uncompiled (backend 'torch.export') instead of compiled (inductor's C++ "
                      "backend); Forecaster.load(..., compile=False) runs it uncompiled without this warning",
                      RuntimeWarning, stacklevel=3)
        return None


@_program("compile", None, "torch.compile, inductor C++ backend, default mode (in memory only)")
def _compile(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    return CompiledProgram(module)


@_program("compile-max-autotune", None,
          "torch.compile, inductor C++ backend, mode max-autotune-no-cudagraphs (in memory only)")
def _compile_max_autotune(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    return CompiledProgram(module, mode="max-autotune-no-cudagraphs")


@_program("aoti", "aoti", "AOTInductor package: the torch.export program compiled to a shared library")
def _aoti(module: RawUnitsForecaster, threads: int, where: str) -> Any:
    from stgkd.export.aoti import compile_aoti, compiled_for, load_aoti, package_aoti

    package = package_aoti(compile_aoti(module, _CPU, where))
    return load_aoti(package, {"compiled_for": compiled_for()}, trust_native_code=True, where=where)


def _onnx(optimization: str) -> Callable[[RawUnitsForecaster, int, str], Any]:
    def build(module: RawUnitsForecaster, threads: int, where: str) -> Any:
        from stgkd.export.onnx import OnnxProgram, to_onnx

        return OnnxProgram(to_onnx(module, example_inputs(module, 3, seed=3), where), threads=threads,
                           optimization=optimization)

    return build


_program("onnx-all", "onnx", "ONNX file in onnxruntime, graph optimisation ORT_ENABLE_ALL")(_onnx("all"))
_program("onnx-extended", "onnx", "ONNX file in onnxruntime, graph optimisation ORT_ENABLE_EXTENDED")(_onnx("extended"))


def check_faithful(program: Any, reference: RawUnitsForecaster, *, batches: Sequence[int] = FAITHFUL_BATCHES,
                   atol: float = FAITHFUL_ATOL, seed: int = 0) -> dict[str, Any]:
    """Whether ``program`` forecasts what ``reference`` forecasts, within ``atol`` in raw units.

    Both run (under ``torch.inference_mode``) on the same plausible raw inputs
    (:func:`~stgkd.export.wrapper.example_inputs`: some readings missing, five-minute timestamps) at each
    batch size; a forecast of another shape or with a non-finite value is unfaithful.

    Returns:
        ``{"faithful": bool, "atol": atol, "max_abs_diff": {batch: float}}`` (``inf`` where shapes differ or
        a value is not finite).
    """
    diffs: dict[str, float] = {}
    with torch.inference_mode():
        for b in batches:
            values, stamps = example_inputs(reference, int(b), seed=seed + int(b))
            want = reference(values, stamps)
            got = torch.as_tensor(program(values, stamps)).to(want.device)
            if got.shape != want.shape or not bool(torch.isfinite(got).all()):
                diffs[str(b)] = math.inf
            else:
                diffs[str(b)] = float((got.float() - want.float()).abs().max())
    return {"faithful": all(d <= atol for d in diffs.values()), "atol": atol, "max_abs_diff": diffs}


@dataclass
class ProgramBuild:
    """A program built and checked (or why not).

    Attributes:
        name: its :data:`PROGRAMS` name.
        program: the callable, or ``None`` where it failed to build or to run.
        faithful: whether it matched the eager wrapper within ``atol`` (``False`` where not checked).
        check: :func:`check_faithful`'s result (``{}`` where it could not run).
        reason: why it is not usable (``""`` when faithful).
        build_s: seconds to build it and run the check (compilation included).
    """

    name: str
    program: Any = None
    faithful: bool = False
    check: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    build_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the program."""
        kind = PROGRAMS[self.name]
        return {"program": self.name, "file_format": kind.file_format, "summary": kind.summary,
                "built": self.program is not None, "faithful": self.faithful, "check": self.check,
                "reason": self.reason, "build_s": self.build_s}


def build_program(name: str, module: RawUnitsForecaster, *, threads: int = 1,
                  reference: RawUnitsForecaster | None = None, batches: Sequence[int] = FAITHFUL_BATCHES,
                  atol: float = FAITHFUL_ATOL, where: str = "student") -> ProgramBuild:
    """Build the program ``name`` of ``module`` on the CPU and check it against ``reference`` (default: the
    same ``module``). Nothing raised: a failure to build or to run (e.g. no C++ compiler, an operator a
    backend lacks) and an unfaithful result are recorded in :attr:`ProgramBuild.reason`.

    Raises:
        KeyError: ``name`` is not in :data:`PROGRAMS`.
    """
    kind = PROGRAMS[name]
    reference = module if reference is None else reference
    result = ProgramBuild(name)
    start = time.perf_counter()
    stage = "build"
    try:
        program = kind.build(module, threads, where)
        stage = "run"
        result.check = check_faithful(program, reference, batches=batches, atol=atol)
    except Exception as exc:  # every backend fails its own way; the reason is the record
        text = str(exc).strip().splitlines()
        result.reason = f"failed to {stage}: {type(exc).__name__}: {text[0] if text else ''}"[:500]
        result.build_s = time.perf_counter() - start
        return result
    result.build_s = time.perf_counter() - start
    result.program = program
    result.faithful = bool(result.check["faithful"])
    if not result.faithful:
        worst = max(result.check["max_abs_diff"].values())
        result.reason = f"not faithful: max abs difference {worst:.3g} > {atol:g} (raw units)"
    return result
