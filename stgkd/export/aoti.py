"""The AOTInductor format (``aoti``): the torch.export program of the raw-units wrapper compiled ahead of
time by inductor into a shared library for this machine's CPU, packaged in a PT2 archive (``.pt2``) with
the metadata as its ``extra/metadata.json`` entry; :func:`load_aoti` runs it.

What a package needs: to *write* one, a C++ compiler (``g++``, or ``$CXX``; :func:`cpp_compiler`); to
*load* one, the torch version that compiled it (the library links against that libtorch) and a CPU with
the instruction set it was compiled for (recorded as ``compiled_for`` in the metadata). No compiler is
needed to load. A package is native code: loading it loads a shared library, which runs code, so
:func:`load_aoti` asks the caller to say they trust the file (``trust_native_code=True``).
"""

from __future__ import annotations

import io
import platform
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from stgkd.errors import CheckpointError, ConfigError
from stgkd.export.torch_export import to_torch_export
from stgkd.export.wrapper import RawUnitsForecaster

__all__ = ["AOTI_SUFFIX", "compile_aoti", "compiled_for", "cpp_compiler", "load_aoti", "package_aoti"]

#: the file name ending torch's PT2 archive readers expect
AOTI_SUFFIX = ".pt2"


def cpp_compiler() -> str | None:
    """The C++ compiler inductor calls (``$CXX``, else ``g++``), or ``None`` where there is none."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return str(get_cpp_compiler())
    except Exception:  # InvalidCxxCompiler, or an inductor without this helper
        return None


def compiled_for() -> dict[str, Any]:
    """What a package compiled here needs of the machine that loads it: torch version, OS, architecture
    and the widest vector instruction set inductor generated code for."""
    try:
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        isa = str(pick_vec_isa()) or "scalar"
    except Exception:
        isa = "unknown"
    return {"torch_version": torch.__version__, "system": platform.system(), "machine": platform.machine(),
            "vector_isa": isa}


def compile_aoti(module: RawUnitsForecaster, dev: torch.device, where: str) -> list:
    """``module`` compiled ahead of time: ``torch._inductor.aot_compile`` of its torch.export program (a
    dynamic batch dimension), as the list of generated files :func:`package_aoti` packs.

    Raises:
        ConfigError: not on the CPU, no C++ compiler, or a torch without PT2 archives.
        CheckpointError: export or compilation failed (the message starts with ``where``).
    """
    if dev.type != "cpu":
        raise ConfigError(f"format='aoti' compiles for the CPU; got device={dev.type!r} (use device='cpu')")
    if cpp_compiler() is None:
        raise ConfigError(
            "format='aoti' needs a C++ compiler to build the package (g++, or the compiler named by $CXX; "
            "e.g. apt-get install g++); loading the package needs none"
        )
    _package_pt2()  # a torch too old to package is told before compiling
    program = to_torch_export(module, dev, where)
    from torch._inductor import aot_compile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            args, kwargs = program.example_inputs
            return list(aot_compile(program.module(), args, kwargs, options={"aot_inductor.package": True}))
    except Exception as exc:  # inductor and the C++ compiler surface many error types
        raise CheckpointError(
            f"{where}: AOTInductor compilation failed for {type(module.student).__name__}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


def package_aoti(files: list, extra_files: dict[str, str] | None = None) -> bytes:
    """The PT2 archive of :func:`compile_aoti`'s files with ``extra_files`` (name -> text) beside them."""
    buf = io.BytesIO()
    _package_pt2()(buf, aoti_files=files, extra_files=dict(extra_files or {}))
    return buf.getvalue()


def _package_pt2():
    try:
        from torch.export.pt2_archive._package import package_pt2  # what torch.export.save itself calls
    except ImportError:
        raise ConfigError(f"format='aoti' needs torch >= 2.7 (PT2 archives with extra files); this is "
                          f"torch {torch.__version__}") from None
    return package_pt2


def load_aoti(path: str | Path | bytes, metadata: dict[str, Any], *, trust_native_code: bool = False,
              where: str = "package"):
    """The callable of an AOTInductor package (``values, timestamps -> forecast``), on the CPU.

    Args:
        path: the ``.pt2`` file, or its bytes.
        metadata: the package's stgkd metadata (read without loading the library), for what it needs.
        trust_native_code: load the package's shared library (native code runs when it loads).

    Raises:
        ConfigError: ``trust_native_code`` is off, or this torch is not the one the package was compiled
            with (its library links against that libtorch).
        CheckpointError: the package does not load.
    """
    if not trust_native_code:
        raise ConfigError(
            f"{where} is an AOTInductor package: a compiled shared library, and loading it runs native code; "
            "load only a file you compiled or trust, with Forecaster.load(path, trust_native_code=True) "
            "(load_exported(..., trust_native_code=True))"
        )
    needs = (metadata.get("compiled_for") or {})
    built_with = needs.get("torch_version")
    if built_with and built_with != torch.__version__:
        raise ConfigError(
            f"{where}: an AOTInductor package compiled with torch {built_with} runs only under that torch (its "
            f"library links against it); this is torch {torch.__version__}. Install torch=={built_with}, or "
            "export again here (stgkd export --format aoti), or use --format torchscript-frozen"
        )
    from torch._inductor import aoti_load_package

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not isinstance(path, bytes) and Path(path).suffix != AOTI_SUFFIX:
                path = Path(path).read_bytes()  # torch's loader reads a PT2 archive by its .pt2 name
            if isinstance(path, bytes):
                with tempfile.TemporaryDirectory(prefix="stgkd-aoti-") as tmp:
                    file = Path(tmp) / f"program{AOTI_SUFFIX}"
                    file.write_bytes(path)
                    return aoti_load_package(str(file))
            return aoti_load_package(str(path))
    except Exception as exc:
        raise CheckpointError(
            f"{where}: the AOTInductor package does not load here ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it was compiled for {needs or 'an unrecorded machine'}"
        ) from None
