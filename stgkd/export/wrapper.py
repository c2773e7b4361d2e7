"""The raw-units wrapper every exported student is: raw readings and timestamps in, raw forecasts out.

:class:`RawUnitsForecaster` bakes the training data's preparation (missing mask, scaler, calendar
features) around a student; :func:`build_forecaster_module` builds it from a checkpoint payload,
:func:`rewrap` puts the same preparation around another student (a traced or quantised copy), and
:func:`example_inputs` makes plausible raw inputs to check an export against the eager wrapper.
"""

from __future__ import annotations

from typing import Any, List

import torch
from torch import Tensor, nn

from stgkd.errors import CheckpointError

__all__ = ["FEATURE_CODES", "RawUnitsForecaster", "build_forecaster_module", "example_inputs", "rewrap"]

#: calendar/value features the exported wrapper can build, by name -> code used inside the wrapper
FEATURE_CODES = {"value": 0, "time_of_day": 1, "day_of_week": 2}


class RawUnitsForecaster(nn.Module):
    """A student with its data preparation baked in: raw readings in, raw forecasts out.

    Computes, in order: the missing mask (``NaN``, and the sentinel of the training data's missing-value
    convention: ``0`` under ``"zero"``, nothing more under ``"nan"`` / ``"none"``, where a ``0`` is a
    reading), the z-scored value channel with missing readings set to ``0`` in scaled space (= the
    training mean), the calendar
    channels from the timestamps (``time_of_day`` = minutes since midnight / 1440, ``day_of_week`` =
    Monday-based weekday / 7, as :func:`stgkd.data.prepare` builds them), the student's forward, and the
    inverse z-score.

    Args:
        student: the trained model (eager or traced), ``(B, T_in, N, C)`` scaled -> ``(B, H, N)`` scaled.
        graph: ``(N, N)`` raw adjacency the student was trained with (kept as the buffer ``adjacency``).
        mean, std: the training scaler.
        input_features: names of the ``C`` input channels, in order; ``"value"`` first.
        num_nodes, in_steps, out_steps, interval_minutes: the student's shapes and the data interval.
        missing: the training data's missing-value convention (:mod:`stgkd.missing`): ``"zero"``,
            ``"nan"``, ``"none"`` or a sentinel number (default: ``"zero"``, that of checkpoints written
            before conventions were recorded).
    """

    def __init__(
        self,
        student: nn.Module,
        *,
        graph: Tensor,
        mean: float,
        std: float,
        input_features: list[str],
        num_nodes: int,
        in_steps: int,
        out_steps: int,
        interval_minutes: int,
        missing: str = "zero",
    ) -> None:
        super().__init__()
        from stgkd.missing import parse_missing

        policy = parse_missing(missing, where="missing")
        unknown = [f for f in input_features if f not in FEATURE_CODES]
        if unknown or not input_features or input_features[0] != "value":
            raise CheckpointError(
                f"input_features {input_features!r}: the exported wrapper builds "
                f"{', '.join(FEATURE_CODES)} with 'value' first (unsupported: {unknown or input_features})"
            )
        self.student = student
        self.register_buffer("adjacency", torch.as_tensor(graph, dtype=torch.float32).clone())
        self.mean = float(mean)
        self.std = float(std)
        self.feature_codes: List[int] = [FEATURE_CODES[f] for f in input_features]
        self.num_nodes = int(num_nodes)
        self.in_steps = int(in_steps)
        self.out_steps = int(out_steps)
        self.in_channels = len(input_features)
        self.interval_minutes = int(interval_minutes)
        self.missing: str = policy.name
        self.has_sentinel: bool = policy.sentinel is not None
        self.sentinel: float = float(policy.sentinel) if policy.sentinel is not None else 0.0

    def forward(self, values: Tensor, timestamps: Tensor) -> Tensor:
        """Forecast ``H`` steps in raw units.

        Args:
            values: raw readings; ``NaN`` marks a missing reading, and so does the convention's sentinel
                (``0`` under ``missing="zero"``).
            timestamps: int64 seconds since 1970-01-01 of each input step's *local wall-clock* time
                (a naive ``DatetimeIndex``'s ``asi8 // 10**9``); only its calendar features are used.

        Shapes:
            values: ``(B, T_in, N)``; timestamps: ``(B, T_in)``; output: ``(B, H, N)`` raw units.
        """
        missing = torch.isnan(values)
        if self.has_sentinel:
            missing = missing | (values == self.sentinel)
        scaled = torch.where(missing, torch.zeros_like(values), (values - self.mean) / self.std)
        b, t, n = scaled.shape[0], scaled.shape[1], scaled.shape[2]
        secs = timestamps.to(torch.int64)
        channels: List[Tensor] = []
        for code in self.feature_codes:
            if code == 0:
                channels.append(scaled)
            elif code == 1:
                minutes = torch.remainder(secs, 86400).to(torch.float64) / 60.0
                tod = (minutes / 1440.0).to(scaled.dtype)
                channels.append(tod.unsqueeze(-1).expand(b, t, n))
            else:
                # 1970-01-01 was a Thursday (Monday = 0 -> Thursday = 3)
                weekday = torch.remainder(torch.div(secs, 86400, rounding_mode="floor") + 3, 7)
                dow = (weekday.to(torch.float64) / 7.0).to(scaled.dtype)
                channels.append(dow.unsqueeze(-1).expand(b, t, n))
        x = torch.stack(channels, dim=-1)
        out = self.student(x)
        return out.float() * self.std + self.mean


def build_forecaster_module(payload: dict[str, Any], *, where: str = "checkpoint") -> RawUnitsForecaster:
    """The eager :class:`RawUnitsForecaster` for a validated checkpoint payload."""
    from stgkd.engine.checkpoint import model_from_checkpoint

    data = payload["data"]
    student = model_from_checkpoint(payload, where=where)
    graph = payload["graph"]
    sensor_ids = list(data["sensor_ids"])
    n = int(payload["model"].get("num_nodes", len(sensor_ids)))
    if len(sensor_ids) != n:
        raise CheckpointError(f"{where}: {len(sensor_ids)} sensor ids for a {n}-node model")
    return RawUnitsForecaster(
        student,
        graph=torch.as_tensor(graph, dtype=torch.float32),
        mean=float(payload["scaler"]["mean"]),
        std=float(payload["scaler"]["std"]),
        input_features=list(data["input_features"]),
        num_nodes=n,
        in_steps=int(data["in_steps"]),
        out_steps=int(data["out_steps"]),
        interval_minutes=int(data["interval_minutes"]),
        missing=str(data.get("missing", "zero")),
    ).eval().requires_grad_(False)


def rewrap(module: RawUnitsForecaster, student: nn.Module) -> RawUnitsForecaster:
    """``module``'s wrapper (scaler, calendar features, graph, shapes) around another student."""
    return RawUnitsForecaster(
        student,
        graph=module.adjacency,
        mean=module.mean,
        std=module.std,
        input_features=[name for code in module.feature_codes for name, c in FEATURE_CODES.items() if c == code],
        num_nodes=module.num_nodes,
        in_steps=module.in_steps,
        out_steps=module.out_steps,
        interval_minutes=module.interval_minutes,
        missing=module.missing,
    ).eval().requires_grad_(False)


def example_inputs(module: RawUnitsForecaster, batch: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Plausible raw inputs (positive readings, a few missing: ``NaN``, missing under every convention)
    and 5-minute timestamps."""
    gen = torch.Generator().manual_seed(seed)
    values = module.mean + module.std * torch.randn(batch, module.in_steps, module.num_nodes, generator=gen)
    values = values.abs() + 1.0
    values[torch.rand(values.shape, generator=gen) < 0.05] = float("nan")
    base = 1_700_000_000 + torch.randint(0, 7 * 1440, (batch, 1), generator=gen) * 60
    steps = torch.arange(module.in_steps, dtype=torch.int64) * module.interval_minutes * 60
    return values, base + steps
