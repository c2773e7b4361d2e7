"""Fixtures of the tuning tests: a tiny teacher, a tiny search space and a PostgreSQL database."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tuning_helpers import STUDY_PASSWORD, TEACHER_HPARAMS, TINY_SPACE, postgres_server


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


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """URL of a database on a throw-away PostgreSQL server that trusts its role (skips where none)."""
    with postgres_server() as url:
        yield url


@pytest.fixture()
def postgres_password_url() -> Iterator[str]:
    """URL, with :data:`~tuning_helpers.STUDY_PASSWORD` in it, of a database on a throw-away PostgreSQL
    server that checks that password (skips where none)."""
    with postgres_server(STUDY_PASSWORD) as url:
        yield url
