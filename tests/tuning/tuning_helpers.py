"""Helpers of the tuning tests: arguments of a tiny CPU study on a tiny synthetic network."""

from __future__ import annotations

import os
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]

#: a 5-sensor, one-day synthetic network: ~185 training windows
DATA_ARGS = ["--dataset", "synthetic", "--data-arg", "num_nodes=5", "--data-arg", "num_days=1"]
#: a Graph WaveNet small enough to train in a second or two
TEACHER_HPARAMS = {"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8,
                   "blocks": 1, "layers": 2}

TINY_SPACE = """\
family: {type: categorical, choices: [gru, gcn-gru]}
hidden: {type: int, low: 4, high: 8, step: 4}
layers: 1
graph_op: dense
batch_size: 32
"""


def search_args(out: Path, space: Path, teacher: Path | None, *, n_trials: int, budget: float = 1000.0,
                epochs: int = 1, extra: list[str] = ()) -> list[str]:
    """Arguments of a tiny CPU study (latency timed with few iterations)."""
    args = [*DATA_ARGS, "--latency-budget-ms", str(budget), "--latency-iters", "3", "--latency-warmup", "1",
            "--n-trials", str(n_trials), "--epochs", str(epochs), "--limit-batches", "2", "--device", "cpu",
            "--space", str(space), "--out", str(out), "--no-progress", "--no-plots", *extra]
    if teacher is not None:
        args += ["--teacher", str(teacher)]
    return args


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


PYTHON = sys.executable
