"""`stgkd demo` end to end on a tiny synthetic network."""

import json

import pytest
import torch

from stgkd.cli import main
from stgkd.data.rebuild import prepare_from_meta
from stgkd.engine import load_checkpoint
from stgkd.engine.checkpoint import model_from_checkpoint
from stgkd.engine.evaluate import evaluate_checkpoint

#: the weights ``stgkd demo`` distils with: DistillConfig's documented defaults; the plain student has
#: only the supervised term
DISTILLED = {"w_sup": 1.0, "w_out": 1.0, "w_feat": 0.1, "w_rel": 0.1}
PLAIN = {"w_sup": 1.0, "w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}


def test_demo_prints_and_writes_the_table(tmp_path, capsys):
    data_dir = tmp_path / "net"
    assert main(["data", "synth", "--out", str(data_dir), "--nodes", "8", "--days", "3", "--seed", "1"]) == 0
    out = tmp_path / "demo"
    rc = main([
        "demo", "--dataset", str(data_dir), "--out", str(out), "--teacher-epochs", "1", "--student-epochs", "1",
        "--limit-batches", "2", "--latency-iters", "3", "--device", "cpu", "--width", "8",
        "--teacher-hparams", '{"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8}',
    ])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dcgru w8 distilled" in printed and "measured on cpu" in printed  # the default student
    summary = json.loads((out / "summary.json").read_text())
    names = [r["model"] for r in summary["rows"]]
    assert names == ["last value", "teacher graph-wavenet", "dcgru w8 plain", "dcgru w8 distilled"]
    rows = dict(zip(names, summary["rows"]))

    # the distilled student was distilled, the plain one was not: the weights each run recorded
    ckpts = {"teacher graph-wavenet": out / "teacher" / "best.pt", "dcgru w8 plain": out / "student-plain" / "best.pt",
             "dcgru w8 distilled": out / "student-distilled" / "best.pt"}
    distilled, plain = load_checkpoint(ckpts["dcgru w8 distilled"]), load_checkpoint(ckpts["dcgru w8 plain"])
    assert {k: distilled["distill"][k] for k in DISTILLED} == DISTILLED
    assert {k: plain["distill"][k] for k in PLAIN} == PLAIN
    assert distilled["teacher_checkpoint"] == plain["teacher_checkpoint"] and distilled["model"] == plain["model"]
    # same seed, same start, different losses: different weights
    assert any(not torch.equal(distilled["state_dict"][k], plain["state_dict"][k]) for k in plain["state_dict"])

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
    # the student is far smaller than the teacher
    assert rows["dcgru w8 plain"]["parameters"] < rows["teacher graph-wavenet"]["parameters"]

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
