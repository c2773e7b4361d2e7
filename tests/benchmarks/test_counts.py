"""benchmarks.counts: each row is the stgkd train command it names, read back from its run directory."""

from __future__ import annotations

import json

from benchmarks import counts
from stgkd.cli import main


def test_a_smoke_screen_runs_each_command_once_and_resumes(tmp_path, capsys):
    data_dir = tmp_path / "syn"
    assert main(["data", "synth", "--out", str(data_dir), "--nodes", "6", "--days", "2", "--seed", "0"]) == 0
    out = tmp_path / "runs"
    argv = ["--dataset", str(data_dir), "--out", str(out), "--only", "day lag (the defaults before the week)", "defaults, mse loss",
            "--flags=--epochs 1 --limit-batches 1 --device cpu --hparams hidden=4"]
    assert counts.main(argv) == 0
    text = capsys.readouterr().out
    assert "| day lag (the defaults before the week) | 0 |" in text and "| defaults, mse loss | 0 |" in text
    summary = json.loads((out / "defaults-mse-loss-s0" / "metrics.json").read_text())
    assert summary["epochs_run"] == 1
    stamp = (out / "day-lag-the-defaults-before-the-week-s0" / "metrics.json").stat().st_mtime_ns
    assert counts.main(argv) == 0  # read again, not run again
    assert (out / "day-lag-the-defaults-before-the-week-s0" / "metrics.json").stat().st_mtime_ns == stamp
    row = counts.row("x", 0, counts.command("d", "stgru", ["--loss", "mse"], 0, out), summary)
    assert row["command"].startswith("stgkd train --dataset d --model stgru --test") and "--loss mse" in row["command"]
    assert row["margin"]["avg"] == summary["test"]["avg"]["mae"] / summary["baselines"]["best"]["avg"]["mae"] - 1
