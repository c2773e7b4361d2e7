"""DCRNN's layout (METR-LA, PEMS-BAY): ``<name>.h5`` (pandas HDF5, key ``df``, ``DatetimeIndex`` x
sensor-id columns) + ``adj_mx.pkl`` (``[sensor_ids, sensor_id_to_ind, adj_mx]``, protocol 2, latin-1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stgkd.data.core import TrafficData
from stgkd.data.readers.common import Gaps, PathLike, _match_ids, _numeric_frame, _require_file
from stgkd.data.readers.graphs import find_adj_pickle, read_adj_pickle
from stgkd.data.readers.layout import Layout, register_layout
from stgkd.data.readers.values import _finish, _read_hdf
from stgkd.errors import DataError
from stgkd.missing import MissingSpec

__all__ = ["read_dcrnn"]


def read_dcrnn(
    h5_path: PathLike,
    adj_path: PathLike | None = None,
    *,
    key: str = "df",
    interval_minutes: int | None = None,
    gaps: Gaps = "error",
    name: str | None = None,
    split: Sequence[float] = (0.7, 0.1, 0.2),
    channel_names: Sequence[str] | None = ("speed",),
    missing: MissingSpec = "zero",
) -> TrafficData:
    """METR-LA / PEMS-BAY in DCRNN's layout.

    Args:
        h5_path: pandas HDF5 file, DataFrame under ``key`` with a ``DatetimeIndex`` and one column per
            sensor id.
        adj_path: DCRNN's adjacency pickle (default: ``adj_mx.pkl`` beside ``h5_path``, else the only
            ``adj_mx*.pkl`` there).
        key: HDF5 key (default: ``"df"``).
        interval_minutes: expected interval (default: inferred from the timestamps).
        gaps: ``"error"`` / ``"keep"`` / ``"fill"`` for whole missing steps (see module docstring).
        name: dataset name (default: the h5 file's stem).
        split: train/val/test fractions (default: DCRNN's 0.7/0.1/0.2).
        channel_names: names of the channels (default: ``("speed",)``).
        missing: which readings are missing: ``"zero"`` (0 and NaN), ``"nan"``, ``"none"`` or a
            sentinel number (see the module docstring; default: ``"zero"``).

    Columns are matched to the pickle's ``sensor_ids`` by id: equal order passes, a different order
    is reordered by id with a :class:`DataWarning`, different sets raise.
    """
    h5_path = _require_file(h5_path, "HDF5 readings file")
    if adj_path is None:
        adj_path = find_adj_pickle(h5_path.parent)
        if adj_path is None:
            raise DataError(f"{h5_path}: no adj_mx.pkl beside it in {h5_path.parent}; pass adj_path=")
    adj_path = _require_file(adj_path, "adjacency pickle")
    if h5_path.suffix.lower() not in (".h5", ".hdf5", ".hdf"):
        raise DataError(f"{h5_path}: expected a pandas HDF5 file (.h5)")
    df = _read_hdf(h5_path, key)
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError(f"{h5_path}: key {key!r} must be indexed by timestamps (DatetimeIndex), got {type(df.index).__name__}")
    values = _numeric_frame(df, h5_path)
    graph_ids, adj = read_adj_pickle(adj_path)
    values = _match_ids(values, [str(c) for c in df.columns], graph_ids, h5_path, adj_path)
    return _finish(
        values, adj, graph_ids,
        values_path=h5_path, graph_path=adj_path, stamps=df.index, start=None,
        interval_minutes=interval_minutes, gaps=gaps, name=name or h5_path.stem, split=split,
        channel_names=channel_names, sources=[h5_path, adj_path], missing=missing,
    )


def _in_folder(folder: Path) -> dict[str, Any] | None:
    """An ``.h5`` + ``adj_mx*.pkl``, whatever the ``.h5`` is called."""
    h5 = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".h5", ".hdf5") and p.is_file())
    adj_pkl = find_adj_pickle(folder)
    if not h5 or adj_pkl is None:
        return None
    if len(h5) > 1:
        raise DataError(f"{folder}: several HDF5 files ({', '.join(p.name for p in h5)}); point at one of them")
    return {"h5_path": h5[0], "adj_path": adj_pkl}


def _at_file(path: Path) -> dict[str, Any] | None:
    """An ``.h5`` with an ``adj_mx*.pkl`` beside it."""
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return None
    adj_pkl = find_adj_pickle(path.parent)
    return None if adj_pkl is None else {"h5_path": path, "adj_path": adj_pkl}


LAYOUT = register_layout(Layout(
    name="dcrnn", reader=read_dcrnn, order=0, in_folder=_in_folder, at_file=_at_file,
    expects="an .h5 + adj_mx.pkl (DCRNN)", registered_files=("h5_path", "adj_path"),
))
