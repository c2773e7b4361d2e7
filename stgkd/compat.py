"""Compatibility with optional third-party packages.

PyTorch Geometric Temporal (PGT) 0.56.2 declares ``torch-sparse`` and ``torch-scatter`` as
dependencies (compiled from source where no wheel matches, ~14 min on 2 cores), yet the layers stgkd
wraps (``BatchedDCRNN``, ``STConv``, ``AGCRN``, ``MTGNN``, ...) need neither: one module,
``nn/recurrent/evolvegcno.py``, runs ``from torch_sparse import SparseTensor`` at the top, and
``import torch_geometric_temporal`` fails on that line. :func:`import_torch_geometric_temporal`
supplies PyG's own placeholder (``torch_geometric.typing.SparseTensor``, every method of which raises
``ImportError("'SparseTensor' requires 'torch-sparse'")``) for the duration of that import only, so
the package imports while anything that really needs ``torch_sparse`` still fails loudly.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from stgkd.errors import ConfigError

PGT_INSTALL_HINT = "pip install --no-deps torch-geometric-temporal==0.56.2"


class MissingDependencyError(ConfigError, ImportError):
    """An optional package stgkd needs for the requested feature is not installed.

    Both a :class:`~stgkd.errors.ConfigError` (the CLI prints it as one line) and an
    :class:`ImportError` (``except ImportError`` around optional imports keeps working).
    """


def _torch_sparse_stand_in() -> types.ModuleType:
    """A module object named ``torch_sparse`` exposing PyG's ``SparseTensor``/``SparseStorage``
    placeholders; any other name raises an ImportError with the reason."""
    from torch_geometric import typing as pyg_typing

    module = types.ModuleType(
        "torch_sparse",
        "Stand-in installed by stgkd.compat while importing torch_geometric_temporal; "
        "the real torch-sparse is not installed.",
    )
    module.SparseTensor = pyg_typing.SparseTensor
    module.SparseStorage = pyg_typing.SparseStorage
    module.__stgkd_stand_in__ = True

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"torch_sparse.{name} is unavailable: torch-sparse is not installed (stgkd.compat "
            f"supplied a stand-in so that torch_geometric_temporal imports)"
        )

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def _has_real_torch_sparse() -> bool:
    existing = sys.modules.get("torch_sparse")
    if existing is not None:
        return not getattr(existing, "__stgkd_stand_in__", False)
    try:
        return importlib.util.find_spec("torch_sparse") is not None
    except (ImportError, ValueError):
        return False


def import_torch_geometric_temporal() -> types.ModuleType:
    """Import and return ``torch_geometric_temporal``, working around its ``torch_sparse`` import.

    When the real ``torch_sparse`` is importable (or already imported) nothing is replaced and PGT
    imports as usual. Otherwise a stand-in module exposing PyG's ``SparseTensor`` placeholder is put
    in ``sys.modules["torch_sparse"]`` for the duration of the import and removed afterwards, so
    later ``import torch_sparse`` elsewhere still fails as it should. Calling the placeholder
    (e.g. ``EvolveGCNO``'s sparse cache) raises ``ImportError("'SparseTensor' requires
    'torch-sparse'")``.

    Raises:
        MissingDependencyError: ``torch_geometric_temporal`` is not installed (the message carries
            the install command).
    """
    if "torch_geometric_temporal" in sys.modules:
        return sys.modules["torch_geometric_temporal"]
    if importlib.util.find_spec("torch_geometric_temporal") is None:
        raise MissingDependencyError(
            "the peer teachers (stgkd.nn.peers: dcrnn, stgcn, agcrn, mtgnn) need "
            f"torch-geometric-temporal, which is not installed; install it with `{PGT_INSTALL_HINT}`"
        )
    if _has_real_torch_sparse():
        return importlib.import_module("torch_geometric_temporal")
    sys.modules["torch_sparse"] = _torch_sparse_stand_in()
    try:
        return importlib.import_module("torch_geometric_temporal")
    finally:
        if getattr(sys.modules.get("torch_sparse"), "__stgkd_stand_in__", False):
            del sys.modules["torch_sparse"]
