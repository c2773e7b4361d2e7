"""The timing scripts refuse a busy machine (exit code 2, nothing written) unless ``--allow-busy``, which
labels what they measure busy."""

from __future__ import annotations

import json
import os

import pytest

import stgkd.latency
from benchmarks import latency as bench_latency
from benchmarks import run
from benchmarks.idle import EXIT_BUSY

TINY_LATENCY = ["--device", "cpu", "--sections", "main", "--no-teacher", "--students", "gru", "--nodes", "5",
                "--widths", "4", "--batch", "1", "--modes", "eager", "--dtypes", "fp32", "--iters", "2", "--warmup", "1"]


@pytest.fixture
def busy(monkeypatch):
    """A machine with three runnable processes per core."""
    load = [3.0 * (os.cpu_count() or 1)] * 3
    monkeypatch.setattr(stgkd.latency, "load_average", lambda: load)
    return load


def test_latency_script_refuses_a_busy_machine(tmp_path, busy, capsys):
    assert bench_latency.main(TINY_LATENCY + ["--out", str(tmp_path)]) == EXIT_BUSY
    err = capsys.readouterr().err
    assert "exceeds the" in err and "--allow-busy" in err
    assert not list(tmp_path.iterdir())


def test_latency_script_with_allow_busy_labels_every_row(tmp_path, busy):
    assert bench_latency.main(TINY_LATENCY + ["--threads", "1", "--out", str(tmp_path), "--allow-busy"]) == 0
    (path,) = tmp_path.glob("latency-cpu-*.json")
    report = json.loads(path.read_text())
    timed = [r for r in report["results"] if "median_ms" in r]
    assert report["busy"] and timed and all(r["busy"] and r["load_average"] == busy and r["threads"] == 1 for r in timed)
    md = path.with_suffix(".md").read_text()
    assert "Busy machine" in md and "busy, not a figure" in md


def test_latency_script_times_each_thread_count(tmp_path, monkeypatch):
    monkeypatch.setattr(stgkd.latency, "load_average", lambda: [0.0, 0.0, 0.0])
    assert bench_latency.main(TINY_LATENCY + ["--threads", "1", "2", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("latency-cpu-*.json")
    report = json.loads(path.read_text())
    assert [r["threads"] for r in report["results"]] == [1, 2]
    assert report["environment"]["threads"] == [1, 2] and not report["busy"]


def test_timing_section_refuses_a_busy_machine(tmp_path, busy, capsys):
    argv = ["--device", "cpu", "--sections", "timing", "--nodes", "5", "--batch", "1", "--iters", "1", "--warmup", "1",
            "--dtypes", "fp32", "--out", str(tmp_path)]
    assert bench_latency.main(argv) == EXIT_BUSY
    assert "--allow-busy" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_run_refuses_a_busy_machine_but_renders(tmp_path, busy, capsys):
    results, md = tmp_path / "results", tmp_path / "RESULTS.md"
    argv = ["--suite", "synthetic", "--tiny", "--results-dir", str(results), "--markdown", str(md)]
    assert run.main(argv) == EXIT_BUSY
    assert "--allow-busy" in capsys.readouterr().err and not results.exists()
    assert run.main(["--render", "--results-dir", str(results), "--markdown", str(md)]) == 0  # no timing: allowed

