"""Several processes: index sharding, and a 2-process gloo run that matches one process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch

from stgkd.engine import TrainConfig, train_model
from stgkd.engine.callbacks import tensorboard_available
from stgkd.engine.distributed import DistContext, epoch_indices, shard_eval_indices

from .conftest import TINY_STUDENT, subprocess_env


def test_ranks_split_each_batch_of_one_process():
    one = epoch_indices(10, epoch=3, seed=1, shuffle=True, ctx=DistContext())
    assert sorted(one.tolist()) == list(range(10))
    assert torch.equal(one, epoch_indices(10, epoch=3, seed=1, shuffle=True, ctx=DistContext()))  # per-epoch seed
    assert not torch.equal(one, epoch_indices(10, epoch=4, seed=1, shuffle=True, ctx=DistContext()))
    ranks = [epoch_indices(10, epoch=3, seed=1, shuffle=True, ctx=DistContext(rank=r, world_size=2)) for r in (0, 1)]
    # batch b (size 2 per rank) of the two ranks together = batch b (size 4) of one process
    for b in range(2):
        together = sorted(ranks[0][2 * b : 2 * b + 2].tolist() + ranks[1][2 * b : 2 * b + 2].tolist())
        assert together == sorted(one[4 * b : 4 * b + 4].tolist())
    # 10 windows over 3 ranks: padded to 12 by wrapping around, every window at least once
    three = [epoch_indices(10, epoch=0, seed=0, shuffle=False, ctx=DistContext(rank=r, world_size=3)) for r in range(3)]
    assert [t.tolist() for t in three] == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    # evaluation shards are not padded: each window exactly once
    shards = [shard_eval_indices(10, DistContext(rank=r, world_size=3)).tolist() for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path, data_dir):
    """torchrun with 2 CPU processes (gloo on 127.0.0.1), 32 windows each per step, against one
    process with 64 windows per step.

    Each step the two ranks hold the two halves of the single process's batch (every rank draws the
    same permutation and takes every other index), and the loss is weighted by the global count of
    observed readings, so the DDP-averaged gradient is the single-process gradient; only the order of
    float32 summations differs (per-rank sums then all-reduce). ``--limit-batches 6`` keeps both
    runs to full batches (387 training windows: a seventh, partial batch would be padded with a
    repeated window under DDP). Over 12 AdamW steps the rounding differences stay around 1e-8
    relative; ``rel=1e-5`` bounds them with margin, while a wrong split of the batch or an unweighted
    per-rank mean changes the validation MAE at the 1e-3 level or more.
    """
    epochs, limit = 2, 6
    out2 = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "stgkd", "train", "--dataset", str(data_dir), "--model", "gru",
           "--hparams", "hidden=8", "--epochs", str(epochs), "--batch-size", "32", "--limit-batches", str(limit),
           "--out", str(out2), "--device", "cpu", "--patience", "0", "--no-progress", "--seed", "4"]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("trained gru") == 1  # only rank 0 reports

    one = train_model(str(data_dir), "gru", None, hparams=TINY_STUDENT, progress=False,
                      config=TrainConfig(epochs=epochs, batch_size=64, limit_batches=limit, device="cpu", patience=0,
                                         seed=4))
    ddp = [json.loads(line) for line in (out2 / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in ddp] == [1, 2]  # written once, by rank 0
    written = ["best.pt", "last.pt", "log.jsonl", "metrics.json"] + (["tensorboard"] if tensorboard_available() else [])
    assert sorted(p.name for p in out2.iterdir()) == written
    for mine, theirs in zip(one.history, ddp):
        assert theirs["train_mae"] == pytest.approx(mine["train_mae"], rel=1e-5)
        for key in ("15min", "30min", "60min", "avg"):
            for metric in ("mae", "rmse", "mape"):
                assert theirs["val"][key][metric] == pytest.approx(mine["val"][key][metric], rel=1e-5)
