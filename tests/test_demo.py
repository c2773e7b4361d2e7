"""`stgkd demo` end to end on a tiny synthetic network."""

import json
import re

import pytest
import torch

from stgkd.cli import main
from stgkd.commands.demo import Gain, gain_of, setting_of
from stgkd.data.rebuild import prepare_from_meta
from stgkd.engine import load_checkpoint
from stgkd.engine.checkpoint import model_from_checkpoint
from stgkd.engine.evaluate import evaluate_checkpoint

#: the weights ``stgkd demo`` distils with: DistillConfig's documented defaults (with augmented views); the plain student has
#: only the supervised term
DISTILLED = {"w_sup": 1.0, "w_out": 1.0, "w_feat": 0.1, "w_rel": 0.1}
PLAIN = {"w_sup": 1.0, "w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}
SEASONAL = ["value", "time_of_day", "seasonal_day", "seasonal_day_observed"]
#: one number of the gain line: signed, with decimals, possibly a percentage or a speed-up
NUMBER = r"([+-]?\d+\.\d+|\d+%)"


def test_the_gain_by_hand():
    rows = [{"test": {"60min": {"mae": m60}, "avg": {"mae": avg}}, "latency_ms": {"b1": ms}}
            for m60, avg, ms in ((2.0, 1.5, 8.0), (3.0, 2.0, 1.1), (2.5, 1.9, 1.6))]  # teacher, plain, distilled
    gain = gain_of(*rows, horizon="60min")
    assert gain.gained == pytest.approx({"60min": 0.5, "avg": 0.1})
    assert gain.gap_closed == pytest.approx({"60min": 0.5, "avg": 0.2})
    assert gain.speedup == pytest.approx(5.0)  # the distilled student's latency, not the plain one's
    assert gain.verdicts == {"teacher_better_than_plain": True, "distilled_better_than_plain": True,
                             "speedup_at_least_5x": True}
    assert "+0.500 MAE at 60min" in gain.line() and "50% of the teacher-plain gap at 60min" in gain.line()
    # a teacher no better than the plain student leaves no gap to close; distillation that hurts is negative
    worse = Gain(horizon="60min", teacher={"60min": 3.2, "avg": 1.9}, plain={"60min": 3.0, "avg": 2.0},
                 distilled={"60min": 3.1, "avg": 1.8}, teacher_ms=4.0, student_ms=1.0)
    assert worse.gained == pytest.approx({"60min": -0.1, "avg": 0.2})
    assert worse.gap_closed["60min"] is None and worse.gap_closed["avg"] == pytest.approx(2.0)
    assert worse.verdicts == {"teacher_better_than_plain": False, "distilled_better_than_plain": False,
                              "speedup_at_least_5x": False}


def test_the_setting_names_the_students_data():
    recent = setting_of(2806, 1.0, 5)
    assert recent["name"] == "recent-days" and recent["student_train_windows"] == 288
    assert recent["teacher_train_windows"] == 2806 and "most recent 1 day" in recent["label"]
    assert setting_of(2806, 0.5, 5)["student_train_windows"] == 144
    assert setting_of(2806, None, 5)["name"] == "all-labels"
    assert setting_of(200, 1.0, 5)["name"] == "all-labels"  # a day holds more windows than the split
    assert setting_of(2806, None, 5)["student_train_windows"] == 2806


def test_demo_prints_and_writes_the_table(tmp_path, capsys):
    data_dir = tmp_path / "net"
    assert main(["data", "synth", "--out", str(data_dir), "--nodes", "8", "--days", "3", "--seed", "1"]) == 0
    out = tmp_path / "demo"
    rc = main([
        "demo", "--dataset", str(data_dir), "--out", str(out), "--teacher-epochs", "1", "--student-epochs", "1",
        "--limit-batches", "2", "--latency-iters", "3", "--device", "cpu", "--hidden", "8",
        "--teacher-hparams", '{"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8}',
        "--student-hparams", '{"rank": 3}',
    ])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "stgru w8 distilled" in printed and "measured on cpu" in printed  # the default student
    summary = json.loads((out / "summary.json").read_text())
    names = [r["model"] for r in summary["rows"]]
    assert names == ["last value", "teacher graph-wavenet", "stgru w8 plain", "stgru w8 distilled"]
    rows = dict(zip(names, summary["rows"]))
    ckpts = {"teacher graph-wavenet": out / "teacher" / "best.pt", "stgru w8 plain": out / "student-plain" / "best.pt",
             "stgru w8 distilled": out / "student-distilled" / "best.pt"}
    teacher, plain, distilled = (load_checkpoint(ckpts[n]) for n in ckpts)

    # the setting: the students on the most recent day of the training split, the teacher on all of it,
    # named above the table and in summary.json
    teacher_windows = len(prepare_from_meta(teacher["data"]).train)
    assert summary["setting"]["name"] == "recent-days" and summary["setting"]["student_train_days"] == 1
    assert summary["setting"]["student_train_windows"] == 288 < teacher_windows
    assert summary["setting"]["teacher_train_windows"] == teacher_windows
    header = printed.splitlines()[printed.splitlines().index(next(l for l in printed.splitlines()
                                                                 if l.startswith("model "))) - 1]
    assert header.startswith("test MAE on") and summary["setting"]["label"] in header
    assert teacher["train_config"]["train_days"] is None
    assert plain["train_config"]["train_days"] == distilled["train_config"]["train_days"] == 1
    # every model at its family's defaults: stgru at 1e-2 on yesterday's readings, the teacher at 1e-3 with
    # the same seasonal channels (--teacher-seasonal day)
    assert plain["train_config"]["lr"] == distilled["train_config"]["lr"] == 1e-2
    assert teacher["train_config"]["lr"] == 1e-3
    assert plain["data"]["input_features"] == teacher["data"]["input_features"] == SEASONAL
    assert teacher["train_config"]["patience"] == 3  # early stopping

    # the distilled student was distilled, the plain one was not: the weights each run recorded
    assert {k: distilled["distill"][k] for k in DISTILLED} == DISTILLED
    assert {k: plain["distill"][k] for k in PLAIN} == PLAIN
    # ... and learned from teacher-labelled augmented views too (the demo's --augment default)
    assert distilled["distill"]["augment"] == "noise:0.1,dropout:0.1,mixup:0.4,shift:3"
    assert plain["distill"]["augment"] is None
    assert summary["distillation"] == {k: distilled["distill"][k] for k in summary["distillation"]}
    assert summary["distillation"]["augment"] == distilled["distill"]["augment"]
    assert distilled["teacher_checkpoint"] == plain["teacher_checkpoint"] and distilled["model"] == plain["model"]
    # same seed, same start, different losses: different weights
    assert any(not torch.equal(distilled["state_dict"][k], plain["state_dict"][k]) for k in plain["state_dict"])

    # the table's last line: what distillation gained, from the rows themselves
    def mae(name, h):
        return rows[name]["test"][h]["mae"]

    t, pl, kd = "teacher graph-wavenet", "stgru w8 plain", "stgru w8 distilled"
    gained = {h: mae(pl, h) - mae(kd, h) for h in ("60min", "avg")}
    gap = {h: gained[h] / (mae(pl, h) - mae(t, h)) if mae(pl, h) > mae(t, h) else None for h in ("60min", "avg")}
    speedup = rows[t]["latency_ms"]["b1"] / rows[kd]["latency_ms"]["b1"]
    lines = printed.splitlines()
    line = next(l for l in lines if l.startswith("distillation gained"))
    assert lines[lines.index(line) - 1].startswith("latency:")  # the table's last line
    short = line.replace("none (the teacher is not better than plain)", "none")
    numbers = re.findall(NUMBER, short)
    assert float(numbers[0]) == pytest.approx(gained["60min"], abs=6e-4)
    assert float(numbers[1]) == pytest.approx(mae(pl, "60min"), abs=6e-4)
    assert float(numbers[2]) == pytest.approx(mae(kd, "60min"), abs=6e-4)
    assert float(numbers[3]) == pytest.approx(gained["avg"], abs=6e-4)
    shares = re.findall(r"closed (\S+) of the teacher-plain gap at 60min and (\S+) avg", short)[0]
    for share, want in zip(shares, (gap["60min"], gap["avg"])):
        assert share == ("none" if want is None else f"{100 * want:.0f}%")
    assert float(re.search(r"the student is (\d+\.\d)x faster", line).group(1)) == pytest.approx(speedup, abs=0.051)
    assert line == summary["gain"]["line"]
    assert summary["gain"]["gained"] == pytest.approx(gained)
    assert summary["gain"]["speedup_b1"] == pytest.approx(speedup)
    assert summary["gain"]["verdicts"]["distilled_better_than_plain"] == all(gained[h] > 0 for h in gained)
    assert summary["gain"]["verdicts"]["teacher_better_than_plain"] == all(
        mae(t, h) < mae(pl, h) for h in ("60min", "avg"))

    # the plot beside summary.json: a PNG of two sensors at the longest horizon
    png = out / "forecasts.png"
    assert summary["plot"]["path"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(summary["plot"]["sensors"]) == 2 and summary["plot"]["minutes_ahead"] == 60
    assert summary["plot"]["windows"] == min(288, len(prepare_from_meta(teacher["data"]).test))  # its first day
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]  # no temporary left

    # every model row is its checkpoint's test metrics, as `stgkd evaluate` computes them
    for name, ckpt in ckpts.items():
        ev = evaluate_checkpoint(ckpt, split="test", device="cpu", teacher=False)
        for horizon in ("15min", "30min", "60min", "avg"):
            for metric in ("mae", "rmse", "mape"):
                got = rows[name]["test"][horizon][metric]
                assert got == pytest.approx(ev.metrics[horizon][metric], rel=1e-5), (name, horizon, metric)
        model = model_from_checkpoint(load_checkpoint(ckpt))
        assert rows[name]["parameters"] == sum(p.numel() for p in model.parameters())
        assert rows[name]["latency_ms"]["device"].startswith("cpu") and rows[name]["latency_ms"]["b1"] > 0

    # one timing per architecture: the plain student is timed as the distilled one (same architecture), and
    # each row holds the deployed program's figure beside the eager model's
    assert rows[pl]["latency_ms"] == rows[kd]["latency_ms"]
    for name in (t, kd):
        lat = rows[name]["latency_ms"]
        assert set(lat) == {"b1", "b1_eager", "b64_eager", "program", "device"} and lat["b1_eager"] > 0
    # ... the deployed program is the file stgkd export writes by default, run as Forecaster.load runs it
    from stgkd.export.aoti import cpp_compiler
    from stgkd.formats import archive_metadata, file_kind

    files = summary["latency"]["files"]
    assert files == {"student": str(out / "student.pt2")}  # the teacher, not deployed, is compiled from its checkpoint
    assert file_kind(files["student"]) == "torch.export"
    assert archive_metadata(files["student"])["checkpoint"] == str(ckpts[kd])
    want = "aoti-cached" if cpp_compiler() else "torch.export"
    assert rows[t]["latency_ms"]["program"] == rows[kd]["latency_ms"]["program"] == want
    assert summary["latency"]["speedup_b1_eager"] == pytest.approx(
        rows[t]["latency_ms"]["b1_eager"] / rows[kd]["latency_ms"]["b1_eager"])
    assert f"the distilled student to deploy: {out / 'student.pt2'}" in printed

    # the naive floor by hand: the last input reading (raw units) repeated over the horizon, on the
    # test windows, masked MAE and MAPE (a fraction) over every observed target
    prepared = prepare_from_meta(plain["data"])
    test = prepared.test
    steps = prepared.in_steps + torch.arange(prepared.out_steps)
    truth = test.targets[test.starts[:, None] + steps]  # (S, H, N), NaN where missing
    last = test.inputs[test.starts + prepared.in_steps - 1, :, 0].double() * prepared.scaler.std + prepared.scaler.mean
    err = (last[:, None, :] - truth.double()).abs()
    seen = torch.isfinite(truth)
    assert rows["last value"]["test"]["avg"]["mae"] == pytest.approx(float(err[seen].mean()), rel=1e-5)
    nonzero = seen & (truth != 0)
    mape = float((err[nonzero] / truth.double().abs()[nonzero]).mean())
    assert rows["last value"]["test"]["avg"]["mape"] == pytest.approx(mape, rel=1e-5)
    assert rows["last value"]["parameters"] is None and rows["last value"]["latency_ms"] == {}


def test_no_speed_verdict_from_a_busy_machines_timing():
    rows = [{"test": {"60min": {"mae": m}, "avg": {"mae": m}}, "latency_ms": {"b1": ms}}
            for m, ms in ((2.0, 10.0), (3.0, 1.0), (2.5, 1.0))]
    assert gain_of(*rows, horizon="60min").verdicts["speedup_at_least_5x"] is True
    busy = gain_of(*rows, horizon="60min", timed_busy=True)
    assert busy.verdicts == {"teacher_better_than_plain": True, "distilled_better_than_plain": True,
                             "speedup_at_least_5x": None}
    assert busy.to_dict()["timed_busy"] is True
