"""The raw-units wrapper every exported student is: raw readings and timestamps in, raw forecasts out.

:class:`RawUnitsForecaster` bakes the training data's preparation (missing mask, scaler, calendar
features) around a student; :func:`build_forecaster_module` builds it from a checkpoint payload,
:func:`rewrap` puts the same preparation around another student (a traced or quantised copy), and
:func:`example_inputs` makes plausible raw inputs to check an export against the eager wrapper.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import Tensor, nn

from stgkd.errors import CheckpointError

__all__ = ["FEATURE_CODES", "RawUnitsForecaster", "build_forecaster_module", "example_inputs", "rewrap"]

#: calendar/value features the exported wrapper can build, by name -> code used inside the wrapper
FEATURE_CODES = {"value": 0, "time_of_day": 1, "day_of_week": 2}
#: codes of a seasonal-lag channel and of its observed flag (``seasonal_<season>[_observed]``)
SEASONAL_CODES = {"": 3, "_observed": 4}


class RawUnitsForecaster(nn.Module):
    """A student with its data preparation baked in: raw readings in, raw forecasts out.

    Computes, in order: the missing mask (``NaN``, and the sentinel of the training data's missing-value
    convention: ``0`` under ``"zero"``, nothing more under ``"nan"`` / ``"none"``, where a ``0`` is a
    reading), the z-scored value channel with missing readings set to ``0`` in scaled space (= the
    training mean), the calendar
    channels from the timestamps (``time_of_day`` = minutes since midnight / 1440, ``day_of_week`` =
    Monday-based weekday / 7, as :func:`stgkd.data.prepare` builds them), the seasonal-lag channels (the
    scaled reading one season before each forecast step and whether it was observed, read from a history
    of a whole season: ``history_steps = max(T_in, season)`` readings in), the student's forward, and the
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
        season_steps: steps of each season whose lag channels ``input_features`` holds
            (``{"day": 288}`` at 5 minutes; :func:`stgkd.data.windows.season_steps`) (default: none).
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
        season_steps: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        from stgkd.missing import parse_missing

        policy = parse_missing(missing, where="missing")
        seasons = dict(season_steps or {})
        lagged = {f"seasonal_{name}{suffix}": (code, steps) for name, steps in seasons.items()
                  for suffix, code in SEASONAL_CODES.items()}
        unknown = [f for f in input_features if f not in FEATURE_CODES and f not in lagged]
        if unknown or not input_features or input_features[0] != "value":
            raise CheckpointError(
                f"input_features {input_features!r}: the exported wrapper builds "
                f"{', '.join(FEATURE_CODES)} and seasonal-lag channels of known seasons with 'value' first "
                f"(unsupported: {unknown or input_features})"
            )
        self.student = student
        self.register_buffer("adjacency", torch.as_tensor(graph, dtype=torch.float32).clone())
        self.mean = float(mean)
        self.std = float(std)
        self.feature_codes: List[int] = [FEATURE_CODES[f] if f in FEATURE_CODES else lagged[f][0] for f in input_features]
        self.feature_lags: List[int] = [lagged[f][1] if f in lagged else 0 for f in input_features]
        self.input_features: List[str] = [str(f) for f in input_features]
        self.season_steps: Dict[str, int] = {str(k): int(v) for k, v in seasons.items()}
        self.num_nodes = int(num_nodes)
        self.in_steps = int(in_steps)
        self.history_steps = max([int(in_steps)] + self.feature_lags)
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
            values: ``(B, T_hist, N)``; timestamps: ``(B, T_hist)``; output: ``(B, H, N)`` raw units, with
            ``T_hist = history_steps`` (``T_in`` without seasonal-lag channels).
        """
        missing_all = torch.isnan(values)
        if self.has_sentinel:
            missing_all = missing_all | (values == self.sentinel)
        scaled_all = torch.where(missing_all, torch.zeros_like(values), (values - self.mean) / self.std)
        hist = scaled_all.shape[1]
        scaled = scaled_all[:, hist - self.in_steps :]
        b, t, n = scaled.shape[0], scaled.shape[1], scaled.shape[2]
        secs = timestamps.to(torch.int64)[:, hist - self.in_steps :]
        channels: List[Tensor] = []
        for code, lag in zip(self.feature_codes, self.feature_lags):
            if code == 0:
                channels.append(scaled)
            elif code == 3:  # input step i: the reading one season before forecast step i
                channels.append(scaled_all[:, hist - lag : hist - lag + t])
            elif code == 4:
                channels.append((~missing_all[:, hist - lag : hist - lag + t]).to(scaled.dtype))
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
        season_steps=_season_steps(data),
    ).eval().requires_grad_(False)


def _season_steps(data: dict[str, Any]) -> dict[str, int]:
    """``{season: steps}`` of the seasonal-lag channels a checkpoint's input features hold."""
    from stgkd.data.windows import season_steps, seasons_of

    return {s: season_steps(s, int(data["interval_minutes"]), int(data["in_steps"]))
            for s in seasons_of(data["input_features"])}


def rewrap(module: RawUnitsForecaster, student: nn.Module) -> RawUnitsForecaster:
    """``module``'s wrapper (scaler, calendar features, graph, shapes) around another student."""
    return RawUnitsForecaster(
        student,
        graph=module.adjacency,
        mean=module.mean,
        std=module.std,
        input_features=list(module.input_features),
        num_nodes=module.num_nodes,
        in_steps=module.in_steps,
        out_steps=module.out_steps,
        interval_minutes=module.interval_minutes,
        missing=module.missing,
        season_steps=dict(module.season_steps),
    ).eval().requires_grad_(False)


def example_inputs(module: RawUnitsForecaster, batch: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Plausible raw inputs (positive readings, a few missing: ``NaN``, missing under every convention)
    and 5-minute timestamps."""
    gen = torch.Generator().manual_seed(seed)
    values = module.mean + module.std * torch.randn(batch, module.history_steps, module.num_nodes, generator=gen)
    values = values.abs() + 1.0
    values[torch.rand(values.shape, generator=gen) < 0.05] = float("nan")
    base = 1_700_000_000 + torch.randint(0, 7 * 1440, (batch, 1), generator=gen) * 60
    steps = torch.arange(module.history_steps, dtype=torch.int64) * module.interval_minutes * 60
    return values, base + steps
