"""The in-memory form every reader produces: :class:`TrafficData`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stgkd.errors import DataError
from stgkd.missing import MissingPolicy, parse_missing, silent_sensors


@dataclass
class TrafficData:
    """Readings of a sensor network plus its graph, in one validated container.

    Args:
        values: ``(T, N, C)`` float32 readings in raw units, ``NaN`` where a reading is missing.
            Built with the values as recorded, the ``missing`` convention turns the readings it marks
            missing (the ``0`` of METR-LA / PEMS-BAY) into ``NaN``; the caller's array is copied first
            when there is something to mark. Channel 0 is the forecast target (speed for
            METR-LA/PEMS-BAY, flow for PEMS0x).
        adj: ``(N, N)`` float32 weighted adjacency, non-negative, row = source, column = target.
        sensor_ids: the ``N`` sensor ids, in the column order of ``values`` and ``adj``.
        interval_minutes: sampling interval (5 for every standard dataset).
        timestamps: ``T`` regular timestamps, or ``None`` when the source has none.
        name: dataset name (``"metr-la"``, ``"synthetic"``, or the path it came from).
        split: chronological train/val/test fractions (default: 0.7/0.1/0.2).
        channel_names: names of the ``C`` channels.
        source: the files it was read from (for messages and checkpoints).
        missing: the missing-value convention the readings were recorded with: ``"zero"`` (0 and NaN
            are missing), ``"nan"``, ``"none"`` or a sentinel number (:mod:`stgkd.missing`);
            stored as the convention's name, and carried into checkpoints and exported students
            (default: ``"zero"``).
    """

    values: np.ndarray
    adj: np.ndarray
    sensor_ids: list[str]
    interval_minutes: int = 5
    timestamps: pd.DatetimeIndex | None = None
    name: str = "unnamed"
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    channel_names: list[str] = field(default_factory=lambda: ["value"])
    source: list[str] = field(default_factory=list)
    missing: str = "zero"

    def __post_init__(self) -> None:
        where = self.name
        if self.values.ndim == 2:
            self.values = self.values[:, :, None]
        if self.values.ndim != 3:
            raise DataError(f"{where}: values must be (T, N) or (T, N, C), got shape {self.values.shape}")
        given = self.values
        self.values = np.ascontiguousarray(self.values, dtype=np.float32)
        self.adj = np.asarray(self.adj, dtype=np.float32)
        self.sensor_ids = [str(s) for s in self.sensor_ids]
        t, n, c = self.values.shape
        if self.adj.ndim != 2 or self.adj.shape[0] != self.adj.shape[1]:
            raise DataError(f"{where}: adjacency must be square, got shape {self.adj.shape}")
        if self.adj.shape[0] != n:
            raise DataError(
                f"{where}: data has {n} sensors but the graph has {self.adj.shape[0]} nodes"
            )
        if not np.isfinite(self.adj).all():
            raise DataError(f"{where}: adjacency holds NaN or Inf")
        if (self.adj < 0).any():
            raise DataError(f"{where}: adjacency holds {(self.adj < 0).sum()} negative weights")
        if len(self.sensor_ids) != n:
            raise DataError(f"{where}: {len(self.sensor_ids)} sensor ids for {n} sensors")
        if len(set(self.sensor_ids)) != n:
            raise DataError(f"{where}: duplicate sensor ids")
        inf = np.isinf(self.values)
        if inf.any():
            raise DataError(f"{where}: values hold {int(inf.sum())} infinite entries; use NaN for missing readings")
        policy = parse_missing(self.missing, where=f"{where}: missing")
        self.missing = policy.name
        owned = not np.may_share_memory(self.values, given)
        self.values = policy.apply(self.values, where=where, copy=not owned)
        if self.timestamps is not None:
            if len(self.timestamps) != t:
                raise DataError(f"{where}: {len(self.timestamps)} timestamps for {t} steps")
        if len(self.channel_names) != c:
            self.channel_names = [f"ch{i}" for i in range(c)]
        if len(self.split) != 3 or abs(sum(self.split) - 1.0) > 1e-6 or min(self.split) <= 0:
            raise DataError(f"{where}: split must be three positive fractions summing to 1, got {self.split}")
        self.split = tuple(float(s) for s in self.split)

    @property
    def num_steps(self) -> int:
        return self.values.shape[0]

    @property
    def num_nodes(self) -> int:
        return self.values.shape[1]

    @property
    def num_channels(self) -> int:
        return self.values.shape[2]

    @property
    def missing_policy(self) -> MissingPolicy:
        return parse_missing(self.missing)

    @property
    def missing_fraction(self) -> float:
        """Fraction of target-channel readings that are missing (``NaN``)."""
        return float(np.isnan(self.values[..., 0]).mean())

    @property
    def is_count_series(self) -> bool:
        """Whether the target channel holds counts: every observed reading a non-negative whole number and
        some of them ``0`` (a reading, not a missing value, as under ``missing="nan"``). Count series get
        the zero forecast among their baselines."""
        observed = self.values[..., 0][np.isfinite(self.values[..., 0])]
        if observed.size == 0 or observed.min() < 0 or not (observed == 0).any():
            return False
        return bool((observed == np.round(observed)).all())

    @property
    def silent_sensors(self) -> list[str]:
        """Ids of the sensors with no target-channel reading at all."""
        return [self.sensor_ids[i] for i in silent_sensors(self.values[..., 0])]

    def __repr__(self) -> str:
        return (
            f"TrafficData(name={self.name!r}, steps={self.num_steps}, nodes={self.num_nodes}, "
            f"channels={self.num_channels}, interval={self.interval_minutes}min, "
            f"edges={int((self.adj > 0).sum())}, missing={100 * self.missing_fraction:.2f}%)"
        )
