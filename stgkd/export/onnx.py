"""The ONNX format: ``torch.onnx.export`` with a dynamic batch axis, the metadata in the model's
``metadata_props``, and :class:`OnnxProgram` to run a file through onnxruntime."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stgkd.errors import CheckpointError, ConfigError
from stgkd.export.wrapper import RawUnitsForecaster

__all__ = ["ORT_OPTIMIZATION", "OnnxProgram", "onnx_program_or_none", "to_onnx", "write_onnx"]

#: onnxruntime graph optimisation levels, by name -> ``onnxruntime.GraphOptimizationLevel`` member
ORT_OPTIMIZATION = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
                    "disabled": "ORT_DISABLE_ALL"}


class OnnxProgram:
    """An ONNX export run by onnxruntime on the CPU, called like the TorchScript program.

    ``program(values, timestamps)`` takes and returns tensors (``(B, T_in, N)`` float32 raw readings and
    ``(B, T_in)`` int64 seconds -> ``(B, H, N)`` raw forecasts); an input the graph does not read (the
    timestamps of a model without calendar features) is not fed. One session may be called from several
    threads at once (onnxruntime's ``run`` is thread-safe).

    Args:
        model: the ``.onnx`` file or its bytes.
        threads: onnxruntime intra-op threads (default: None, onnxruntime's choice: all cores).
        optimization: the session's graph optimisation level, one of :data:`ORT_OPTIMIZATION`: ``"all"``
            (``ORT_ENABLE_ALL``: basic and extended fusions plus layout optimisations), ``"extended"``
            (``ORT_ENABLE_EXTENDED``: node fusions such as GELU/attention/MatMul+Add, no layout changes),
            ``"basic"`` or ``"disabled"`` (default: ``"all"``, onnxruntime's own default).

    Raises:
        ConfigError: onnxruntime is not installed, or an unknown ``optimization``.
    """

    def __init__(self, model: str | Path | bytes, *, threads: int | None = None, optimization: str = "all") -> None:
        if optimization not in ORT_OPTIMIZATION:
            raise ConfigError(f"optimization={optimization!r}: choose one of {', '.join(ORT_OPTIMIZATION)}")
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(
                "running an ONNX export needs onnxruntime (pip install onnxruntime, or the 'deploy' extra: "
                "pip install 'stgkd[deploy]'); the TorchScript export runs with torch alone"
            ) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_OPTIMIZATION[optimization])
        self.optimization = optimization
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


def onnx_program_or_none(onnx_bytes: bytes) -> "OnnxProgram | None":
    """An :class:`OnnxProgram` of ``onnx_bytes``, or ``None`` where onnxruntime is not installed."""
    try:
        return OnnxProgram(onnx_bytes)
    except ConfigError:  # onnxruntime not installed: the file is written unchecked (metadata says so)
        return None


def to_onnx(module: RawUnitsForecaster, inputs: tuple[Tensor, Tensor], where: str) -> bytes:
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


def write_onnx(onnx_bytes: bytes, path: Path, meta_json: str) -> None:
    """Write the ONNX model to ``path`` with ``meta_json`` as its ``stgkd_metadata`` property."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "stgkd_metadata", meta_json
    onnx.save(proto, str(path))
