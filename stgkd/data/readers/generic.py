"""The generic layout, for a user's own network: values as CSV / NPZ / NPY / HDF5 of ``(T, N)`` or
``(T, N, C)`` with optional timestamps; graph as an edge list CSV ``source,target[,weight|distance]``
or a dense matrix (CSV / NPY)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stgkd.data.core import TrafficData
from stgkd.data.readers.common import Gaps, PathLike, _check_adjacency, _match_ids, _require_file
from stgkd.data.readers.graphs import read_adj_pickle, read_dense_matrix, read_edge_list
from stgkd.data.readers.layout import Layout, register_layout
from stgkd.data.readers.values import _finish, read_values
from stgkd.missing import MissingSpec

__all__ = ["read_generic"]

#: suffixes of a values file
VALUE_SUFFIXES = (".csv", ".npz", ".npy", ".h5", ".hdf5")
#: names of a graph file beside the values, in the order they are looked for
GRAPH_NAMES = ("edges.csv", "graph.csv", "adjacency.csv", "adj.csv", "adjacency.npy", "adj.npy")


def read_generic(
    values_path: PathLike,
    graph: PathLike | np.ndarray,
    *,
    key: str | None = None,
    timestamp_column: str | int | None = None,
    start: str | pd.Timestamp | None = None,
    interval_minutes: int | None = None,
    gaps: Gaps = "error",
    sigma: float | None = None,
    threshold: float = 0.1,
    symmetric: bool = False,
    name: str | None = None,
    split: Sequence[float] = (0.7, 0.1, 0.2),
    channel_names: Sequence[str] | None = None,
    missing: MissingSpec = "zero",
) -> TrafficData:
    """A user's own network: values file + graph file.

    Args:
        values_path: ``.csv`` / ``.npz`` / ``.npy`` / ``.h5`` of ``(T, N)`` or ``(T, N, C)``
            (see :func:`read_values` for the timestamp and sensor-id conventions). Without sensor
            ids the sensors are named ``"0" .. "N-1"``.
        graph: edge list CSV (header ``source,target[,weight|distance]``, node names = sensor ids;
            see :func:`read_edge_list`), dense matrix (CSV without header, ``.npy``), or an array.
            A CSV whose first line holds non-numeric names is read as an edge list.
        key: array / HDF5 key of the values.
        timestamp_column: CSV column holding timestamps (default: detected by name).
        start: first timestamp, for values without timestamps.
        interval_minutes: sampling interval (default: inferred from timestamps, else 5).
        gaps: ``"error"`` / ``"keep"`` / ``"fill"`` for whole missing steps.
        sigma, threshold, symmetric: for distance edge lists (see :func:`read_edge_list`).
        name: dataset name (default: the values file stem).
        split: train/val/test fractions (default: 0.7/0.1/0.2).
        channel_names: names of the ``C`` channels (default: ``value`` or ``ch0..``).
        missing: which readings are missing: ``"zero"`` (0 and NaN), ``"nan"`` (only NaN / empty
            cells: a count or flow series whose zeros are readings), ``"none"`` or a sentinel number
            (see the module docstring; default: ``"zero"``).
    """
    values_path = _require_file(values_path, "values file")
    values, ids, stamps = read_values(values_path, key=key, timestamp_column=timestamp_column)
    n = values.shape[1]
    ids = ids if ids is not None else [str(i) for i in range(n)]
    if isinstance(graph, np.ndarray):
        graph_path: PathLike = "graph (array)"
        adj = _check_adjacency(graph, graph_path)
        sources = [values_path]
    else:
        graph_path = _require_file(graph, "graph file")
        if graph_path.suffix.lower() == ".csv" and _csv_has_header(graph_path):
            adj = read_edge_list(graph_path, ids, sigma=sigma, threshold=threshold, symmetric=symmetric)
        elif graph_path.suffix.lower() == ".pkl":
            graph_ids, adj = read_adj_pickle(graph_path)
            values = _match_ids(values, ids, graph_ids, values_path, graph_path)
            ids = graph_ids
        else:
            adj = read_dense_matrix(graph_path)
        sources = [values_path, graph_path]
    return _finish(
        values, adj, ids,
        values_path=values_path, graph_path=graph_path, stamps=stamps, start=start,
        interval_minutes=interval_minutes, gaps=gaps, name=name or values_path.stem, split=split,
        channel_names=channel_names, sources=sources, missing=missing,
    )


def _csv_has_header(path: Path) -> bool:
    with path.open("r", errors="replace") as f:
        first = f.readline()
    for token in first.strip().split(","):
        try:
            float(token)
        except ValueError:
            return True
    return False


def _in_folder(folder: Path) -> dict[str, Any] | None:
    """``values.{csv,npz,npy,h5}`` + a graph file (:data:`GRAPH_NAMES`)."""
    values = [folder / f"values{s}" for s in VALUE_SUFFIXES if (folder / f"values{s}").is_file()]
    graph = [folder / g for g in GRAPH_NAMES if (folder / g).is_file()]
    return {"values_path": values[0], "graph": graph[0]} if len(values) == 1 and graph else None


def _at_file(path: Path) -> dict[str, Any] | None:
    """Any values file; its graph when one lies beside it (else ``graph=`` must be given)."""
    if path.suffix.lower() not in VALUE_SUFFIXES:
        return None
    folder = path.parent
    graph = [folder / g for g in GRAPH_NAMES if (folder / g).is_file() and folder / g != path]
    return {"values_path": path, "graph": graph[0]} if graph else {"values_path": path}


LAYOUT = register_layout(Layout(
    name="generic", reader=read_generic, order=3, in_folder=_in_folder, at_file=_at_file,
    expects="values.{csv,npz,npy,h5} + edges.csv/adjacency.csv/adjacency.npy (generic)",
))
