"""``python -m benchmarks.distill_ablation`` end to end on a tiny synthetic network."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks.distill_ablation import SETTINGS, main
from stgkd.cli import main as cli

TINY_TEACHER = {"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8,
                "blocks": 1, "layers": 2}
PICK = ["plain", "adaptive student, inherited adjacency", "output only (out 1, tau 1)"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster and immune to a busy machine
    yield
    torch.set_num_threads(before)


def test_trains_teacher_then_settings_and_reuses_the_teacher(tmp_path):
    data = tmp_path / "syn"
    assert cli(["data", "synth", "--out", str(data), "--nodes", "6", "--days", "2", "--seed", "0"]) == 0
    common = ["--dataset", str(data), "--student-epochs", "1", "--seeds", "0", "--width", "4",
              "--batch-size", "32", "--out", str(tmp_path / "results")]
    assert main([*common, "--settings", *PICK, "--teacher-hparams", json.dumps(TINY_TEACHER), "--teacher-epochs", "1",
                 "--workdir", str(tmp_path / "a"), "--tag", "first"]) == 0
    (first,) = (tmp_path / "results").glob("distill-ablation-cpu-*-first.json")
    report = json.loads(first.read_text())
    assert list(report["settings"]) == PICK and report["width"] == 4
    for name in PICK:
        row = report["settings"][name]
        assert row["distill"] == SETTINGS[name][1] and len(row["runs"]) == 1
        assert all(math.isfinite(row["mae"][h][0]) for h in ("15min", "30min", "60min", "avg"))
    assert report["settings"][PICK[1]]["parameters"] > report["settings"][PICK[0]]["parameters"]  # adaptive tables
    assert report["teacher_cache_seconds"] > 0  # one teacher pass, for the distilled setting
    assert report["complete"] is True
    md = first.with_suffix(".md").read_text()
    assert "| plain |" in md and "| adaptive student, inherited adjacency |" in md and "RMSE 60" in md
    assert not list((tmp_path / "results").glob("*.tmp"))  # written through a temporary file, then renamed

    teacher = tmp_path / "a" / "teacher" / "best.pt"
    assert main([*common, "--settings", *PICK[:2], "--teacher", str(teacher), "--workdir", str(tmp_path / "b"),
                 "--tag", "again"]) == 0
    (again,) = (tmp_path / "results").glob("distill-ablation-cpu-*-again.json")
    assert json.loads(again.read_text())["teacher_cache_seconds"] is None  # nothing distilled: the teacher never ran
    reused = json.loads(again.read_text())["teacher"]
    assert reused["path"] == str(teacher) and reused["epochs"] == 1 and reused["seconds"] > 0
    assert reused["test"]["avg"]["mae"] == report["teacher"]["test"]["avg"]["mae"]  # the same weights, re-scored
