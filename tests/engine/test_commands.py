"""``stgkd train`` -> ``stgkd distill`` -> ``stgkd evaluate``, in-process through ``main``."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from stgkd.cli import main
from stgkd.commands.train import parse_hparams
from stgkd.engine import load_checkpoint, model_from_checkpoint
from stgkd.errors import ConfigError


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


QUICK = ["--epochs", "1", "--batch-size", "64", "--limit-batches", "2", "--device", "cpu", "--no-progress"]


def test_train_distill_evaluate(tmp_path, data_dir):
    teacher = tmp_path / "gwn"
    code, out, err = _run(["train", "--dataset", str(data_dir), "--model", "graph-wavenet", "--out", str(teacher),
                           "--hparams", '{"residual_channels": 8, "dilation_channels": 8, "skip_channels": 16, '
                           '"end_channels": 16, "blocks": 1}', *QUICK])
    assert code == 0, err
    assert "trained graph-wavenet: 1 epochs" in out
    assert load_checkpoint(teacher / "best.pt")["model"]["hparams"]["skip_channels"] == 16

    student = tmp_path / "st"
    code, out, err = _run(["distill", "--teacher", str(teacher / "best.pt"), "--student", "gcn-gru", "--hidden", "8",
                           "--temperature", "2", "--w-sup", "1", "--w-out", "0.5", "--w-feat", "0.1", "--w-rel", "0.1",
                           "--out", str(student), *QUICK])
    assert code == 0, err
    ckpt = load_checkpoint(student / "best.pt")
    assert ckpt["distill"]["tau"] == 2.0 and ckpt["distill"]["w_out"] == 0.5
    assert ckpt["model"]["name"] == "gcn-gru" and ckpt["model"]["hparams"]["hidden"] == 8
    assert ckpt["data"]["source"] == load_checkpoint(teacher / "best.pt")["data"]["source"]

    evaluation = tmp_path / "eval"
    code, out, err = _run(["evaluate", str(student / "best.pt"), "--split", "test", "--sensors", "0", "S00003",
                           "--out", str(evaluation), "--device", "cpu"])
    assert code == 0, err
    for key in ("15min", "30min", "60min", "avg"):
        assert any(line.split()[:1] == [key] for line in out.splitlines()), out
    report = json.loads((evaluation / "metrics-test.json").read_text())
    assert report["split"] == "test" and report["model"] == "gcn-gru"
    assert set(report["metrics"]) == {"15min", "30min", "60min", "avg"} and len(report["per_step"]) == 12
    assert (evaluation / "forecast-test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the reported metrics are the dataset-level masked metrics: check against one dense forward pass
    from stgkd.data import load_dataset, prepare

    prepared = prepare(load_dataset(str(data_dir)))
    model = model_from_checkpoint(ckpt)
    batch = prepared.test.batch(torch.arange(len(prepared.test)))
    with torch.no_grad():
        pred = prepared.scaler.inverse_transform(model(batch.x)).double().numpy()
    y, m = batch.y.double().numpy(), batch.mask.numpy()
    assert report["windows"] == len(prepared.test)
    assert report["metrics"]["avg"]["mae"] == pytest.approx(np.abs(pred - y)[m].mean(), rel=1e-6)
    e60 = (pred - y)[:, 11][m[:, 11]]
    assert report["metrics"]["60min"]["rmse"] == pytest.approx(np.sqrt((e60**2).mean()), rel=1e-6)
    assert report["metrics"]["60min"]["mape"] == pytest.approx((np.abs(e60) / y[:, 11][m[:, 11]]).mean(), rel=1e-6)


def test_resume_keeps_the_runs_settings(tmp_path, data_dir):
    args = ["train", "--dataset", str(data_dir), "--model", "gru", "--hparams", "hidden=8", "--out", str(tmp_path),
            *QUICK]
    assert _run(args)[0] == 0
    code, _, err = _run(args)
    assert code == 2 and "last.pt exists; pass --resume" in err
    code, _, err = _run([*args, "--resume", "--epochs", "2", "--lr", "0.5"])
    assert code == 0 and "ignoring --lr 0.5" in err
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["train_config"]["lr"] == 1e-3 and ckpt["train_config"]["epochs"] == 2


def test_errors_are_one_line_with_exit_code_2(tmp_path, data_dir):
    code, _, err = _run(["evaluate", str(tmp_path / "nope.pt")])
    assert code == 2 and "nope.pt: checkpoint not found" in err
    code, _, err = _run(["train", "--dataset", str(data_dir), "--model", "gru", "--hparams", "depth=3",
                         "--out", str(tmp_path / "x"), *QUICK])
    assert code == 2 and "model 'gru'" in err and "depth" in err
    code, _, err = _run(["train", "--dataset", str(data_dir), "--model", "gru", "--out", str(tmp_path / "y"),
                         "--epochs", "0", "--device", "cpu"])
    assert code == 2 and "epochs must be >= 1" in err
    code, _, err = _run(["distill", "--teacher", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "z")])
    assert code == 2 and "missing.pt: checkpoint not found" in err


def test_parse_hparams(tmp_path):
    assert parse_hparams(['{"hidden": 16, "graph_op": "gcnconv"}']) == {"hidden": 16, "graph_op": "gcnconv"}
    assert parse_hparams(["hidden=16", "dropout=0.1", "adaptive=true", "graph-op=dense"]) == {
        "hidden": 16, "dropout": 0.1, "adaptive": True, "graph_op": "dense"}
    path = tmp_path / "h.json"
    path.write_text('{"layers": 2}')
    assert parse_hparams([str(path)]) == {"layers": 2}
    assert parse_hparams(None) == {}
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        parse_hparams(["hidden"])
    with pytest.raises(ConfigError, match="invalid JSON"):
        parse_hparams(['{"hidden": }'])


def test_distill_flags_map_to_config_fields():
    import argparse

    from stgkd.commands.distill import add_arguments, distill_config_from_args
    from stgkd.distill import DistillConfig

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--teacher", "t.pt", "--out", "o"]
    fields = distill_config_from_args(parser.parse_args(base + ["--inherit-adjacency", "--w-rel", "0"]))
    assert fields == {"inherit_adjacency": True, "w_rel": 0.0}
    assert DistillConfig.from_dict(fields).inherit_adjacency is True
    assert distill_config_from_args(parser.parse_args(base)) == {}  # unset flags keep the config's defaults
