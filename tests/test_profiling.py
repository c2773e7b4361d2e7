"""``stgkd.profiling``: a ``torch.profiler`` summary of one model's forward, per mode."""

from __future__ import annotations

import pytest
import torch

from stgkd.latency import random_graph
from stgkd.nn import build
from stgkd.profiling import faithfulness, profile_model


@pytest.fixture
def model_and_input():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build("gcn-gru", num_nodes=6, graph=random_graph(6), hidden=4).eval()
    x = torch.randn(2, model.in_steps, 6, model.in_channels)
    yield model, x
    torch.set_num_threads(before)


def test_eager_profile_counts_host_ops_slowest_first_and_writes_a_trace(model_and_input, tmp_path):
    model, x = model_and_input
    eager = profile_model(model, x, mode="eager", warmup=1, iters=3, top=3, trace=tmp_path / "t.json")
    assert eager["mode"] == "eager" and eager["iters"] == 3 and "faithfulness" not in eager
    assert eager["kernels_per_forward"] == 0 and eager["idle_share"] is None  # no device on the CPU
    assert eager["wall_ms_per_forward"] > 0 and eager["host_ops_per_forward"] > 0
    ops = [o["op"] for o in eager["top_host_ops"]]
    assert len(ops) == 3 and all(op.startswith("aten::") for op in ops)
    times = [o["self_host_us_per_forward"] for o in eager["top_host_ops"]]
    assert times == sorted(times, reverse=True)
    assert (tmp_path / "t.json").stat().st_size > 0


def test_compiled_forward_is_checked_against_eager(model_and_input):
    model, x = model_and_input
    with torch.inference_mode():
        reference = model(x).clone()
    # torch.compile with inductor's CPU backend (its default mode), checked against eager on the same input
    out = profile_model(model, x, mode="compile", warmup=1, iters=2, top=3, reference=reference)
    assert out["compile_mode"] == "default" and out["compile_s"] > 0 and out["wall_ms_per_forward"] > 0
    assert out["faithfulness"]["within_atol"] and out["faithfulness"]["max_abs_diff"] <= 1e-4


def test_a_cuda_graph_needs_cuda_and_an_unknown_mode_is_refused(model_and_input):
    model, x = model_and_input
    with pytest.raises(ValueError, match="needs a CUDA device"):
        profile_model(model, x, mode="cuda-graph", warmup=1, iters=1)
    with pytest.raises(ValueError, match="unknown mode 'jit'"):
        profile_model(model, x, mode="jit", warmup=1, iters=1)


def test_faithfulness_flags_a_difference_over_the_tolerance():
    ref = torch.zeros(2, 3)
    assert faithfulness(ref + 5e-5, ref) == {"max_abs_diff": pytest.approx(5e-5), "atol": 1e-4, "within_atol": True}
    assert faithfulness(ref.index_fill(1, torch.tensor([2]), -3e-4), ref)["within_atol"] is False


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_profile_counts_kernels_and_one_graph_launch():
    torch.manual_seed(0)
    model = build("gcn-gru", num_nodes=6, graph=random_graph(6), hidden=8).cuda().eval()
    x = torch.randn(1, model.in_steps, 6, model.in_channels, device="cuda")
    with torch.inference_mode():
        reference = model(x).clone()
    eager, graph, comp = (profile_model(model, x, mode=m, warmup=2, iters=5, reference=reference)
                          for m in ("eager", "cuda-graph", "compile"))
    assert eager["kernels_per_forward"] >= 3 and eager["device_busy_us_per_forward"] > 0
    assert graph["launch_calls_per_forward"].get("cudaGraphLaunch") == 1
    assert graph["kernels_per_forward"] >= 3  # the same kernels, replayed
    assert graph["faithfulness"]["within_atol"]
    # inductor's Triton kernels replayed in a CUDA graph (reduce-overhead), as faithful as the plain graph
    assert comp["compile_mode"] == "reduce-overhead" and comp["faithfulness"]["within_atol"]
    assert comp["kernels_per_forward"] >= 1
