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
    assert len(lines) == 8 and lines[0] == ("defaults: stgkd train --dataset synthetic-counts --model stgru --test "
                                            "--no-progress --seed 0 --out runs/counts/defaults-s0 --overwrite")
    assert lines[2].endswith("--out runs/counts/day-lag-100-epochs-the-defaults-before-s0 --overwrite --seasonal day "
                             "--no-day-of-week --epochs 100")
    assert lines[6].endswith("--out runs/counts/defaults-and-weekday-embedding-8-s0 --overwrite --hparams dow_embed=8")
    # the default teacher, at its command's defaults too (a GPU's work at 675 stops: about 28 s a step on 2 CPU cores)
    assert lines[7] == ("default teacher: stgkd train --dataset synthetic-counts --model graph-wavenet --test "
                        "--no-progress --seed 0 --out runs/counts/default-teacher-s0 --overwrite")


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
    assert ("- chosen for `staeformer` on validation: staeformer lr 2e-2 + day lag (val MAE 2.9500 on average, seeds "
            "0, 1, confirmed") in text  # the screen's choice, run on another seed
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

    rows = [r("a", 0, 3.0), r("a", 1, 3.0), r("b", 0, 3.1), r("b", 1, 2.0), r("c", 1, 2.9, "n")]
    choice = chosen(rows)
    assert choice["m"]["setting"] == "b" and choice["m"]["seeds"] == [0, 1] and choice["m"]["val_mae"] == 2.55
    assert choice["n"]["setting"] == "c" and not choice["m"]["confirmed"]
    assert chosen([r("a", 0, 3.0), r("b", 1, 2.0)])["m"] == {"setting": "b", "val_mae": 2.0, "seeds": [1],
                                                              "common": False, "confirmed": False,
                                                              "rows": [r("b", 1, 2.0)]}
    # the screen (seed 0) picks b; b and a are confirmed on seeds 0-2, where a is better: a is the choice
    screen = [r("a", 0, 3.0), r("b", 0, 2.9), r("c", 0, 3.5)]
    more = [r("a", 1, 2.8), r("a", 2, 2.8), r("b", 1, 3.0), r("b", 2, 3.0)]
    assert chosen(screen)["m"]["setting"] == "b"
    confirmed = chosen(screen + more)["m"]
    assert confirmed["setting"] == "a" and confirmed["seeds"] == [0, 1, 2] and confirmed["confirmed"]
    assert confirmed["val_mae"] == pytest.approx((3.0 + 2.8 + 2.8) / 3)
    only = chosen(screen + [r("b", 1, 3.0), r("b", 2, 3.0)])["m"]  # the winner confirmed alone stays the choice
    assert only["setting"] == "b" and only["seeds"] == [0, 1, 2]


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
    # the screen (seed 0) chose the weekday embedding; confirmed on seeds 0-2 beside the defaults, it is not better
    assert ("- chosen for `stgru` on validation: defaults (val MAE 0.4031 on average, seeds 0, 1, 2, confirmed: the "
            "seeds it shares with the settings run on as many; best epoch 99 of 109, 102 of 112, 118 of 128)") in text


# ============================================================================ distill plans


def test_a_distill_plan_names_its_missing_teacher(tmp_path, capsys):
    with pytest.raises(SystemExit):
        screen.main(["distill", "--out", str(tmp_path)])
    assert "--teacher PATH [PATH ...]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        screen.main(["regime", "--teacher", str(tmp_path / "none.pt"), "--out", str(tmp_path)])
    assert f"--teacher {tmp_path / 'none.pt'}: no such file" in capsys.readouterr().err
    (tmp_path / "a.pt").write_bytes(b"")
    with pytest.raises(SystemExit):
        screen.main(["ensemble", "--teacher", str(tmp_path / "a.pt"), "--out", str(tmp_path)])
    assert "--teacher: the ensemble plan needs at least 2 teacher checkpoints" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        screen.main(["counts", "--teacher", str(tmp_path / "a.pt"), "--list"])
    assert "a teacher is for the distill plans (distill, regime, ensemble)" in capsys.readouterr().err


def test_every_distill_row_is_a_stgkd_distill_command_and_keeps_the_retired_settings(capsys):
    from stgkd.cli import build_parser
    from stgkd.commands.distill import spec_from_args

    parser = build_parser("distill")
    for name in ("distill", "regime", "ensemble"):
        plan = screen.PLANS[name]
        args, _ = screen.parse([name, "--list"])  # placeholders for the teachers
        for label in plan.settings:
            argv, out = screen._argv(args, plan, label, 0)
            spec = spec_from_args(parser.parse_args(argv[3:]))  # every flag known, every value valid
            assert spec.model == (plan.settings[label][0] or plan.model) and out.name == f"{screen.slug(label)}-s0"
            base = screen.plain_of(plan, label)
            assert base is None or base in plan.settings
            assert (base is None) == (spec.distill.w_out == spec.distill.w_feat == spec.distill.w_rel == 0
                                      and not spec.distill.inherit_adjacency) or name == "distill"
    ablation = screen.PLANS["distill"]
    assert len(ablation.settings) == 16 and "output only (out 1, tau 1)" in ablation.settings
    assert screen.plain_of(ablation, "sensor embedding (16), output (out 1, tau 1)") == "sensor embedding (16), plain"
    regime = screen.PLANS["regime"]
    assert len(regime.settings) == 18 and regime.settings["dcgru w32 KD, 1 day"][1][-2:] == ["--train-days", "1"]
    assert screen.plain_of(regime, "dcgru w32 KD, all days") == "dcgru w32 plain, all days"
    assert screen.main(["ensemble", "--list", "--only", "best member", "ensemble, inverse-error"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "best member: stgkd distill --teacher BEST_CKPT --student stgru --out runs/ensemble/best-member-s0 --test "
        "--no-progress --seed 0 --overwrite --hidden 32 --epochs 30",
        "ensemble, inverse-error: stgkd distill --teacher CKPT1 CKPT2 --student stgru --out "
        "runs/ensemble/ensemble-inverse-error-s0 --test --no-progress --seed 0 --overwrite --hidden 32 "
        "--teacher-combine inverse-error --epochs 30"]


def _fake_distill(out, label, seed, val, test, fidelity=1.5, teacher=3.0):
    run = out / f"{screen.slug(label)}-s{seed}"
    run.mkdir(parents=True)
    best = {h: {"baseline": "historical average", "mae": 5.0} for h in HORIZONS}
    (run / "metrics.json").write_text(json.dumps({
        "epochs_run": 30, "best_epoch": 20, "val": {"avg": {"mae": val}},
        "test": {h: {"mae": test + (0.5 if h == "60min" else 0.0)} for h in HORIZONS}, "baselines": {"best": best},
        "val_fidelity": {"avg": {"mae": fidelity}}, "teacher_val_mae": teacher}))


def test_the_distill_table_pairs_the_gain_by_seed_and_chooses_on_validation(tmp_path, monkeypatch, capsys):
    from benchmarks.table.screen import screen_sections

    teachers = [tmp_path / "t0.pt", tmp_path / "t1.pt"]
    for path in teachers:
        path.write_bytes(b"")
    meta = {"name": "synthetic", "sensor_ids": ["a", "b"], "interval_minutes": 5, "in_steps": 12, "out_steps": 12}
    monkeypatch.setattr(screen, "_teacher_record", lambda paths: [
        {"path": p, "model": "graph-wavenet", "epoch": 4, "val_mae": v, "data": meta} for p, v in zip(paths, (3.2, 3.1))])
    out = tmp_path / "runs"
    for seed, test in enumerate((4.0, 4.1, 4.2)):
        _fake_distill(out, "plain", seed, val=3.5, test=test)
    _fake_distill(out, "best member", 0, val=3.4, test=3.9)  # seeds 0 and 1: paired on those alone
    _fake_distill(out, "best member", 1, val=3.4, test=3.9, fidelity=0.5)
    for seed, test in enumerate((4.3, 4.3, 4.3)):  # worse on test, best on validation: chosen
        _fake_distill(out, "ensemble, mean", seed, val=3.0, test=test, teacher=2.9)
    monkeypatch.setattr(screen, "RESULTS", tmp_path / "results")
    (tmp_path / "results").mkdir()
    assert screen.main(["ensemble", "--teacher", *map(str, teachers), "--out", str(out), "--seeds", "0", "1", "2",
                        "--no-run", "--record", "ensemble-cpu-x"]) == 0
    text = capsys.readouterr().out
    assert f"the best member on validation: `{teachers[1]}`" in text and "`graph-wavenet`" not in text
    assert "| setting | seeds | val MAE | test 15min | test 30min | test 60min | test avg | gain 60min | gain avg |" in text
    assert ("| plain | 0, 1, 2 | 3.5000 ± 0.0000 | 4.1000 ± 0.1000 | 4.1000 ± 0.1000 | 4.6000 ± 0.1000 | "
            "4.1000 ± 0.1000 |  |  |  |") in text
    # the gain on the seeds both ran (0 and 1: 4.0 - 3.9 and 4.1 - 3.9), not against plain's mean over 0, 1, 2
    assert ("| best member | 0, 1 | 3.4000 ± 0.0000 | 3.9000 ± 0.0000 | 3.9000 ± 0.0000 | 4.4000 ± 0.0000 | "
            "3.9000 ± 0.0000 | +0.1500 ± 0.0707 | +0.1500 ± 0.0707 | plain | 1.0000 ± 0.7071 | 3.0000 ± 0.0000 |") in text
    assert "| -0.2000 ± 0.1000 | -0.2000 ± 0.1000 | plain | 1.5000 ± 0.0000 | 2.9000 ± 0.0000 |" in text
    assert "| ensemble, inverse-error |" not in text  # not run: skipped
    assert "- chosen for `stgru` on validation: ensemble, mean (val MAE 3.0000 on average, seeds 0, 1," in text
    assert f"--teacher {teachers[1]} --student stgru --out {out / 'best-member-s1'}" in text
    assert f"--teacher {teachers[0]} {teachers[1]} --student stgru --out {out / 'ensemble-mean-s2'}" in text
    (tmp_path / "results" / "distill-ablation-cpu-x.json").write_text(json.dumps({"settings": {}}))
    section = screen_sections(tmp_path / "results")
    assert "## A student from the best teacher and from the ensemble" in section and "distill-ablation" not in section
    assert "| best member | 0, 1 | 3.4000 ± 0.0000 |" in section and "chosen for `stgru` on validation: ensemble, mean" in section


def test_the_ensemble_plan_runs_end_to_end_at_toy_size(tiny, tmp_path, capsys):
    teachers = []
    for seed in (0, 1):
        run = tmp_path / f"t{seed}"
        assert main(["train", "--dataset", tiny, "--model", "graph-wavenet", "--out", str(run), "--seed", str(seed),
                     "--hparams", *screen.SMOKE_HPARAMS["graph-wavenet"], *screen.SMOKE_FLAGS, "--no-progress"]) == 0
        teachers.append(str(run / "best.pt"))
    capsys.readouterr()
    out = tmp_path / "runs"
    argv = ["ensemble", "--teacher", *teachers, "--out", str(out), "--smoke", "--only", "plain", "best member",
            "ensemble, inverse-error"]
    assert screen.main(argv) == 0
    text = capsys.readouterr().out
    assert "the best member on validation: `" in text
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"plain", "best member", "ensemble, inverse-error"}
    for label in ("best member", "ensemble, inverse-error"):
        summary = json.loads((out / f"{screen.slug(label)}-s0" / "metrics.json").read_text())
        assert summary["epochs_run"] == 1 and summary["val_fidelity"]["avg"]["mae"] > 0
        assert rows[label][9] == "plain" and rows[label][7].startswith(("+", "-"))  # the gain over plain, seed 0
    assert json.loads((out / "ensemble-inverse-error-s0" / "metrics.json").read_text())["teachers"]["combine"] == \
        "inverse-error"
    assert "- chosen for `stgru` on validation: " in text
    stamp = (out / "plain-s0" / "metrics.json").stat().st_mtime_ns
    assert screen.main(argv) == 0  # read again, not run again
    assert (out / "plain-s0" / "metrics.json").stat().st_mtime_ns == stamp


def test_a_gain_on_fewer_seeds_than_the_setting_ran_says_which():
    from benchmarks.table.screen import distill_table

    def r(setting, seed, test, plain=None):
        return {"setting": setting, "seed": seed, "val_mae": 1.0, "test_mae": {"1h": test, "avg": test}, "plain": plain}

    lines = distill_table({"rows": [r("plain", 0, 2.0), r("kd", 0, 1.5, "plain"), r("kd", 3, 1.0, "plain"),
                                    r("other", 1, 1.0, "missing")]})
    assert lines[0].startswith("| setting | seeds | val MAE | test 1h | test avg | gain 1h | gain avg | vs |")
    assert lines[3] == "| kd | 0, 3 | 1.0000 ± 0.0000 | 1.2500 ± 0.3536 | 1.2500 ± 0.3536 | +0.5000 | +0.5000 | " \
                       "plain (seeds 0) | – | – |"
    assert "| – | – | missing (seeds none: not run) |" in lines[4]
