"""``python -m benchmarks.distill_regime`` end to end on a tiny synthetic network."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks.distill_regime import RECIPES, main, paired
from stgkd.cli import main as cli

TINY_TEACHER = {"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8,
                "blocks": 1, "layers": 2}
PICK = ["dcgru w16 plain", "dcgru w16 KD"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_pairs_distilled_with_plain_by_days_and_resumes(tmp_path):
    data = tmp_path / "syn"
    assert cli(["data", "synth", "--out", str(data), "--nodes", "6", "--days", "3", "--seed", "0"]) == 0
    assert cli(["train", "--dataset", str(data), "--model", "graph-wavenet", "--out", str(tmp_path / "t"),
                "--hparams", json.dumps(TINY_TEACHER), "--epochs", "1", "--device", "cpu", "--no-progress"]) == 0
    teacher = tmp_path / "t" / "best.pt"
    args = ["--teacher", str(teacher), "--recipes", *PICK, "--days", "0.5", "all", "--seeds", "0",
            "--epochs", "1", "--batch-size", "32", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "r"),
            "--tag", "t"]
    assert main(args) == 0
    (path,) = (tmp_path / "r").glob("distill-regime-cpu-*-t.json")
    report = json.loads(path.read_text())
    assert report["complete"] and len(report["runs"]) == 4
    half = report["runs"]["dcgru w16 plain | 0.5 | 0"]
    assert half["train_windows"] == report["steps_per_day"] // 2
    assert half["epochs"] == 1  # without --match-steps every data size gets the same epochs
    assert report["runs"]["dcgru w16 plain | all | 0"]["train_windows"] is None
    for run in report["runs"].values():
        assert all(math.isfinite(run["test"][h]["mae"]) for h in ("15min", "60min", "avg"))
    assert kd_has_diagnostics(report["runs"]["dcgru w16 KD | all | 0"])
    assert report["runs"]["dcgru w16 plain | all | 0"]["val_fidelity"] > 0  # a plain student's distance too
    rows = paired(report)
    assert [(r["recipe"], r["days"]) for r in rows] == [("dcgru w16 KD", "0.5"), ("dcgru w16 KD", "all")]
    kd, plain = report["runs"]["dcgru w16 KD | all | 0"], report["runs"]["dcgru w16 plain | all | 0"]
    assert rows[1]["60min"]["delta"] == pytest.approx(kd["test"]["60min"]["mae"] - plain["test"]["60min"]["mae"])
    assert rows[1]["60min"]["pays"] is False  # one seed cannot show a gain beyond the seed spread
    assert RECIPES["dcgru w16 KD"]["baseline"] == "dcgru w16 plain"
    md = path.with_suffix(".md").read_text()
    assert "| dcgru w16 KD | dcgru w16 plain | 0.5 | 1 |" in md
    assert path.with_suffix(".png").stat().st_size > 1000
    # the same command continues a study: finished runs are kept, not trained again
    trained = {p: p.stat().st_mtime_ns for p in (tmp_path / "w").rglob("best.pt")}
    assert len(trained) == 4
    assert main(args) == 0
    again = json.loads(path.read_text())
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "w").rglob("best.pt")} == trained
    assert again["runs"] == report["runs"]
    # continued with another recipe, the study keeps reporting the earlier ones
    assert main([*args[:2], "--recipes", "gcn-gru w32 plain", *args[5:]]) == 0
    more = json.loads(path.read_text())
    assert more["recipes"] == [*PICK, "gcn-gru w32 plain"] and len(more["runs"]) == 6
    assert "| dcgru w16 KD | dcgru w16 plain | 0.5 | 1 |" in path.with_suffix(".md").read_text()


def test_match_steps_scales_epochs_to_the_data(tmp_path):
    data = tmp_path / "syn"
    assert cli(["data", "synth", "--out", str(data), "--nodes", "4", "--days", "3", "--seed", "0"]) == 0
    assert cli(["train", "--dataset", str(data), "--model", "graph-wavenet", "--out", str(tmp_path / "t"),
                "--hparams", json.dumps(TINY_TEACHER), "--epochs", "1", "--device", "cpu", "--no-progress"]) == 0
    assert main(["--teacher", str(tmp_path / "t" / "best.pt"), "--recipes", "dcgru w16 plain", "--days", "0.5",
                 "--seeds", "0", "--epochs", "1", "--patience", "1", "--match-steps", "--batch-size", "64",
                 "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "r")]) == 0
    (path,) = (tmp_path / "r").glob("distill-regime-cpu-*.json")
    report = json.loads(path.read_text())
    run = report["runs"]["dcgru w16 plain | 0.5 | 0"]
    expected = math.ceil(report["train_windows_all"] / run["train_windows"])
    assert run["epochs"] == expected > 1 and run["patience"] == expected
    assert run["epochs_run"] == expected  # trained as long as the full slice would be


def test_combine_puts_two_studies_side_by_side(tmp_path):
    base = {"teacher": {"path": "t.pt", "parameters": 1, "test": {h: {"mae": 1.0} for h in ("15min", "30min", "60min", "avg")}},
            "date": "d", "command": "c", "machine": "m", "data": "x", "steps_per_day": 288, "train_windows_all": 1395,
            "epochs": 30, "patience": 6, "lr": 0.003, "complete": True}

    def run(recipe, days, seed, mae):
        return {"recipe": recipe, "days": days, "seed": seed, "test": {h: {"mae": mae} for h in ("15min", "30min", "60min", "avg")},
                "best_epoch": 1, "train_mae": 1.0, "parameters": 5}

    a = {**base, "recipes": ["dcgru w32 plain", "dcgru w32 KD"], "days": ["all"], "seeds": [0],
         "runs": {"dcgru w32 plain | all | 0": run("dcgru w32 plain", "all", 0, 5.0),
                  "dcgru w32 KD | all | 0": run("dcgru w32 KD", "all", 0, 5.1)}}
    b = {**base, "recipes": ["dcgru w32 plain", "dcgru w32 KD"], "days": ["1"], "seeds": [0], "match_steps": True,
         "runs": {"dcgru w32 plain | 1 | 0": run("dcgru w32 plain", "1", 0, 5.3),
                  "dcgru w32 KD | 1 | 0": run("dcgru w32 KD", "1", 0, 5.0)}}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert main(["--combine", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "ab")]) == 0
    merged = json.loads((tmp_path / "ab.json").read_text())
    assert merged["days"] == ["1", "all"] and len(merged["runs"]) == 4
    rows = {r["days"]: r["60min"]["delta"] for r in paired(merged)}
    assert rows == {"1": pytest.approx(-0.3), "all": pytest.approx(0.1)}
    assert "combined from" in (tmp_path / "ab.md").read_text() and (tmp_path / "ab.png").stat().st_size > 1000
    (tmp_path / "c.json").write_text(json.dumps({**b, "teacher": {**base["teacher"], "path": "other.pt"}}))
    with pytest.raises(SystemExit, match="different teachers"):
        main(["--combine", str(tmp_path / "a.json"), str(tmp_path / "c.json"), "--out", str(tmp_path / "ac")])


def kd_has_diagnostics(run) -> bool:
    shares = run["grad_share"]
    return (run["val_fidelity"] > 0 and set(shares) == {"first", "last"}
            and sum(shares["first"].values()) == pytest.approx(1.0))


def test_unknown_recipe_and_bad_days_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        main(["--teacher", str(tmp_path / "x.pt"), "--recipes", "no such recipe"])
    with pytest.raises(SystemExit):
        main(["--teacher", str(tmp_path / "x.pt"), "--days", "zero"])
