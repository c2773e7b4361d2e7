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
  metadata JSON is the ``stgkd_metadata`` entry of the model's ``metadata_props``.

What goes in the file: the student alone (distillation adapters live under ``"adapters"`` in the
checkpoint and are not part of the student), the scaler (mean, std) and the calendar features baked into
the wrapper, the raw adjacency as the buffer ``adjacency`` (the student keeps its own normalised supports as
buffers), and metadata: sensor ids in column order, interval, input steps, horizon, input features,
model config, training dataset, metrics. TorchScript is deprecated upstream in favour of torch.export,
but it is the format whose files move between CPU and CUDA with ``map_location`` and that every
PyTorch runtime (including C++ libtorch) loads, hence the default.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, List

import torch
from torch import Tensor, nn

from stgkd.errors import CheckpointError, ConfigError

FORMATS = ("torchscript", "torch.export", "onnx")
METADATA_FILE = "metadata.json"
EXPORT_FORMAT = "stgkd-export/1"
#: calendar/value features the exported wrapper can build, by name -> code used inside the wrapper
FEATURE_CODES = {"value": 0, "time_of_day": 1, "day_of_week": 2}

__all__ = [
    "FORMATS",
    "RawUnitsForecaster",
    "export_student",
    "read_checkpoint",
    "build_forecaster_module",
    "file_kind",
    "load_exported",
    "metadata_from_payload",
    "student_from_payload",
]


class RawUnitsForecaster(nn.Module):
    """A student with its data preparation baked in: raw readings in, raw forecasts out.

    Computes, in order: the missing mask (NaN or ``0``, the training convention), the z-scored value
    channel with missing readings set to ``0`` in scaled space (= the training mean), the calendar
    channels from the timestamps (``time_of_day`` = minutes since midnight / 1440, ``day_of_week`` =
    Monday-based weekday / 7, as :func:`stgkd.data.prepare` builds them), the student's forward, and the
    inverse z-score.

    Args:
        student: the trained model (eager or traced), ``(B, T_in, N, C)`` scaled -> ``(B, H, N)`` scaled.
        graph: ``(N, N)`` raw adjacency the student was trained with (kept as the buffer ``adjacency``).
        mean, std: the training scaler.
        input_features: names of the ``C`` input channels, in order; ``"value"`` first.
        num_nodes, in_steps, out_steps, interval_minutes: the student's shapes and the data interval.
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
    ) -> None:
        super().__init__()
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

    def forward(self, values: Tensor, timestamps: Tensor) -> Tensor:
        """Forecast ``H`` steps in raw units.

        Args:
            values: raw readings; ``NaN`` or ``0`` marks a missing reading.
            timestamps: int64 seconds since 1970-01-01 of each input step's *local wall-clock* time
                (a naive ``DatetimeIndex``'s ``asi8 // 10**9``); only its calendar features are used.

        Shapes:
            values: ``(B, T_in, N)``; timestamps: ``(B, T_in)``; output: ``(B, H, N)`` raw units.
        """
        missing = torch.isnan(values) | (values == 0)
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
    """Load and validate a checkpoint with ``torch.load(weights_only=True)`` (no code runs).

    Raises:
        CheckpointError: missing, corrupt, unsafe (pickled objects), or not format ``stgkd/1``, or lacking
            an entry export needs; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain containers ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, TypeError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != "stgkd/1":
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not an stgkd checkpoint (format {found!r}, expected 'stgkd/1')")
    for key in ("model", "state_dict", "data", "scaler", "graph"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks the {key!r} entry")
    data = payload["data"]
    for key in ("in_steps", "out_steps", "input_features", "sensor_ids", "interval_minutes"):
        if not isinstance(data, dict) or key not in data:
            raise CheckpointError(f"{path}: checkpoint's 'data' entry lacks {key!r}")
    return payload


def student_from_payload(payload: dict[str, Any], where: str) -> nn.Module:
    """Rebuild the checkpoint's model (registered name + config + weights) in eval mode."""
    import stgkd.nn  # noqa: F401  (registers the models)
    from stgkd.nn.registry import from_config

    try:
        model = from_config(payload["model"], payload["graph"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{where}: the checkpoint's model does not match its config/weights: {exc}") from None
    return model.eval()


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
        "scaler": {"mean": float(payload["scaler"]["mean"]), "std": float(payload["scaler"]["std"])},
        "model": payload["model"],
        "dataset": {
            "name": data.get("name"),
            "source": [str(s) for s in data.get("source", [])],
            "split": data.get("split"),
        },
        "metrics": _jsonable(payload.get("metrics", {})),
        "epoch": payload.get("epoch"),
        "distill": _jsonable(payload.get("distill")),
        "checkpoint": source,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def build_forecaster_module(payload: dict[str, Any], *, where: str = "checkpoint") -> RawUnitsForecaster:
    """The eager :class:`RawUnitsForecaster` for a validated checkpoint payload."""
    data = payload["data"]
    student = student_from_payload(payload, where)
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
    ).eval().requires_grad_(False)


def example_inputs(module: RawUnitsForecaster, batch: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Plausible raw inputs (positive readings, a few missing) and 5-minute timestamps."""
    gen = torch.Generator().manual_seed(seed)
    values = module.mean + module.std * torch.randn(batch, module.in_steps, module.num_nodes, generator=gen)
    values = values.abs() + 1.0
    values[torch.rand(values.shape, generator=gen) < 0.05] = 0.0
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
) -> Path:
    """Write the checkpoint's student as one self-contained file (see the module docstring).

    Args:
        ckpt_path: an ``stgkd/1`` checkpoint (teacher checkpoints export too; the role is recorded).
        out_path: the file to write (written to a temporary file and moved into place).
        format: ``"torchscript"`` (default), ``"torch.export"`` or ``"onnx"``.
        device: device the student is traced/exported on (``"cpu"`` files load on CUDA too unless the
            model creates tensors on a fixed device; export on ``"cuda"`` for CUDA-only deployment).
        atol: the exported program's forecasts must match the eager wrapper's within ``atol``
            (relative to the scaler's std) on example inputs at batch sizes 1 and 3, or export fails.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: unreadable/wrong checkpoint, or a model that does not export faithfully.
        ConfigError: an unknown format, or ONNX asked for without the ``onnx`` package.
    """
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}: choose one of {', '.join(FORMATS)}")
    ckpt_path, out_path = Path(ckpt_path), Path(out_path)
    payload = read_checkpoint(ckpt_path)
    dev = torch.device(device)
    module = build_forecaster_module(payload, where=str(ckpt_path)).to(dev)
    metadata = metadata_from_payload(payload, str(ckpt_path))
    metadata["export_format"] = format
    metadata["exported_on"] = dev.type
    meta_json = json.dumps(metadata)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.tmp{out_path.suffix}")
    checks = [tuple(t.to(dev) for t in example_inputs(module, b, seed=b)) for b in (1, 3)]
    with torch.no_grad():
        expected = [module(*c) for c in checks]
    try:
        if format == "torchscript":
            program = _to_torchscript(module, dev, str(ckpt_path))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.jit.save(program, str(tmp), _extra_files={METADATA_FILE: meta_json})
            run = program
        elif format == "torch.export":
            program = _to_torch_export(module, dev, str(ckpt_path))
            buf = io.BytesIO()  # a buffer: torch.export.save insists on a .pt2 name for paths
            torch.export.save(program, buf, extra_files={METADATA_FILE: meta_json})
            tmp.write_bytes(buf.getvalue())
            run = program.module()
        else:
            _to_onnx(module, checks[1], tmp, meta_json, str(ckpt_path))
            run = None
        if run is not None:
            with torch.no_grad():
                for c, want in zip(checks, expected):
                    got = run(*c)
                    err = float((got - want).abs().max())
                    if err > atol * module.std:
                        raise CheckpointError(
                            f"{ckpt_path}: the {format} program's forecasts differ from the model's by "
                            f"{err:.3g} at batch {c[0].shape[0]}; the model does not export faithfully"
                        )
        tmp.replace(out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


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
        wrapper = RawUnitsForecaster(
            traced,
            graph=module.adjacency,
            mean=module.mean,
            std=module.std,
            input_features=[name for code in module.feature_codes for name, c in FEATURE_CODES.items() if c == code],
            num_nodes=module.num_nodes,
            in_steps=module.in_steps,
            out_steps=module.out_steps,
            interval_minutes=module.interval_minutes,
        ).to(dev).eval().requires_grad_(False)
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


def _to_onnx(module: RawUnitsForecaster, inputs: tuple[Tensor, Tensor], tmp: Path, meta_json: str, where: str) -> None:
    try:
        import onnx
    except ImportError:
        raise ConfigError("format='onnx' needs the onnx package (pip install onnx onnxscript)") from None
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
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = "stgkd_metadata", meta_json
    onnx.save(proto, str(tmp))


# --------------------------------------------------------------------------- loading


def load_exported(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any], str]:
    """Load an exported student (TorchScript or torch.export): ``(callable module, metadata, kind)``.

    Needs nothing from stgkd beyond this function (the file holds the code).

    Raises:
        CheckpointError: not an exported student, corrupt, or without stgkd metadata.
    """
    path = Path(path)
    kind = file_kind(path)
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if kind == "torchscript":
                module = torch.jit.load(str(path), map_location=torch.device(device), _extra_files=extra)
                module.eval()
            elif kind == "torch.export":
                with open(path, "rb") as fh:
                    program = torch.export.load(io.BytesIO(fh.read()), extra_files=extra)
                module = program.module().to(torch.device(device))
            else:
                raise CheckpointError(
                    f"{path}: a {kind} file; expected an exported student (stgkd export) in torchscript or "
                    "torch.export format"
                )
    except CheckpointError:
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
