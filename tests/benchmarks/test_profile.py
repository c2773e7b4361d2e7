"""``python -m benchmarks.profile``: one report per batch of :func:`stgkd.profiling.profile_model` in every mode."""

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


def test_cpu_report_skips_cuda_graph_and_renders_every_mode(tmp_path):
    argv = ["--model", "gcn-gru", "--width", "4", "--batch", "2", "--nodes", "6", "--device", "cpu", "--modes",
            "eager", "cuda-graph", "--warmup", "1", "--iters", "3", "--threads", "1", "--top", "3", "--trace",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("profile-cpu-*-gcn-gru-w4-b2.json")
    report = json.loads(path.read_text())
    assert report["conditions"]["device_kind"] == "cpu" and report["conditions"]["nodes"] == 6
    eager, graph = report["modes"]
    assert graph == {"mode": "cuda-graph", "skipped": "needs a CUDA device"}  # never a CPU figure labelled CUDA
    assert eager["mode"] == "eager" and eager["wall_ms_per_forward"] > 0 and len(eager["top_host_ops"]) == 3
    assert report["faithfulness"] == {}  # eager is the reference
    assert path.with_name(path.stem + "-eager.trace.json").stat().st_size > 0
    md = path.with_suffix(".md").read_text()
    assert f"| eager | {eager['wall_ms_per_forward']:.4f} |" in md
    assert "| cuda-graph | skipped: needs a CUDA device" in md
    assert f"| `{eager['top_host_ops'][0]['op']}` |" in md.split("## eager: slowest operators")[1]


def test_a_failing_mode_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    import stgkd.profiling

    def refuse(model, *, cuda):
        raise RuntimeError("inductor: no C++ compiler")

    monkeypatch.setattr(stgkd.profiling, "compiled", refuse)
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


def test_teacher_ignores_width(tmp_path):
    argv = ["--model", "graph-wavenet", "--batch", "1", "--nodes", "5", "--device", "cpu", "--modes", "eager",
            "--warmup", "1", "--iters", "1", "--threads", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("profile-cpu-*-graph-wavenet-w32-b1.json")
    assert json.loads(path.read_text())["conditions"]["parameters"] > 100_000
