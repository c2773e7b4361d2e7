"""Precision by name: which models are cast and which autocast, what actually runs in a low-precision
latency measurement, the same work per call in every mode, and a failed CUDA-graph capture remembered."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stgkd import latency, precision
from stgkd.latency import measure
from stgkd.nn import build
from stgkd.precision import inference_precision, needs_grad_scaler

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def _gru_student(n: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return build("gru", num_nodes=n, graph=torch.eye(n), hidden=8)


def _teacher(n: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return build("graph-wavenet", num_nodes=n, graph=torch.eye(n), residual_channels=4, dilation_channels=4,
                 skip_channels=8, end_channels=8, blocks=1, layers=2)


def _record_recurrent_dtypes(model: nn.Module, seen: list) -> None:
    for m in model.modules():
        if isinstance(m, precision.RECURRENT):
            m.register_forward_hook(lambda mod, args, out: seen.append((args[0].dtype, out[0].dtype)))


def test_recurrent_models_are_cast_and_the_others_autocast():
    gru, teacher = _gru_student(), _teacher()
    assert precision.has_recurrent(gru) and not precision.has_recurrent(teacher)
    assert inference_precision(gru, "bf16").method == "cast"
    assert inference_precision(gru, "fp16").method == "cast"
    assert inference_precision(teacher, "bf16").method == "autocast"
    assert inference_precision(gru, "fp32").method == inference_precision(teacher, "fp32").method == "fp32"
    with pytest.raises(ValueError, match="dtype='int8'"):
        inference_precision(gru, "int8")


def test_a_bf16_measurement_of_a_gru_student_computes_in_bf16_and_leaves_the_model_alone():
    model = _gru_student()
    seen: list = []
    _record_recurrent_dtypes(model, seen)  # the hooks travel with the cast copy
    r = measure(model, batch_size=2, device="cpu", dtype="bf16", warmup=1, iters=2)
    assert r.dtype == "bf16" and r.precision == "cast"
    assert len(seen) == 3 and set(seen) == {(torch.bfloat16, torch.bfloat16)}  # the GRU's input and output
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the caller's weights were not cast
    fp32: list = []
    _record_recurrent_dtypes(model, fp32)
    assert measure(model, batch_size=2, device="cpu", dtype="fp32", warmup=1, iters=1).precision == "fp32"
    assert set(fp32) == {(torch.float32, torch.float32)}


def test_every_eager_call_enters_its_own_autocast_without_the_weight_cache(monkeypatch):
    """Eager and CUDA-graph rows measure the same work: no call reuses weights an earlier call cast."""
    entered = []
    real = precision.autocast

    def recording(device, dtype, *, cache_enabled=True):
        entered.append(cache_enabled)
        return real(device, dtype, cache_enabled=cache_enabled)

    monkeypatch.setattr(precision, "autocast", recording)
    r = measure(_teacher(), batch_size=1, device="cpu", dtype="bf16", warmup=2, iters=3)
    assert r.precision == "autocast"
    assert entered == [False] * 5  # 2 warm-up + 3 timed calls, each in a fresh context, none caching


def test_grad_scaler_is_needed_only_where_fp16_runs():
    gru, teacher = _gru_student(), _teacher()
    cuda_dev, cpu_dev = torch.device("cuda"), torch.device("cpu")
    assert needs_grad_scaler(gru, cuda_dev, True)  # cuDNN's GRU runs fp16 under autocast
    assert not needs_grad_scaler(gru, cuda_dev, False)  # no amp, no fp16
    assert not needs_grad_scaler(teacher, cuda_dev, True)  # bf16 autocast only: no scaling needed
    assert not needs_grad_scaler(gru, cpu_dev, True)  # amp is off on the CPU
    assert not precision.grad_scaler(gru, cpu_dev, True).is_enabled()


def test_a_failed_capture_is_remembered_and_the_allocator_left_alone(monkeypatch):
    monkeypatch.setattr(latency, "_FAILED_CAPTURE", [])
    assert latency.failed_capture() is None
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    assert latency.release_cached_memory() and emptied == [1]
    latency._FAILED_CAPTURE.append("pgt-tgcn: RuntimeError: operation not permitted when stream is capturing")
    assert not latency.release_cached_memory() and emptied == [1]  # never called after a failed capture

    def broken():
        raise RuntimeError("INTERNAL ASSERT FAILED")

    monkeypatch.setattr(latency, "_FAILED_CAPTURE", [])
    monkeypatch.setattr(torch.cuda, "empty_cache", broken)
    assert latency.release_cached_memory() is False  # an allocator error is not raised


@cuda
def test_a_model_that_cannot_be_captured_fails_once_and_blocks_later_captures(monkeypatch):
    class HostSync(nn.Module):
        num_nodes, in_steps, in_channels = 3, 4, 2

        def forward(self, x):
            """Shapes: x (B, T, N, C) -> (B, N); ``.item()`` synchronises with the host: not capturable."""
            return x.sum(dim=(1, 3)) * float(x.abs().max().item())

    monkeypatch.setattr(latency, "_FAILED_CAPTURE", [])
    with pytest.raises(latency.CaptureError, match="capture failed"):
        measure(HostSync(), batch_size=1, device="cuda", mode="cuda-graph", warmup=1, iters=2, name="host-sync")
    assert latency.failed_capture().startswith("host-sync: ")
    with pytest.raises(latency.CaptureError, match="earlier CUDA-graph capture"):
        measure(_gru_student(), batch_size=1, device="cuda", mode="cuda-graph", warmup=1, iters=2)
    assert measure(_gru_student(), batch_size=1, device="cuda", warmup=1, iters=2).median_ms > 0  # eager goes on
    assert latency.release_cached_memory() is False
