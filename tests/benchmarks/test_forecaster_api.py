"""benchmarks.forecaster_api: one process's figures and the record's table, on a 5-sensor TorchScript file."""

from __future__ import annotations

import pytest

from benchmarks import forecaster_api


@pytest.fixture
def student(tmp_path):
    from test_export import make_checkpoint

    from stgkd.export import export_student

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    return export_student(ckpt, tmp_path / "student.pt", format="torchscript")


def test_a_process_times_load_first_forecast_and_each_call_kind(student):
    got = forecaster_api.child(str(student), iters=6, rounds=2)
    assert got["backend"] == "torchscript-fp32" and got["sensors"] == 5 and got["input_steps"] == 4
    assert set(got["median_ms"]) == {"program", "frame", "buffer", "array", "frame_no_model"}
    assert all(v > 0 for v in got["median_ms"].values())
    assert got["load_first_s"] == pytest.approx(got["load_s"] + got["first_forecast_ms"] / 1e3)
    assert got["over_program"]["frame"] == pytest.approx(got["median_ms"]["frame"] / got["median_ms"]["program"])


def test_the_record_states_each_goal_from_the_runs(student, tmp_path, monkeypatch):
    """main runs one child per cache state and judges the goals from what they measured (children faked)."""
    import json

    import stgkd.latency

    monkeypatch.setattr(stgkd.latency, "load_average", lambda: [0.1, 0.1, 0.1])
    figures = iter([(3.0, 1.2), (1.5, 1.4), (2.5, 1.3), (1.9, 1.6)])  # (load + first s, frame / program)
    seen: list[str] = []

    def fake_run(cmd, env):
        assert "--child" in cmd and env["OMP_NUM_THREADS"] == "1"
        assert env["STGKD_CACHE_DIR"] == env["TORCHINDUCTOR_CACHE_DIR"]  # cold: both caches empty
        seen.append(env["TORCHINDUCTOR_CACHE_DIR"])
        s, ratio = next(figures)
        out = {"backend": "aoti-cached", "input_steps": 4, "sensors": 5, "import_s": 1.0, "load_s": s - 0.01,
               "first_forecast_ms": 10.0, "load_first_s": s,
               "median_ms": {"program": 1.0, "frame": ratio, "buffer": ratio, "array": ratio},
               "over_program": {"frame": ratio, "buffer": ratio, "array": ratio}}
        return out

    monkeypatch.setattr(forecaster_api, "run_child", fake_run)
    assert forecaster_api.main([str(student), "--out", str(tmp_path), "--tag", "t"]) == 0
    assert seen[0] == seen[1] != seen[2] == seen[3]  # cold then warm in one cache directory, twice
    (record,) = tmp_path.glob("forecaster-api-cpu-*-t.json")
    report = json.loads(record.read_text())
    assert [r["cache"] for r in report["runs"]] == ["cold", "warm", "cold", "warm"]
    assert report["goals"]["load_first_warm_s"] == "1.50-1.90 s" and report["goals"]["load_first_warm_met"]
    assert report["goals"]["frame_over_program"] == "1.20-1.60x" and not report["goals"]["frame_over_program_met"]
    md = record.with_suffix(".md").read_text()
    assert "| warm | 0.1 | 1.00 | 1.49 | 10.0 | 1.50 |" in md and "within 1.5x of the program: not met" in md
    assert "| n/a | 1.40x |" in md  # a run without the around-the-model figure (older records) says so
