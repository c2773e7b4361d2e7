"""``python -m benchmarks.cpu_deploy``: refuses a busy machine, and its programs section end to end in its smoke
mode."""

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


def test_programs_smoke_run_checks_times_and_reports_every_program(tmp_path, monkeypatch):
    from stgkd.export import programs as progs

    monkeypatch.setattr(stgkd.latency, "load_average", lambda: [0.1, 0.1, 0.1])  # an idle machine

    def off_by_a_little(module, threads, where):  # a program 1e-3 mph away from the model: not faithful
        return lambda values, stamps: module(values, stamps) + 1e-3

    monkeypatch.setitem(progs.PROGRAMS, "off-by-a-little",
                        progs.ProgramKind("off-by-a-little", off_by_a_little, None, "the model plus 1e-3"))
    names = ["eager", "torchscript", "torchscript-frozen", "onnx-extended", "off-by-a-little"]
    assert main(["--smoke", "--sections", "programs", "--students", "gcn-gru", "stgru", "--programs", *names,
                 "--out", str(tmp_path), "--tag", "t"]) == 0
    (json_path,) = tmp_path.glob("cpu-programs-*-t.json")
    report = json.loads(json_path.read_text())
    assert report["sections"] == ["programs"] and report["smoke"] and not report["busy"]
    assert report["command"].startswith("python -m benchmarks.cpu_deploy --smoke --sections programs")
    assert report["date"] and report["load_average"]["start"] == [0.1, 0.1, 0.1] and report["machine"]["cores"] >= 1
    assert report["batches"] == [1, 64] and report["threads"] == 1 and report["atol"] == 1e-4
    assert [row["model"] for row in report["programs"]] == ["gcn-gru", "stgru"]
    for row in report["programs"]:
        rows = {r["program"]: r for r in row["programs"]}
        assert list(rows) == names
        for r in rows.values():  # faithful exactly when every difference is within 1e-4; only those timed
            diffs = r["check"]["max_abs_diff"]
            assert set(diffs) == {"1", "64"} and r["faithful"] == (max(diffs.values()) <= 1e-4)
            assert (r["latency"] is not None) == r["faithful"]
            if r["faithful"]:
                assert set(r["latency"]) == {"1", "64"} and all(v["median_ms"] > 0 for v in r["latency"].values())
        assert rows["eager"]["faithful"] and rows["eager"]["speedup_vs_eager"] == {"1": 1.0, "64": 1.0}
        assert rows["torchscript"]["faithful"] and rows["torchscript-frozen"]["faithful"]
        off = rows["off-by-a-little"]
        assert not off["faithful"] and off["reason"].startswith("not faithful: max abs difference")
        assert all(9e-4 < d < 1.1e-3 for d in off["check"]["max_abs_diff"].values())
        for b, best in row["fastest"].items():
            assert rows[best["program"]]["faithful"]
            assert best["median_ms"] == min(r["latency"][b]["median_ms"] for r in rows.values() if r["latency"])
    goal = report["program_goal"]
    assert goal["batch"] == 1 and set(goal["students"]) == {"gcn-gru", "stgru"}
    assert goal["met"] == all(v["speedup"] >= 2.0 for v in goal["students"].values())
    md = json_path.with_suffix(".md").read_text()
    assert md.startswith("# The fastest faithful CPU program of each student family") and "Smoke run" in md
    assert "| gcn-gru | torchscript-frozen | torchscript-frozen | yes |" in md
    assert "| stgru | off-by-a-little | in memory | no: not faithful: max abs difference" in md


def test_programs_section_refuses_a_busy_machine(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stgkd.latency, "load_average", lambda: [99.0, 99.0, 99.0])
    assert main(["--smoke", "--sections", "programs", "--students", "gru", "--out", str(tmp_path)]) == 2
    assert "--allow-busy" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
