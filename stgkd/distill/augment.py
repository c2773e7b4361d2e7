"""Teacher-labelled augmented windows: perturbed views of training windows, labelled by the teacher.

"Function matching" (Beyer et al., CVPR 2022): a student learns the teacher's function better when
the teacher labels views of the data it was not trained on, not only the training windows. With
``DistillConfig.augment`` (``stgkd distill --augment noise,dropout,mixup,shift``) each training batch
of ``B`` windows gets ``round(augment_fraction · B)`` (at least one) extra *views*: windows of the batch
drawn at random, each perturbed by one kind drawn at random from the list. The student sees the
clean windows and the views; the teacher labels the views on the fly (the cache holds only the clean
windows' outputs, so the teacher runs once per step on the views: the run logs the teacher's seconds
and windows per epoch), and every term of the loss covers both.

Every kind keeps a valid target, so the supervised term covers the views too:

=========== ============================================= ==========================================
kind        the input                                     the target
=========== ============================================= ==========================================
``noise``   ``x₀ + σ·ε``, ``ε ~ N(0, 1)`` on the target   the window's own: the future did not change
            channel, in scaled (z) units; strength σ      (a noisier sensor, the same traffic)
            (default 0.1)
``dropout`` the target channel zeroed at readings drawn   the window's own
            with probability p (default 0.1): ``0`` is
            what a missing reading is in scaled space,
            so this simulates outages
``mixup``   ``λ·x_i + (1−λ)·x_j`` on the per-sensor        ``λ·y_i + (1−λ)·y_j`` in raw units, observed
            channels with another window ``j`` of the      where both are (``m_i ∧ m_j``); the scaler is
            batch, ``λ = max(u, 1−u)``, ``u ~ Beta(α, α)``  affine, so this is also the mix of the
            (default α = 0.4); the anchor ``i`` keeps     scaled targets
            its calendar features (``λ ≥ ½``)
``shift``   each sensor's window moved by its own          the series' values at the moved window's
            ``δ_n`` steps, uniform in ``−k..k`` (default   target steps, sensor by sensor (and their
            k = 3), inside the training windows: the       mask): the sensors are desynchronised,
            sensors desynchronised (a shift of all by one  their targets stay the truth
            ``δ`` would only be another training window)
=========== ============================================= ==========================================

Each kind is a pure function of its random draws (:func:`add_noise`, :func:`drop_readings`,
:func:`mix_windows`, :func:`shift_sensors`); :class:`Augmenter` draws them from torch's global RNG on
the CPU (seeded by the run's seed and saved in checkpoints, so a resumed run continues the same
draws) and assembles the views. The registry :data:`AUGMENTATIONS` names the kinds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from stgkd.data.windows import Batch, observed_mask
from stgkd.errors import ConfigError
from stgkd.registry import Registry

__all__ = ["AUGMENTATIONS", "Augmentation", "Augmenter", "add_noise", "drop_readings", "format_augment",
           "mix_windows", "parse_augment", "shift_sensors"]


# --------------------------------------------------------------------------- pure functions


def add_noise(x: Tensor, noise: Tensor, sigma: float) -> Tensor:
    """``x`` with ``sigma · noise`` added to channel 0 (the scaled target reading).

    Shapes:
        x: ``(B, T, N, C)``; noise: ``(B, T, N)``; returns ``(B, T, N, C)``.
    """
    out = x.clone()
    out[..., 0] = out[..., 0] + sigma * noise.to(x)
    return out


def drop_readings(x: Tensor, drop: Tensor) -> Tensor:
    """``x`` with channel 0 set to ``0`` (a missing reading in scaled space) where ``drop`` is True.

    Shapes:
        x: ``(B, T, N, C)``; drop: ``(B, T, N)`` bool; returns ``(B, T, N, C)``.
    """
    out = x.clone()
    out[..., 0] = out[..., 0].masked_fill(drop.to(x.device), 0.0)
    return out


def mix_windows(x: Tensor, y: Tensor, mask: Tensor, x2: Tensor, y2: Tensor, mask2: Tensor, lam: Tensor, *,
                channels: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Mixup of windows ``(x, y, mask)`` with windows ``(x2, y2, mask2)``, weight ``lam`` on the first.

    ``x' = λ·x + (1 − λ)·x2`` on the first ``channels`` channels (the per-sensor ones; the rest,
    calendar features, stay ``x``'s; default: all), ``y' = λ·y + (1 − λ)·y2`` (raw units),
    ``mask' = mask ∧ mask2``, and ``y' = 0`` where ``mask'`` is False.

    Shapes:
        x, x2: ``(B, T, N, C)``; y, y2, mask, mask2: ``(B, H, N)``; lam: ``(B,)``; returns
        ``(x', y', mask')`` of the first three's shapes.
    """
    c = x.shape[-1] if channels is None else int(channels)
    lx = lam.to(x).view(-1, 1, 1, 1)
    out = x.clone()
    out[..., :c] = lx * x[..., :c] + (1 - lx) * x2[..., :c]
    both = mask & mask2
    ly = lam.to(y).view(-1, 1, 1)
    y_mix = torch.where(both, ly * y + (1 - ly) * y2, torch.zeros((), dtype=y.dtype, device=y.device))
    return out, y_mix, both


def shift_sensors(split: Any, index: Tensor, shifts: Tensor, *, first: int = 0, last: int | None = None) -> Batch:
    """The windows ``index`` of ``split`` with sensor ``n`` of window ``b`` moved by ``shifts[b, n]`` steps.

    Sensor ``n``'s input is the series at steps ``s + δ + 0 .. s + δ + T_in − 1`` (all of its channels, the
    calendar features and the seasonal-lag channels of those steps), its target the series at ``s + δ + T_in .. s + δ + T_in + H − 1``,
    where ``s`` is the window's first input step and ``δ`` the shift, clamped so that the moved window
    is one of the split's windows ``first .. last`` (default: all): the moved window reads no step a
    window outside that range would not.

    Shapes:
        index: ``(B,)`` long positions in ``split``; shifts: ``(B, N)`` long; returns a :class:`Batch`
        with ``x (B, T_in, N, C)``, ``y``/``mask`` ``(B, H, N)`` and ``index`` = ``index``.
    """
    device = split.inputs.device
    index = torch.as_tensor(index, dtype=torch.long, device=device).reshape(-1)
    starts = split.starts
    last = len(split) - 1 if last is None else int(last)
    lo, hi = starts[int(first)], starts[last]
    start = (starts[index][:, None] + shifts.to(device=device, dtype=torch.long)).clamp(int(lo), int(hi))  # (B, N)
    b, n = start.shape
    nodes = torch.arange(n, device=device)
    rows_in = start[:, None, :] + torch.arange(split.in_steps, device=device)[None, :, None]  # (B, T_in, N)
    rows_out = start[:, None, :] + torch.arange(split.in_steps, split.in_steps + split.out_steps,
                                                device=device)[None, :, None]  # (B, H, N)
    x = split.inputs[rows_in, nodes]  # (B, T_in, N, C_v)
    parts = [x]
    if split.step_features is not None:
        parts.append(split.step_features[rows_in])
    if split.lag_inputs is not None:  # the seasonal-lag channels, in the order WindowSplit.batch gives them
        parts.append(split.lag_inputs[rows_in, nodes])
    x = torch.cat(parts, dim=-1) if len(parts) > 1 else x
    y = split.targets[rows_out, nodes].float().clone()
    mask = observed_mask(y, fill=True)
    return Batch(x=x, y=y, mask=mask, index=index)


# --------------------------------------------------------------------------- the kinds


@dataclass(frozen=True)
class Augmentation:
    """One kind of perturbation.

    Attributes:
        default: its strength when the spec names none.
        check: ``check(strength)`` -> an error message, or ``None`` when the strength is valid.
        views: ``views(batch, rows, strength, augmenter)`` -> a :class:`Batch` of the perturbed
            windows ``rows`` of ``batch`` with their targets.
        meaning: what the strength is, for messages and docs.
    """

    default: float
    check: Callable[[float], str | None]
    views: Callable[[Batch, Tensor, float, "Augmenter"], Batch]
    meaning: str


def _noise_views(batch: Batch, rows: Tensor, sigma: float, aug: "Augmenter") -> Batch:
    x = batch.x[rows]
    eps = torch.randn(x.shape[:3])
    return Batch(add_noise(x, eps, sigma), batch.y[rows], batch.mask[rows], batch.index[rows])


def _dropout_views(batch: Batch, rows: Tensor, p: float, aug: "Augmenter") -> Batch:
    x = batch.x[rows]
    drop = torch.rand(x.shape[:3]) < p
    return Batch(drop_readings(x, drop), batch.y[rows], batch.mask[rows], batch.index[rows])


def _mixup_views(batch: Batch, rows: Tensor, alpha: float, aug: "Augmenter") -> Batch:
    b, m = len(batch), rows.numel()
    u = torch.distributions.Beta(alpha, alpha).sample((m,))
    lam = torch.maximum(u, 1 - u)
    offset = torch.randint(1, b, (m,)) if b > 1 else torch.zeros(m, dtype=torch.long)
    partner = ((rows.cpu() + offset) % b).to(batch.x.device)  # another window of the batch (itself when B = 1)
    x, y, mask = mix_windows(batch.x[rows], batch.y[rows], batch.mask[rows], batch.x[partner], batch.y[partner],
                             batch.mask[partner], lam, channels=aug.value_channels)
    return Batch(x, y, mask, batch.index[rows])


def _shift_views(batch: Batch, rows: Tensor, k: float, aug: "Augmenter") -> Batch:
    if aug.split is None:
        raise ConfigError("augment shift: needs the training split to fetch the moved windows")
    n = batch.x.shape[2]
    shifts = torch.randint(-int(k), int(k) + 1, (rows.numel(), n))
    views = shift_sensors(aug.split, batch.index[rows], shifts, first=aug.first, last=aug.last)
    return views.to(batch.x.device)


def _positive(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be a finite number > 0"


def _probability(value: float) -> str | None:
    return None if 0 < value < 1 else "must be in (0, 1)"


def _steps(value: float) -> str | None:
    return None if value >= 1 and float(value).is_integer() else "must be a whole number of steps >= 1"


#: the perturbations, by name (``DistillConfig.augment``).
AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")
AUGMENTATIONS.register("noise", Augmentation(0.1, _positive, _noise_views, "σ of Gaussian noise on the scaled reading"))
AUGMENTATIONS.register("dropout", Augmentation(0.1, _probability, _dropout_views,
                                               "probability that a reading is dropped (set missing)"))
AUGMENTATIONS.register("mixup", Augmentation(0.4, _positive, _mixup_views, "α of the Beta(α, α) mixing weight"))
AUGMENTATIONS.register("shift", Augmentation(3.0, _steps, _shift_views, "largest per-sensor shift k, in steps"))


def parse_augment(spec: str) -> dict[str, float]:
    """``"noise,dropout:0.2,shift:2"`` -> ``{"noise": 0.1, "dropout": 0.2, "shift": 2.0}`` (a kind without
    a strength takes its default; order kept).

    Raises:
        ConfigError: an unknown kind, a repeated one, or a strength out of range.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"augment: expected 'kind[:strength],...', got {spec!r}")
    out: dict[str, float] = {}
    for item in spec.split(","):
        name, sep, value = item.partition(":")
        name = name.strip().lower()
        kind = AUGMENTATIONS.get(name)
        if name in out:
            raise ConfigError(f"augment: {name!r} appears twice in {spec!r}")
        try:
            strength = float(value) if sep else kind.default
        except ValueError:
            raise ConfigError(f"augment: {item.strip()!r}: the strength is not a number") from None
        problem = kind.check(strength)
        if problem:
            raise ConfigError(f"augment: {name} strength ({kind.meaning}) {problem}, got {strength:g}")
        out[name] = strength
    return out


def format_augment(kinds: dict[str, float]) -> str:
    """The canonical spelling of a parsed spec, every strength written out (what a config stores)."""
    return ",".join(f"{name}:{strength:g}" for name, strength in kinds.items())


class Augmenter:
    """Draws a batch's views: ``round(fraction · B)`` windows (at least one) chosen at random, each
    perturbed by one of ``kinds`` chosen at random.

    Args:
        kinds: ``{kind: strength}`` (:func:`parse_augment`).
        fraction: views per window of a batch (default: ``0.5``).
        split: the training windows (``shift`` moves windows within them).
        first, last: the positions of ``split`` a moved window may take (default: all; a run on its
            most recent windows, ``TrainConfig.train_days``, passes the first of those).
        value_channels: how many leading input channels are per-sensor values (mixup mixes those,
            not the calendar features; default: ``split.inputs.shape[-1]``, or all).
    """

    def __init__(self, kinds: dict[str, float], fraction: float = 0.5, *, split: Any = None, first: int = 0,
                 last: int | None = None, value_channels: int | None = None) -> None:
        if not kinds:
            raise ConfigError("Augmenter: no augmentation kind given")
        if not 0 < fraction <= 1:
            raise ConfigError(f"Augmenter: fraction must be in (0, 1], got {fraction}")
        self.kinds = {name: float(s) for name, s in kinds.items()}
        for name in self.kinds:
            AUGMENTATIONS.get(name)
        self.fraction = float(fraction)
        self.split = split
        self.first = int(first)
        self.last = last
        if value_channels is None and split is not None:
            value_channels = int(split.inputs.shape[-1])
        self.value_channels = value_channels

    def __call__(self, batch: Batch) -> Batch:
        """The views of ``batch``, grouped by kind (``index`` = the windows they were drawn from).

        Shapes:
            batch: ``x (B, T, N, C)``, ``y``/``mask`` ``(B, H, N)``; returns ``M = max(1, round(fraction·B))``
            views of the same layout.
        """
        b = len(batch)
        m = max(1, int(round(self.fraction * b)))
        rows = torch.randperm(b)[:m]
        names = list(self.kinds)
        which = torch.randint(len(names), (m,))
        views = []
        for k, name in enumerate(names):
            chosen = rows[which == k]
            if chosen.numel():
                views.append(AUGMENTATIONS.get(name).views(batch, chosen.to(batch.x.device), self.kinds[name], self))
        return Batch(torch.cat([v.x for v in views]), torch.cat([v.y for v in views]),
                     torch.cat([v.mask for v in views]), torch.cat([v.index for v in views]))
