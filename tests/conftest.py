"""Shared fixtures. Keep this small: helpers used by one test module belong in that module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: one real week of METR-LA, outside the repository (see its README); tests skip where it is absent
REAL_DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "metr-la-week"


@pytest.fixture(autouse=True, scope="session")
def program_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compiled programs (``Forecaster.load``'s cache) kept in a directory of this test session, never the
    user's own cache."""
    root = tmp_path_factory.mktemp("stgkd-cache")
    before = os.environ.get("STGKD_CACHE_DIR")
    os.environ["STGKD_CACHE_DIR"] = str(root)
    yield root
    if before is None:
        os.environ.pop("STGKD_CACHE_DIR", None)
    else:
        os.environ["STGKD_CACHE_DIR"] = before


@pytest.fixture
def real_data_dir() -> Path:
    """``../shared/data/metr-la-week`` (skips the test where it is absent)."""
    if not (REAL_DATA_DIR / "metr-la-week.h5").is_file():
        pytest.skip(f"real data not found at {REAL_DATA_DIR.resolve()}")
    return REAL_DATA_DIR.resolve()


@pytest.fixture
def isolated_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data root set through ``$STGKD_DATA`` (and no download mirror from the environment)."""
    root = tmp_path / "data-root"
    root.mkdir()
    monkeypatch.setenv("STGKD_DATA", str(root))
    monkeypatch.delenv("STGKD_DATA_URL", raising=False)
    return root
