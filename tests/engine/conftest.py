"""Tiny fixtures shared by the engine tests: a 6-sensor, 2-day synthetic network."""

from __future__ import annotations

from pathlib import Path

import pytest

#: a small Graph WaveNet teacher (one block of two layers)
TINY_TEACHER = {"residual_channels": 8, "dilation_channels": 8, "skip_channels": 16, "end_channels": 16,
                "blocks": 1, "layers": 2}
#: a small student
TINY_STUDENT = {"hidden": 8}


@pytest.fixture(scope="session")
def tiny_data():
    from stgkd.data.synthetic import generate

    data, _ = generate(num_nodes=6, num_days=2, seed=0)
    return data


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """The same network written to disk in DCRNN's layout (for commands and subprocesses)."""
    from stgkd.cli import main

    folder = tmp_path_factory.mktemp("syn") / "syn"
    assert main(["data", "synth", "--out", str(folder), "--nodes", "6", "--days", "2", "--seed", "0"]) == 0
    return folder


@pytest.fixture(scope="session")
def teacher_ckpt(tmp_path_factory, data_dir) -> Path:
    """A teacher trained for one short epoch on ``data_dir``."""
    from stgkd.engine import TrainConfig, train_model

    out = tmp_path_factory.mktemp("teacher") / "gwn"
    train_model(str(data_dir), "graph-wavenet", out, hparams=TINY_TEACHER,
                config=TrainConfig(epochs=1, batch_size=64, limit_batches=3, device="cpu", seed=0), progress=False)
    return out / "best.pt"


@pytest.fixture(autouse=True)
def one_thread():
    """The models here are tiny: one intra-op thread is faster, and immune to a busy machine
    (spinning OpenMP workers on an oversubscribed CPU slow a tiny GRU step down 100-fold)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def subprocess_env() -> dict:
    """Environment of the CLI subprocesses: the repo importable, one thread per process."""
    import os

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = "1"
    return env
