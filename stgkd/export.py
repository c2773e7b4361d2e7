"""Export a trained student as one self-contained file for deployment.

:func:`export_student` reads a checkpoint (``torch.load(weights_only=True)``), rebuilds the student,
wraps it in :class:`RawUnitsForecaster` -- raw readings and timestamps in, raw forecasts out -- and
writes a single file that loads with nothing but ``torch``:

* ``format="torchscript"`` (default): the student is traced (``torch.jit.trace``, checked at three
  batch sizes), the wrapper is scripted around it and saved with ``torch.jit.save``; the metadata is
  the ``metadata.json`` entry of ``_extra_files``. Load with ``torch.jit.load(path, _extra_files=...)``
  or :meth:`stgkd.Forecaster.load`.
* ``format="torch.export"``: ``torch.export.export`` with a dynamic batch dimension, saved with
  ``torch.export.save(..., extra_files={"metadata.json": ...})``; load with ``torch.export.load``.
* ``format="onnx"``: ``torch.onnx.export`` (needs the ``onnx`` package) with a dynamic batch axis; the
  metadata JSON is the ``stgkd_metadata`` entry of the model's ``metadata_props``. Where onnxruntime is
  installed (the ``deploy`` extra) the file is checked against the model and runs through
  :class:`OnnxProgram`.

``quantize="int8"`` (TorchScript only) converts the student's linear and recurrent layers to dynamic
int8 (:func:`quantize_int8`, ``torch.ao``) before tracing: weights stored as int8, activations
quantised on the fly at every call, CPU kernels only. With ``checks`` (on by default for int8 and ONNX)
the file's metadata also holds ``deployment_checks``: the masked MAE/RMSE/MAPE of the exported program
and of the fp32 TorchScript program on the checkpoint's test split (or why that check was not made), and
both programs' CPU latency on one thread at batch 1 and 64, with the load average at measurement time.

What goes in the file: the student alone (distillation adapters live under ``"adapters"`` in the
checkpoint and are not part of the student), the scaler (mean, std) and the calendar features baked into
the wrapper, the raw adjacency as the buffer ``adjacency`` (the student keeps its own normalised supports as
buffers), and metadata: sensor ids in column order, interval, input steps, horizon, input features,
model config, training dataset, metrics. TorchScript is deprecated upstream in favour of torch.export,
but it is the format whose files move between CPU and CUDA with ``map_location`` and that every
PyTorch runtime (including C++ libtorch) loads, hence the default.
"""

from __future__ import annotations

import copy
import datetime as _dt
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, List, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.errors import CheckpointError, ConfigError
from stgkd.files import to_jsonable

FORMATS = ("torchscript", "torch.export", "onnx")
#: ``quantize=`` choices of :func:`export_student`
QUANTIZE = ("int8",)
#: layer groups :func:`quantize_int8` can convert, by name -> module types
INT8_LAYERS = {"linear": (nn.Linear,), "recurrent": (nn.GRU, nn.LSTM)}
#: batch sizes the deployment checks time
CHECK_BATCHES = (1, 64)
METADATA_FILE = "metadata.json"
EXPORT_FORMAT = "stgkd-export/1"
#: calendar/value features the exported wrapper can build, by name -> code used inside the wrapper
FEATURE_CODES = {"value": 0, "time_of_day": 1, "day_of_week": 2}

__all__ = [
    "FORMATS",
    "QUANTIZE",
    "RawUnitsForecaster",
    "OnnxProgram",
    "export_student",
    "quantize_int8",
    "backend_of",
    "read_checkpoint",
    "build_forecaster_module",
    "file_kind",
    "load_exported",
    "metadata_from_payload",
]


class RawUnitsForecaster(nn.Module):
    """A student with its data preparation baked in: raw readings in, raw forecasts out.

    Computes, in order: the missing mask (``NaN``, and the sentinel of the training data's missing-value
    convention: ``0`` under ``"zero"``, nothing more under ``"nan"`` / ``"none"``, where a ``0`` is a
    reading), the z-scored value channel with missing readings set to ``0`` in scaled space (= the
    training mean), the calendar
    channels from the timestamps (``time_of_day`` = minutes since midnight / 1440, ``day_of_week`` =
    Monday-based weekday / 7, as :func:`stgkd.data.prepare` builds them), the student's forward, and the
    inverse z-score.

    Args:
        student: the trained model (eager or traced), ``(B, T_in, N, C)`` scaled -> ``(B, H, N)`` scaled.
        graph: ``(N, N)`` raw adjacency the student was trained with (kept as the buffer ``adjacency``).
        mean, std: the training scaler.
        input_features: names of the ``C`` input channels, in order; ``"value"`` first.
        num_nodes, in_steps, out_steps, interval_minutes: the student's shapes and the data interval.
        missing: the training data's missing-value convention (:mod:`stgkd.missing`): ``"zero"``,
            ``"nan"``, ``"none"`` or a sentinel number (default: ``"zero"``, that of checkpoints written
            before conventions were recorded).
    """

    def __init__(
        self,
        student: nn.Module,
        *,
        graph: Tensor,
        mean: float,
        std: float,
        input_features: list[str],
        num_nodes: int,
        in_steps: int,
        out_steps: int,
        interval_minutes: int,
        missing: str = "zero",
    ) -> None:
        super().__init__()
        from stgkd.missing import parse_missing

        policy = parse_missing(missing, where="missing")
        unknown = [f for f in input_features if f not in FEATURE_CODES]
        if unknown or not input_features or input_features[0] != "value":
            raise CheckpointError(
                f"input_features {input_features!r}: the exported wrapper builds "
                f"{', '.join(FEATURE_CODES)} with 'value' first (unsupported: {unknown or input_features})"
            )
        self.student = student
        self.register_buffer("adjacency", torch.as_tensor(graph, dtype=torch.float32).clone())
        self.mean = float(mean)
        self.std = float(std)
        self.feature_codes: List[int] = [FEATURE_CODES[f] for f in input_features]
        self.num_nodes = int(num_nodes)
        self.in_steps = int(in_steps)
        self.out_steps = int(out_steps)
        self.in_channels = len(input_features)
        self.interval_minutes = int(interval_minutes)
        self.missing: str = policy.name
        self.has_sentinel: bool = policy.sentinel is not None
        self.sentinel: float = float(policy.sentinel) if policy.sentinel is not None else 0.0

    def forward(self, values: Tensor, timestamps: Tensor) -> Tensor:
        """Forecast ``H`` steps in raw units.

        Args:
            values: raw readings; ``NaN`` marks a missing reading, and so does the convention's sentinel
                (``0`` under ``missing="zero"``).
            timestamps: int64 seconds since 1970-01-01 of each input step's *local wall-clock* time
                (a naive ``DatetimeIndex``'s ``asi8 // 10**9``); only its calendar features are used.

        Shapes:
            values: ``(B, T_in, N)``; timestamps: ``(B, T_in)``; output: ``(B, H, N)`` raw units.
        """
        missing = torch.isnan(values)
        if self.has_sentinel:
            missing = missing | (values == self.sentinel)
        scaled = torch.where(missing, torch.zeros_like(values), (values - self.mean) / self.std)
        b, t, n = scaled.shape[0], scaled.shape[1], scaled.shape[2]
        secs = timestamps.to(torch.int64)
        channels: List[Tensor] = []
        for code in self.feature_codes:
            if code == 0:
                channels.append(scaled)
            elif code == 1:
                minutes = torch.remainder(secs, 86400).to(torch.float64) / 60.0
                tod = (minutes / 1440.0).to(scaled.dtype)
                channels.append(tod.unsqueeze(-1).expand(b, t, n))
            else:
                # 1970-01-01 was a Thursday (Monday = 0 -> Thursday = 3)
                weekday = torch.remainder(torch.div(secs, 86400, rounding_mode="floor") + 3, 7)
                dow = (weekday.to(torch.float64) / 7.0).to(scaled.dtype)
                channels.append(dow.unsqueeze(-1).expand(b, t, n))
        x = torch.stack(channels, dim=-1)
        out = self.student(x)
        return out.float() * self.std + self.mean


class OnnxProgram:
    """An ONNX export run by onnxruntime on the CPU, called like the TorchScript program.

    ``program(values, timestamps)`` takes and returns tensors (``(B, T_in, N)`` float32 raw readings and
    ``(B, T_in)`` int64 seconds -> ``(B, H, N)`` raw forecasts); an input the graph does not read (the
    timestamps of a model without calendar features) is not fed. One session may be called from several
    threads at once (onnxruntime's ``run`` is thread-safe).

    Args:
        model: the ``.onnx`` file or its bytes.
        threads: onnxruntime intra-op threads (default: None, onnxruntime's choice: all cores).

    Raises:
        ConfigError: onnxruntime is not installed.
    """

    def __init__(self, model: str | Path | bytes, *, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(
                "running an ONNX export needs onnxruntime (pip install onnxruntime, or the 'deploy' extra: "
                "pip install 'stgkd[deploy]'); the TorchScript export runs with torch alone"
            ) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.metadata_props: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, values: Tensor, timestamps: Tensor) -> Tensor:
        feed = {"values": np.ascontiguousarray(values.detach().cpu().numpy(), dtype=np.float32),
                "timestamps": np.ascontiguousarray(timestamps.detach().cpu().numpy(), dtype=np.int64)}
        out = self.session.run(["forecast"], {k: v for k, v in feed.items() if k in self.input_names})[0]
        return torch.from_numpy(out)

    def eval(self) -> "OnnxProgram":
        return self


def quantize_int8(student: nn.Module, layers: Sequence[str] = ("linear", "recurrent")) -> tuple[nn.Module, list[str]]:
    """A copy of ``student`` with its linear and/or recurrent layers quantised to dynamic int8.

    ``torch.ao.quantization.quantize_dynamic`` with ``torch.qint8``: each ``nn.Linear`` / ``nn.GRU`` /
    ``nn.LSTM`` keeps its weights as int8 (per tensor) and quantises its input activations on the fly at
    every call, so no calibration data is needed; the result is CPU-only and traces with
    ``torch.jit.trace``. What stays fp32: everything that is not one of those modules -- the graph products
    (``support @ H``), the GRU's gate nonlinearities, PyG ``GCNConv``'s own linear, the raw-units wrapper.

    Args:
        student: the fp32 model (left unchanged).
        layers: groups to convert, from ``"linear"`` and ``"recurrent"`` (default: both).

    Returns:
        ``(quantised copy in eval mode on the CPU, names of the converted modules)``.

    Raises:
        ConfigError: an unknown group, or nothing in the student to convert.
    """
    unknown = [name for name in layers if name not in INT8_LAYERS]
    if unknown or not layers:
        raise ConfigError(f"int8 layers {list(layers)!r}: choose from {', '.join(INT8_LAYERS)}")
    from torch.ao.quantization import quantize_dynamic

    types = {t for name in layers for t in INT8_LAYERS[name]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the torch.ao eager-mode API announces its move to torchao
        quantised = quantize_dynamic(copy.deepcopy(student).cpu().eval(), types, dtype=torch.qint8)
    from torch.ao.nn.quantized import dynamic as qdynamic

    converted = [name for name, m in quantised.named_modules()
                 if isinstance(m, (qdynamic.Linear, qdynamic.GRU, qdynamic.LSTM))]
    if not converted:
        raise ConfigError(
            f"{type(student).__name__} has no {' or '.join(layers)} layer (nn.Linear, nn.GRU, nn.LSTM) to quantise"
        )
    return quantised.eval(), converted


def backend_of(kind: str, metadata: dict[str, Any]) -> str:
    """How a file of ``kind`` (:func:`file_kind`) runs: ``"torchscript-fp32"``, ``"torchscript-int8"``,
    ``"torch.export"``, ``"onnxruntime"`` or ``"checkpoint"`` (the eager model, rebuilt in memory)."""
    if kind == "torchscript":
        return f"torchscript-{metadata.get('precision', 'fp32')}"
    return {"onnx": "onnxruntime"}.get(kind, kind)


# --------------------------------------------------------------------------- reading


def file_kind(path: str | Path) -> str:
    """``"torchscript"``, ``"torch.export"``, ``"onnx"`` or ``"checkpoint"`` (a ``torch.save`` zip),
    judged from the file's structure without unpickling anything.

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


def metadata_from_payload(payload: dict[str, Any], source: str) -> dict[str, Any]:
    """The metadata stored in an exported file (JSON-serialisable)."""
    data = payload["data"]
    return {
        "format": EXPORT_FORMAT,
        "role": payload.get("role", "student"),
        "sensor_ids": [str(s) for s in data["sensor_ids"]],
        "interval_minutes": int(data["interval_minutes"]),
        "input_steps": int(data["in_steps"]),
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
    }


def build_forecaster_module(payload: dict[str, Any], *, where: str = "checkpoint") -> RawUnitsForecaster:
    """The eager :class:`RawUnitsForecaster` for a validated checkpoint payload."""
    from stgkd.engine.checkpoint import model_from_checkpoint

    data = payload["data"]
    student = model_from_checkpoint(payload, where=where)
    graph = payload["graph"]
    sensor_ids = list(data["sensor_ids"])
    n = int(payload["model"].get("num_nodes", len(sensor_ids)))
    if len(sensor_ids) != n:
        raise CheckpointError(f"{where}: {len(sensor_ids)} sensor ids for a {n}-node model")
    return RawUnitsForecaster(
        student,
        graph=torch.as_tensor(graph, dtype=torch.float32),
        mean=float(payload["scaler"]["mean"]),
        std=float(payload["scaler"]["std"]),
        input_features=list(data["input_features"]),
        num_nodes=n,
        in_steps=int(data["in_steps"]),
        out_steps=int(data["out_steps"]),
        interval_minutes=int(data["interval_minutes"]),
        missing=str(data.get("missing", "zero")),
    ).eval().requires_grad_(False)


def _rewrap(module: RawUnitsForecaster, student: nn.Module) -> RawUnitsForecaster:
    """``module``'s wrapper (scaler, calendar features, graph, shapes) around another student."""
    return RawUnitsForecaster(
        student,
        graph=module.adjacency,
        mean=module.mean,
        std=module.std,
        input_features=[name for code in module.feature_codes for name, c in FEATURE_CODES.items() if c == code],
        num_nodes=module.num_nodes,
        in_steps=module.in_steps,
        out_steps=module.out_steps,
        interval_minutes=module.interval_minutes,
        missing=module.missing,
    ).eval().requires_grad_(False)


def example_inputs(module: RawUnitsForecaster, batch: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Plausible raw inputs (positive readings, a few missing: ``NaN``, missing under every convention)
    and 5-minute timestamps."""
    gen = torch.Generator().manual_seed(seed)
    values = module.mean + module.std * torch.randn(batch, module.in_steps, module.num_nodes, generator=gen)
    values = values.abs() + 1.0
    values[torch.rand(values.shape, generator=gen) < 0.05] = float("nan")
    base = 1_700_000_000 + torch.randint(0, 7 * 1440, (batch, 1), generator=gen) * 60
    steps = torch.arange(module.in_steps, dtype=torch.int64) * module.interval_minutes * 60
    return values, base + steps


# --------------------------------------------------------------------------- writing


def export_student(
    ckpt_path: str | Path,
    out_path: str | Path,
    *,
    format: str = "torchscript",
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
        out_path: the file to write (written to a temporary file and moved into place).
        format: ``"torchscript"`` (default), ``"torch.export"`` or ``"onnx"``.
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
            for int8 and ONNX exports, off otherwise).
        dataset, data_dir: the series for the accuracy check, as for ``stgkd evaluate`` (default: the one
            the checkpoint names).
        latency_iters: timed calls per latency figure (default: 30).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: unreadable/wrong checkpoint, or a model that does not export faithfully.
        ConfigError: an unknown format or quantisation, int8 with another format or on CUDA, or ONNX asked
            for without the ``onnx`` package.
    """
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}: choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"quantize={quantize!r}: choose one of {', '.join(QUANTIZE)} (or None for fp32)")
    dev = torch.device(device)
    if quantize and (format != "torchscript" or dev.type != "cpu"):
        raise ConfigError(
            f"quantize={quantize!r} needs format='torchscript' and device='cpu' (got {format!r} on {dev.type}): "
            "torch.ao's dynamic int8 kernels run on the CPU and are exported through TorchScript"
        )
    ckpt_path, out_path = Path(ckpt_path), Path(out_path)
    payload = read_checkpoint(ckpt_path)
    module = build_forecaster_module(payload, where=str(ckpt_path)).to(dev)
    metadata = metadata_from_payload(payload, str(ckpt_path))
    metadata["export_format"] = format
    metadata["exported_on"] = dev.type
    metadata["precision"] = quantize or "fp32"
    target = module
    if quantize:
        student, metadata["quantized_layers"] = quantize_int8(module.student, int8_layers)
        target = _rewrap(module, student)
    backend = backend_of("onnx" if format == "onnx" else format, metadata)
    metadata["backend"] = backend
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.tmp{out_path.suffix}")
    examples = [tuple(t.to(dev) for t in example_inputs(module, b, seed=b)) for b in (1, 3)]
    with torch.no_grad():
        expected = [target(*c) for c in examples]
    try:
        onnx_bytes = None
        if format == "torchscript":
            program = _to_torchscript(target, dev, str(ckpt_path))
            run = program
        elif format == "torch.export":
            program = _to_torch_export(target, dev, str(ckpt_path))
            run = program.module()
        else:
            onnx_bytes = _to_onnx(target, examples[1], str(ckpt_path))
            run = _onnx_program_or_none(onnx_bytes)
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
            metadata["deployment_checks"] = deployment_checks(
                payload, module, run, backend, onnx_bytes=onnx_bytes, dataset=dataset, data_dir=data_dir,
                latency_iters=latency_iters, where=str(ckpt_path),
            )
        meta_json = json.dumps(metadata)
        if format == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.jit.save(program, str(tmp), _extra_files={METADATA_FILE: meta_json})
        elif format == "torch.export":
            buf = io.BytesIO()  # a buffer: torch.export.save insists on a .pt2 name for paths
            torch.export.save(program, buf, extra_files={METADATA_FILE: meta_json})
            tmp.write_bytes(buf.getvalue())
        else:
            _write_onnx(onnx_bytes, tmp, meta_json)
        tmp.replace(out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def _onnx_program_or_none(onnx_bytes: bytes) -> "OnnxProgram | None":
    try:
        return OnnxProgram(onnx_bytes)
    except ConfigError:  # onnxruntime not installed: the file is written unchecked (metadata says so)
        return None


def deployment_checks(
    payload: dict[str, Any],
    fp32: RawUnitsForecaster,
    program: Any,
    backend: str,
    *,
    onnx_bytes: bytes | None = None,
    dataset: Any = None,
    data_dir: str | Path | None = None,
    batches: Sequence[int] = CHECK_BATCHES,
    threads: int = 1,
    latency_iters: int = 30,
    latency_warmup: int = 5,
    where: str = "checkpoint",
) -> dict[str, Any]:
    """What an exported program loses and gains against the fp32 TorchScript program, on the CPU.

    * ``accuracy``: masked MAE/RMSE/MAPE (15/30/60 min and the horizon average) of both programs on the
      checkpoint's test split, fed raw readings and timestamps as in deployment
      (:func:`stgkd.engine.evaluate.evaluate_program`), and the relative MAE change in percent; or
      ``{"made": False, "reason": ...}`` when the data cannot be rebuilt (``dataset``/``data_dir`` as for
      ``stgkd evaluate``) or the program cannot run here.
    * ``latency``: both programs timed end to end with :func:`stgkd.latency.measure` (through
      :class:`~stgkd.latency.RawUnitsAdapter`) on ``threads`` CPU threads at each batch size, alternating
      programs; median/p90/p99 ms, and the speed-up (fp32 median / this program's median). The load
      average before and after and ``busy`` (1-minute load above the core count) say whether other work
      shared the CPU.

    Args:
        payload: the validated checkpoint.
        fp32: the eager fp32 wrapper of the checkpoint's student (on the CPU).
        program: the exported program (``None``: an ONNX file without onnxruntime, nothing is measured).
        backend: the program's :func:`backend_of` name.
        onnx_bytes: the ONNX model, for a session pinned to ``threads`` threads.
    """
    if program is None:
        reason = "onnxruntime is not installed (pip install 'stgkd[deploy]')"
        return {"backend": backend, "accuracy": {"made": False, "reason": reason},
                "latency": {"made": False, "reason": reason}}
    if fp32.adjacency.device.type != "cpu":
        reason = "the file was exported on CUDA; the CPU checks need device='cpu'"
        return {"backend": backend, "accuracy": {"made": False, "reason": reason},
                "latency": {"made": False, "reason": reason}}
    reference = program if backend == "torchscript-fp32" else _to_torchscript(fp32, torch.device("cpu"), where)
    programs = {"torchscript-fp32": reference, backend: program}
    return {
        "backend": backend,
        "reference": "torchscript-fp32",
        "accuracy": _accuracy_check(payload, programs, backend, dataset=dataset, data_dir=data_dir),
        "latency": _latency_check(
            fp32, {**programs, backend: OnnxProgram(onnx_bytes, threads=threads) if onnx_bytes else program},
            backend, batches=batches, threads=threads, iters=latency_iters, warmup=latency_warmup,
        ),
    }


def _accuracy_check(payload: dict[str, Any], programs: dict[str, Any], backend: str, *, dataset: Any,
                    data_dir: str | Path | None) -> dict[str, Any]:
    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.engine.evaluate import evaluate_program
    from stgkd.errors import StgkdError

    try:
        prepared = prepare_from_meta(payload["data"], dataset=dataset, data_dir=data_dir)
    except (StgkdError, OSError, KeyError) as exc:
        return {"made": False, "reason": f"the test split could not be rebuilt: {exc}"}
    metrics = {}
    for name, program in programs.items():
        result = evaluate_program(program, prepared, split="test")
        result.pop("per_step")
        metrics[name] = result
    ref, got = metrics["torchscript-fp32"], metrics[backend]
    change = {h: 100.0 * (got[h]["mae"] - ref[h]["mae"]) / ref[h]["mae"] if ref[h]["mae"] else None for h in ref}
    return {"made": True, "split": "test", "dataset": str(prepared.data.name), "windows": len(prepared.test),
            "metrics": metrics, "mae_change_pct": change}


def _latency_check(fp32: RawUnitsForecaster, programs: dict[str, Any], backend: str, *, batches: Sequence[int],
                   threads: int, iters: int, warmup: int) -> dict[str, Any]:
    from stgkd.latency import RawUnitsAdapter, cpu_threads, device_name, load_average, measure

    keep = ("median_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput")
    before = load_average()
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in programs}
    with cpu_threads(threads):
        cpu = device_name("cpu")
        for batch in batches:
            for name, program in programs.items():
                r = measure(RawUnitsAdapter(program, fp32.in_steps, fp32.interval_minutes), batch_size=int(batch),
                            num_nodes=fp32.num_nodes, in_steps=fp32.in_steps, in_channels=1, device="cpu",
                            warmup=warmup, iters=iters, name=name)
                results[name][str(batch)] = {k: getattr(r, k) for k in keep}
    after = load_average()
    cores = os.cpu_count() or 1
    ref, got = results["torchscript-fp32"], results[backend]
    return {
        "made": True,
        "threads": threads,
        "cpu": cpu,
        "cores": cores,
        "torch_version": torch.__version__,
        "warmup": warmup,
        "iters": iters,
        "load_average": {"before": before, "after": after},
        "busy": bool(before and max(before[0], (after or before)[0]) > cores),
        "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "results": results,
        "speedup": {b: ref[b]["median_ms"] / got[b]["median_ms"] for b in ref},
    }


def _to_torchscript(module: RawUnitsForecaster, dev: torch.device, where: str) -> torch.jit.ScriptModule:
    student = module.student
    gen = torch.Generator().manual_seed(1)
    shape = (module.in_steps, module.num_nodes, module.in_channels)
    ex = torch.randn(2, *shape, generator=gen).to(dev)
    others = [(torch.randn(b, *shape, generator=gen).to(dev),) for b in (1, 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(student, (ex,), check_inputs=others, check_tolerance=1e-4)
        except Exception as exc:  # tracing failures surface as many types
            raise CheckpointError(
                f"{where}: the student ({type(student).__name__}) cannot be traced at varying batch sizes: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        wrapper = _rewrap(module, traced).to(dev)
        try:
            return torch.jit.script(wrapper)
        except Exception as exc:
            raise CheckpointError(f"{where}: scripting the raw-units wrapper failed: {exc}") from None


def _to_torch_export(module: RawUnitsForecaster, dev: torch.device, where: str):
    values, stamps = (t.to(dev) for t in example_inputs(module, 2, seed=2))
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        return torch.export.export(
            module,
            (values, stamps),
            dynamic_shapes={"values": {0: batch}, "timestamps": {0: batch}},
        )
    except Exception as exc:
        raise CheckpointError(
            f"{where}: torch.export failed for {type(module.student).__name__}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


def _to_onnx(module: RawUnitsForecaster, inputs: tuple[Tensor, Tensor], where: str) -> bytes:
    """The ONNX model of ``module`` (without metadata), exported on the CPU."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError:
        raise ConfigError("format='onnx' needs the onnx package (pip install onnx, or the 'deploy' extra: "
                          "pip install 'stgkd[deploy]')") from None
    module = module.cpu()
    inputs = tuple(t.cpu() for t in inputs)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                inputs,
                buf,
                input_names=["values", "timestamps"],
                output_names=["forecast"],
                dynamic_axes={"values": {0: "batch"}, "timestamps": {0: "batch"}, "forecast": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
    except Exception as exc:
        raise CheckpointError(f"{where}: ONNX export failed: {type(exc).__name__}: {exc}") from None
    return buf.getvalue()


def _write_onnx(onnx_bytes: bytes, path: Path, meta_json: str) -> None:
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "stgkd_metadata", meta_json
    onnx.save(proto, str(path))


# --------------------------------------------------------------------------- loading


def load_exported(path: str | Path, *, device: str | torch.device = "cpu",
                  threads: int | None = None) -> tuple[Any, dict[str, Any], str]:
    """Load an exported student: ``(callable module, metadata, kind)``.

    TorchScript and torch.export files need nothing from stgkd beyond this function (the file holds the
    code); an ONNX file runs through onnxruntime (:class:`OnnxProgram`, CPU only, ``threads`` intra-op
    threads). An int8 TorchScript file runs on the CPU only.

    Raises:
        CheckpointError: not an exported student, corrupt, or without stgkd metadata.
        ConfigError: an ONNX file without onnxruntime, or an int8 or ONNX file asked for on CUDA.
    """
    path = Path(path)
    kind = file_kind(path)
    dev = torch.device(device)
    extra = {METADATA_FILE: ""}
    if kind == "onnx" and dev.type != "cpu":
        raise ConfigError(f"{path}: ONNX exports run on the CPU (onnxruntime); use device='cpu', or the "
                          "TorchScript export on CUDA")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if kind == "torchscript":
                if dev.type != "cpu" and _torchscript_precision(path) != "fp32":
                    raise ConfigError(
                        f"{path}: an {_torchscript_precision(path)} export runs on the CPU only (torch.ao's "
                        "quantised kernels); load it with device='cpu', or export without --quantize for CUDA"
                    )
                module = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
                module.eval()
            elif kind == "onnx":
                module = OnnxProgram(path, threads=threads)
                extra[METADATA_FILE] = module.metadata_props.get("stgkd_metadata", "")
            elif kind == "torch.export":
                with open(path, "rb") as fh:
                    program = torch.export.load(io.BytesIO(fh.read()), extra_files=extra)
                module = program.module().to(torch.device(device))
            else:
                raise CheckpointError(
                    f"{path}: a {kind} file; expected an exported student (stgkd export) in torchscript, "
                    "torch.export or onnx format"
                )
    except (CheckpointError, ConfigError):
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable exported student ({type(exc).__name__}: {exc})") from None
    try:
        metadata = json.loads(extra[METADATA_FILE] or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: its {METADATA_FILE} is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path}: no stgkd metadata (was it written by `stgkd export`?)")
    return module, metadata, kind


def _torchscript_precision(path: Path) -> str:
    """The ``precision`` recorded in a TorchScript export's metadata, read from the archive without
    loading the program (``"fp32"`` when absent or unreadable: loading then reports the problem)."""
    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(f"/extra/{METADATA_FILE}")), None)
            meta = json.loads(zf.read(name)) if name else {}
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError):
        return "fp32"
    return str(meta.get("precision", "fp32")) if isinstance(meta, dict) else "fp32"
