"""benchmarks.counts: each row is the stgkd train command it names, read back from its run directory."""

from __future__ import annotations

import json

from benchmarks import counts
from stgkd.cli import main


def test_a_smoke_screen_runs_each_command_once_and_resumes(tmp_path, capsys):
    data_dir = tmp_path / "syn"
    assert main(["data", "synth", "--out", str(data_dir), "--nodes", "6", "--days", "2", "--seed", "0"]) == 0
    out = tmp_path / "runs"
    argv = ["--dataset", str(data_dir), "--out", str(out), "--only", "day lag, 100 epochs (the defaults before)", "mse loss, 100 epochs",
            "--flags=--epochs 1 --limit-batches 1 --device cpu --hparams hidden=4"]
    assert counts.main(argv) == 0
    text = capsys.readouterr().out
    assert "| day lag, 100 epochs (the defaults before) | 0 |" in text and "| mse loss, 100 epochs | 0 |" in text
    summary = json.loads((out / "mse-loss-100-epochs-s0" / "metrics.json").read_text())
    assert summary["epochs_run"] == 1
    stamp = (out / "day-lag-100-epochs-the-defaults-before-s0" / "metrics.json").stat().st_mtime_ns
    assert counts.main(argv) == 0  # read again, not run again
    assert (out / "day-lag-100-epochs-the-defaults-before-s0" / "metrics.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert counts.main([*argv[:4], "--only", "defaults", "day lag, 100 epochs (the defaults before)", "--seeds", "0", "1",
                        "--no-run"]) == 0  # only what is there
    text = capsys.readouterr().out
    assert "| day lag, 100 epochs (the defaults before) | 0 |" in text and "| defaults |" not in text
    assert not (out / "defaults-s0").exists() and not (out / "day-lag-100-epochs-the-defaults-before-s1").exists()
    row = counts.row("x", 0, counts.command("d", "stgru", ["--loss", "mse"], 0, out), summary)
    assert row["command"].startswith("stgkd train --dataset d --model stgru --test") and "--loss mse" in row["command"]
    assert row["margin"]["avg"] == summary["test"]["avg"]["mae"] / summary["baselines"]["best"]["avg"]["mae"] - 1


def test_the_results_section_shows_each_screen_and_the_seed_mean(tmp_path):
    from benchmarks.table.counts import counts_section

    def r(setting, seed, test, base):
        return {"setting": setting, "seed": seed, "command": "stgkd train ...", "val_mae": 0.41,
                "test_mae": {"3h": test, "avg": test}, "best_baseline": {"avg": {"baseline": "historical median",
                                                                                 "mae": base}},
                "margin": {"avg": test / base - 1}}

    assert counts_section(tmp_path) == ""
    report = {"date": "2026-12-07", "machine": "cpu", "load_average_start": [0.1], "command": "python -m ...",
              "dataset": "synthetic-counts", "model": "stgru",
              "rows": [r("defaults", 0, 0.36, 0.40), r("defaults", 1, 0.38, 0.40), r("mse", 0, 0.44, 0.40)]}
    (tmp_path / "counts-x.json").write_text(json.dumps(report))
    (tmp_path / "counts-old.json").write_text(json.dumps({"not": "a screen"}))
    text = counts_section(tmp_path)
    assert "### `counts-x.json`: synthetic-counts, `stgru`" in text and "counts-old" not in text
    assert "| defaults | 0 | 0.4100 | 0.3600 | 0.3600 | 0.4000 (historical median) | -10.0 % |" in text
    assert "| mse | 0 | 0.4100 | 0.4400 | 0.4400 | 0.4000 (historical median) | +10.0 % |" in text
    assert ("- defaults, seeds 0, 1: test MAE over the horizon 0.3700 ± 0.0141, margin against the best baseline "
            "-7.5 % on average, -5.0 % on the worst seed") in text
