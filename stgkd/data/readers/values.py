"""Value files (CSV, NPZ, NPY, HDF5) and the tail every reader ends with (:func:`_finish`)."""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stgkd.data.core import TrafficData
from stgkd.data.readers.common import (
    _TIMESTAMP_COLUMNS,
    DataWarning,
    Gaps,
    PathLike,
    _check_csv_rows,
    _check_timestamps,
    _clean_values,
    _column_lookup,
    _csv_header,
    _fill_gaps,
    _numeric_frame,
    _read_csv,
    _require_file,
    _require_unique_ids,
    check_enough_steps,
)
from stgkd.errors import DataError
from stgkd.missing import MissingSpec, missing_warnings, parse_missing


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
        _require_unique_ids(_csv_header(path), path)
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
    if ids is not None:
        _require_unique_ids(ids, path, "columns" if suffix != ".npz" else "positions in 'sensor_ids'")
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
