"""The program a CPU forecaster runs: the file's torch.export program compiled by AOTInductor on the machine
that loads it, once, and kept in a private cache.

``stgkd export``'s default file records ``"cpu_program": "torch.compile"``: compile me where I am loaded.
:func:`compiled_program` does that for :meth:`stgkd.Forecaster.load` (and ``compile=True`` on a training
checkpoint): the program is compiled ahead of time by inductor into a shared library
(``torch._inductor.aoti_compile_and_package``, one program for every batch size), checked within
:data:`~stgkd.export.programs.FAITHFUL_ATOL` of the file's own program run uncompiled (batch 1 and 3), and
kept under a key naming exactly what it was compiled from and for (:func:`program_key`: the file's SHA-256,
the torch version, the CPU threads, the CPU's architecture, model and instruction-set flags). A later load
of the same file on the same machine finds it and loads the library (milliseconds, with none of torch's
compiler imported) instead of compiling (13-19 s for the default student on the 2-core CPU; a first forecast
through ``torch.compile`` on every load took 5-6 s even with inductor's cache warm:
``benchmarks/results/forecaster-api-cpu-*.md``).

What runs is native code this machine built, from a file that was read and checked, into this user's private
directory (:func:`cache_dir`: ``$STGKD_CACHE_DIR``, else ``$XDG_CACHE_HOME/stgkd``, else ``~/.cache/stgkd``;
its ``programs/`` created with mode 0700): the trust inductor's own cache asks for, which ``torch.compile``
loads from disk as well. A directory that another user owns or can write to is never used: the program is then
compiled for this process in a temporary directory and not kept. Entries are written atomically (a temporary
name, then a rename), so two processes compiling the same file at once leave one whole entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from stgkd.errors import CheckpointError

__all__ = ["BACKEND", "CACHE_ENV", "CachedProgram", "cache_dir", "compile_package", "compiled_program",
           "cpu_signature", "cuda_signature", "file_digest", "plausible_inputs", "program_key", "store"]

#: :attr:`stgkd.Forecaster.backend` of a program from this cache
BACKEND = "aoti-cached"
#: the environment variable naming the cache's root
CACHE_ENV = "STGKD_CACHE_DIR"
#: the layout of an entry; a new layout makes new keys, and old entries are never read again
_LAYOUT = 1
#: batch sizes a new entry is checked at (1, and one above it: the batch dimension is dynamic)
_CHECK_BATCHES = (1, 3)
_CPU = torch.device("cpu")


def cache_dir() -> Path | None:
    """The private directory compiled programs are kept in (``<root>/programs``), created with mode 0700;
    ``None`` where it cannot be created, or where it or its root is owned by another user or writable by
    group or others (a program found there could have been put there by someone else)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "stgkd"
    programs = root / "programs"
    try:
        programs.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (root, programs):
            st = d.stat()
            if (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return None
    except OSError:
        return None
    return programs


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cpu_signature() -> dict[str, str]:
    """What a compiled CPU program depends on in the machine: architecture, system, and (on Linux) the CPU
    model and its instruction-set flags (``/proc/cpuinfo``), the flags as a digest."""
    sig = {"machine": platform.machine(), "system": platform.system()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return sig
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and "model" not in sig:
            sig["model"] = value.strip()
        elif key in ("flags", "Features") and "flags" not in sig:
            sig["flags"] = hashlib.sha256(" ".join(sorted(value.split())).encode()).hexdigest()[:16]
    return sig


def cuda_signature(device: torch.device) -> dict[str, str]:
    """What a program compiled for a GPU depends on: the GPU's name and compute capability, and the CUDA
    version torch was built with (inductor's Triton kernels are compiled for one architecture)."""
    props = torch.cuda.get_device_properties(_device_index(device))
    return {"gpu": props.name, "capability": f"{props.major}.{props.minor}", "cuda": str(torch.version.cuda)}


def program_key(digest: str, threads: int, device: torch.device = _CPU) -> str:
    """The cache key of a program compiled from the file with SHA-256 ``digest`` for ``threads`` CPU threads
    on this machine under this torch (inductor's CPU code is generated for a thread count), and for the GPU
    of ``device`` where it is a CUDA device."""
    parts: dict[str, Any] = {"layout": _LAYOUT, "file": digest, "torch": torch.__version__, "threads": int(threads),
                             "cpu": cpu_signature()}
    if device.type == "cuda":
        parts["cuda"] = cuda_signature(device)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _device_index(device: torch.device) -> int:
    """The loader's device index: -1 for the CPU, the CUDA device's (the current one where unnamed)."""
    if device.type != "cuda":
        return -1
    return device.index if device.index is not None else torch.cuda.current_device()


def plausible_inputs(metadata: dict[str, Any], batch: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Raw inputs ``(values (B, T, N), timestamps (B, T))`` a file's program takes: readings around the
    training mean (a few missing), steps ``interval_minutes`` apart, from its metadata."""
    scaler = metadata.get("scaler") or {}
    mean, std = float(scaler.get("mean", 1.0)), float(scaler.get("std", 1.0))
    steps, nodes = int(metadata["input_steps"]), len(metadata["sensor_ids"])
    gen = np.random.default_rng(seed)
    values = (np.abs(mean + std * gen.standard_normal((batch, steps, nodes))) + 1.0).astype(np.float32)
    values[gen.random(values.shape) < 0.05] = np.nan
    base = 1_700_000_000 + gen.integers(0, 7 * 1440, (batch, 1)) * 60
    stamps = base + np.arange(steps, dtype=np.int64) * int(metadata["interval_minutes"]) * 60
    return torch.from_numpy(values), torch.from_numpy(stamps.astype(np.int64))


class CachedProgram:
    """A compiled program's library, loaded: ``(values (B, T, N), timestamps (B, T)) -> (B, H, N)`` raw units,
    any batch size, on the device it was compiled for (``device``: the CPU, or a CUDA device, where it runs on
    the current stream). Calls may come from several threads (the library serves one at a time).

    Raises:
        CheckpointError: the package does not load (its path in the message).
    """

    def __init__(self, path: str | Path, device: torch.device = _CPU) -> None:
        self.path = Path(path)
        self.device = device
        try:
            self._loader = torch._C._aoti.AOTIModelPackageLoader(str(self.path), "model", False, 1,
                                                                 _device_index(device))
        except Exception as exc:  # a truncated or foreign package, a library that does not link here
            raise CheckpointError(f"{self.path}: the compiled program does not load ({type(exc).__name__}: "
                                  f"{(str(exc).strip().splitlines() or [''])[0][:300]})") from None

    def __call__(self, values: Tensor, timestamps: Tensor) -> Tensor:
        """Shapes: values ``(B, T, N)`` float32, timestamps ``(B, T)`` int64 -> ``(B, H, N)``."""
        return self._loader.boxed_run([values, timestamps])[0]


def compile_package(program: Any, inputs: Callable[[int], tuple[Tensor, Tensor]], out: Path, where: str, *,
                    atol: float, device: torch.device = _CPU) -> Path:
    """``program`` (a ``torch.export.ExportedProgram`` of the raw-units wrapper, on ``device``: the CPU, where
    inductor writes C++, or a GPU, where it writes Triton kernels) compiled by AOTInductor into the package
    ``out``, loaded back and checked within ``atol`` (raw units; :data:`stgkd.export.programs.FAITHFUL_ATOL`)
    of ``program`` run uncompiled at batch 1 and 3 on ``inputs(batch)`` (e.g. :func:`plausible_inputs`),
    moved to ``device``.

    Raises:
        CheckpointError: compilation failed, or the compiled program is not faithful (``where`` and the
            difference in the message); ``out`` is then removed.
    """
    try:
        from torch._inductor import aoti_compile_and_package

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aoti_compile_and_package(program, package_path=str(out))
        compiled = CachedProgram(out, device)
        reference = program.module()
        worst = 0.0
        with torch.inference_mode():
            for b in _CHECK_BATCHES:
                values, stamps = (t.to(device) for t in inputs(b))
                want, got = reference(values, stamps), compiled(values, stamps)
                if got.shape != want.shape or not bool(torch.isfinite(got).all()):
                    worst = float("inf")
                else:
                    worst = max(worst, float((got - want).abs().max()))
        if worst > atol:
            raise CheckpointError(f"{where}: the compiled program differs from the file's by {worst:.3g} "
                                  f"(> {atol:g}, raw units)")
    except Exception as exc:
        out.unlink(missing_ok=True)
        if isinstance(exc, CheckpointError):
            raise
        target = "this CPU" if device.type == "cpu" else f"this GPU ({device})"
        raise CheckpointError(f"{where}: compiling for {target} failed ({type(exc).__name__}: "
                              f"{(str(exc).strip().splitlines() or [''])[0][:300]})") from None
    return out


def store(package: Path, key: str) -> Path | None:
    """Keep ``package`` in the cache under ``key`` (a copy, renamed into place); its path there, or ``None``
    where there is no private cache directory or it cannot be written (a full disk: the program is then
    used from where it was compiled, and compiled again by the next process)."""
    directory = cache_dir()
    if directory is None:
        return None
    final = directory / f"{key}.pt2"
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh, open(package, "rb") as src:
            fh.write(src.read())
        os.replace(tmp, final)
    except OSError:
        return None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return final


def compiled_program(digest: str, inputs: Callable[[int], tuple[Tensor, Tensor]], export: Callable[[], Any],
                     where: str, *, atol: float, device: torch.device = _CPU) -> CachedProgram:
    """The compiled program of the file with SHA-256 ``digest`` for ``device``: from the cache where this
    machine compiled it before (for this torch, thread count and GPU), else compiled now from ``export()`` (its
    ``torch.export.ExportedProgram`` on ``device``, read only on a miss), checked on ``inputs(batch)``
    (:func:`compile_package`) and kept. An entry that no longer loads is compiled again.

    Raises:
        CheckpointError: compilation failed or is not faithful (``where`` names the file).
    """
    key = program_key(digest, torch.get_num_threads(), device)
    directory = cache_dir()
    if directory is not None:
        entry = directory / f"{key}.pt2"
        if entry.is_file():
            try:
                return CachedProgram(entry, device)
            except CheckpointError:
                entry.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="stgkd-compile-") as tmp:
        package = compile_package(export(), inputs, Path(tmp) / "program.pt2", where, atol=atol, device=device)
        kept = store(package, key)
        return CachedProgram(kept if kept is not None else package, device)
