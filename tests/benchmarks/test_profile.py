"""``python -m benchmarks.profile``: the profiler summary of one model's forward."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.profile import main


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_cpu_profile_counts_ops_and_skips_cuda_graph(tmp_path):
    argv = ["--model", "gcn-gru", "--width", "4", "--batch", "2", "--nodes", "6", "--device", "cpu",
            "--warmup", "1", "--iters", "3", "--threads", "1", "--top", "3", "--trace", "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("profile-cpu-*-gcn-gru-w4-b2.json")
    report = json.loads(path.read_text())
    assert report["conditions"]["device_kind"] == "cpu" and report["conditions"]["nodes"] == 6
    eager, graph = report["modes"]
    assert graph == {"mode": "cuda-graph", "skipped": "needs a CUDA device"}  # never a CPU figure labelled CUDA
    assert eager["mode"] == "eager" and eager["kernels_per_forward"] == 0 and eager["idle_share"] is None
    assert eager["wall_ms_per_forward"] > 0 and eager["host_ops_per_forward"] > 0
    ops = [o["op"] for o in eager["top_host_ops"]]
    assert len(ops) == 3 and all(op.startswith("aten::") for op in ops)
    times = [o["self_host_us_per_forward"] for o in eager["top_host_ops"]]
    assert times == sorted(times, reverse=True)
    assert path.with_name(path.stem + "-eager.trace.json").stat().st_size > 0
    md = path.with_suffix(".md").read_text()
    assert "| eager |" in md and "| cuda-graph | skipped: needs a CUDA device" in md


def test_teacher_ignores_width(tmp_path):
    argv = ["--model", "graph-wavenet", "--batch", "1", "--nodes", "5", "--device", "cpu", "--modes", "eager",
            "--warmup", "1", "--iters", "1", "--threads", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("profile-cpu-*-graph-wavenet-w32-b1.json")
    assert json.loads(path.read_text())["conditions"]["parameters"] > 100_000


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_profile_counts_kernels_and_one_graph_launch(tmp_path):
    argv = ["--model", "gcn-gru", "--width", "8", "--batch", "1", "--nodes", "6", "--device", "cuda",
            "--warmup", "2", "--iters", "5", "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("profile-cuda-*.json")
    eager, graph = json.loads(path.read_text())["modes"]
    assert eager["kernels_per_forward"] >= 3 and eager["device_busy_us_per_forward"] > 0
    assert graph["launch_calls_per_forward"].get("cudaGraphLaunch") == 1
    assert graph["kernels_per_forward"] >= 3  # the same kernels, replayed
