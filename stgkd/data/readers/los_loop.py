"""T-GCN's "Los-loop" layout: ``*_speed.csv`` (header of sensor ids) + a dense adjacency CSV without
header (``los_adj.csv``) or DCRNN's ``adj_mx.pkl``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stgkd.data.core import TrafficData
from stgkd.data.readers.common import (
    PathLike,
    _check_adjacency,
    _check_csv_rows,
    _csv_header,
    _match_ids,
    _numeric_frame,
    _read_csv,
    _require_file,
    _require_unique_ids,
)
from stgkd.data.readers.graphs import find_adj_pickle, read_adj_pickle, read_dense_matrix
from stgkd.data.readers.layout import Layout, register_layout
from stgkd.data.readers.values import _finish
from stgkd.errors import DataError
from stgkd.missing import MissingSpec

__all__ = ["read_los_loop"]


def read_los_loop(
    speed_path: PathLike,
    adj: PathLike | np.ndarray | None = None,
    *,
    start: str | pd.Timestamp | None = None,
    interval_minutes: int = 5,
    name: str | None = None,
    split: Sequence[float] = (0.7, 0.1, 0.2),
    channel_names: Sequence[str] | None = ("speed",),
    missing: MissingSpec = "zero",
) -> TrafficData:
    """T-GCN's CSV layout: ``los_speed.csv`` (header of sensor ids, one row per step) + adjacency.

    Args:
        speed_path: the speed CSV.
        adj: a dense adjacency CSV without header (``los_adj.csv``), DCRNN's ``adj_mx.pkl``, a
            ``.npy``, or an ``(N, N)`` array. Default: ``<prefix>_adj.csv`` beside the speed file
            (``los_speed.csv`` -> ``los_adj.csv``), else ``adj_mx.pkl`` there.
        start: timestamp of the first row; the CSV has none (default: no timestamps).
        interval_minutes: sampling interval (default: 5).
        name: dataset name (default: the prefix, e.g. ``"los"``).
        split: train/val/test fractions (default: 0.7/0.1/0.2).
        channel_names: default ``("speed",)``.
        missing: which readings are missing: ``"zero"`` (0 and NaN), ``"nan"``, ``"none"`` or a
            sentinel number (see the module docstring; default: ``"zero"``).

    With a pickle the columns are matched to its ``sensor_ids`` as in :func:`read_dcrnn`; a dense
    matrix carries no ids, so its order is taken to be the CSV's column order.
    """
    speed_path = _require_file(speed_path, "speed CSV")
    prefix = speed_path.stem[: -len("_speed")] if speed_path.stem.endswith("_speed") else speed_path.stem
    if adj is None:
        candidate = speed_path.with_name(f"{prefix}_adj.csv")
        adj = candidate if candidate.is_file() else find_adj_pickle(speed_path.parent)
        if adj is None:
            raise DataError(
                f"{speed_path}: no adjacency beside it (looked for {candidate.name} and adj_mx.pkl in "
                f"{speed_path.parent}); pass adj="
            )
    _check_csv_rows(speed_path, header=True)
    _require_unique_ids(_csv_header(speed_path), speed_path)
    df = _read_csv(speed_path, dtype=str, keep_default_na=False, na_values=[""])
    if df.empty:
        raise DataError(f"{speed_path}: no data rows")
    ids = [str(c).strip() for c in df.columns]
    values = _numeric_frame(df, speed_path)
    if isinstance(adj, np.ndarray):
        graph_path: PathLike = "adj (array)"
        matrix = _check_adjacency(adj, graph_path)
        graph_ids = ids
        sources = [speed_path]
    else:
        graph_path = Path(adj)
        if graph_path.suffix.lower() == ".pkl":
            graph_ids, matrix = read_adj_pickle(graph_path)
            values = _match_ids(values, ids, graph_ids, speed_path, graph_path)
        else:
            matrix = read_dense_matrix(graph_path)
            graph_ids = ids
        sources = [speed_path, graph_path]
    return _finish(
        values, matrix, graph_ids,
        values_path=speed_path, graph_path=graph_path, stamps=None, start=start,
        interval_minutes=interval_minutes, gaps="error", name=name or prefix, split=split,
        channel_names=channel_names, sources=sources, missing=missing,
    )


def _in_folder(folder: Path) -> dict[str, Any] | None:
    """One ``*_speed.csv``."""
    speed = sorted(folder.glob("*_speed.csv"))
    return {"speed_path": speed[0]} if len(speed) == 1 else None


def _at_file(path: Path) -> dict[str, Any] | None:
    """A ``*_speed.csv``."""
    return {"speed_path": path} if path.suffix.lower() == ".csv" and path.stem.endswith("_speed") else None


LAYOUT = register_layout(Layout(
    name="los-loop", reader=read_los_loop, order=2, in_folder=_in_folder, at_file=_at_file,
    expects="*_speed.csv + adjacency (T-GCN)",
))
