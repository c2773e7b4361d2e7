"""Graph files: DCRNN's adjacency pickle, a dense matrix, an edge list."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stgkd.data.readers.common import (
    _DISTANCE_COLUMNS,
    _SOURCE_COLUMNS,
    _TARGET_COLUMNS,
    _WEIGHT_COLUMNS,
    DataWarning,
    PathLike,
    _check_adjacency,
    _check_csv_rows,
    _column_lookup,
    _numeric_frame,
    _read_csv,
    _require_file,
)
from stgkd.data.safe_pickle import safe_load
from stgkd.errors import DataError


def read_adj_pickle(path: PathLike) -> tuple[list[str], np.ndarray]:
    """DCRNN's ``adj_mx.pkl``: ``[sensor_ids, sensor_id_to_ind, adj_mx]`` -> ``(sensor_ids, adj)``.

    Loaded with the restricted unpickler (:mod:`stgkd.data.safe_pickle`); checks that
    ``sensor_id_to_ind`` agrees with the order of ``sensor_ids`` and that ``adj_mx`` is
    ``len(sensor_ids)`` square, finite and non-negative.
    """
    path = _require_file(path, "adjacency pickle")
    obj = safe_load(path)
    if not isinstance(obj, (list, tuple)) or len(obj) != 3:
        raise DataError(
            f"{path}: expected DCRNN's [sensor_ids, sensor_id_to_ind, adj_mx], got "
            f"{type(obj).__name__}{f' of length {len(obj)}' if hasattr(obj, '__len__') else ''}"
        )
    ids, id_to_ind, adj = obj
    if isinstance(ids, np.ndarray):
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)):
        raise DataError(f"{path}: sensor_ids must be a list, got {type(ids).__name__}")
    ids = [s.decode("latin1") if isinstance(s, bytes) else str(s) for s in ids]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: sensor_ids hold duplicates")
    if not isinstance(id_to_ind, dict):
        raise DataError(f"{path}: sensor_id_to_ind must be a dict, got {type(id_to_ind).__name__}")
    mapping = {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in id_to_ind.items()}
    expected = {s: i for i, s in enumerate(ids)}
    if mapping != expected:
        raise DataError(f"{path}: sensor_id_to_ind does not match the order of sensor_ids")
    adj = _check_adjacency(adj, path)
    if adj.shape[0] != len(ids):
        raise DataError(f"{path}: {len(ids)} sensor ids but the adjacency is {adj.shape[0]}x{adj.shape[1]}")
    return ids, adj


def read_dense_matrix(path: PathLike) -> np.ndarray:
    """A dense ``(N, N)`` adjacency: CSV without header (T-GCN's ``los_adj.csv``) or ``.npy``."""
    path = _require_file(path, "adjacency matrix")
    if path.suffix.lower() == ".npy":
        try:
            adj = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path}: not a readable .npy file ({type(exc).__name__}: {exc})") from None
    else:
        _check_csv_rows(path, header=False)
        df = _read_csv(path, header=None)
        adj = _numeric_frame(df, path)
        if np.isnan(adj).any():
            raise DataError(f"{path}: adjacency has {int(np.isnan(adj).sum())} empty cells")
    return _check_adjacency(adj, path)


def read_edge_list(
    path: PathLike,
    node_ids: Sequence[str],
    *,
    sigma: float | None = None,
    threshold: float = 0.1,
    symmetric: bool = False,
    warn_dropped_edges: bool = True,
) -> np.ndarray:
    """Adjacency ``(N, N)`` from an edge list CSV with a header.

    Columns: ``source,target`` (or ``from,to``) naming nodes by their id in ``node_ids``, then
    optionally ``weight`` (used as is), or ``distance`` / ``cost`` / ``length`` (turned into weights by
    DCRNN's Gaussian kernel :func:`stgkd.data.graph.gaussian_kernel_adjacency` with ``sigma`` and
    ``threshold``; node pairs without an edge get no weight). Without a third column every edge weighs
    ``1``. Edges are directed (row = source) unless ``symmetric``. A repeated edge with the same value
    is accepted; with a different value it is an error.

    The kernel drops every edge whose weight ``exp(-(d / sigma)^2)`` falls under ``threshold``: unless
    ``warn_dropped_edges`` is off, a :class:`DataWarning` says how many of the listed edges went, with ``sigma`` and the threshold (with
    DCRNN's default ``sigma``, the std of the listed distances, a short list of roads of similar
    lengths can lose them all). When the listed distances are all equal (a single road, or roads of one
    length) that ``sigma`` is ``0`` and the kernel has no scale: every listed edge then weighs ``1``
    (what any kernel gives edges of one length, up to a common factor), said by a :class:`DataWarning`;
    pass ``sigma`` to weigh them ``exp(-(d / sigma)^2)`` instead.

    Args:
        path: the CSV file.
        node_ids: the sensors, in matrix order.
        sigma: kernel width for distances (default: the std of the listed distances, as DCRNN).
        threshold: kernel weights below it are dropped, in ``[0, 1]`` (default: ``0.1``, DCRNN's;
            ``0`` keeps every listed edge).
        symmetric: add the reverse of every edge (default: ``False``).
        warn_dropped_edges: warn when the kernel drops listed edges (default: ``True``; a registered
            dataset whose standard graph is built this way turns it off).
    """
    path = _require_file(path, "edge list")
    _check_csv_rows(path, header=True)
    df = _read_csv(path, dtype=str, keep_default_na=False)
    src_col = _column_lookup(df.columns, _SOURCE_COLUMNS)
    dst_col = _column_lookup(df.columns, _TARGET_COLUMNS)
    if src_col is None or dst_col is None:
        raise DataError(
            f"{path}: an edge list needs 'source,target' (or 'from,to') columns; found {list(df.columns)}"
        )
    dist_col = _column_lookup(df.columns, _DISTANCE_COLUMNS)
    weight_col = _column_lookup(df.columns, _WEIGHT_COLUMNS)
    if dist_col is not None and weight_col is not None:
        raise DataError(f"{path}: give either a weight or a distance column, not both")
    value_col = dist_col if dist_col is not None else weight_col
    index = {str(s): i for i, s in enumerate(node_ids)}
    n = len(index)
    src = df[src_col].str.strip()
    dst = df[dst_col].str.strip()
    unknown = sorted({s for s in pd.concat([src, dst]) if s not in index})
    if unknown:
        raise DataError(
            f"{path}: {len(unknown)} node ids are not among the {n} sensors (e.g. {unknown[:5]})"
        )
    if value_col is None:
        vals = np.ones(len(df), dtype=np.float64)
    else:
        vals = _numeric_frame(df[[value_col]].replace("", np.nan), path)[:, 0]
        if np.isnan(vals).any():
            raise DataError(f"{path}: {int(np.isnan(vals).sum())} empty cells in column {value_col!r}")
        if not np.isfinite(vals).all():
            raise DataError(f"{path}: column {value_col!r} holds infinite values")
        if (vals < 0).any():
            i = int(np.flatnonzero(vals < 0)[0])
            raise DataError(f"{path}: negative {value_col} {vals[i]} on row {i} ({src.iloc[i]} -> {dst.iloc[i]})")
    rows = src.map(index).to_numpy(dtype=np.int64)
    cols = dst.map(index).to_numpy(dtype=np.int64)
    if symmetric:
        rows, cols, vals = np.concatenate([rows, cols]), np.concatenate([cols, rows]), np.concatenate([vals, vals])
    fill = np.inf if dist_col is not None else 0.0
    mat = np.full((n, n), fill, dtype=np.float64)
    seen = np.zeros((n, n), dtype=bool)
    for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist()):
        if seen[r, c] and mat[r, c] != v:
            raise DataError(
                f"{path}: edge {node_ids[r]} -> {node_ids[c]} is listed twice with different values "
                f"({mat[r, c]} and {v})"
            )
        mat[r, c] = v
        seen[r, c] = True
    if dist_col is not None:
        adj = _kernel_weights(mat, seen, path, dist_col, sigma, threshold, warn_dropped_edges=warn_dropped_edges)
        return _check_adjacency(adj, path)
    return _check_adjacency(mat, path)


def _kernel_weights(dist: np.ndarray, listed: np.ndarray, path: Path, column: str, sigma: float | None,
                    threshold: float, *, warn_dropped_edges: bool) -> np.ndarray:
    """The Gaussian kernel of an edge list's distances (``listed``: the entries the file gives), with
    the warnings :func:`read_edge_list` promises."""
    from stgkd.data.graph import gaussian_kernel_adjacency, kernel_sigma

    if not 0 <= threshold <= 1:
        raise DataError(f"{path}: threshold must be in [0, 1] (a kernel weight is at most 1), got {threshold}")
    if sigma is not None and not sigma > 0:
        raise DataError(f"{path}: sigma must be positive, got {sigma}")
    origin = "as given"
    if sigma is None:
        sigma, origin = kernel_sigma(dist), "the std of the listed distances"
        if sigma == 0:
            warnings.warn(
                f"{path}: every listed {column} is {float(dist[listed][0]):g}, so the Gaussian kernel has no "
                "scale (its sigma, the std of the listed distances, is 0); every listed edge weighs 1. Pass "
                "sigma= (stgkd data info --sigma) to weigh them exp(-(d/sigma)^2), or give the file a 'weight' "
                f"column in place of '{column}'",
                DataWarning, stacklevel=4,
            )
            return listed.astype(np.float32)
    adj = gaussian_kernel_adjacency(dist, sigma=sigma, threshold=threshold)
    edges = listed & ~np.eye(len(listed), dtype=bool)
    lost = edges & (adj == 0)
    dropped, total = int(lost.sum()), int(edges.sum())
    if dropped and warn_dropped_edges:
        largest = float(np.exp(-np.square(dist[lost] / sigma)).max())
        why = f"under the threshold {threshold:g}" if largest < threshold else "so little that they round to 0"
        left = "; the graph keeps no edge between sensors" if dropped == total else ""
        median = float(np.median(dist[edges]))
        warnings.warn(
            f"{path}: the Gaussian kernel exp(-(d/sigma)^2) with sigma {sigma:.4g} ({origin}) weighs {dropped} of "
            f"the {total} listed edges ({100.0 * dropped / total:.3g}%) {why} (largest weight {largest:.3g}) and "
            f"drops them{left}. To keep them, give the file a 'weight' column (used as is) in place of "
            f"'{column}', or load with a larger sigma= (e.g. {median:.4g}, the median listed {column}) or a "
            "smaller threshold= (stgkd data info --sigma, --threshold)",
            DataWarning, stacklevel=4,
        )
    return adj


def find_adj_pickle(folder: Path) -> Path | None:
    """DCRNN's adjacency pickle in ``folder``: ``adj_mx.pkl``, else the only ``adj_mx*.pkl`` (``None``: none)."""
    preferred = folder / "adj_mx.pkl"
    if preferred.is_file():
        return preferred
    found = sorted(folder.glob("adj_mx*.pkl"))
    return found[0] if len(found) == 1 else None
