"""What a results record says about its environment: torch-geometric-temporal's version, imported as the
peers import it (through the project's ``torch_sparse`` stand-in)."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

import pytest

from benchmarks import record


def test_the_pgt_version_is_recorded_where_pgt_imports_only_through_the_shim(monkeypatch):
    try:
        installed = version("torch-geometric-temporal")
    except PackageNotFoundError:
        pytest.skip("torch-geometric-temporal is not installed")
    # a fresh import, as in a part's own process: without the stand-in, `import torch_sparse` would fail it
    for name in [m for m in sys.modules if m.split(".")[0] in ("torch_geometric_temporal", "torch_sparse")]:
        monkeypatch.delitem(sys.modules, name)
    env = record.environment("cpu")
    assert env["torch_geometric_temporal"] == installed and "torch_geometric_temporal_import_error" not in env
    assert "torch_geometric_temporal" in sys.modules
    assert "torch_sparse" not in sys.modules  # the stand-in lived only for the import


def test_an_uninstalled_pgt_is_recorded_as_none(monkeypatch):
    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(record, "version", missing)
    assert record.pgt_version() == {"torch_geometric_temporal": None}
