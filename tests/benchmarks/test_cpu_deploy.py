"""``python -m benchmarks.cpu_deploy``: refuses a busy machine, and end to end in its smoke mode."""

from __future__ import annotations

import json

import pytest
import torch

import stgkd.latency
from benchmarks.cpu_deploy import main


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_refuses_to_time_on_a_busy_machine(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stgkd.latency, "load_average", lambda: [99.0, 99.0, 99.0])
    assert main(["--smoke", "--out", str(tmp_path)]) == 2
    assert "--allow-busy" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_smoke_run_writes_labelled_results(tmp_path, monkeypatch):
    import onnxruntime  # the deploy extra, in dev: a missing package fails here

    monkeypatch.setattr(stgkd.latency, "load_average", lambda: [99.0, 99.0, 99.0])
    assert main(["--smoke", "--allow-busy", "--variants", "fp32", "int8", "onnx", "--iters", "2",
                 "--out", str(tmp_path), "--tag", "t"]) == 0
    (json_path,) = tmp_path.glob("cpu-deploy-*-t.json")
    report = json.loads(json_path.read_text())
    assert report["smoke"] and report["busy"] and report["machine"]["cores"] >= 1
    assert report["command"].startswith("python -m benchmarks.cpu_deploy --smoke")
    rows = {r["variant"]: r for r in report["variants"]}
    assert rows["fp32"]["checks"]["latency"]["speedup"] == {"1": 1.0, "64": 1.0}
    int8 = rows["int8"]
    assert int8["backend"] == "torchscript-int8" and "encoder.gru" in int8["quantized_layers"]
    assert int8["checks"]["accuracy"]["made"]
    goal = report["goal"]
    assert goal["speedup_b64"] == int8["checks"]["latency"]["speedup"]["64"]
    assert goal["met"] == (goal["fast_enough"] and goal["accurate_enough"])
    assert set(report["profile"]) == {"fp32", "int8"} and report["profile"]["int8"]["ops"]
    # the ONNX file ran in onnxruntime (the deploy extra is in dev): checked against fp32 on the test split
    onnx = rows["onnx"]
    assert "skipped" not in onnx, onnx.get("skipped")
    assert onnx["backend"] == "onnxruntime" and onnx["precision"] == "fp32"
    assert report["machine"]["onnxruntime"] == onnxruntime.__version__
    assert onnx["checks"]["accuracy"]["made"] and abs(onnx["checks"]["accuracy"]["mae_change_pct"]["avg"]) < 1e-3
    assert set(onnx["checks"]["latency"]["results"]) == {"torchscript-fp32", "onnxruntime"}
    md = json_path.with_suffix(".md").read_text()
    assert "Smoke run" in md and "Busy machine" in md and "| int8 | torchscript-int8 |" in md
    assert "| onnx | onnxruntime |" in md
