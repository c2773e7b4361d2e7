"""Checkpoint files: atomic writes, safe loading, RNG state, contents of a real checkpoint."""

from __future__ import annotations

import os
import pickletools
import random

import numpy as np
import pytest
import torch

from stgkd.engine.checkpoint import (
    FORMAT,
    capture_rng_state,
    load_checkpoint,
    model_from_checkpoint,
    remove_stale_temporaries,
    restore_rng_state,
    save_checkpoint,
)
from stgkd.errors import CheckpointError

from .conftest import TINY_STUDENT


def _payload(**extra):
    return {"format": FORMAT, "model": {"name": "gru"}, "state_dict": {"w": torch.arange(4.0)}, "data": {},
            "scaler": {"mean": 1.0, "std": 2.0}, **extra}


def test_save_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, _payload(epoch=3))
    save_checkpoint([path, tmp_path / "run" / "best.pt"], _payload(epoch=4))
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt", "last.pt"]  # no temporaries left
    for name in ("last.pt", "best.pt"):
        loaded = load_checkpoint(path.parent / name)
        assert loaded["epoch"] == 4
        assert torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _payload(epoch=1))
    with pytest.raises(Exception):
        save_checkpoint(path, _payload(epoch=2, bad=lambda: None))  # unpicklable: torch.save fails midway
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "keep.txt").write_text("x")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".last.pt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    for seed in range(20):  # arbitrary bytes fail in many different ways inside the unpickler
        garbage.write_bytes(bytes(random.Random(seed).randrange(256) for _ in range(256)))
        with pytest.raises(CheckpointError, match="garbage.pt"):
            load_checkpoint(garbage)
    garbage.write_bytes(b"\x80\x02}q\x00.")  # a bare pickle, not a torch zip file
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    good = tmp_path / "good.pt"
    save_checkpoint(good, _payload())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="other.pt: not an stgkd checkpoint"):
        load_checkpoint(other)


class _Exploit:
    """Pickles as a call to ``os.system`` that would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(_payload(extra=_Exploit(marker)), path)
    # the file really asks for os.system (posix.system) when unpickled
    import zipfile

    with zipfile.ZipFile(path) as zf:
        data_pkl = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        ops = [arg for op, arg, _ in pickletools.genops(zf.read(data_pkl)) if isinstance(arg, str)]
    assert any(op.split()[-1] == "system" for op in ops), ops
    with pytest.raises(CheckpointError, match="evil.pt: refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_rng_state_round_trip_through_weights_only_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    path = tmp_path / "rng.pt"
    save_checkpoint(path, _payload(rng=capture_rng_state()))
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.standard_normal())
    restore_rng_state(load_checkpoint(path)["rng"])
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.standard_normal())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]
    assert expected[3] == got[3]


def test_training_checkpoint_holds_everything(tmp_path, tiny_data):
    from stgkd.engine import TrainConfig, train_model

    result = train_model(tiny_data, "gru", tmp_path / "run", hparams=TINY_STUDENT,
                         config=TrainConfig(epochs=1, batch_size=64, schedule="multistep", device="cpu"),
                         progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    for key in ("format", "role", "model", "state_dict", "graph", "scaler", "data", "metrics", "epoch", "optimizer",
                "scheduler", "rng", "train_config", "complete"):
        assert key in ckpt, key
    assert ckpt["epoch"] == 1 and ckpt["complete"] is True
    assert ckpt["role"] == "student" and ckpt["model"]["name"] == "gru"
    assert ckpt["model"]["hparams"]["hidden"] == 8
    assert torch.allclose(ckpt["graph"], torch.as_tensor(tiny_data.adj))
    assert ckpt["scaler"] == {"mean": result.data.scaler.mean, "std": result.data.scaler.std}
    assert ckpt["data"] == {
        "name": "synthetic", "source": list(tiny_data.source), "split": [0.7, 0.1, 0.2], "in_steps": 12,
        "out_steps": 12, "input_features": ["value", "time_of_day"], "sensor_ids": list(tiny_data.sensor_ids),
        "interval_minutes": 5, "missing": "zero",
    }
    assert ckpt["train_config"]["schedule"] == "multistep"
    assert set(ckpt["metrics"]) == {"15min", "30min", "60min", "avg"}
    # the rebuilt model forecasts exactly as the trained one (best = last after one epoch)
    model = model_from_checkpoint(load_checkpoint(tmp_path / "run" / "best.pt"))
    x = result.data.test.batch(torch.arange(4)).x
    with torch.no_grad():
        assert torch.equal(model(x), result.model(x))


def test_run_progress_tells_a_finished_run_from_a_killed_one(tmp_path, tiny_data):
    from stgkd.engine import TrainConfig, train_model
    from stgkd.engine.checkpoint import run_progress

    # a learning rate too small to move a float32 weight: the validation MAE never improves after epoch 1,
    # so early stopping with patience 1 ends the run after epoch 2 of 5
    cfg = TrainConfig(epochs=5, batch_size=64, limit_batches=1, lr=1e-12, patience=1, device="cpu")
    train_model(tiny_data, "gru", tmp_path / "stopped", hparams=TINY_STUDENT, config=cfg, progress=False)
    last = load_checkpoint(tmp_path / "stopped" / "last.pt")
    stopped = run_progress(last)
    assert (stopped.epochs, stopped.requested, stopped.stopped_early, stopped.finished) == (2, 5, True, True)
    assert (stopped.best_epoch, stopped.best_val_mae) == (1, last["best"]["val_mae"])
    # best.pt is written at an improvement: it cannot tell that its run stopped early
    assert not run_progress(load_checkpoint(tmp_path / "stopped" / "best.pt")).finished

    cfg = TrainConfig(epochs=2, batch_size=64, limit_batches=1, patience=0, device="cpu")
    train_model(tiny_data, "gru", tmp_path / "full", hparams=TINY_STUDENT, config=cfg, progress=False)
    full = run_progress(load_checkpoint(tmp_path / "full" / "last.pt"))
    assert (full.epochs, full.requested, full.stopped_early, full.finished) == (2, 2, False, True)
    # what a run killed after its first epoch leaves: one epoch of the two it was asked for
    killed = run_progress({**load_checkpoint(tmp_path / "full" / "last.pt"), "epoch": 1})
    assert not killed.finished and killed.to_dict()["finished"] is False
