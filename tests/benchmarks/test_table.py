"""Aggregation over seeds, speed-ups, power-law fits and the RESULTS.md rendering, on hand-made records."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.table import aggregate, fmt_pm, load_records, mean_spread, power_law, render, write_markdown


def _seed(seed: int, mae: float, *, peak=None) -> dict:
    h = {"mae": mae, "rmse": mae * 2, "mape": 0.1}
    return {"seed": seed, "test": {"15min": h, "30min": h, "60min": h, "avg": h}, "train_seconds_per_epoch": 2.0,
            "full_epoch_seconds_est": 8.0, "batches_per_epoch": 3, "batches_per_full_epoch": 12, "epochs_run": 1,
            "peak_gpu_mem_mb": peak}


def _record(device: str = "cpu") -> dict:
    lat = "cpu-eager" if device == "cpu" else "cuda-cuda-graph"
    return {
        "schema": "stgkd-bench/1", "suite": "synthetic", "title": "Toy", "protocol": "dcrnn", "description": "toy run",
        "published": None, "date": "2026-01-01", "started": "2026-01-01T00:00:00+00:00", "wall_seconds": 60.0,
        "command": "python -m benchmarks.run --suite synthetic",
        "environment": {"device": device, "device_name": "Test CPU", "torch": "2", "cuda": None, "threads": 2},
        "dataset": {"name": "toy", "nodes": 4, "steps": 100, "interval_minutes": 5, "split": [0.7, 0.1, 0.2],
                    "windows": [50, 10, 20]},
        "budget": {"seeds": [0, 1], "epochs": 1, "limit_batches": 3, "batch_size": 8, "lr": 0.001, "patience": 0,
                   "tiny": True, "teacher_hparams": {}},
        "notes": ["a note"],
        "models": [
            {"label": "gwn (teacher)", "model": "graph-wavenet", "kind": "teacher", "parameters": 1000, "flops": 2e6,
             "seeds": [_seed(0, 3.0), _seed(1, 3.2)], "latency": {f"{lat}-b1": {"median_ms": 10.0}, f"{lat}-b64": {"median_ms": 40.0}}},
            {"label": "s", "model": "gcn-gru", "kind": "student", "parameters": 10, "flops": 2e3,
             "seeds": [_seed(0, 4.0), _seed(1, 4.0)], "latency": {f"{lat}-b1": {"median_ms": 0.5}, f"{lat}-b64": {"median_ms": 8.0}}},
            {"label": "s + KD", "model": "gcn-gru", "kind": "student+kd", "parameters": 10, "flops": 2e3,
             "seeds": [_seed(0, 3.4), _seed(1, 3.6)], "latency": {f"{lat}-b1": {"median_ms": 2.0}}},
        ],
    }


def test_mean_spread_and_formatting():
    assert mean_spread([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)), 2)
    assert mean_spread([5.0, None, float("nan")]) == (5.0, 0.0, 1)
    assert mean_spread([])[2] == 0
    assert fmt_pm(2.0, 0.5, 3) == "2.00 ± 0.50"
    assert fmt_pm(2.0, 0.0, 1) == "2.00"
    assert fmt_pm(0.071, 0.002, 2, scale=100, digits=1) == "7.1 ± 0.2"
    assert fmt_pm(math.nan, math.nan, 0) == "–"


def test_power_law_recovers_the_exponent():
    xs = [207, 883, 2000, 8600]
    a, k = power_law(xs, [3.0 * x**1.5 for x in xs])
    assert k == pytest.approx(1.5) and a == pytest.approx(3.0)
    assert power_law([10], [1.0]) is None


def test_aggregate_means_over_seeds_and_speedups_against_the_teacher():
    rows = {r["label"]: r for r in aggregate(_record())}
    assert [r["kind"] for r in aggregate(_record())] == ["teacher", "student", "student+kd"]
    t = rows["gwn (teacher)"]
    assert t["avg/mae"][0] == pytest.approx(3.1) and t["avg/mae"][2] == 2
    assert t["avg/rmse"][1] == pytest.approx(math.sqrt(0.08))  # rmse 6.0, 6.4
    assert rows["s"]["speedup/cpu-eager-b1"] == pytest.approx(20.0)
    assert rows["s"]["speedup/cpu-eager-b64"] == pytest.approx(5.0)
    assert rows["s + KD"]["speedup/cpu-eager-b64"] is None  # not measured for that model
    assert t["peak_mb"] is None  # CPU run: no GPU memory


def test_render_labels_cpu_latency_and_marks_cuda_not_measured(tmp_path):
    text = render([dict(_record(), _file="synthetic-cpu-2026-01-01.json")])
    assert "**CPU** eager b1 ms" in text and "not measured" in text and "n/a (CPU)" in text
    assert "| s + KD | student+kd | 3.50 ± 0.14 |" in text
    assert "closes 56% of the plain student's gap" in text  # (4.0 - 3.5) / (4.0 - 3.1)
    assert "> a note" in text
    # the full-dataset quotes appear, marked as quoted, with their sources
    assert "Published results on the full datasets (quoted, not measured)" in text
    assert "| Graph WaveNet | 2.69 | 5.15 | 6.90 |" in text and "IJCAI 2019" in text
    assert "STID: no number quoted" in text


def test_render_cuda_columns(tmp_path):
    rec = _record("cuda")
    for m in rec["models"]:
        for s in m["seeds"]:
            s["peak_gpu_mem_mb"] = 100.0
    text = render([dict(rec, _file="x.json")])
    assert "CUDA graph b1 ms" in text and "| not measured" not in text and "| 100 ±" in text


def test_write_markdown_reads_every_json_file(tmp_path):
    (tmp_path / "synthetic-cpu-2026-01-01.json").write_text(json.dumps(_record()))
    (tmp_path / "notes.json").write_text("{\"unrelated\": 1}")
    assert len(load_records(tmp_path)) == 1
    write_markdown(tmp_path, tmp_path / "RESULTS.md")
    assert "synthetic-cpu-2026-01-01.json" in (tmp_path / "RESULTS.md").read_text()
