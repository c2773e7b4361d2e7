"""Export a trained student as one self-contained file for deployment.

:func:`export_student` reads a checkpoint (``torch.load(weights_only=True)``), rebuilds the student,
wraps it in :class:`RawUnitsForecaster` -- raw readings and timestamps in, raw forecasts out -- and
writes a single file that loads with nothing but ``torch``:

* ``format="torch.export"`` (the default on the CPU): ``torch.export.export`` with a dynamic batch
  dimension, saved with ``torch.export.save(..., extra_files={"metadata.json": ...})``; its metadata
  records ``"cpu_program": "torch.compile"``, and :meth:`stgkd.Forecaster.load` compiles it on the CPU of
  the machine that loads it (AOTInductor, kept in a private cache: :mod:`~stgkd.export.program_cache`; needs
  a C++ compiler, else it runs uncompiled and warns): of the CPU programs within 1e-4 of the eager student,
  the fastest at batch 1, and nothing read from the file runs as code. The
  file holds no pickled code; :func:`~stgkd.export.torch_export.check_archive_pickles` checks that before
  ``torch.export.load`` reads it. Loaded for another device, the program is moved with torch's
  ``move_to_device_pass``.
* ``format="torchscript"`` (the default for ``quantize="int8"`` and for ``device="cuda"``): the student is
  traced (``torch.jit.trace``, checked at three batch sizes), the wrapper is scripted around it and saved
  with ``torch.jit.save``; the metadata is the ``metadata.json`` entry of ``_extra_files``. Load with
  ``torch.jit.load(path, _extra_files=...)`` (also from C++ libtorch) or :meth:`stgkd.Forecaster.load`.
* ``format="torchscript-frozen"``: that TorchScript program frozen (``torch.jit.freeze``) and optimised
  for inference (``torch.jit.optimize_for_inference``), for the CPU; the same archive, loaded the same way.
* ``format="aoti"``: the torch.export program compiled ahead of time by inductor (AOTInductor) into a
  shared library for this machine's CPU, in a PT2 archive (``.pt2``) with the metadata as its
  ``extra/metadata.json``; writing needs a C++ compiler, loading needs the same torch and
  ``trust_native_code=True`` (a library runs native code when loaded).
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
model config, training dataset, metrics. TorchScript is deprecated upstream in favour of torch.export; it
stays for int8 (torch.ao's dynamic int8 kernels export through it only), for CUDA exports (the program
whose CUDA-graph replay is measured) and for C++ libtorch.

The package holds one module per format (:mod:`~stgkd.export.torchscript`,
:mod:`~stgkd.export.torch_export`, :mod:`~stgkd.export.aoti`, :mod:`~stgkd.export.onnx`,
:mod:`~stgkd.export.int8`), the CPU programs of a student with their faithfulness check
(:mod:`~stgkd.export.programs`: every format above plus ``torch.compile``, each within 1e-4 of eager), the wrapper
(:mod:`~stgkd.export.wrapper`), the metadata (:mod:`~stgkd.export.metadata`), the deployment checks
(:mod:`~stgkd.export.checks`), writing (:mod:`~stgkd.export.write`) and loading (:mod:`~stgkd.export.load`).
"""

from __future__ import annotations

from stgkd.export.checks import CHECK_BATCHES, deployment_checks
from stgkd.export.int8 import INT8_LAYERS, QUANTIZE, quantize_int8
from stgkd.export.load import load_exported
from stgkd.export.metadata import EXPORT_FORMAT, METADATA_FILE, backend_of, metadata_from_payload, read_checkpoint
from stgkd.export.onnx import OnnxProgram
from stgkd.export.wrapper import FEATURE_CODES, RawUnitsForecaster, build_forecaster_module, example_inputs
from stgkd.export.write import FORMATS, export_student
from stgkd.formats import file_kind

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
    "deployment_checks",
    "example_inputs",
    "CHECK_BATCHES",
    "EXPORT_FORMAT",
    "FEATURE_CODES",
    "INT8_LAYERS",
    "METADATA_FILE",
]
