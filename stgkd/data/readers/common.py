"""What every reader shares: the conventions' checks (files, CSV rows, numbers, missing readings,
timestamps, adjacency, sensor ids) and :class:`DataWarning`."""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from stgkd.errors import DataError
from stgkd.missing import MissingPolicy

log = logging.getLogger("stgkd.data.readers")

Gaps = Literal["error", "keep", "fill"]
PathLike = str | Path

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


def _csv_header(path: Path) -> list[str]:
    """The names in a CSV file's first non-empty line, as written (stripped; pandas would rename a
    repeated ``s3`` to ``s3.1``)."""
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as f:
        for line in f:
            if line.strip():
                return [name.strip() for name in next(csv.reader([line]))]
    return []


def _require_unique_ids(ids: Sequence[str], path: PathLike, where: str = "columns") -> None:
    """Each sensor id heads one column: a repeated id is a :class:`DataError` naming it, the file and
    its 1-based positions (``where``: what they count)."""
    seen: set[str] = set()
    for name in ids:
        if name == "":  # unnamed columns (pandas' index column) are no sensor ids
            continue
        if name in seen:
            repeats = [str(i) for i, other in enumerate(ids, start=1) if other == name]
            raise DataError(
                f"{path}: sensor id {name!r} is repeated ({where} {', '.join(repeats[:-1])} and {repeats[-1]}); "
                "each sensor needs exactly one column of readings: rename or remove the repeats"
            )
        seen.add(name)


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
