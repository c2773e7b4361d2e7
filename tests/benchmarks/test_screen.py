"""benchmarks.screen: each row is the stgkd train command it names, read back from its run directory; each
plan end to end at toy size; the setting chosen per model family on validation, never on test."""

from __future__ import annotations

import json

import pytest

from benchmarks import screen
from benchmarks.table.screen import chosen, screen_sections
from stgkd.cli import main

HORIZONS = ("15min", "30min", "60min", "avg")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 6-sensor, 2-day synthetic series at 5 minutes, as a folder."""
    data_dir = tmp_path_factory.mktemp("data") / "syn"
    assert main(["data", "synth", "--out", str(data_dir), "--nodes", "6", "--days", "2", "--seed", "0"]) == 0
    return str(data_dir)


def test_the_counts_plan_runs_each_command_once_and_resumes(tiny, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["counts", "--dataset", tiny, "--out", str(out), "--only", "day lag, 100 epochs (the defaults before)",
            "mse loss, 100 epochs", "--flags=--epochs 1 --limit-batches 1 --device cpu --hparams hidden=4"]
    assert screen.main(argv) == 0
    text = capsys.readouterr().out
    assert "| day lag, 100 epochs (the defaults before) | 0 |" in text and "| mse loss, 100 epochs | 0 |" in text
    assert "- chosen for `stgru` on validation: " in text
    summary = json.loads((out / "mse-loss-100-epochs-s0" / "metrics.json").read_text())
    assert summary["epochs_run"] == 1
    stamp = (out / "day-lag-100-epochs-the-defaults-before-s0" / "metrics.json").stat().st_mtime_ns
    assert screen.main(argv) == 0  # read again, not run again
    assert (out / "day-lag-100-epochs-the-defaults-before-s0" / "metrics.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert screen.main([*argv[:5], "--only", "defaults", "day lag, 100 epochs (the defaults before)",
                        "--seeds", "0", "1", "--no-run"]) == 0  # only what is there
    text = capsys.readouterr().out
    assert "| day lag, 100 epochs (the defaults before) | 0 |" in text and "| defaults |" not in text
    assert not (out / "defaults-s0").exists() and not (out / "day-lag-100-epochs-the-defaults-before-s1").exists()
    row = screen.row("x", 0, screen.command("d", "stgru", ["--loss", "mse"], 0, out), summary)
    assert row["command"].startswith("stgkd train --dataset d --model stgru --test") and "--loss mse" in row["command"]
    assert row["model"] == "stgru"
    assert row["margin"]["avg"] == summary["test"]["avg"]["mae"] / summary["baselines"]["best"]["avg"]["mae"] - 1


def test_the_counts_plan_keeps_the_commands_and_run_directories_of_benchmarks_counts(capsys):
    assert screen.main(["counts", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[0] == ("defaults: stgkd train --dataset synthetic-counts --model stgru --test "
                                            "--no-progress --seed 0 --out runs/counts/defaults-s0 --overwrite")
    assert lines[2].endswith("--out runs/counts/day-lag-100-epochs-the-defaults-before-s0 --overwrite --seasonal day "
                             "--no-day-of-week --epochs 100")


def test_the_teachers_plan_screens_each_family_as_the_student_was(capsys):
    plan = screen.PLANS["teachers"]
    assert plan.dataset == "../shared/data/metr-la-week" and plan.epochs == 30
    for family in ("graph-wavenet", "staeformer"):  # the student's rates with and without yesterday's readings
        flags = sorted((f[1], f[3]) for m, f in plan.settings.values() if m == family)
        assert flags == sorted([(lr, "day") for lr in ("1e-3", "3e-3", "5e-3", "1e-2", "2e-2")]
                               + [(lr, "none") for lr in ("1e-3", "3e-3", "1e-2")])
    assert screen.main(["teachers", "--list", "--only", "staeformer lr 3e-3 + day lag"]) == 0
    assert capsys.readouterr().out.strip() == (
        "staeformer lr 3e-3 + day lag: stgkd train --dataset ../shared/data/metr-la-week --model staeformer --test "
        "--no-progress --seed 0 --out runs/teachers/staeformer-lr-3e-3-and-day-lag-s0 --overwrite --lr 3e-3 "
        "--seasonal day --epochs 30")


def test_the_teachers_plan_runs_end_to_end_at_toy_size(tiny, tmp_path, capsys):
    out = tmp_path / "runs"
    only = ["graph-wavenet lr 3e-3 + day lag", "staeformer lr 1e-3"]
    assert screen.main(["teachers", "--dataset", tiny, "--out", str(out), "--smoke", "--only", *only]) == 0
    text = capsys.readouterr().out
    assert "| test 15min | test 30min | test 60min | test avg |" in text
    for label in only:
        assert f"| {label} | 0 |" in text
        summary = json.loads((out / f"{screen.slug(label)}-s0" / "metrics.json").read_text())
        assert summary["epochs_run"] == 1
    assert "- chosen for `graph-wavenet` on validation: graph-wavenet lr 3e-3 + day lag" in text
    assert "- chosen for `staeformer` on validation: staeformer lr 1e-3" in text
    assert "--model staeformer --test" in text and "--seasonal day --epochs 1" in text


def _fake(out, label, seed, val, test):
    run = out / f"{screen.slug(label)}-s{seed}"
    run.mkdir(parents=True)
    best = {h: {"baseline": "historical median", "mae": 4.0} for h in HORIZONS}
    (run / "metrics.json").write_text(json.dumps({
        "epochs_run": 30, "best_epoch": 28, "val": {"avg": {"mae": val}},
        "test": {h: {"mae": test} for h in HORIZONS}, "baselines": {"best": best}}))


def test_the_choice_is_made_on_validation_not_on_test(tiny, tmp_path, capsys):
    out = tmp_path / "runs"
    _fake(out, "graph-wavenet lr 1e-3", 0, val=3.0, test=4.5)
    _fake(out, "graph-wavenet lr 1e-2 + day lag", 0, val=3.2, test=3.5)  # better on test, worse on validation
    _fake(out, "graph-wavenet lr 1e-2 + day lag", 1, val=2.0, test=3.4)  # a seed the other setting lacks
    _fake(out, "staeformer lr 3e-3", 0, val=3.1, test=3.9)
    _fake(out, "staeformer lr 2e-2 + day lag", 0, val=2.9, test=4.9)
    _fake(out, "staeformer lr 2e-2 + day lag", 1, val=3.0, test=4.8)
    base = ["teachers", "--dataset", tiny, "--out", str(out), "--no-run"]
    assert screen.main([*base, "--seeds", "0", "1"]) == 0
    text = capsys.readouterr().out
    assert ("- chosen for `graph-wavenet` on validation: graph-wavenet lr 1e-3 (val MAE 3.0000, seed 0, the seeds "
            "every setting of the family ran; best epoch 28 of 30)") in text
    assert "- chosen for `staeformer` on validation: staeformer lr 2e-2 + day lag (val MAE 2.9000, seed 0," in text
    assert screen.main([*base, "--chosen", "--seeds", "0", "1"]) == 0  # the choices, on the seeds there are
    text = capsys.readouterr().out
    rows = [line.split(" | ")[0:2] for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == [["| graph-wavenet lr 1e-3", "0"], ["| staeformer lr 2e-2 + day lag", "0"],
                        ["| staeformer lr 2e-2 + day lag", "1"]]
    with pytest.raises(SystemExit):
        screen.main([*base, "--record", "counts-x"])  # a teachers record is named teachers-...
    with pytest.raises(SystemExit):
        screen.main([*base, "--only", "graph-wavenet lr 4e-3"])


def test_chosen_compares_settings_on_the_seeds_they_share():
    def r(setting, seed, val, model="m"):
        return {"setting": setting, "seed": seed, "val_mae": val, "model": model, "best_epoch": 1, "epochs_run": 1}

    rows = [r("a", 0, 3.0), r("a", 1, 3.0), r("b", 0, 3.1), r("b", 1, 2.0), r("b", 2, 1.0), r("c", 1, 2.9, "n")]
    choice = chosen(rows)
    assert choice["m"]["setting"] == "b" and choice["m"]["seeds"] == [0, 1] and choice["m"]["val_mae"] == 2.55
    assert choice["n"]["setting"] == "c"
    assert chosen([r("a", 0, 3.0), r("b", 1, 2.0)])["m"] == {"setting": "b", "val_mae": 2.0, "seeds": [1],
                                                              "common": False, "rows": [r("b", 1, 2.0)]}


def test_the_results_sections_show_each_screen_its_choice_and_the_seed_mean(tmp_path):
    def r(setting, seed, test, base, val=0.41, **model):
        return {"setting": setting, "seed": seed, "command": "stgkd train ...", "val_mae": val, "epochs_run": 9,
                "best_epoch": 8, "test_mae": {"3h": test, "avg": test},
                "best_baseline": {"avg": {"baseline": "historical median", "mae": base}},
                "margin": {"avg": test / base - 1}, **model}

    assert screen_sections(tmp_path) == ""
    report = {"date": "2026-12-07", "machine": "cpu", "load_average_start": [0.1], "command": "python -m ...",
              "dataset": "synthetic-counts", "model": "stgru",  # a record from before rows named their model
              "rows": [r("defaults", 0, 0.36, 0.40), r("defaults", 1, 0.38, 0.40), r("mse", 0, 0.44, 0.40, 0.40)]}
    (tmp_path / "counts-x.json").write_text(json.dumps(report))
    (tmp_path / "counts-old.json").write_text(json.dumps({"not": "a screen"}))
    teachers = dict(report, plan="teachers", model="graph-wavenet, staeformer",
                    rows=[r("graph-wavenet lr 1e-3", 0, 0.30, 0.40, model="graph-wavenet"),
                          r("staeformer lr 1e-3", 0, 0.32, 0.40, model="staeformer")])
    (tmp_path / "teachers-y.json").write_text(json.dumps(teachers))
    text = screen_sections(tmp_path)
    assert "### `counts-x.json`: synthetic-counts, `stgru`" in text and "counts-old" not in text
    assert "| defaults | 0 | 0.4100 | 0.3600 | 0.3600 | 0.4000 (historical median) | -10.0 % |" in text
    assert "| mse | 0 | 0.4000 | 0.4400 | 0.4400 | 0.4000 (historical median) | +10.0 % |" in text
    assert "- chosen for `stgru` on validation: mse (val MAE 0.4000, seed 0," in text  # on validation only
    assert ("- defaults, seeds 0, 1: test MAE over the horizon 0.3700 ± 0.0141, margin against the best baseline "
            "-7.5 % on average, -5.0 % on the worst seed") in text
    assert text.index("## A count network") < text.index("## The teacher families") < text.index("teachers-y.json")
    assert "- chosen for `graph-wavenet` on validation: graph-wavenet lr 1e-3" in text
    assert "- chosen for `staeformer` on validation: staeformer lr 1e-3" in text


def test_the_committed_count_record_renders_with_its_choice():
    text = screen_sections(screen.RESULTS)
    assert "### `counts-cpu-2026-12-07.json`: synthetic-counts, `stgru`" in text
    assert ("- chosen for `stgru` on validation: defaults (val MAE 0.4054, seed 0, the seeds every setting of the "
            "family ran; best epoch 99 of 109)") in text
