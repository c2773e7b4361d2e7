"""``python -m benchmarks.teacher_ensemble`` end to end on a tiny synthetic network."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.teacher_ensemble import HORIZONS, main
from stgkd.cli import main as cli

TINY_TEACHER = {"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8,
                "blocks": 1, "layers": 2}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_scores_members_and_ensembles_and_trains_the_students(tmp_path):
    data = tmp_path / "syn"
    assert cli(["data", "synth", "--out", str(data), "--nodes", "5", "--days", "2", "--seed", "0"]) == 0
    args = ["--train", "graph-wavenet", "--dataset", str(data), "--seeds", "0", "1", "--teacher-epochs", "1",
            "--teacher-hparams", json.dumps(TINY_TEACHER), "--student", "gcn-gru", "--width", "8",
            "--student-epochs", "1", "--batch-size", "32", "--device", "cpu", "--workdir", str(tmp_path / "w"),
            "--out", str(tmp_path / "r"), "--tag", "t"]
    assert main(args) == 0
    (path,) = (tmp_path / "r").glob("teacher-ensemble-cpu-*-t.json")
    report = json.loads(path.read_text())
    assert report["command"].startswith("python -m benchmarks.teacher_ensemble --train graph-wavenet")
    assert "load average" in report["machine"] and report["date"]
    scores = report["scores"]
    assert len(scores["members"]) == 2 and set(scores["ensembles"]) == {"mean", "inverse-error"}
    for combine, e in scores["ensembles"].items():
        for h in HORIZONS:
            best = e["best_member"][h]
            assert scores["members"][best]["test"][h]["mae"] == min(m["test"][h]["mae"] for m in scores["members"].values())
            assert e["gain_over_best"][h] == pytest.approx(scores["members"][best]["test"][h]["mae"] - e["test"][h]["mae"])
        assert len(e["per_step_mae"]) == 12
    assert scores["ensembles"]["mean"]["weights"]["mean"] == [0.5, 0.5]
    students = report["students"]
    assert list(students) == ["plain", "distilled, best member", "distilled, ensemble (inverse-error)"]
    assert len(students["distilled, ensemble (inverse-error)"]["teachers"]) == 2
    assert all(set(HORIZONS) <= set(r["test"]) for r in students.values())
    md = path.with_suffix(".md").read_text()
    assert "| ensemble (inverse-error) |" in md and "| plain | none (fidelity to T0) |" in md


def test_needs_two_teachers_given_or_trained(tmp_path):
    with pytest.raises(SystemExit):
        main(["--teachers", str(tmp_path / "a.pt")])
    with pytest.raises(SystemExit):
        main(["--train", "graph-wavenet", "--teachers", str(tmp_path / "a.pt"), str(tmp_path / "b.pt")])
