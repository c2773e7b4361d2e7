"""Resuming: a run killed at any moment loses no completed epoch and ends where an uninterrupted
run with the same seed ends (bit for bit on CPU)."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from stgkd.cli import main
from stgkd.engine import LambdaCallback, TrainConfig, distill_student, load_checkpoint, train_model
from stgkd.errors import CheckpointError

from .conftest import TINY_STUDENT, subprocess_env


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _train_args(data_dir, out, epochs):
    return ["train", "--dataset", str(data_dir), "--model", "gru", "--hparams", "hidden=8", "--epochs", str(epochs),
            "--batch-size", "4", "--out", str(out), "--seed", "5", "--device", "cpu", "--patience", "0",
            "--no-progress"]


@pytest.mark.slow
def test_kill9_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path, data_dir):
    epochs = 3
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "stgkd", *_train_args(data_dir, out, epochs)],
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = out / "last.pt"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists() and load_checkpoint(last)["epoch"] >= 1:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    killed_at = load_checkpoint(last)
    done = killed_at["epoch"]
    assert 1 <= done < epochs and killed_at["complete"]

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main([*_train_args(data_dir, out, epochs), "--resume"]) == 0
    assert f"continuing at epoch {done + 1}/{epochs}" in stderr.getvalue()
    resumed = load_checkpoint(last)
    assert resumed["epoch"] == epochs
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, epochs + 1))
    logged = [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, epochs + 1))  # each epoch once, none lost, none repeated

    reference = tmp_path / "reference"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(_train_args(data_dir, reference, epochs)) == 0
    uninterrupted = load_checkpoint(reference / "last.pt")
    assert _same_weights(resumed["state_dict"], uninterrupted["state_dict"])
    assert [h["val_mae"] for h in resumed["history"]] == [h["val_mae"] for h in uninterrupted["history"]]


def test_ctrl_c_saves_the_running_epoch_as_incomplete(tmp_path, tiny_data):
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=3, batch_size=64, limit_batches=3, device="cpu", patience=0)

    def interrupt(trainer, step, logs):
        if trainer.current_epoch == 2 and step == 2:
            raise KeyboardInterrupt

    with contextlib.redirect_stderr(io.StringIO()) as err, pytest.raises(KeyboardInterrupt):
        train_model(tiny_data, "gru", out, hparams=TINY_STUDENT, config=cfg, progress=False,
                    callbacks=[LambdaCallback(on_batch_end=interrupt)])
    assert "interrupted during epoch 2" in err.getvalue()
    saved = load_checkpoint(out / "last.pt")
    assert saved["epoch"] == 1 and saved["complete"] is False
    assert saved["optimizer"]["state"][0]["step"].item() == 3 + 2  # two steps of epoch 2 are kept

    result = train_model(tiny_data, "gru", out, config=cfg, resume=True, progress=False)
    assert result.resumed_from == 1 and result.epochs_run == 3
    assert [h["epoch"] for h in result.history] == [1, 2, 3]  # epoch 2 redone, logged once
    assert load_checkpoint(out / "last.pt")["optimizer"]["state"][0]["step"].item() == 3 + 2 + 3 + 3


class _Crash(Exception):
    pass


def test_resumed_distillation_matches_uninterrupted_run(tmp_path, teacher_ckpt):
    cfg = TrainConfig(epochs=2, batch_size=64, limit_batches=2, device="cpu", seed=2, patience=0)
    kd = {"w_out": 1.0, "w_feat": 0.5, "w_rel": 0.1}

    def crash_after_first_epoch(trainer, epoch, logs):
        if epoch == 1:  # after the built-in callbacks wrote last.pt: what kill -9 at this point leaves
            raise _Crash

    with pytest.raises(_Crash):
        distill_student(teacher_ckpt, "gcn-gru", tmp_path / "a", hparams={"hidden": 8}, distill=kd, config=cfg, progress=False,
                        callbacks=[LambdaCallback(on_epoch_end=crash_after_first_epoch)])
    assert load_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 1
    with contextlib.redirect_stderr(io.StringIO()):
        resumed = distill_student(teacher_ckpt, "gcn-gru", tmp_path / "a", config=cfg, resume=True, progress=False)
    straight = distill_student(teacher_ckpt, "gcn-gru", tmp_path / "b", hparams={"hidden": 8}, distill=kd, config=cfg,
                               progress=False)
    assert resumed.resumed_from == 1
    assert _same_weights(resumed.model.state_dict(), straight.model.state_dict())
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in ("a", "b"))
    assert _same_weights(a["adapters"], b["adapters"])
    assert a["distill"] == b["distill"]


def test_resume_without_a_run_starts_fresh_and_a_corrupt_one_is_reported(tmp_path, tiny_data):
    cfg = TrainConfig(epochs=1, batch_size=64, limit_batches=1, device="cpu")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        result = train_model(tiny_data, "gru", tmp_path / "new", hparams=TINY_STUDENT, config=cfg, resume=True,
                             progress=False)
    assert "starting a fresh run" in err.getvalue() and result.resumed_from == 0
    (tmp_path / "new" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt"):
        train_model(tiny_data, "gru", tmp_path / "new", config=cfg, resume=True, progress=False)
