"""Staged distillation: which loss terms are on in which epochs.

By default every term of the loss is on from the first epoch to the last. A *stage schedule*
splits the epochs instead, e.g. ``"hint:0.2,kd:0.6,fine:0.2"``:

* ``hint``: feature hints, ``w_sup · L_sup + w_feat · L_feat`` (FitNets, Romero et al., ICLR 2015:
  first pull the student's intermediate state towards the teacher's, then train on the outputs);
* ``kd``: output and relation distillation, ``w_sup · L_sup + w_out · L_out + w_rel · L_rel``;
* ``fine``: a short fine-tune on the truth alone, ``w_sup · L_sup``.

The weights are the config's; a stage only switches terms off. Stages run in the order written, each
for its fraction of the run's epochs (fractions sum to 1); stage ``k`` ends after epoch
``round(epochs · (f_1 + ... + f_k))``, so a stage shorter than half an epoch is skipped.
The :class:`~stgkd.engine.callbacks.DistillStages` callback applies the schedule at each epoch's start.
"""

from __future__ import annotations

import math

from stgkd.errors import ConfigError
from stgkd.registry import Registry

__all__ = ["STAGES", "parse_stages", "format_stages", "stage_at", "stage_bounds"]

#: loss terms each stage keeps on, by stage name.
STAGES: Registry[tuple[str, ...]] = Registry("distillation stage")
STAGES.register("hint", ("sup", "feat"))
STAGES.register("kd", ("sup", "out", "rel"))
STAGES.register("fine", ("sup",))


def parse_stages(spec: str) -> list[tuple[str, float]]:
    """``"hint:0.2,kd:0.6,fine:0.2"`` -> ``[("hint", 0.2), ("kd", 0.6), ("fine", 0.2)]``.

    Raises:
        ConfigError: an unknown stage, a repeated one, a fraction not in ``(0, 1]``, or fractions
            that do not sum to 1.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"distill stages: expected 'name:fraction,...', got {spec!r}")
    stages: list[tuple[str, float]] = []
    for item in spec.split(","):
        name, sep, frac = item.partition(":")
        name = name.strip().lower()
        try:
            value = float(frac) if sep else math.nan
        except ValueError:
            value = math.nan
        if not 0 < value <= 1:
            raise ConfigError(f"distill stages: {item.strip()!r} is not 'name:fraction' with a fraction in (0, 1]")
        STAGES.get(name)
        if any(name == n for n, _ in stages):
            raise ConfigError(f"distill stages: {name!r} appears twice in {spec!r}")
        stages.append((name, value))
    total = sum(f for _, f in stages)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(f"distill stages: the fractions of {spec!r} sum to {total:g}, not 1")
    return stages


def format_stages(stages: list[tuple[str, float]]) -> str:
    """The canonical spelling of a parsed schedule (what a config stores)."""
    return ",".join(f"{name}:{frac:g}" for name, frac in stages)


def stage_bounds(stages: list[tuple[str, float]], epochs: int) -> list[tuple[str, int, int]]:
    """``(name, first_epoch, last_epoch)`` of each stage that gets at least one epoch (1-based)."""
    out, start, cum = [], 1, 0.0
    for name, frac in stages:
        cum += frac
        end = min(epochs, int(math.floor(epochs * cum + 0.5)))
        if end >= start:
            out.append((name, start, end))
            start = end + 1
    if out and out[-1][2] < epochs:  # rounding never leaves epochs over, but be safe: the last stage keeps them
        name, first, _ = out[-1]
        out[-1] = (name, first, epochs)
    return out


def stage_at(stages: list[tuple[str, float]], epoch: int, epochs: int) -> str:
    """Name of the stage that epoch ``epoch`` (1-based) of an ``epochs``-long run belongs to.

    Epochs beyond ``epochs`` (a run resumed with more) belong to the last stage.
    """
    bounds = stage_bounds(stages, epochs)
    for name, first, last in bounds:
        if first <= epoch <= last:
            return name
    return bounds[-1][0] if bounds else stages[-1][0]
