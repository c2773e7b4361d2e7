"""Latency measurement: summary statistics, CPU labelling, argument validation, CUDA paths."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from stgkd import latency
from stgkd.cli import main
from stgkd.errors import ConfigError
from stgkd.latency import LatencyResult, format_table, measure, random_graph, summarize
from stgkd.nn.base import ForecastModel
from stgkd.nn.registry import MODELS, register_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


class TinyTimed(ForecastModel):
    """Test double: linear map over the window of each node. Shapes: x (B, T, N, C) -> (B, H, N)."""

    def __init__(self, *, num_nodes, graph=None, in_steps=12, out_steps=12, in_channels=2, hidden: int = 4):
        super().__init__(num_nodes=num_nodes, in_steps=in_steps, out_steps=out_steps, in_channels=in_channels,
                         hidden=hidden)
        self.a = nn.Linear(in_steps * in_channels, hidden)
        self.b = nn.Linear(hidden, out_steps)

    def forward(self, x, return_features=False):
        """Shapes: x (B, T, N, C) -> (B, H, N)."""
        b, t, n, c = x.shape
        y = self.b(torch.relu(self.a(x.permute(0, 2, 1, 3).reshape(b, n, t * c)))).transpose(1, 2)
        return (y, {}) if return_features else y


if "test-latency-model" not in MODELS:
    register_model("test-latency-model")(TinyTimed)


def test_summarize_on_known_samples():
    s = summarize([10, 9, 8, 7, 6, 5, 4, 3, 2, 1])  # order must not matter
    assert s["median_ms"] == pytest.approx(5.5)
    # linear interpolation: 0.9 * 9 = 8.1 -> 9 + 0.1 * (10 - 9); 0.99 * 9 = 8.91 -> 9 + 0.91
    assert s["p90_ms"] == pytest.approx(9.1)
    assert s["p99_ms"] == pytest.approx(9.91)
    assert s["mean_ms"] == pytest.approx(5.5)
    assert s["std_ms"] == pytest.approx(math.sqrt(82.5 / 9))  # sample std, n - 1
    assert (s["min_ms"], s["max_ms"]) == (1.0, 10.0)
    one = summarize([2.5])
    assert one["median_ms"] == one["p99_ms"] == 2.5 and one["std_ms"] == 0.0
    with pytest.raises(ConfigError, match="no latency samples"):
        summarize([])
    with pytest.raises(ConfigError, match="NaN"):
        summarize([1.0, float("nan")])


def test_cpu_timing_uses_perf_counter_per_call(monkeypatch):
    # a fake clock: each timed call reads start, end; durations 1, 3, 2, 4 ms
    ticks = iter([0.0, 0.001, 1.0, 1.003, 2.0, 2.002, 3.0, 3.004])
    monkeypatch.setattr(latency.time, "perf_counter", lambda: next(ticks))
    model = TinyTimed(num_nodes=6, in_steps=4, out_steps=3, in_channels=2)
    r = measure(model, batch_size=8, device="cpu", warmup=2, iters=4, name="tiny")
    assert r.median_ms == pytest.approx(2.5)
    assert r.mean_ms == pytest.approx(2.5)
    assert (r.min_ms, r.max_ms) == (pytest.approx(1.0), pytest.approx(4.0))
    assert r.p90_ms == pytest.approx(3.7)  # 0.9 * 3 = 2.7 -> 3 + 0.7 * (4 - 3)
    assert r.throughput == pytest.approx(8 / 0.0025)
    assert (r.batch, r.nodes, r.steps, r.channels) == (8, 6, 4, 2)  # read from the model
    assert (r.mode, r.dtype, r.warmup, r.iters, r.model) == ("eager", "fp32", 2, 4, "tiny")
    assert r.device_kind == "cpu" and r.requested_device == "cpu"
    assert r.parameters == sum(p.numel() for p in model.parameters())


def test_result_records_conditions_and_serialises():
    model = TinyTimed(num_nodes=5, in_steps=3, out_steps=2, in_channels=1)
    r = measure(model, batch_size=2, device="cpu", warmup=1, iters=3)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["device_kind"] == "cpu" and d["device_name"] and "threads" in d["device_name"]
    assert d["torch_version"] == torch.__version__ and d["cuda_version"] == torch.version.cuda
    for key in ("median_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "throughput", "date"):
        assert key in d
    assert d["min_ms"] <= d["median_ms"] <= d["p90_ms"] <= d["p99_ms"] <= d["max_ms"]
    assert "test-latency-model" in format_table([r]) or "TinyTimed" in format_table([r])

def test_result_records_the_load_and_flags_a_busy_machine(monkeypatch):
    import os

    model = TinyTimed(num_nodes=5, in_steps=3, out_steps=2, in_channels=1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.7, 0.9))
    idle = measure(model, batch_size=2, device="cpu", warmup=1, iters=2)
    assert (idle.load_average, idle.cpu_count, idle.busy) == ([0.5, 0.7, 0.9], 2, False)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5, 1.0, 1.0))  # 2.5 runnable on 2 cores
    busy = measure(model, batch_size=2, device="cpu", warmup=1, iters=2)
    assert busy.busy and busy.load_average[0] == 2.5 and busy.to_dict()["busy"] is True
    # exactly one runnable process per core is not busy; no load average known is not busy
    assert not latency.is_busy([2.0, 0, 0], 2) and latency.is_busy([2.01, 0, 0], 2) and not latency.is_busy(None)

    def no_load():
        raise OSError("no load average on this OS")

    monkeypatch.setattr(os, "getloadavg", no_load)
    unknown = measure(model, batch_size=2, device="cpu", warmup=1, iters=2)
    assert unknown.load_average is None and not unknown.busy



class PrecisionProbe(TinyTimed):
    """TinyTimed that records, at every call, whether CPU autocast is on, its dtype and the dtype of
    its first linear layer's output. Shapes: x (B, T, N, C) -> (B, H, N)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls: list[tuple[bool, torch.dtype, torch.dtype]] = []

    def forward(self, x, return_features=False):
        """Shapes: x (B, T, N, C) -> (B, H, N)."""
        b, t, n, c = x.shape
        hidden = self.a(x.permute(0, 2, 1, 3).reshape(b, n, t * c))
        self.calls.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), hidden.dtype))
        return self.b(torch.relu(hidden)).transpose(1, 2)


@pytest.mark.parametrize(("dtype", "expected"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_low_precision_runs_under_autocast_on_cpu(dtype, expected):
    model = PrecisionProbe(num_nodes=4, in_steps=3, out_steps=2, in_channels=2)
    r = measure(model, batch_size=1, device="cpu", dtype=dtype, warmup=1, iters=2)
    assert r.dtype == dtype and r.device_kind == "cpu"
    # every call (1 warm-up + 2 timed) ran under CPU autocast at that dtype, and a matmul computed in it
    assert model.calls == [(True, expected, expected)] * 3
    # the weights were not cast: autocast, not model.to(bfloat16)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    fp32 = PrecisionProbe(num_nodes=4, in_steps=3, out_steps=2, in_channels=2)
    measure(fp32, batch_size=1, device="cpu", dtype="fp32", warmup=1, iters=2)
    assert [(on, out) for on, _, out in fp32.calls] == [(False, torch.float32)] * 3


def test_validation_errors_name_the_argument():
    model = TinyTimed(num_nodes=4, in_steps=3, out_steps=2)
    with pytest.raises(ConfigError, match="mode='fast'"):
        measure(model, batch_size=1, device="cpu", mode="fast")
    with pytest.raises(ConfigError, match="dtype='int8'"):
        measure(model, batch_size=1, device="cpu", dtype="int8")
    with pytest.raises(ConfigError, match="mode='cuda-graph' needs device='cuda'"):
        measure(model, batch_size=1, device="cpu", mode="cuda-graph")
    with pytest.raises(ConfigError, match="batch_size=0"):
        measure(model, batch_size=0, device="cpu")
    with pytest.raises(ConfigError, match="num_nodes="):
        measure(nn.Linear(2, 2), batch_size=1, device="cpu", in_steps=3, in_channels=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks behaviour without CUDA")
def test_cuda_requested_without_gpu_raises_or_falls_back_labelled_cpu():
    model = TinyTimed(num_nodes=4, in_steps=3, out_steps=2)
    with pytest.raises(ConfigError, match="CUDA is not available.*fallback_to_cpu=True"):
        measure(model, batch_size=1, device="cuda")
    r = measure(model, batch_size=1, device="cuda", fallback_to_cpu=True, warmup=1, iters=2)
    assert r.device_kind == "cpu" and r.requested_device == "cuda"
    assert "NVIDIA" not in r.device_name
    with pytest.raises(ConfigError, match="cuda-graph.*fell back to cpu"):
        measure(model, batch_size=1, device="cuda", mode="cuda-graph", fallback_to_cpu=True)


def test_random_graph_is_seeded_and_sparse():
    a, b = random_graph(30, degree=4, seed=1), random_graph(30, degree=4, seed=1)
    assert np.array_equal(a, b) and a.shape == (30, 30)
    assert ((a > 0).sum(1) == 5).all() and np.allclose(np.diag(a), 1.0)


def test_cli_latency_on_model_name_writes_json(tmp_path, capsys):
    out = tmp_path / "lat.json"
    code = main(["latency", "test-latency-model", "--nodes", "6", "--steps", "4", "--hparam", "hidden=3",
                 "--batch", "1", "2", "--dtype", "fp32", "bf16", "--device", "cpu", "--warmup", "1",
                 "--iters", "3", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "median ms" in text and "cpu" in text
    rows = json.loads(out.read_text())["results"]
    assert [(r["batch"], r["dtype"]) for r in rows] == [(1, "fp32"), (2, "fp32"), (1, "bf16"), (2, "bf16")]
    assert all(r["nodes"] == 6 and r["steps"] == 4 and r["device_kind"] == "cpu" for r in rows)
    assert rows[0]["model"] == "test-latency-model-hidden3"


def test_cli_latency_errors(capsys):
    assert main(["latency", "test-latency-model", "--device", "cpu"]) == 2
    assert "--nodes" in capsys.readouterr().err
    assert main(["latency", "no-such-model", "--nodes", "4"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["latency", "test-latency-model", "--nodes", "4", "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_cli_latency_on_exported_student(tmp_path, capsys):
    from test_export import make_checkpoint

    from stgkd.export import export_student

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    student = export_student(ckpt, tmp_path / "student.pt")
    for target in (student, ckpt):
        out = tmp_path / f"{target.stem}.json"
        assert main(["latency", str(target), "--device", "cpu", "--warmup", "1", "--iters", "2",
                     "--json", str(out)]) == 0
        (row,) = json.loads(out.read_text())["results"]
        assert row["nodes"] == 5 and row["steps"] == 4 and "test-export-student" in row["model"]
        # by default an exported file is timed as Forecaster.load runs it (compiled, for the plain export);
        # a checkpoint as its eager model
        if target == student:
            assert row["mode"] == "load" and row["model"].endswith("[aoti-cached]")
        else:
            assert row["mode"] == "eager" and row["model"].endswith("test-export-student")
    out = tmp_path / "eager.json"
    assert main(["latency", str(student), "--mode", "eager", "--device", "cpu", "--warmup", "1", "--iters", "2",
                 "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["mode"] == "eager" and row["model"].endswith("test-export-student")  # the file as it is read
    assert main(["latency", str(ckpt), "--mode", "load", "--device", "cpu"]) == 2
    assert "not one" in capsys.readouterr().err


def test_cli_latency_times_the_program_the_loader_runs(tmp_path, monkeypatch):
    """``--mode load`` hands measure the very callable Forecaster.load would run, not a copy or the file's
    uncompiled module."""
    from test_export import make_checkpoint

    from stgkd import Forecaster
    from stgkd.export import export_student

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    student = export_student(ckpt, tmp_path / "student.pt", format="torchscript")
    timed: list[object] = []
    real_measure = latency.measure

    def spy(model, **kwargs):
        timed.append(model.module)
        return real_measure(model, **kwargs)

    loaded: list[Forecaster] = []
    real_load = Forecaster.load.__func__

    def load(cls, *args, **kwargs):
        loaded.append(real_load(cls, *args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(latency, "measure", spy)
    monkeypatch.setattr(Forecaster, "load", classmethod(load))
    assert main(["latency", str(student), "--device", "cpu", "--warmup", "1", "--iters", "2"]) == 0
    assert len(loaded) == 1 and timed == [loaded[0].program]


@cuda
@pytest.mark.cuda
def test_cuda_graph_replay_matches_eager_and_is_labelled():
    model = TinyTimed(num_nodes=8, in_steps=4, out_steps=3).cuda().eval()
    x = torch.randn(2, 4, 8, 2, device="cuda")
    runner = latency.CudaGraphRunner(model, [x])
    with torch.inference_mode():
        want = model(x)
        y = torch.randn_like(x)
        assert torch.allclose(runner(y).clone(), model(y), atol=1e-5)
        assert torch.allclose(runner(x).clone(), want, atol=1e-5)
    for mode in ("eager", "cuda-graph"):
        for dtype in ("fp32", "bf16"):
            r = measure(model, batch_size=2, device="cuda", mode=mode, dtype=dtype, warmup=2, iters=5)
            assert r.device_kind == "cuda" and r.device_name == torch.cuda.get_device_name()
            assert r.cuda_version == torch.version.cuda and r.median_ms > 0


def _measure_compiled(monkeypatch, device: str) -> None:
    """``mode="compile"`` hands the model itself to ``torch.compile`` once, and dynamo then traces its
    forward (a graph is captured and run) during the measured calls."""
    from torch._dynamo.utils import counters

    compiled: list[object] = []
    real_compile = torch.compile

    def counting_compile(model, *args, **kwargs):
        compiled.append(model)
        return real_compile(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", counting_compile)
    torch._dynamo.reset()
    counters.clear()
    model = TinyTimed(num_nodes=8, in_steps=4, out_steps=3)
    r = measure(model, batch_size=4, device=device, mode="compile", warmup=2, iters=3)
    assert r.mode == "compile" and r.device_kind == device
    assert compiled == [model], "torch.compile was called once, on the model"
    assert counters["stats"]["unique_graphs"] >= 1 and counters["frames"]["ok"] >= 1, "dynamo captured no graph"
    torch._dynamo.reset()


@pytest.mark.slow  # inductor compiles C++ kernels for the CPU: seconds to tens of seconds
def test_compile_mode_on_cpu(monkeypatch):
    _measure_compiled(monkeypatch, "cpu")


@cuda
@pytest.mark.cuda
def test_compile_mode_on_cuda(monkeypatch):
    _measure_compiled(monkeypatch, "cuda")


def test_benchmark_script_writes_labelled_json_and_markdown(tmp_path, monkeypatch):
    from benchmarks import latency as bench

    monkeypatch.setattr(latency, "load_average", lambda: [0.1, 0.1, 0.1])  # an idle machine
    argv = ["--device", "cpu", "--sections", "main", "--no-teacher", "--students", "gru", "gcn-gru", "--nodes", "6",
            "--widths", "4", "--batch", "1", "--modes", "eager", "cuda-graph", "--dtypes", "fp32", "--iters", "2", "--warmup", "1",
            "--out", str(tmp_path), "--tag", "t"]
    assert bench.main(argv) == 0
    (json_path,) = tmp_path.glob("latency-cpu-*-t.json")
    report = json.loads(json_path.read_text())
    assert report["device_kind"] == "cpu" and report["command"].endswith("--tag t") and report["date"]
    assert report["schema"].startswith("stgkd-bench/") and report["protocol"] == "latency" and not report["busy"]
    timed = [r for r in report["results"] if "skipped" not in r]
    assert {r["model"] for r in timed} == {"gru-h4", "gcn-gru-h4"}
    assert all(r["nodes"] == 6 and r["mode"] == "eager" and r["device_kind"] == "cpu" for r in timed)
    skipped = [r for r in report["results"] if "skipped" in r]
    assert skipped and all(r["mode"] == "cuda-graph" for r in skipped)
    md = json_path.with_suffix(".md").read_text()
    assert md.startswith("# Inference latency (CPU)") and "gcn-gru-h4" in md


# ---------------------------------------------------------------- busy machine, judged from /proc/stat


def _stat(path, busy: int, idle: int) -> None:
    path.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\n"
                    "intr 1\n")


def test_busy_cores_counts_the_cores_kept_busy_between_two_samples(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    _stat(stat, busy=100, idle=900)
    # between the samples: 150 busy ticks and 50 idle of 200 on 2 CPUs = 1.5 cores busy
    monkeypatch.setattr(latency.time, "sleep", lambda s: _stat(stat, busy=250, idle=950))
    monkeypatch.setattr(latency.os, "cpu_count", lambda: 2)
    assert latency.busy_cores(path=str(stat)) == 1.5
    _stat(stat, busy=100, idle=900)
    monkeypatch.setattr(latency.os, "cpu_count", lambda: 8)  # a container shown its host's CPUs: not known
    assert latency.busy_cores(path=str(stat)) is None
    assert latency.busy_cores(path=str(tmp_path / "absent")) is None


def test_a_timing_is_crowded_when_other_work_leaves_fewer_cores_than_its_threads():
    assert latency.is_crowded(1.5, 1, cores=2) is True  # half a core left for one thread
    assert latency.is_crowded(0.9, 1, cores=2) is False  # the demo's own two training threads are gone by now
    assert latency.is_crowded(0.2, 2, cores=2) is True
    assert latency.is_crowded(None, 1, cores=2) is None  # unknown: the caller falls back to the load average


def test_a_timing_left_exactly_its_threads_is_not_crowded():
    """The boundary: others + threads == cores leaves each thread a core of its own (crowded means fewer)."""
    assert latency.is_crowded(1.0, 1, cores=2) is False
    assert latency.is_crowded(2.0, 2, cores=4) is False
    assert latency.is_crowded(0.0, 0, cores=1) is False  # threads count as at least one
    assert latency.is_crowded(1.25, 1, cores=2) is True  # a quarter of a core short


def test_busy_cores_on_this_machine_is_a_share_of_its_cores():
    seen = latency.busy_cores(0.05)
    if seen is None:  # the parsing and the fallback are tested on fake /proc/stat files above
        pytest.skip("no /proc/stat matching os.cpu_count() here")
    assert 0.0 <= seen <= os.cpu_count()


def test_benchmark_timing_section_times_a_baseline_forward_only_and_a_student_both_ways():
    from benchmarks.latency import time_models

    adj = np.eye(4, dtype=np.float32)
    rows = time_models(["last-value", "gru"], adj, batches=[1], dtypes=["fp32"], device=torch.device("cpu"), warmup=0,
                       iters=1)
    assert {(r["model"], r["passes"]) for r in rows} == {("last-value", "forward"), ("gru", "forward"),
                                                         ("gru", "forward+backward")}
    assert all(not r["error"] and r["median_ms"] > 0 and r["iters"] == 1 for r in rows)


# ---------------------------------------------------------------- a training step's forward and backward


def test_train_step_times_forward_and_backward_per_step_and_clears_the_gradients(monkeypatch):
    # a fake clock: each timed step reads start, end; durations 2, 6, 4 ms
    ticks = iter([0.0, 0.002, 1.0, 1.006, 2.0, 2.004])
    monkeypatch.setattr(latency.time, "perf_counter", lambda: next(ticks))
    model = TinyTimed(num_nodes=5, in_steps=3, out_steps=2, in_channels=1).eval()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(m.training))
    backward = []
    model.a.weight.register_hook(lambda g: backward.append(g.abs().sum().item()) or g)
    stats = latency.measure_train_step(model, torch.randn(2, 3, 5, 1), warmup=1, iters=3)
    assert stats["median_ms"] == pytest.approx(4.0) and stats["mean_ms"] == pytest.approx(4.0)
    assert (stats["min_ms"], stats["max_ms"]) == (pytest.approx(2.0), pytest.approx(6.0))
    assert calls == [True] * 4  # train mode, warm-up included
    assert len(backward) == 4 and all(g > 0 for g in backward)  # a backward per step
    assert all(p.grad is None for p in model.parameters())  # cleared after each step


def test_train_step_validates_its_settings():
    model, x = TinyTimed(num_nodes=2, in_steps=3, out_steps=2, in_channels=1), torch.randn(1, 3, 2, 1)
    with pytest.raises(ConfigError, match="iters=0"):
        latency.measure_train_step(model, x, iters=0)
    with pytest.raises(ConfigError, match="dtype='int8'"):
        latency.measure_train_step(model, x, dtype="int8")
