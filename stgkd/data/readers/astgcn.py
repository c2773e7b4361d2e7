"""The ASTGCN/STSGCN layout (PEMS03/04/07/08): ``PEMS0x.npz`` (key ``data``, ``(T, N, C)``, flow
first) + a distance CSV ``from,to,cost`` (PEMS03: raw sensor ids, mapped to indices by ``PEMS03.txt``).
The adjacency is DCRNN's Gaussian kernel of the distances."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stgkd.data.core import TrafficData
from stgkd.data.readers.common import PathLike, _require_file
from stgkd.data.readers.graphs import read_edge_list
from stgkd.data.readers.layout import Layout, register_layout
from stgkd.data.readers.values import _finish, _read_npz
from stgkd.errors import DataError
from stgkd.missing import MissingSpec

__all__ = ["PEMS_START", "read_pems"]

#: Standard start of the PEMS0x releases (the files carry no timestamps); 5-minute steps from here.
PEMS_START: dict[str, str] = {
    "PEMS03": "2018-09-01 00:00",
    "PEMS04": "2018-01-01 00:00",
    "PEMS07": "2017-05-01 00:00",
    "PEMS08": "2016-07-01 00:00",
}

_PEMS_STEM = re.compile(r"^pems\d+$", re.IGNORECASE)


def read_pems(
    npz_path: PathLike,
    distance_path: PathLike | None = None,
    *,
    id_map_path: PathLike | None = None,
    key: str = "data",
    start: str | pd.Timestamp | None = None,
    interval_minutes: int = 5,
    sigma: float | None = None,
    threshold: float = 0.1,
    symmetric: bool = False,
    warn_dropped_edges: bool = True,
    name: str | None = None,
    split: Sequence[float] = (0.6, 0.2, 0.2),
    channel_names: Sequence[str] | None = None,
    missing: MissingSpec = "zero",
) -> TrafficData:
    """PEMS03/04/07/08 in the ASTGCN/STSGCN layout.

    Args:
        npz_path: ``PEMS0x.npz`` holding ``key`` (default ``"data"``) of shape ``(T, N, C)``, flow
            first (PEMS04/08: flow, occupancy, speed; PEMS03/07: flow).
        distance_path: edge list ``from,to,cost`` (default: the ``.csv`` of the same stem beside it).
            Nodes are indices ``0..N-1``, or raw sensor ids mapped through ``id_map_path``.
        id_map_path: one raw sensor id per line, line ``i`` = node ``i`` (PEMS03's ``PEMS03.txt``;
            default: the ``.txt`` of the same stem beside the npz, if present).
        start: first timestamp; the files have none. Default: the release's known start
            (:data:`PEMS_START`) when the file stem is ``PEMS0x``, else no timestamps.
        interval_minutes: sampling interval (default: 5).
        sigma, threshold: Gaussian kernel of the distances (default: std of the distances, 0.1 —
            DCRNN's construction). Node pairs without a listed distance get no edge; the diagonal
            stays 0 unless the file lists a self distance.
        symmetric: also add each edge in the reverse direction (default: ``False``, as listed).
        warn_dropped_edges: warn when the kernel drops listed edges (:func:`read_edge_list`) (default:
            ``True``; off for the registered PEMS0x datasets, whose standard graph this is).
        name: dataset name (default: the file stem, lower-cased).
        split: train/val/test fractions (default: 0.6/0.2/0.2, the ASTGCN/STSGCN split).
        channel_names: default ``flow, occupancy, speed`` for 3 channels, ``flow`` for 1.
        missing: which readings are missing: ``"zero"`` (0 and NaN), ``"nan"``, ``"none"`` or a
            sentinel number (see the module docstring; default: ``"zero"``).
    """
    npz_path = _require_file(npz_path, "PEMS readings file")
    stem = npz_path.stem
    if distance_path is None:
        distance_path = npz_path.with_suffix(".csv")
        if not distance_path.exists():
            found = sorted(p for p in npz_path.parent.glob("*.csv"))
            if len(found) != 1:
                raise DataError(f"{npz_path}: no distance CSV {distance_path.name} beside it; pass distance_path=")
            distance_path = found[0]
    distance_path = _require_file(distance_path, "distance CSV")
    if id_map_path is None and npz_path.with_suffix(".txt").is_file():
        id_map_path = npz_path.with_suffix(".txt")
    data, _, _ = _read_npz(npz_path, key)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise DataError(f"{npz_path}: array {key!r} must be (T, N, C), got shape {data.shape}")
    n = data.shape[1]
    if id_map_path is not None:
        id_map_path = _require_file(id_map_path, "sensor id map")
        ids = [line.strip() for line in id_map_path.read_text().splitlines() if line.strip()]
        if len(ids) != n:
            raise DataError(f"{id_map_path}: {len(ids)} sensor ids but {npz_path} has {n} sensors")
        if len(set(ids)) != n:
            raise DataError(f"{id_map_path}: duplicate sensor ids")
    else:
        ids = [str(i) for i in range(n)]
    adj = read_edge_list(distance_path, ids, sigma=sigma, threshold=threshold, symmetric=symmetric,
                         warn_dropped_edges=warn_dropped_edges)
    if start is None:
        start = PEMS_START.get(stem.upper())
    if channel_names is None:
        channel_names = ["flow", "occupancy", "speed"] if data.shape[2] == 3 else (["flow"] if data.shape[2] == 1 else None)
    sources = [npz_path, distance_path] + ([id_map_path] if id_map_path is not None else [])
    return _finish(
        data, adj, ids,
        values_path=npz_path, graph_path=distance_path, stamps=None, start=start,
        interval_minutes=interval_minutes, gaps="error", name=name or stem.lower(), split=split,
        channel_names=channel_names, sources=sources, missing=missing,
    )


def _in_folder(folder: Path) -> dict[str, Any] | None:
    """An ``.npz`` + ``.csv`` of the same stem."""
    pems = [p for p in sorted(folder.glob("*.npz")) if p.with_suffix(".csv").is_file()]
    if len(pems) > 1:
        raise DataError(f"{folder}: several .npz + .csv pairs ({', '.join(p.name for p in pems)}); point at one of them")
    return {"npz_path": pems[0]} if pems else None


def _at_file(path: Path) -> dict[str, Any] | None:
    """A ``PEMS0x.npz`` with its ``.csv`` beside it."""
    if path.suffix.lower() == ".npz" and _PEMS_STEM.match(path.stem) and path.with_suffix(".csv").is_file():
        return {"npz_path": path}
    return None


LAYOUT = register_layout(Layout(
    name="astgcn", reader=read_pems, order=1, in_folder=_in_folder, at_file=_at_file,
    expects="PEMS0x.npz + PEMS0x.csv (ASTGCN)", registered_files=("npz_path", "distance_path", "id_map_path"),
))
