"""Scoring the baselines beside a model: the same targets, the best per horizon, the warning line."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from stgkd.cli import main
from stgkd.data.core import TrafficData
from stgkd.data.windows import prepare
from stgkd.engine.baselines import (
    BaselineScore,
    BaselineScores,
    Shortfall,
    best_baselines,
    compare_with_baselines,
    report_baselines,
    score_baselines,
)
from stgkd.engine.evaluate import evaluate_split
from stgkd.metrics import horizon_name
from stgkd.nn import build_for

N = 6
STEPS = (1, 2, 4)  # 1h, 2h and 4h ahead at an hourly interval


def _hourly(days: int, *, interval: int = 60, seed: int = 0) -> TrafficData:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 1440 // interval)
    values = 30 + 10 * np.sin(2 * np.pi * t * interval / 1440)[:, None] + rng.normal(0, 3, (len(t), N))
    values[rng.random(values.shape) < 0.1] = np.nan
    return TrafficData(values=values.astype(np.float32), adj=np.eye(N), sensor_ids=[f"s{i}" for i in range(N)],
                       interval_minutes=interval, name="hourly")


def _brute_mae(prepared, forecast) -> dict[int, float]:
    """Masked MAE at each of STEPS of ``forecast(origin, h) -> (N,)`` raw, over the test windows."""
    raw = prepared.data.values[..., 0].astype(np.float64)
    out = {}
    for h in STEPS:
        errors = []
        for start in prepared.test.starts.tolist():
            origin = start + prepared.in_steps - 1
            truth = raw[origin + h]
            ok = np.isfinite(truth)
            errors.append(np.abs(forecast(origin, h) - truth)[ok])
        out[h] = float(np.concatenate(errors).mean())
    return out


def test_baselines_are_scored_on_the_models_targets():
    prepared = prepare(_hourly(7), in_steps=3, out_steps=4)
    scores = score_baselines(prepared, "test", steps=STEPS)
    labels = [s.label for s in scores.scored]
    assert labels == ["last value", "seasonal naive (1 day)", "historical average", "historical median"]
    notes = {s.label: s.note for s in scores.left_out}
    assert list(notes) == ["seasonal naive (1 week)", "historical average (day of week)",
                           "historical median (day of week)"]
    assert "needs 168 steps of history" in notes["seasonal naive (1 week)"]  # 7 days of data: no week before the test
    assert "needs 14 days of training data, the training split holds 4.8" in notes["historical median (day of week)"]
    by_label = {s.label: s.metrics for s in scores.scored}
    for metrics in by_label.values():
        assert all(np.isfinite(m["mae"]) for m in metrics.values())

    raw = prepared.data.values[..., 0].astype(np.float64)
    mean = prepared.scaler.mean

    def filled(v):  # what the input carries for a missing reading: the training mean
        return np.where(np.isfinite(v), v, mean)

    want = _brute_mae(prepared, lambda origin, h: filled(raw[origin]))
    got = by_label["last value"]
    assert [got[horizon_name(h, 60)]["mae"] for h in STEPS] == pytest.approx([want[h] for h in STEPS], rel=1e-5)
    want = _brute_mae(prepared, lambda origin, h: filled(raw[origin + h - 24]))  # the same hour yesterday
    got = by_label["seasonal naive (1 day)"]
    assert [got[horizon_name(h, 60)]["mae"] for h in STEPS] == pytest.approx([want[h] for h in STEPS], rel=1e-5)

    # a historical profile reads only the last input step's time: the 3-step windows give the same figures
    model = build_for("historical-median", prepared, slots_per_day=24).fit(prepared)
    direct = evaluate_split(model, prepared.test, prepared.scaler, interval_minutes=60, steps=STEPS)
    assert by_label["historical median"]["avg"]["mae"] == pytest.approx(direct["avg"]["mae"], rel=1e-6)
    on_val = evaluate_split(model, prepared.val, prepared.scaler, interval_minutes=60, steps=STEPS)
    scored = {s.label: s for s in scores.scored}
    assert scored["historical median"].val_maes == pytest.approx({k: m["mae"] for k, m in on_val.items() if k != "per_step"}, rel=1e-6)
    assert scores.to_dict()["best"]["avg"]["baseline"] in labels


def test_the_best_baseline_is_chosen_per_horizon_on_validation():
    """Chosen as a model is, at each horizon on the validation split; its test figure is the bar there,
    even where another baseline happens to do better on test."""
    rng = np.random.default_rng(0)
    t = np.arange(7 * 24)
    noise = np.zeros((len(t), N))
    for i in range(1, len(t)):  # persistent deviations: the last value wins one step ahead, a profile later
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 2, N)
    values = (30 + 10 * np.sin(2 * np.pi * t / 24)[:, None] + noise).astype(np.float32)
    data = TrafficData(values=values, adj=np.eye(N), sensor_ids=[f"s{i}" for i in range(N)], interval_minutes=60)
    prepared = prepare(data, in_steps=3, out_steps=4)
    scores = score_baselines(prepared, "test", steps=STEPS)
    assert scores.chosen_on == "val"
    for key, label in scores.chosen.items():
        assert label == min(scores.scored, key=lambda s: s.val_maes[key]).label
    one, four = horizon_name(1, 60), horizon_name(4, 60)
    assert scores.chosen[one] == "last value" and scores.chosen[four] != "last value"
    metrics = {s.label: s.metrics for s in scores.scored}
    best = scores.best()
    assert best == {k: (label, metrics[label][k]["mae"]) for k, label in scores.chosen.items()}

    # chosen on validation, not on test: a choice validation did not make stays the bar
    scores.chosen[four] = "historical average"
    assert scores.best()[four] == ("historical average", metrics["historical average"][four]["mae"])
    assert min(m[four]["mae"] for m in metrics.values()) < metrics["historical average"][four]["mae"]
    loses = {four: {"mae": metrics["historical average"][four]["mae"] + 0.01}}
    [shortfall] = compare_with_baselines("gru", loses, scores)
    assert shortfall.baseline == "historical average"
    out = io.StringIO()
    report_baselines(scores, out=out)
    assert f"best baseline (chosen per horizon on the val split): 1h last value " in out.getvalue()
    back = BaselineScores.from_dict(json.loads(json.dumps(scores.to_dict())))
    assert back.chosen == scores.chosen and back.best() == scores.best()


def _counts(days: int, seed: int = 0) -> TrafficData:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    rate = np.clip(np.sin(2 * np.pi * t / 24), 0, None)[:, None] * np.array([0.05, 0.1, 0.2, 0.4, 1.0, 3.0])
    values = rng.poisson(rate).astype(np.float32)
    values[rng.random(values.shape) < 0.02] = np.nan
    return TrafficData(values=values, adj=np.eye(N), sensor_ids=[f"s{i}" for i in range(N)], interval_minutes=60,
                       name="counts", missing="nan")


def test_counts_get_the_zero_forecast_and_the_profiles_by_day_of_week():
    data = _counts(21)
    assert data.is_count_series and not _hourly(7).is_count_series

    def counts(values, missing="nan"):
        return TrafficData(values=np.array(values, np.float32)[:, None], adj=np.eye(1), sensor_ids=["a"],
                           missing=missing).is_count_series

    assert counts([0, 2, 5, np.nan]) and not counts([0, 2.5, 5]) and not counts([0, -1, 5])
    assert not counts([1, 2, 5]) and not counts([0, 2, 5], missing="zero")  # a 0 must be a reading
    prepared = prepare(data, in_steps=3, out_steps=4)
    scores = score_baselines(prepared, "test", steps=STEPS)
    scored = {s.label: s.metrics for s in scores.scored}
    assert {"zero", "historical median", "historical median (day of week)", "historical average (day of week)"} <= set(
        scored)
    raw = prepared.data.values[..., 0].astype(np.float64)
    want = _brute_mae(prepared, lambda origin, h: np.zeros(N))
    assert [scored["zero"][horizon_name(h, 60)]["mae"] for h in STEPS] == pytest.approx([want[h] for h in STEPS],
                                                                                         rel=1e-5)
    assert np.nanmean(raw) > 0
    speeds = score_baselines(prepare(_hourly(7), in_steps=3, out_steps=4), "test", steps=STEPS)
    assert "zero" not in [s.label for s in speeds.scored + speeds.left_out]


def test_a_baseline_the_data_is_too_short_for_is_left_out_with_the_reason():
    prepared = prepare(_hourly(1), in_steps=2, out_steps=2)  # one day in all
    scores = score_baselines(prepared, "test", steps=(1, 2))
    assert [s.label for s in scores.scored] == ["last value"]
    notes = {s.label: s.note for s in scores.left_out}
    assert set(notes) == {"seasonal naive (1 day)", "seasonal naive (1 week)", "historical average",
                          "historical median", "historical average (day of week)", "historical median (day of week)"}
    assert "needs 24 steps of history" in notes["seasonal naive (1 day)"]
    assert "less than the one day (24 steps)" in notes["historical average"]
    left = scores.to_dict()["left_out"]
    assert all("metrics" not in b and b["left_out"] for b in left)  # never a NaN row

    odd = prepare(_hourly(3, interval=7), in_steps=2, out_steps=2)
    scores = score_baselines(odd, "test", steps=(1, 2))
    assert [s.label for s in scores.scored] == ["last value"]
    assert all(s.note == "an interval of 7 min does not divide a day" for s in scores.left_out)

    out = io.StringIO()
    report_baselines(scores, out=out)
    assert "left out: historical median: an interval of 7 min does not divide a day" in out.getvalue()


def _scores() -> BaselineScores:
    naive = BaselineScore("seasonal-naive", "seasonal naive (1 day)", {"season_steps": 288}, 288,
                          {"15min": {"mae": 5.15}, "60min": {"mae": 5.12}, "avg": {"mae": 5.14}})
    last = BaselineScore("last-value", "last value", {}, 1,
                         {"15min": {"mae": 3.55}, "60min": {"mae": 5.73}, "avg": {"mae": 4.39}})
    return BaselineScores("week", "test", 399, 5, 12, scored=[last, naive])


def test_best_baseline_per_horizon_and_the_comparison():
    scores = _scores()
    assert best_baselines(scores) == {"15min": ("last value", 3.55), "60min": ("seasonal naive (1 day)", 5.12),
                                      "avg": ("last value", 4.39)}
    loses = {"15min": {"mae": 3.18}, "60min": {"mae": 5.34}, "avg": {"mae": 3.91}}
    [shortfall] = compare_with_baselines("dcgru", loses, scores)
    assert shortfall.message() == "dcgru is worse than seasonal naive (1 day) at 60 min: 5.34 vs 5.12"
    worse_on_average = {"15min": {"mae": 3.5}, "60min": {"mae": 5.0}, "avg": {"mae": 4.391}}
    [shortfall] = compare_with_baselines("gcn-gru", worse_on_average, scores)
    assert shortfall.message() == "gcn-gru is worse than last value on average over the 12 steps: 4.391 vs 4.390"
    wins = {"15min": {"mae": 3.18}, "60min": {"mae": 4.80}, "avg": {"mae": 3.91}}
    ties = {"15min": {"mae": 3.55}, "60min": {"mae": 5.12}, "avg": {"mae": 4.39}}
    assert compare_with_baselines("gwn", wins, scores) == [] and compare_with_baselines("gwn", ties, scores) == []
    assert Shortfall("gru", "3h", "historical median", 0.3, 0.25).message() == (
        "gru is worse than historical median at 3 h: 0.30 vs 0.25")  # an hourly series' horizon name


def test_a_baselines_block_reads_back_as_the_scores_it_was_written_from():
    scores = _scores()
    scores.left_out.append(BaselineScore("seasonal-naive", "seasonal naive (1 week)", {"season_steps": 2016}, 2016,
                                         note="needs 2016 steps of history"))
    block = json.loads(json.dumps(scores.to_dict()))  # as a record stores it
    back = BaselineScores.from_dict(block)
    assert back == scores
    assert back.to_dict() == block
    loses = {"60min": {"mae": 5.34}}
    assert [s.message() for s in compare_with_baselines("dcgru", loses, back)] == [
        "dcgru is worse than seasonal naive (1 day) at 60 min: 5.34 vs 5.12"]


def test_the_warning_line_is_printed_when_a_model_loses_and_not_when_it_wins():
    out, warn = io.StringIO(), io.StringIO()
    report_baselines(_scores(), {"dcgru": {"60min": {"mae": 5.34}}, "gwn": {"60min": {"mae": 4.80}}}, out=out, warn=warn)
    assert warn.getvalue() == "warning: dcgru is worse than seasonal naive (1 day) at 60 min: 5.34 vs 5.12\n"
    assert "best baseline: 15min last value 3.5500; 60min seasonal naive (1 day) 5.1200" in out.getvalue()
    out, warn = io.StringIO(), io.StringIO()
    report_baselines(_scores(), {"gwn": {"15min": {"mae": 3.0}, "60min": {"mae": 4.80}, "avg": {"mae": 3.9}}},
                     out=out, warn=warn)
    assert warn.getvalue() == "" and "seasonal naive (1 day)" in out.getvalue()


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_train_test_and_evaluate_show_the_baselines_and_warn(tmp_path, data_dir):
    run = tmp_path / "gru"
    code, out, err = _run(["train", "--dataset", str(data_dir), "--model", "gru", "--hparams", "hidden=4", "--out",
                           str(run), "--epochs", "1", "--limit-batches", "1", "--device", "cpu", "--no-progress",
                           "--test"])
    assert code == 0, err
    assert "baselines, test split" in out and "best baseline (chosen per horizon on the val split): 15min " in out
    summary = json.loads((run / "metrics.json").read_text())
    scored = {b["label"]: b["metrics"] for b in summary["baselines"]["scored"]}
    assert {"last value", "seasonal naive (1 day)", "historical average", "historical median"} <= set(scored)
    best = summary["baselines"]["best"]
    expected = [f"warning: gru is worse than {best[h]['baseline']}" for h in summary["test"]
                if summary["test"][h]["mae"] > best[h]["mae"]]
    assert expected, "one batch of training beats every baseline at every horizon?"  # the case under test
    printed = [line for line in err.splitlines() if line.startswith("warning: gru is worse than")]
    assert [line.split(" at ")[0].split(" on average")[0] for line in printed] == expected
    assert len(summary["worse_than_best_baseline"]) == len(expected)

    code, out, err = _run(["evaluate", str(run / "best.pt"), "--no-plot", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0, err
    report = json.loads((tmp_path / "metrics-test.json").read_text())
    assert report["baselines"]["best"] == summary["baselines"]["best"]
    assert [line for line in err.splitlines() if line.startswith("warning: gru")] == printed
    code, out, err = _run(["evaluate", str(run / "best.pt"), "--no-plot", "--device", "cpu", "--out", str(tmp_path),
                           "--no-baselines"])
    assert code == 0 and "baselines" not in out and "warning" not in err



def test_a_baseline_is_fitted_by_train_then_evaluated_and_exported_like_a_student(tmp_path, data_dir):
    from stgkd import Forecaster
    from stgkd.engine import load_checkpoint, model_from_checkpoint
    from stgkd.export import export_student

    run = tmp_path / "hm"
    code, out, err = _run(["train", "--dataset", str(data_dir), "--model", "historical-median", "--out", str(run),
                           "--device", "cpu", "--no-progress", "--test"])
    assert code == 0, err
    payload = load_checkpoint(run / "best.pt")
    assert payload["role"] == "baseline" and payload["model"]["hparams"]["slots_per_day"] == 288
    summary = json.loads((run / "metrics.json").read_text())
    scored = {b["label"]: b["metrics"] for b in summary["baselines"]["scored"]}
    assert summary["test"]["avg"]["mae"] == pytest.approx(scored["historical median"]["avg"]["mae"], rel=1e-6)

    model = model_from_checkpoint(payload)
    fc = Forecaster.load(export_student(run / "best.pt", tmp_path / "hm.pt"))
    from stgkd.data.rebuild import prepare_from_meta

    prepared = prepare_from_meta(payload["data"])
    start = int(prepared.test.starts[5])
    window = prepared.data.values[start : start + prepared.in_steps, :, 0]
    got = fc.predict(window, start=prepared.data.timestamps[start])
    with torch.no_grad():
        want = prepared.scaler.inverse_transform(model(prepared.test.batch([5]).x))[0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)

    code, _, err = _run(["train", "--dataset", str(data_dir), "--model", "seasonal-naive", "--out", str(tmp_path / "sn"),
                         "--device", "cpu", "--no-progress"])
    assert code == 2 and "needs an input window of at least 288 steps, got in_steps=12" in err


def test_a_baseline_is_not_distilled(teacher_ckpt):
    from stgkd.engine.recipes import distill_student
    from stgkd.errors import ConfigError

    with pytest.raises(ConfigError, match="'last-value' is a baseline: it is fitted, not distilled"):
        distill_student(teacher_ckpt, "last-value", None, progress=False)


@pytest.mark.realdata
def test_the_week_baselines_at_60_minutes(real_data_dir):
    """The METR-LA week under DCRNN's windows and split (issue figures: 5.73, 5.33, 5.12 at 60 minutes)."""
    from stgkd.data.rebuild import load_data

    scores = score_baselines(prepare(load_data(str(real_data_dir))), "test")
    mae = {s.label: round(s.metrics["60min"]["mae"], 2) for s in scores.scored}
    assert mae["last value"] == 5.73 and mae["historical average"] == 5.33 and mae["seasonal naive (1 day)"] == 5.12
    assert mae["historical median"] == 4.97 and scores.best()["60min"][0] == "historical median"
    assert scores.chosen_on == "val" and scores.best()["15min"][0] == "last value"
    assert [s.label for s in scores.left_out] == ["seasonal naive (1 week)", "historical average (day of week)",
                                                  "historical median (day of week)"]  # 5 days of training
