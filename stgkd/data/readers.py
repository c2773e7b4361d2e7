"""Readers for the file layouts traffic datasets come in; each returns a validated :class:`TrafficData`.

Layouts:

* **DCRNN** (METR-LA, PEMS-BAY): ``metr-la.h5`` / ``pems-bay.h5`` (pandas HDF5, key ``df``,
  ``DatetimeIndex`` x sensor-id columns) + ``adj_mx.pkl`` (``[sensor_ids, sensor_id_to_ind, adj_mx]``,
  protocol 2, latin-1): :func:`read_dcrnn`.
* **ASTGCN/STSGCN** (PEMS03/04/07/08): ``PEMS0x.npz`` (key ``data``, ``(T, N, C)``, flow first) + a
  distance CSV ``from,to,cost`` (PEMS03: raw sensor ids, mapped to indices by ``PEMS03.txt``):
  :func:`read_pems`. The adjacency is DCRNN's Gaussian kernel of the distances.
* **T-GCN "Los-loop"**: ``*_speed.csv`` (header of sensor ids) + a dense adjacency CSV without header
  (``los_adj.csv``) or DCRNN's ``adj_mx.pkl``: :func:`read_los_loop`.
* **Generic**: values as CSV / NPZ / NPY / HDF5 of ``(T, N)`` or ``(T, N, C)`` with optional
  timestamps; graph as an edge list CSV ``source,target[,weight|distance]`` or a dense matrix
  (CSV / NPY): :func:`read_generic`.

Conventions every reader applies (nothing is silently truncated or reordered):

* Missing readings follow the ``missing=`` convention (:mod:`stgkd.missing`; default ``"zero"``:
  ``0`` and ``NaN`` are missing, as METR-LA / PEMS-BAY are released; ``"nan"``: only ``NaN`` / empty
  cells, a ``0`` is a reading; ``"none"``: no reading is missing; or a sentinel number). Every missing
  reading becomes ``NaN`` in :attr:`TrafficData.values`. ``NaN`` in a file whose convention uses
  another marker is counted and reported by a :class:`DataWarning` naming the file; more than 20 %
  missing readings, and sensors with no reading at all (by id), are reported too. ``Inf`` is an error
  (with its count).
* Non-numeric cells, a short or long CSV row, a corrupt or truncated file, a wrong key: an error
  naming the file and what is wrong.
* Timestamps must be strictly increasing with one interval. Duplicates and unordered timestamps are
  errors. Gaps of whole steps are errors unless ``gaps="keep"`` (rows kept as they are; PEMS-BAY's
  release lacks the hour of the 2017-03-12 daylight-saving change, and the standard split counts its
  52116 rows as they are) or ``gaps="fill"`` (missing steps inserted as missing readings, counted).
* Values and graph must hold the same sensors. When both carry ids (DCRNN h5 columns and the
  pickle's ``sensor_ids``) and the sets are equal but the order differs, the value columns are
  reordered *by id* to the graph's order and a :class:`DataWarning` says so; different sets are an
  error naming the ids that do not match.
* The series must be long enough for ``12 + 12`` windows and a non-empty train/val/test split.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from stgkd.data.core import TrafficData
from stgkd.data.safe_pickle import safe_load
from stgkd.errors import DataError
from stgkd.missing import MissingPolicy, MissingSpec, missing_warnings, parse_missing

__all__ = [
    "DataWarning",
    "PEMS_START",
    "read_adj_pickle",
    "read_dense_matrix",
    "read_edge_list",
    "read_values",
    "read_dcrnn",
    "read_pems",
    "read_los_loop",
    "read_generic",
    "check_enough_steps",
]

log = logging.getLogger(__name__)

Gaps = Literal["error", "keep", "fill"]
PathLike = str | Path

#: Standard start of the PEMS0x releases (the files carry no timestamps); 5-minute steps from here.
PEMS_START: dict[str, str] = {
    "PEMS03": "2018-09-01 00:00",
    "PEMS04": "2018-01-01 00:00",
    "PEMS07": "2017-05-01 00:00",
    "PEMS08": "2016-07-01 00:00",
}

_DISTANCE_COLUMNS = ("distance", "cost", "length", "dist", "length_km")
_WEIGHT_COLUMNS = ("weight", "w")
_SOURCE_COLUMNS = ("source", "from", "src", "u")
_TARGET_COLUMNS = ("target", "to", "dst", "v")
_TIMESTAMP_COLUMNS = ("timestamp", "timestamps", "time", "datetime", "date")
_NAN_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})  # written-out missing readings


class DataWarning(UserWarning):
    """Something on load deserves a look and is reported: NaN counted as missing where the convention
    uses another marker, columns reordered by id, a large share of missing readings, sensors with no
    reading at all."""


# ----------------------------------------------------------------------------------------------
# small helpers


def _require_file(path: PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    if not path.is_file():
        raise DataError(f"{path}: {what} is not a file")
    return path


def _check_csv_rows(path: Path, *, header: bool) -> int:
    """Every non-empty line of a comma separated file has the same number of fields; returns that number.

    pandas pads a short row (a file cut off mid-row) with NaN, which would pass as missing readings.
    """
    expected: int | None = None
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.count(b",") + 1
            if expected is None:
                expected = fields
            elif fields != expected:
                first = "the header" if header else "line 1"
                raise DataError(
                    f"{path}: line {lineno} has {fields} fields but {first} has {expected}; the file is "
                    "truncated or malformed"
                )
    if expected is None:
        raise DataError(f"{path}: file is empty")
    return expected


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({type(exc).__name__}: {exc})") from None


def _numeric_frame(df: pd.DataFrame, path: Path) -> np.ndarray:
    """``df`` as float64, naming the first non-numeric cell if there is one (empty cells are NaN)."""
    out = np.empty(df.shape, dtype=np.float64)
    for j, column in enumerate(df.columns):
        col = df[column]
        if pd.api.types.is_bool_dtype(col.dtype) or not (
            pd.api.types.is_numeric_dtype(col.dtype) or col.dtype == object or pd.api.types.is_string_dtype(col.dtype)
        ):
            raise DataError(f"{path}: column {column!r} has non-numeric type {col.dtype}")
        if pd.api.types.is_numeric_dtype(col.dtype):
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        converted = pd.to_numeric(col, errors="coerce")
        written_nan = col.astype(str).str.strip().str.lower().isin(_NAN_TOKENS).to_numpy()
        bad = converted.isna().to_numpy() & col.notna().to_numpy() & ~written_nan
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: non-numeric value {col.iloc[i]!r} in column {column!r}, row {i} "
                f"({int(bad.sum())} such cells in that column)"
            )
        out[:, j] = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _clean_values(values: np.ndarray, path: PathLike, policy: MissingPolicy) -> np.ndarray:
    """float32 copy with every missing reading ``NaN`` under ``policy``; NaN where the convention uses
    another marker is counted and warned about, ``Inf`` is an error."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise DataError(f"{path}: values have non-numeric dtype {values.dtype}")
    values = values.astype(np.float32, copy=True)
    inf = np.isinf(values)
    if inf.any():
        first = tuple(int(i) for i in np.argwhere(inf)[0])
        raise DataError(f"{path}: values hold {int(inf.sum())} infinite entries (first at index {first})")
    if policy.sentinel is not None:
        n_nan = int(np.isnan(values).sum())
        if n_nan:
            warnings.warn(
                f"{path}: {n_nan} NaN readings ({100.0 * n_nan / values.size:.3f}%) treated as missing",
                DataWarning,
                stacklevel=3,
            )
    return policy.apply(values, where=str(path), copy=False)


def _check_timestamps(
    index: pd.DatetimeIndex,
    path: PathLike,
    *,
    interval_minutes: int | None,
    gaps: Gaps,
) -> tuple[pd.DatetimeIndex, int, np.ndarray | None]:
    """Validate ``index``; returns ``(index, interval_minutes, positions)``.

    ``positions`` is ``None`` unless ``gaps="fill"`` inserted steps: then it maps each original row
    to its position in the filled index.
    """
    if gaps not in ("error", "keep", "fill"):
        raise DataError(f"{path}: gaps must be 'error', 'keep' or 'fill', got {gaps!r}")
    index = pd.DatetimeIndex(index)
    if index.hasnans:
        raise DataError(f"{path}: {int(index.isna().sum())} timestamps are missing (NaT)")
    if index.tz is not None:
        index = index.tz_convert(None)
    index = index.as_unit("ns")  # pandas 3 may parse to "us"/"s"; asi8 below is in nanoseconds
    if len(index) < 2:
        return index, int(interval_minutes or 5), None
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise DataError(f"{path}: duplicate timestamp {dup} ({int(index.duplicated().sum())} duplicates)")
    diffs = np.diff(index.asi8)  # nanoseconds
    if (diffs <= 0).any():
        i = int(np.flatnonzero(diffs <= 0)[0])
        raise DataError(f"{path}: timestamps are not in increasing order: {index[i]} is followed by {index[i + 1]}")
    minute = 60 * 10**9
    if interval_minutes is None:
        values, counts = np.unique(diffs, return_counts=True)
        step = int(values[np.argmax(counts)])
        if step % minute:
            raise DataError(f"{path}: the most common interval {pd.Timedelta(step)} is not a whole number of minutes")
        interval_minutes = step // minute
    step = int(interval_minutes) * minute
    off = diffs != step
    if not off.any():
        return index, int(interval_minutes), None
    i = int(np.flatnonzero(off)[0])
    whole = (diffs % step == 0)
    if not whole.all():
        j = int(np.flatnonzero(~whole)[0])
        raise DataError(
            f"{path}: irregular interval: {index[j]} -> {index[j + 1]} is {pd.Timedelta(int(diffs[j]))}, "
            f"not a multiple of the {interval_minutes}-minute step"
        )
    missing = int((diffs[off] // step - 1).sum())
    where = f"{index[i]} -> {index[i + 1]}"
    if gaps == "error":
        raise DataError(
            f"{path}: irregular intervals: {missing} missing {interval_minutes}-minute steps in "
            f"{int(off.sum())} gaps, the first {where}; pass gaps='keep' to keep the rows as they are or "
            "gaps='fill' to insert the missing steps as missing readings"
        )
    if gaps == "keep":
        log.info("%s: kept %d gaps (%d missing steps), the first %s", path, int(off.sum()), missing, where)
        return index, int(interval_minutes), None
    full = pd.date_range(index[0], index[-1], freq=pd.Timedelta(minutes=int(interval_minutes)))
    positions = full.get_indexer(index)
    warnings.warn(
        f"{path}: inserted {missing} missing {interval_minutes}-minute steps as missing readings "
        f"(first gap {where})",
        DataWarning,
        stacklevel=3,
    )
    return full, int(interval_minutes), positions


def _fill_gaps(values: np.ndarray, positions: np.ndarray, length: int) -> np.ndarray:
    out = np.full((length,) + values.shape[1:], np.nan, dtype=values.dtype)
    out[positions] = values
    return out


def check_enough_steps(
    num_steps: int,
    split: Sequence[float],
    where: PathLike,
    *,
    in_steps: int = 12,
    out_steps: int = 12,
) -> None:
    """Raise :class:`DataError` unless ``num_steps`` gives at least one window in each split.

    Windows are counted and split as :func:`stgkd.data.windows.split_sizes` (DCRNN's rounding).
    """
    num_windows = num_steps - in_steps - out_steps + 1
    if num_windows >= 3:
        num_test = round(num_windows * split[2])
        num_train = round(num_windows * split[0])
        sizes = (num_train, num_windows - num_train - num_test, num_test)
        if min(sizes) >= 1:
            return
    raise DataError(
        f"{where}: {num_steps} steps are too few for {in_steps}+{out_steps}-step windows and a "
        f"{'/'.join(f'{s:g}' for s in split)} train/val/test split (each split needs at least one window)"
    )


def _gaussian_kernel(dist: np.ndarray, sigma: float | None, threshold: float) -> np.ndarray:
    from stgkd.data.graph import gaussian_kernel_adjacency

    return np.asarray(gaussian_kernel_adjacency(dist, sigma=sigma, threshold=threshold), dtype=np.float32)


def _check_adjacency(adj: np.ndarray, path: PathLike) -> np.ndarray:
    adj = np.asarray(adj)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise DataError(f"{path}: adjacency must be a square matrix, got shape {adj.shape}")
    if not np.issubdtype(adj.dtype, np.number) or np.issubdtype(adj.dtype, np.complexfloating):
        raise DataError(f"{path}: adjacency has non-numeric dtype {adj.dtype}")
    adj = adj.astype(np.float32)
    if not np.isfinite(adj).all():
        raise DataError(f"{path}: adjacency holds {int((~np.isfinite(adj)).sum())} NaN/Inf entries")
    if (adj < 0).any():
        raise DataError(f"{path}: adjacency holds {int((adj < 0).sum())} negative weights")
    return adj


def _match_ids(
    values: np.ndarray,
    value_ids: Sequence[str],
    graph_ids: Sequence[str],
    values_path: PathLike,
    graph_path: PathLike,
) -> np.ndarray:
    """``values`` with columns in ``graph_ids`` order; equal sets required, reordering (by id) reported."""
    value_ids = [str(s) for s in value_ids]
    graph_ids = [str(s) for s in graph_ids]
    if len(set(value_ids)) != len(value_ids):
        raise DataError(f"{values_path}: duplicate sensor ids in the columns")
    if value_ids == graph_ids:
        return values
    if len(value_ids) != len(graph_ids) or set(value_ids) != set(graph_ids):
        only_values = [s for s in value_ids if s not in set(graph_ids)]
        only_graph = [s for s in graph_ids if s not in set(value_ids)]
        raise DataError(
            f"{values_path} has {len(value_ids)} sensors but the graph {graph_path} has {len(graph_ids)}; "
            f"{len(only_values)} ids only in the data (e.g. {only_values[:3]}), {len(only_graph)} only in "
            f"the graph (e.g. {only_graph[:3]})"
        )
    position = {s: i for i, s in enumerate(value_ids)}
    order = np.array([position[s] for s in graph_ids])
    warnings.warn(
        f"{values_path}: sensor columns are in a different order than in {graph_path}; reordered by sensor "
        "id to the graph's order",
        DataWarning,
        stacklevel=3,
    )
    return values[:, order]


def _column_lookup(columns: Sequence[str], names: Sequence[str]) -> str | None:
    lower = {str(c).strip().lower(): c for c in columns}
    for name in names:
        if name in lower:
            return lower[name]
    return None


# ----------------------------------------------------------------------------------------------
# graph readers


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
) -> np.ndarray:
    """Adjacency ``(N, N)`` from an edge list CSV with a header.

    Columns: ``source,target`` (or ``from,to``) naming nodes by their id in ``node_ids``, then
    optionally ``weight`` (used as is), or ``distance`` / ``cost`` / ``length`` (turned into weights by
    DCRNN's Gaussian kernel :func:`stgkd.data.graph.gaussian_kernel_adjacency` with ``sigma`` and
    ``threshold``; node pairs without an edge get no weight). Without a third column every edge weighs
    ``1``. Edges are directed (row = source) unless ``symmetric``. A repeated edge with the same value
    is accepted; with a different value it is an error.
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
        return _check_adjacency(_gaussian_kernel(mat, sigma, threshold), path)
    return _check_adjacency(mat, path)


# ----------------------------------------------------------------------------------------------
# value readers


def _read_hdf(path: Path, key: str | None) -> pd.DataFrame:
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = [k.lstrip("/") for k in store.keys()]
            if key is None:
                if len(keys) != 1:
                    raise DataError(f"{path}: holds keys {keys}; say which one with key=")
                key = keys[0]
            if key.lstrip("/") not in keys:
                raise DataError(f"{path}: no key {key!r} in this HDF5 file; keys: {keys}")
            obj = store[key]
    except DataError:
        raise
    except Exception as exc:  # tables raises HDF5ExtError, OSError, ValueError, ... on corrupt files
        raise DataError(f"{path}: not a readable pandas HDF5 file ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, pd.Series):
        obj = obj.to_frame()
    if not isinstance(obj, pd.DataFrame):
        raise DataError(f"{path}: key {key!r} holds a {type(obj).__name__}, expected a DataFrame")
    return obj


def _read_npz(path: Path, key: str | None) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            if key is None:
                data_keys = [k for k in keys if k not in ("timestamps", "sensor_ids")]
                key = "data" if "data" in keys else (data_keys[0] if len(data_keys) == 1 else None)
                if key is None:
                    raise DataError(f"{path}: holds arrays {keys}; say which one with key=")
            if key not in keys:
                raise DataError(f"{path}: no array {key!r} in this .npz file; arrays: {keys}")
            data = npz[key]
            stamps = npz["timestamps"] if "timestamps" in keys else None
            ids = [str(s) for s in npz["sensor_ids"].tolist()] if "sensor_ids" in keys else None
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    return data, stamps, ids


def _to_datetime(raw: Any, path: Path, what: str) -> pd.DatetimeIndex:
    try:
        if isinstance(raw, np.ndarray) and np.issubdtype(raw.dtype, np.number):
            raise ValueError("numbers are not timestamps")
        return pd.DatetimeIndex(pd.to_datetime(raw))
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{path}: {what} are not parseable timestamps ({exc})") from None


def read_values(
    path: PathLike,
    *,
    key: str | None = None,
    timestamp_column: str | int | None = None,
) -> tuple[np.ndarray, list[str] | None, pd.DatetimeIndex | None]:
    """Raw values of a generic file -> ``(values (T, N[, C]) float64/raw, sensor_ids | None, timestamps | None)``.

    * ``.csv``: header row of sensor ids; a timestamp column if ``timestamp_column`` names one, or a
      column called ``timestamp`` / ``time`` / ``datetime`` / ``date`` or pandas' unnamed index column.
    * ``.npz``: array ``key`` (default ``data``, or the only array); optional arrays ``timestamps``
      (datetime64 or ISO strings) and ``sensor_ids``.
    * ``.npy``: the array.
    * ``.h5`` / ``.hdf5``: pandas HDF5 DataFrame under ``key`` (default: the only key); a
      ``DatetimeIndex`` gives the timestamps, columns the sensor ids.

    NaN/Inf are left in place (see :func:`_clean_values`); non-numeric cells raise.
    """
    path = _require_file(path, "values file")
    suffix = path.suffix.lower()
    ids: list[str] | None = None
    stamps: pd.DatetimeIndex | None = None
    if suffix == ".csv":
        _check_csv_rows(path, header=True)
        df = _read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if df.empty:
            raise DataError(f"{path}: no data rows")
        tcol: Any = None
        if timestamp_column is not None:
            tcol = df.columns[timestamp_column] if isinstance(timestamp_column, int) else timestamp_column
            if tcol not in df.columns:
                raise DataError(f"{path}: no timestamp column {timestamp_column!r}; columns: {list(df.columns)[:8]}...")
        else:
            tcol = _column_lookup(df.columns, _TIMESTAMP_COLUMNS)
            if tcol is None and str(df.columns[0]).startswith("Unnamed: 0"):
                tcol = df.columns[0]
        if tcol is not None:
            stamps = _to_datetime(df[tcol].to_numpy(), path, f"column {tcol!r}")
            df = df.drop(columns=[tcol])
        ids = [str(c).strip() for c in df.columns]
        values = _numeric_frame(df, path)
    elif suffix == ".npz":
        values, raw_stamps, ids = _read_npz(path, key)
        if raw_stamps is not None:
            stamps = _to_datetime(raw_stamps, path, "array 'timestamps'")
    elif suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path}: not a readable .npy file ({type(exc).__name__}: {exc})") from None
    elif suffix in (".h5", ".hdf5", ".hdf"):
        df = _read_hdf(path, key)
        if isinstance(df.index, pd.DatetimeIndex):
            stamps = df.index
        elif not pd.api.types.is_integer_dtype(df.index.dtype):
            raise DataError(f"{path}: the index must be a DatetimeIndex or a plain integer index, got {type(df.index).__name__}")
        ids = [str(c) for c in df.columns]
        values = _numeric_frame(df, path)
    else:
        raise DataError(f"{path}: unsupported values file type {suffix!r} (use .csv, .npz, .npy or .h5)")
    if values.ndim not in (2, 3):
        raise DataError(f"{path}: values must be (T, N) or (T, N, C), got shape {values.shape}")
    if ids is not None and len(ids) != values.shape[1]:
        raise DataError(f"{path}: {len(ids)} sensor ids for {values.shape[1]} sensors")
    if stamps is not None and len(stamps) != values.shape[0]:
        raise DataError(f"{path}: {len(stamps)} timestamps for {values.shape[0]} steps")
    return values, ids, stamps


def _finish(
    values: np.ndarray,
    adj: np.ndarray,
    sensor_ids: Sequence[str],
    *,
    values_path: Path,
    graph_path: PathLike,
    stamps: pd.DatetimeIndex | None,
    start: str | pd.Timestamp | None,
    interval_minutes: int | None,
    gaps: Gaps,
    name: str,
    split: Sequence[float],
    channel_names: Sequence[str] | None,
    sources: Sequence[PathLike],
    missing: MissingSpec,
) -> TrafficData:
    """Shared tail of every reader: clean, check sizes/timestamps/length, build :class:`TrafficData`,
    warn about what the missing readings suggest."""
    policy = parse_missing(missing, where=f"{values_path}: missing")
    values = _clean_values(values, values_path, policy)
    if values.ndim == 2:
        values = values[:, :, None]
    if adj.shape[0] != values.shape[1]:
        raise DataError(
            f"{values_path} has {values.shape[1]} sensors but the graph {graph_path} has {adj.shape[0]} nodes"
        )
    if stamps is None and start is not None:
        try:
            first = pd.Timestamp(start)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{values_path}: start {start!r} is not a timestamp ({exc})") from None
        stamps = pd.date_range(first, periods=values.shape[0], freq=pd.Timedelta(minutes=int(interval_minutes or 5)))
    elif stamps is not None and start is not None:
        raise DataError(f"{values_path}: the file has timestamps; start= is only for files without them")
    if stamps is not None:
        given = interval_minutes
        stamps, interval_minutes, positions = _check_timestamps(stamps, values_path, interval_minutes=given, gaps=gaps)
        if positions is not None:
            if policy.name == "none":
                raise DataError(
                    f"{values_path}: gaps='fill' inserts missing readings, but missing='none' says no reading is "
                    "missing; load with missing='nan'"
                )
            values = _fill_gaps(values, positions, len(stamps))
    interval = int(interval_minutes or 5)
    if interval <= 0:
        raise DataError(f"{values_path}: interval_minutes must be positive, got {interval}")
    split = tuple(float(s) for s in split)
    if len(split) != 3 or abs(sum(split) - 1.0) > 1e-6 or min(split) <= 0:
        raise DataError(f"{values_path}: split must be three positive fractions summing to 1, got {split}")
    check_enough_steps(values.shape[0], split, values_path)
    if channel_names is not None and len(channel_names) != values.shape[2]:
        raise DataError(
            f"{values_path}: {len(channel_names)} channel names {list(channel_names)} for {values.shape[2]} channels"
        )
    data = TrafficData(
        values=values,
        adj=adj,
        sensor_ids=list(sensor_ids),
        interval_minutes=interval,
        timestamps=stamps,
        name=name,
        split=split,  # type: ignore[arg-type]
        channel_names=_channel_names(channel_names, values.shape[2]),
        source=[str(Path(s)) for s in sources],
        missing=policy.name,
    )
    for message in missing_warnings(str(values_path), policy, data.missing_fraction, data.silent_sensors,
                                    data.num_nodes):
        warnings.warn(message, DataWarning, stacklevel=3)
    return data


def _channel_names(names: Sequence[str] | None, channels: int) -> list[str]:
    if names is not None:
        return list(names)
    return ["value"] if channels == 1 else [f"ch{i}" for i in range(channels)]


# ----------------------------------------------------------------------------------------------
# layout readers


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
        adj_path = _find_adj_pickle(h5_path.parent)
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


def _find_adj_pickle(folder: Path) -> Path | None:
    preferred = folder / "adj_mx.pkl"
    if preferred.is_file():
        return preferred
    found = sorted(folder.glob("adj_mx*.pkl"))
    return found[0] if len(found) == 1 else None


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
    adj = read_edge_list(distance_path, ids, sigma=sigma, threshold=threshold, symmetric=symmetric)
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
        adj = candidate if candidate.is_file() else _find_adj_pickle(speed_path.parent)
        if adj is None:
            raise DataError(
                f"{speed_path}: no adjacency beside it (looked for {candidate.name} and adj_mx.pkl in "
                f"{speed_path.parent}); pass adj="
            )
    _check_csv_rows(speed_path, header=True)
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
