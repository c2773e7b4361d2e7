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


def test_cpu_profile_counts_ops_skips_cuda_graph_and_compiles_faithfully(tmp_path):
    argv = ["--model", "gcn-gru", "--width", "4", "--batch", "2", "--nodes", "6", "--device", "cpu",
            "--warmup", "1", "--iters", "3", "--threads", "1", "--top", "3", "--trace", "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("profile-cpu-*-gcn-gru-w4-b2.json")
    report = json.loads(path.read_text())
    assert report["conditions"]["device_kind"] == "cpu" and report["conditions"]["nodes"] == 6
    eager, graph, compiled = report["modes"]
    assert graph == {"mode": "cuda-graph", "skipped": "needs a CUDA device"}  # never a CPU figure labelled CUDA
    # torch.compile with inductor's CPU backend (its default mode), checked against eager on the same input
    assert compiled["mode"] == "compile" and compiled["compile_mode"] == "default" and compiled["compile_s"] > 0
    assert compiled["faithfulness"]["within_atol"] and compiled["faithfulness"]["max_abs_diff"] <= 1e-4
    assert compiled["faithfulness"]["atol"] == 1e-4 and compiled["wall_ms_per_forward"] > 0
    assert report["faithfulness"] == {"compile": compiled["faithfulness"]}  # eager is the reference
    assert "faithfulness" not in eager
    assert eager["mode"] == "eager" and eager["kernels_per_forward"] == 0 and eager["idle_share"] is None
    assert eager["wall_ms_per_forward"] > 0 and eager["host_ops_per_forward"] > 0
    ops = [o["op"] for o in eager["top_host_ops"]]
    assert len(ops) == 3 and all(op.startswith("aten::") for op in ops)
    times = [o["self_host_us_per_forward"] for o in eager["top_host_ops"]]
    assert times == sorted(times, reverse=True)
    assert path.with_name(path.stem + "-eager.trace.json").stat().st_size > 0
    md = path.with_suffix(".md").read_text()
    assert "| eager |" in md and "| cuda-graph | skipped: needs a CUDA device" in md
    assert "(within) |" in md.split("| compile |")[1].splitlines()[0]


def test_a_failing_mode_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    import benchmarks.profile as profile

    def refuse(model, *, cuda):
        raise RuntimeError("inductor: no C++ compiler")

    monkeypatch.setattr(profile, "compiled", refuse)
    argv = ["--model", "gru", "--width", "4", "--batch", "1", "3", "--nodes", "5", "--device", "cpu", "--modes",
            "compile", "eager", "--warmup", "1", "--iters", "1", "--threads", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    for batch in (1, 3):  # one report per batch
        (path,) = tmp_path.glob(f"profile-cpu-*-gru-w4-b{batch}.json")
        report = json.loads(path.read_text())
        compiled, eager = report["modes"]
        assert compiled == {"mode": "compile", "error": "RuntimeError: inductor: no C++ compiler"}
        assert eager["wall_ms_per_forward"] > 0 and report["conditions"]["batch"] == batch
        assert "| compile | failed: RuntimeError: inductor: no C++ compiler" in path.with_suffix(".md").read_text()


def test_faithfulness_flags_a_difference_over_the_tolerance():
    from benchmarks.profile import faithfulness

    ref = torch.zeros(2, 3)
    assert faithfulness(ref + 5e-5, ref) == {"max_abs_diff": pytest.approx(5e-5), "atol": 1e-4, "within_atol": True}
    assert faithfulness(ref.index_fill(1, torch.tensor([2]), -3e-4), ref)["within_atol"] is False


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
    eager, graph, compiled = json.loads(path.read_text())["modes"]
    assert eager["kernels_per_forward"] >= 3 and eager["device_busy_us_per_forward"] > 0
    assert graph["launch_calls_per_forward"].get("cudaGraphLaunch") == 1
    assert graph["kernels_per_forward"] >= 3  # the same kernels, replayed
    assert graph["faithfulness"]["within_atol"]
    # inductor's Triton kernels replayed in a CUDA graph (reduce-overhead), as faithful as the plain graph
    assert compiled["compile_mode"] == "reduce-overhead" and compiled["faithfulness"]["within_atol"]
    assert compiled["kernels_per_forward"] >= 1
