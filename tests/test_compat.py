"""stgkd.compat: importing torch_geometric_temporal without torch_sparse."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import torch

from stgkd import compat
from stgkd.errors import ConfigError

HAS_PGT = importlib.util.find_spec("torch_geometric_temporal") is not None
needs_pgt = pytest.mark.skipif(not HAS_PGT, reason="torch-geometric-temporal is not installed")


@needs_pgt
def test_import_returns_module_with_the_layers_we_wrap():
    pgt = compat.import_torch_geometric_temporal()
    assert pgt.__name__ == "torch_geometric_temporal"
    for name in ("BatchedDCRNN", "AGCRN"):
        assert hasattr(pgt.nn.recurrent, name)
    for name in ("STConv", "MTGNN"):
        assert hasattr(pgt.nn.attention, name)
    # Second call is the cached module.
    assert compat.import_torch_geometric_temporal() is pgt


@needs_pgt
def test_stand_in_does_not_outlive_the_import(monkeypatch):
    if compat._has_real_torch_sparse():
        pytest.skip("the real torch_sparse is installed here")
    # Force a fresh import so the stand-in path runs inside this test.
    for name in [m for m in sys.modules if m == "torch_geometric_temporal" or m.startswith("torch_geometric_temporal.")]:
        monkeypatch.delitem(sys.modules, name)
    pgt = compat.import_torch_geometric_temporal()
    assert "torch_sparse" not in sys.modules
    with pytest.raises(ImportError):
        import torch_sparse  # noqa: F401


@needs_pgt
def test_placeholder_raises_instead_of_silently_working():
    pgt = compat.import_torch_geometric_temporal()
    if compat._has_real_torch_sparse():
        pytest.skip("the real torch_sparse is installed here")
    sparse_tensor = pgt.nn.recurrent.evolvegcno.SparseTensor
    with pytest.raises(ImportError, match="requires 'torch-sparse'"):
        sparse_tensor(row=torch.tensor([0]), col=torch.tensor([1]))
    with pytest.raises(ImportError, match="requires 'torch-sparse'"):
        sparse_tensor.from_edge_index(torch.tensor([[0], [1]]))


def test_stand_in_module_names_its_reason():
    module = compat._torch_sparse_stand_in()
    from torch_geometric.typing import SparseTensor

    assert module.SparseTensor is SparseTensor
    with pytest.raises(ImportError, match="torch-sparse is not installed"):
        module.spmm  # noqa: B018
    with pytest.raises(AttributeError):
        module.__version__  # noqa: B018


def test_real_torch_sparse_is_never_shadowed(monkeypatch):
    real = types.ModuleType("torch_sparse")
    real.SparseTensor = object
    monkeypatch.setitem(sys.modules, "torch_sparse", real)
    for name in [m for m in sys.modules if m == "torch_geometric_temporal" or m.startswith("torch_geometric_temporal.")]:
        monkeypatch.delitem(sys.modules, name)
    imported = []
    monkeypatch.setattr(compat.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(
        compat.importlib, "import_module", lambda name: imported.append((name, sys.modules["torch_sparse"])) or name
    )
    assert compat._has_real_torch_sparse()
    assert compat.import_torch_geometric_temporal() == "torch_geometric_temporal"
    assert imported == [("torch_geometric_temporal", real)]
    assert sys.modules["torch_sparse"] is real


def test_stand_in_is_installed_only_during_the_import(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch_sparse", raising=False)
    for name in [m for m in sys.modules if m == "torch_geometric_temporal" or m.startswith("torch_geometric_temporal.")]:
        monkeypatch.delitem(sys.modules, name)
    seen = []
    monkeypatch.setattr(
        compat.importlib.util, "find_spec", lambda name: None if name == "torch_sparse" else object()
    )
    monkeypatch.setattr(
        compat.importlib, "import_module", lambda name: seen.append(sys.modules.get("torch_sparse")) or name
    )
    compat.import_torch_geometric_temporal()
    assert getattr(seen[0], "__stgkd_stand_in__", False)
    assert "torch_sparse" not in sys.modules


def test_missing_pgt_gives_install_hint(monkeypatch):
    for name in [m for m in sys.modules if m == "torch_geometric_temporal" or m.startswith("torch_geometric_temporal.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(compat.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(compat.MissingDependencyError, match="pip install --no-deps torch-geometric-temporal==0.56.2") as info:
        compat.import_torch_geometric_temporal()
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ImportError)
