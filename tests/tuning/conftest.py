"""Fixtures of the tuning tests: a tiny teacher and a tiny search space."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuning_helpers import TEACHER_HPARAMS, TINY_SPACE


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """``best.pt`` of a tiny Graph WaveNet trained for one short epoch on the tiny synthetic data."""
    from stgkd.data.datasets import load_dataset
    from stgkd.engine import TrainConfig, train_model

    out = tmp_path_factory.mktemp("teacher")
    data = load_dataset("synthetic", num_nodes=5, num_days=1)
    result = train_model(data, "graph-wavenet", out, hparams=TEACHER_HPARAMS,
                         config=TrainConfig(epochs=1, limit_batches=2, device="cpu"), progress=False, log=False)
    assert result.best_path is not None and result.best_path.is_file()
    return result.best_path


@pytest.fixture()
def tiny_space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(TINY_SPACE)
    return path


