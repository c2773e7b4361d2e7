"""The deployment API: load an exported student and forecast in raw units.

Example::

    from stgkd import Forecaster

    fc = Forecaster.load("student.pt")            # or device="cuda"
    last_hour = speeds.iloc[-fc.input_steps:]      # DataFrame: DatetimeIndex x sensor ids, raw mph
    future = fc.predict(last_hour)                 # DataFrame: next H timestamps x the same sensors

This module imports only ``torch``, ``numpy``, ``pandas`` and stgkd's error types, missing-value
conventions (:mod:`stgkd.missing`, numpy only) and export loader;
the training code (``stgkd.nn``, ``stgkd.engine``, ``stgkd.data``) is needed only when ``load`` is given
a training checkpoint instead of an exported file. An ONNX export also needs ``onnxruntime``.
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from stgkd.errors import CheckpointError, StgkdError
from stgkd.export import backend_of, file_kind, load_exported
from stgkd.missing import parse_missing

__all__ = ["Forecaster"]

_EPOCH = pd.Timestamp("1970-01-01")
#: integer ticks per second of each unit a DatetimeIndex may hold
_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

#: the batch sizes :meth:`Forecaster.load` forecasts at before it returns (:meth:`Forecaster.warm_up`): 1, what
#: :meth:`Forecaster.predict` runs for a DataFrame
WARM_BATCHES = (1,)


@dataclass(frozen=True)
class _ColumnOrder:
    """A DataFrame's sensor columns against the model's: ``model_from_input[j]`` is the column holding the
    model's sensor ``j``; ``input_from_model[i]`` the model's index of column ``i``."""

    model_from_input: np.ndarray
    input_from_model: np.ndarray


def _wall_second(stamp: Any, where: str) -> int:
    """:func:`_wall_seconds` of one timestamp (a datetime, ``np.datetime64`` or text), without building an index."""
    try:
        when = pd.Timestamp(stamp)
    except (TypeError, ValueError) as exc:
        raise StgkdError(f"{where}: cannot read timestamps ({exc})") from None
    if when is pd.NaT:
        raise StgkdError(f"{where}: timestamps hold NaT")
    if when.tz is not None:
        when = when.tz_localize(None)  # keep the local wall-clock time
    return int((when - _EPOCH) // pd.Timedelta(seconds=1))


def _wall_seconds(stamps: Any, where: str) -> np.ndarray:
    """Seconds since 1970-01-01 of the local wall-clock time of each timestamp (int64)."""
    try:
        index = pd.DatetimeIndex(pd.to_datetime(np.asarray(stamps).ravel() if not isinstance(stamps, pd.DatetimeIndex) else stamps))
    except (TypeError, ValueError) as exc:
        raise StgkdError(f"{where}: cannot read timestamps ({exc})") from None
    if index.tz is not None:
        index = index.tz_localize(None)  # keep the local wall-clock time
    if index.hasnans:
        raise StgkdError(f"{where}: timestamps hold NaT")
    return np.asarray((index - _EPOCH) // pd.Timedelta(seconds=1), dtype=np.int64)


class Forecaster:
    """An exported student, ready to forecast raw readings.

    Attributes:
        sensor_ids: the ``N`` sensor ids, in the model's column order.
        input_steps: ``T_in``, readings per sensor one forecast needs.
        horizon: ``H``, steps forecast.
        interval: sampling interval as a :class:`datetime.timedelta` (``interval_minutes`` as an int).
        input_features: the model's input channels (``"value"``, then calendar features).
        missing: the missing-value convention the model was trained with (:mod:`stgkd.missing`):
            ``"zero"`` (a ``0`` reading is missing, as in METR-LA), ``"nan"`` or ``"none"`` (a ``0`` is a
            reading), or a sentinel number. ``NaN`` is a missing reading under every convention.
            Files written before conventions were recorded are ``"zero"``.
        metadata: everything stored with the file (dataset, metrics, model config, ...).
        device: where it runs.
        backend: how it runs: ``"torchscript-int8"`` (a file exported with ``--quantize int8``: torch.ao's
            dynamic int8 CPU kernels), ``"onnxruntime"`` (an ONNX file), ``"torchscript-fp32"``,
            ``"torchscript-frozen"`` (``--format torchscript-frozen``: frozen and optimised for the CPU),
            ``"aoti"`` (``--format aoti``: an AOTInductor package, compiled for the CPU),
            ``"torch.export"`` (a torch.export file run uncompiled), ``"checkpoint"`` (a training checkpoint,
            run eagerly), or ``"aoti-cached"`` (either of the last two compiled for this machine: a plain
            ``stgkd export`` file loaded on the CPU, or ``Forecaster.load(..., compile=True)``;
            :mod:`stgkd.export.program_cache`).

    Thread safety: :meth:`predict` may be called from several threads at once. On CUDA, repeated calls
    at one batch size replay a CUDA graph captured lazily on the first call at that size (pass
    ``cuda_graphs=False`` to :meth:`load` to disable); the static buffers and replay are guarded by a lock.
    """

    def __init__(self, module: Any, metadata: dict[str, Any], *, device: str | torch.device = "cpu",
                 source: str = "", cuda_graphs: bool = True, backend: str = "") -> None:
        self._module = module
        self.metadata = dict(metadata)
        self.device = torch.device(device)
        self.source = source
        self.backend = backend
        self.sensor_ids: list[str] = [str(s) for s in metadata["sensor_ids"]]
        self.input_steps = int(metadata["input_steps"])
        self.horizon = int(metadata["horizon"])
        self.interval_minutes = int(metadata["interval_minutes"])
        self.interval = _dt.timedelta(minutes=self.interval_minutes)
        self.input_features: list[str] = list(metadata["input_features"])
        self.uses_calendar = any(f != "value" for f in self.input_features)
        self._missing = parse_missing(metadata.get("missing", "zero"), where=f"{source or 'metadata'}: missing")
        self.missing = self._missing.name
        self._index = {s: i for i, s in enumerate(self.sensor_ids)}
        self._interval_s = self.interval_minutes * 60
        self._future_s = np.arange(1, self.horizon + 1, dtype=np.int64) * self._interval_s
        self._future_offsets = pd.to_timedelta(self._future_s, unit="s")
        self._columns: tuple[pd.Index, _ColumnOrder | None] | None = None  # the last frame's columns, checked
        self._cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self._graphs: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread's input buffers (_input_buffers)

    @property
    def num_nodes(self) -> int:
        return len(self.sensor_ids)

    @property
    def program(self) -> Any:
        """The callable :meth:`predict` runs (the compiled program where :attr:`backend` is
        ``"aoti-cached"``): ``(values (B, T_in, N), timestamps (B, T_in)) -> (B, H, N)`` raw units, as
        :class:`~stgkd.export.wrapper.RawUnitsForecaster`; what ``stgkd latency FILE`` times."""
        return self._module

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", *, cuda_graphs: bool = True,
             trust_native_code: bool = False, compile: bool | None = None,
             warm_batches: Sequence[int] = WARM_BATCHES) -> "Forecaster":
        """Load an exported student (``stgkd export``), or a training checkpoint (wrapped in memory).

        On the CPU the file decides the fastest path it admits, reported as :attr:`backend`: an int8 export
        runs torch.ao's quantised kernels (``"torchscript-int8"``), an ONNX export runs in onnxruntime
        (``"onnxruntime"``, with ``torch.get_num_threads()`` intra-op threads), an fp32 TorchScript export
        as it is (``"torchscript-fp32"``, or ``"torchscript-frozen"`` for a frozen export), an
        AOTInductor package as the compiled library it holds (``"aoti"``; only with
        ``trust_native_code=True``, since loading a library runs native code, and under the torch that
        compiled it). Which of them is fastest for a given student and machine is what
        ``python -m benchmarks.cpu_deploy --sections programs`` measures; ``stgkd export --quantize int8`` /
        ``--format onnx`` record their own checks in ``metadata["deployment_checks"]``.

        A torch.export file (what a plain ``stgkd export`` writes on the CPU) records ``"cpu_program":
        "torch.compile"`` in its metadata: compile me on the machine that loads me. On the CPU its program is
        compiled by inductor ahead of time (AOTInductor) for this machine, checked within 1e-4 of the file's
        own program, and kept in this user's private program cache (backend ``"aoti-cached"``;
        :mod:`stgkd.export.program_cache`): the first load on a machine compiles (seconds to tens of
        seconds), later loads of the same file under the same torch and thread count load the compiled
        library in milliseconds without reading the file's program. Of the CPU programs
        ``benchmarks.cpu_deploy`` times it is the fastest at batch 1, and nothing in it comes from the file a
        user was handed: the C++ is generated and built here, from a program read and checked. Compiling
        needs a C++ compiler; where none is found the file runs uncompiled (``"torch.export"``) and a
        ``RuntimeWarning`` says so; a compile that fails warns the same way. ``compile=False`` runs any file
        uncompiled; ``compile=True`` also compiles a training checkpoint (keyed by the checkpoint's bytes), and
        raises where compiling is not possible.

        On a CUDA GPU a file runs as it is read by default (a torch.export program, replayed in a CUDA graph
        with ``cuda_graphs=True``); ``compile=True`` compiles it with AOTInductor for this GPU instead (Triton
        kernels, fewer and fused), checked within 1e-4 of the file's own program on the GPU and kept in the same
        cache under a key that also names the GPU, its compute capability and CUDA; the compiled program is
        replayed in a CUDA graph the same way. It needs Triton and a C++ compiler (inductor builds the wrapper).

        The forecaster is ready when this returns: it forecasts once at each of ``warm_batches`` (default:
        batch 1, what a :meth:`predict` of a DataFrame runs) on plausible inputs, so that a CUDA graph's
        capture and TorchScript's first-call optimisation are paid here, never on a service's first forecast
        (:meth:`warm_up` does it again, e.g. for other batch sizes). A compiled program serves every batch
        size; it is compiled for the CPU threads set when ``load`` is called (``torch.set_num_threads``
        before it). ``warm_batches=()`` defers the warm-up to the first calls.

        Raises:
            CheckpointError: the file is missing, corrupt, or not one of those; names the file.
            ConfigError: an ONNX file without onnxruntime; an int8, frozen, AOTInductor or ONNX file on
                CUDA; an AOTInductor package without ``trust_native_code`` or under another torch;
                ``compile=True`` on a device other than the CPU or CUDA, on CUDA without Triton, on a file that
                holds no eager program, or without a C++ compiler.
            StgkdError: ``device="cuda"`` without CUDA.
        """
        dev = torch.device(device)
        asked = compile is True
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise StgkdError(f"{path}: device={str(device)!r} asked for, but CUDA is not available on this machine "
                             f"(torch {torch.__version__}); load it with device='cpu'")
        path = Path(path)
        kind = file_kind(path)
        where = str(path)
        if compile is True:  # told before anything is read
            from stgkd.export.programs import check_compilable

            check_compilable(kind, dev, where)
        module = None
        if kind == "checkpoint":
            from stgkd.export import build_forecaster_module, metadata_from_payload, read_checkpoint

            payload = read_checkpoint(path)
            eager = build_forecaster_module(payload, where=where).to(dev)
            metadata = metadata_from_payload(payload, where)
        elif kind == "torch.export" and (compile is True or (compile is None and dev.type == "cpu")):
            from stgkd.export.metadata import check_format
            from stgkd.formats import archive_metadata

            metadata = archive_metadata(path)  # compiled before: the program is not read at all
            check_format(metadata, where)
            eager = None
        else:
            eager, metadata, kind = load_exported(path, device=dev, threads=torch.get_num_threads(),
                                                  trust_native_code=trust_native_code)
        for key in ("sensor_ids", "input_steps", "horizon", "interval_minutes", "input_features"):
            if key not in metadata:
                raise CheckpointError(f"{path}: metadata lacks {key!r}")
        backend = backend_of(kind, metadata)
        if compile is None:
            from stgkd.export.programs import compile_by_default

            compile = compile_by_default(kind, metadata, dev)
        if compile:
            from stgkd.export.program_cache import BACKEND, plausible_inputs
            from stgkd.export.programs import load_compiled

            def export() -> Any:
                if eager is not None:  # a checkpoint: its model exported in memory
                    from stgkd.export.torch_export import to_torch_export

                    return to_torch_export(eager, dev, where)
                from torch.export.passes import move_to_device_pass

                from stgkd.export.load import read_torch_export

                program = read_torch_export(path)
                return program if dev.type == "cpu" else move_to_device_pass(program, dev)

            module = load_compiled(path, lambda b: plausible_inputs(metadata, b, seed=b), export, where,
                                   asked=asked, device=dev)
            if module is not None:
                backend = BACKEND
        if module is None:
            if eager is None:  # a torch.export file that did not compile: read as it is
                eager, metadata, kind = load_exported(path, device=dev, threads=torch.get_num_threads(),
                                                      trust_native_code=trust_native_code)
            module = eager
        forecaster = cls(module, metadata, device=dev, source=str(path), cuda_graphs=cuda_graphs, backend=backend)
        forecaster.warm_up(warm_batches)
        return forecaster

    def warm_up(self, batch_sizes: Sequence[int] = WARM_BATCHES) -> None:
        """Forecast twice at each of ``batch_sizes`` on plausible inputs (every reading observed, the
        training mean plus noise, five-minute-aligned timestamps) through the path :meth:`predict` takes, so
        that what a program does on its first calls at a batch size (compiling, capturing a CUDA graph,
        TorchScript's profiling runs) is done now. The forecasts are discarded.

        Raises:
            StgkdError: a batch size below 1.
        """
        scaler = self.metadata.get("scaler") or {}
        mean, std = float(scaler.get("mean", 1.0)), float(scaler.get("std", 1.0))
        gen = np.random.default_rng(0)
        for b in batch_sizes:
            if int(b) < 1:
                raise StgkdError(f"warm_batches: batch sizes are at least 1, got {b}")
            values = (np.abs(mean + std * gen.standard_normal((int(b), self.input_steps, self.num_nodes))) + 1.0)
            secs = 1_700_000_000 + np.arange(self.input_steps, dtype=np.int64) * self.interval_minutes * 60
            for _ in range(2):
                buffers = self._input_buffers(int(b))
                buffers[0][...] = values
                buffers[1][...] = secs
                self._forecast(buffers)

    def __repr__(self) -> str:
        return (
            f"Forecaster(sensors={self.num_nodes}, input_steps={self.input_steps}, horizon={self.horizon}, "
            f"interval={self.interval_minutes}min, features={self.input_features}, device={self.device}, "
            f"backend={self.backend})"
        )

    # ------------------------------------------------------------------ forecasting

    def predict(
        self,
        history: pd.DataFrame | np.ndarray | torch.Tensor,
        *,
        timestamps: Any = None,
        start: Any = None,
    ) -> pd.DataFrame | np.ndarray:
        """Forecast the next ``horizon`` steps from the last ``input_steps`` readings, in raw units.

        Args:
            history: a DataFrame indexed by timestamps with one column per sensor id (any order; ids
                compared as strings; every model sensor must be present and no other column), or an array
                ``(T, N)`` / ``(B, T, N)`` with columns in :attr:`sensor_ids` order. It holds at least
                ``input_steps`` steps; of a longer history (a rolling buffer) the last ``input_steps`` are
                used and the rest ignored. The steps used must be regular, ``interval`` apart. Missing
                readings are ``NaN``, plus what the training data's convention marks (:attr:`missing`: a ``0``
                under ``"zero"``; under ``"nan"`` and ``"none"`` a ``0`` is a reading); they enter the model as
                the training mean.
            timestamps: for arrays, the time of each step of ``history``: ``T`` datetimes, or ``(B, T)``.
            start: for arrays, the time of the first step of ``history`` (one, or one per window); later
                steps follow every ``interval``. One of ``timestamps``/``start`` is needed when the model uses
                calendar features; DataFrames carry their own.

        Returns:
            For a DataFrame: a DataFrame indexed ``last + interval ... last + horizon * interval``
            with the input's columns in the input's order. For an array: ``(H, N)`` or ``(B, H, N)``
            float32.

        Raises:
            StgkdError: fewer than ``input_steps`` steps, a wrong number of sensors, unknown/missing/duplicate
                sensor ids, a sensor with no reading in the steps used, irregular or missing timestamps among
                them (a gap: the message says where), Inf readings.
        """
        if isinstance(history, pd.DataFrame):
            return self._predict_frame(history)
        if isinstance(history, torch.Tensor):
            history = history.detach().cpu().numpy()
        values = np.asarray(history, dtype=np.float32)
        single = values.ndim == 2
        if single:
            values = values[None]
        if values.ndim != 3 or values.shape[1] < self.input_steps or values.shape[2] != self.num_nodes:
            raise StgkdError(
                f"history: expected shape (T, {self.num_nodes}) or (B, T, {self.num_nodes}) (steps x sensors) with "
                f"T >= input_steps = {self.input_steps}, got {tuple(np.shape(history))}"
            )
        secs = self._array_seconds(values.shape[0], values.shape[1], timestamps, start)
        t = self.input_steps
        buffers = self._input_buffers(values.shape[0])
        np.copyto(buffers[0], values[:, -t:])
        np.copyto(buffers[1], secs[:, -t:])
        out = self._forecast(buffers)
        return out[0] if single else out

    def _predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        index = frame.index
        if not isinstance(index, pd.DatetimeIndex):
            raise StgkdError(f"history: a DataFrame needs a DatetimeIndex, got {type(index).__name__}")
        t = self.input_steps
        if len(frame) < t:
            raise StgkdError(
                f"history: the model needs at least {t} steps ({t} x {self.interval_minutes} min), got "
                f"{len(frame)}; pass a longer history (the last {t} rows are used)"
            )
        order = self._column_order(frame.columns)
        stamps = index[-t:] if len(index) > t else index
        if stamps.hasnans:
            raise StgkdError(f"history index: the last {t} timestamps hold NaT")
        # integers in the index's own unit (s, ms, us or ns) since the epoch, UTC for an aware index
        absolute, unit = stamps.asi8, stamps.unit
        per_second = _TICKS_PER_SECOND[unit]
        if t > 1:
            irregular = np.flatnonzero(np.diff(absolute) != self._interval_s * per_second)
            if irregular.size:
                bad = int(irregular[0])
                raise StgkdError(
                    f"history: the last {t} timestamps must be regular, {self.interval_minutes} min apart; found a "
                    f"step of {stamps[bad + 1] - stamps[bad]} after {stamps[bad]} (reindex to a regular "
                    f"index with NaN for missing readings: history.asfreq('{self.interval_minutes}min'))"
                )
        buffers = self._input_buffers(1)
        try:
            raw = frame.to_numpy()  # one float block: a view, no copy
            # cast (and transpose: a frame's block is column-major) straight into the model's input
            np.copyto(buffers[0][0], raw[-t:] if order is None else raw[-t:, order.model_from_input],
                      casting="unsafe")
        except (TypeError, ValueError) as exc:
            raise StgkdError(f"history: readings must be numbers ({exc})") from None
        wall = absolute if stamps.tz is None else stamps.tz_localize(None).asi8
        np.floor_divide(wall, per_second, out=buffers[1][0])
        out = self._forecast(buffers)[0]
        if order is not None:
            out = out[:, order.input_from_model]
        if stamps.tz is None:  # from the integers: a third of the time of Timestamp + TimedeltaIndex arithmetic
            future = pd.DatetimeIndex((absolute[-1] + self._future_s * per_second).view(f"M8[{unit}]"),
                                      name=index.name)
        else:
            future = (stamps[-1] + self._future_offsets).as_unit(unit).rename(index.name)
        return pd.DataFrame(out, index=future, columns=frame.columns, copy=False)

    def _column_order(self, columns: pd.Index) -> "_ColumnOrder | None":
        """How ``columns`` map onto the model's sensors (``None``: already in model order), checked once
        per distinct set of columns and remembered for the frames that follow."""
        cached = self._columns
        if cached is not None and (cached[0] is columns or cached[0].equals(columns)):
            return cached[1]
        cols = [str(c) for c in columns]
        if len(set(cols)) != len(cols):
            dup = sorted({c for c in cols if cols.count(c) > 1})
            raise StgkdError(f"history: duplicate sensor columns {dup[:5]}")
        unknown = [c for c in cols if c not in self._index]
        if unknown:
            raise StgkdError(
                f"history: {len(unknown)} unknown sensor(s) not in the model: {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''} (the model has {self.num_nodes} sensors)"
            )
        present = set(cols)
        missing = [s for s in self.sensor_ids if s not in present]
        if missing:
            raise StgkdError(
                f"history: {len(missing)} sensor(s) of the model missing from the columns: {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''}"
            )
        input_from_model = np.array([self._index[c] for c in cols], dtype=np.intp)
        order = None
        if not np.array_equal(input_from_model, np.arange(self.num_nodes)):
            order = _ColumnOrder(model_from_input=np.argsort(input_from_model), input_from_model=input_from_model)
        self._columns = (columns, order)
        return order

    def _array_seconds(self, batch: int, t: int, timestamps: Any, start: Any) -> np.ndarray:
        """``(batch, t)`` wall-clock seconds of an array history of ``t`` steps."""
        if timestamps is not None and start is not None:
            raise StgkdError("pass either timestamps= or start=, not both")
        if timestamps is not None:
            secs = _wall_seconds(timestamps, "timestamps")
            if secs.size == t:
                secs = np.broadcast_to(secs.reshape(1, t), (batch, t))
            elif secs.size == batch * t:
                secs = secs.reshape(batch, t)
            else:
                raise StgkdError(f"timestamps: expected {t} or ({batch}, {t}) timestamps, got {secs.size}")
            return np.ascontiguousarray(secs)
        if start is not None:
            if isinstance(start, (str, _dt.date, np.generic, int, float)):  # one timestamp: no index built
                first = np.array([_wall_second(start, "start")])
            else:
                first = _wall_seconds(start if np.ndim(start) else [start], "start")
            if first.size not in (1, batch):
                raise StgkdError(f"start: expected one timestamp or {batch}, got {first.size}")
            offsets = np.arange(t, dtype=np.int64) * self.interval_minutes * 60
            return np.ascontiguousarray(np.broadcast_to(first.reshape(-1, 1) + offsets, (batch, t)))
        if self.uses_calendar:
            raise StgkdError(
                f"the model uses {[f for f in self.input_features if f != 'value']}: pass timestamps= or start= "
                "with an array history (or give a DataFrame with a DatetimeIndex)"
            )
        return np.zeros((batch, t), dtype=np.int64)

    def _input_buffers(self, batch: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
        """This thread's model inputs for ``batch`` windows, to be filled in place: numpy views
        ``(batch, input_steps, N)`` float32 and ``(batch, input_steps)`` int64 and the CPU tensors they share
        memory with. Reused from call to call (nothing allocated, the memory the program reads warm in the cache,
        strides the compiled program's guards accept); another batch size replaces them."""
        held = getattr(self._local, "inputs", None)
        if held is None or held[0].shape[0] != batch:
            x = torch.empty((batch, self.input_steps, self.num_nodes), dtype=torch.float32)
            s = torch.empty((batch, self.input_steps), dtype=torch.int64)
            held = self._local.inputs = (x.numpy(), s.numpy(), x, s)
        return held

    def _check_readings(self, values: np.ndarray) -> None:
        """Refuse Inf readings and a sensor with no observed reading in a window (``values`` ``(B, T, N)``).
        One pass where every reading is finite (the usual case), the convention's sentinel compared after it."""
        finite = np.isfinite(values)
        sentinel = self._missing.sentinel
        if finite.all():
            if sentinel is None:
                return
            observed = values != values.dtype.type(sentinel)
        else:
            if np.isinf(values).any():
                raise StgkdError("history holds Inf readings; use NaN for missing readings")
            observed = finite if sentinel is None else finite & (values != values.dtype.type(sentinel))
        dead = ~observed.any(axis=1)  # (B, N)
        if dead.any():
            b, n = np.argwhere(dead)[0]
            ids = [self.sensor_ids[i] for i in np.flatnonzero(dead[b])]
            raise StgkdError(
                f"history: {len(ids)} sensor(s) have no reading in the whole {self.input_steps}-step history"
                f"{f' of window {b}' if values.shape[0] > 1 else ''}: {ids[:5]}{' ...' if len(ids) > 5 else ''}"
                " (the model needs at least one observed reading per sensor)"
            )

    def _forecast(self, buffers: tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]) -> np.ndarray:
        """The forecast ``(B, H, N)`` float32 of the windows filled into :meth:`_input_buffers`."""
        values, _, x, s = buffers
        self._check_readings(values)
        with torch.inference_mode():
            if self._cuda_graphs:
                out = self._replay(x.to(self.device), s.to(self.device))
            else:
                out = self._module(x.to(self.device), s.to(self.device))
        if out.device.type == "cpu" and out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            out = out.clone()  # a program returning a view of its input (a naive forecast): the buffer is reused
        return out.float().cpu().numpy()

    def _replay(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        from stgkd.latency import CudaGraphRunner

        batch = int(x.shape[0])
        with self._lock:
            runner = self._graphs.get(batch)
            if runner is None:
                runner = CudaGraphRunner(self._module, [x, s], warmup=3)
                self._graphs[batch] = runner
            return runner(x, s).clone()
