"""Scalers fit on the training slice with missing readings excluded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from stgkd.errors import DataError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

__all__ = ["StandardScaler"]


@dataclass(frozen=True)
class StandardScaler:
    """z-score ``(x - mean) / std`` with float statistics (DCRNN's ``StandardScaler``).

    Args:
        mean: mean of the observed training readings.
        std: population standard deviation of the observed training readings.
    """

    mean: float
    std: float

    @classmethod
    def fit(
        cls, values: np.ndarray, *, missing: float | None = None, chunk: int = 1024, where: str = "values"
    ) -> "StandardScaler":
        """Fit on ``values`` (any shape, first axis = time), skipping missing readings: ``NaN`` (how
        :class:`~stgkd.data.TrafficData` holds them, whatever the dataset's convention) and, when given,
        the value ``missing``.

        Counted, missing readings stored as a number would drag the mean and inflate the std (METR-LA's
        zeros are about 8% of its readings). The sums run in float64 over chunks of ``chunk`` steps, so
        fitting allocates no copy of the whole slice.
        """
        total = 0.0
        total_sq = 0.0
        count = 0
        for start in range(0, values.shape[0], chunk):
            block = np.array(values[start : start + chunk], dtype=np.float64)  # a copy
            ok = _observed(block, missing)
            count += int(ok.sum())
            total += float(np.sum(block, where=ok))
        if count == 0:
            raise DataError(f"{where}: the training slice holds no observed readings")
        mean = total / count
        for start in range(0, values.shape[0], chunk):
            block = np.array(values[start : start + chunk], dtype=np.float64)  # a copy
            ok = _observed(block, missing)
            block -= mean
            total_sq += float(np.sum(np.square(block, out=block), where=ok))
        std = float(np.sqrt(total_sq / count))
        if not std > 0:
            raise DataError(f"{where}: the observed training readings are constant ({mean}); cannot z-score them")
        return cls(mean=float(mean), std=std)

    def transform(self, x: ArrayT) -> ArrayT:
        return (x - self.mean) / self.std

    def inverse_transform(self, x: ArrayT) -> ArrayT:
        return x * self.std + self.mean

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


def _observed(block: np.ndarray, missing: float | None) -> np.ndarray:
    ok = np.isfinite(block)
    if missing is not None:
        ok &= block != missing
    return ok
