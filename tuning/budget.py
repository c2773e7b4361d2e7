"""The latency budget of a study, set on the machine that runs it: the students it is calibrated on and the rule.

A study's ``--latency-budget-ms`` decides which students may train. :func:`calibrate_budget` sets it where the
study runs, timing at batch 1 (as the study does) the reference student (the default student at width 32) and the
widest student of each family the space allows (:func:`budget_students`): given the default teacher's CUDA-graph
latency (``teacher_ms``) on CUDA in CUDA-graph mode, :data:`TEACHER_FRACTION` of it (the goal: the default student
at least 10x faster than Graph WaveNet); otherwise the geometric mean of the reference and the fastest widest
student, so the reference is feasible and no widest student is (or 1.05 x the reference when the widest are not
slower). The record says which students the budget admits and by which rule.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from stgkd.nn.registry import DEFAULT_STUDENT, DEFAULT_TEACHER

__all__ = ["TEACHER_FRACTION", "budget_students", "calibrate_budget"]

#: the budget on CUDA: this fraction of the default teacher's CUDA-graph latency at batch 1
TEACHER_FRACTION = 0.1


def _config(name: str, num_nodes: int, **hparams: Any) -> dict[str, Any]:
    """A :meth:`~stgkd.nn.ForecastModel.config` of 12 -> 12 steps and 2 input channels."""
    return {"name": name, "num_nodes": int(num_nodes), "in_steps": 12, "out_steps": 12, "in_channels": 2,
            "hparams": dict(hparams)}


def budget_students(space: Any, num_nodes: int) -> dict[str, dict[str, Any]]:
    """The model configs the budget is set from, by label: ``"reference"`` (the default student at width 32) and
    the widest student of each family ``space`` (a :class:`tuning.space.SearchSpace`) allows (top width and every
    integer size parameter that applies to the family at its top; a rank at most ``num_nodes``)."""
    families = list(space["family"].choices) if space["family"].kind == "categorical" else [space["family"].value]
    out = {"reference": _config(DEFAULT_STUDENT, num_nodes, hidden=32)}
    for family in families:
        hp: dict[str, Any] = {"hidden": space["hidden"].high}
        for spec in space.specs:
            if spec.kind == "int" and family in spec.when.get("family", (family,)) and (
                    spec.name == "layers" or spec.name.startswith("student.")):
                hp[spec.name.removeprefix("student.")] = min(spec.high, num_nodes) if spec.name == "student.rank" \
                    else spec.high
        out[family + " " + " ".join(f"{k}={v}" for k, v in hp.items())] = _config(family, num_nodes, **hp)
    return out


def calibrate_budget(adj: np.ndarray, space: Any, *, device: str, mode: str, teacher_ms: float | None = None,
                     warmup: int = 5, iters: int = 50) -> dict[str, Any]:
    """The latency budget (``budget_ms``) on ``device`` in ``mode`` for a study of ``space`` on the ``(N, N)``
    graph ``adj``, with the students' latency at batch 1 (:func:`stgkd.latency.measure`), the rule and where the
    teacher's figure came from (``source``)."""
    from stgkd.latency import measure
    from stgkd.nn.registry import from_config

    def lat(config: dict[str, Any]) -> float:
        torch.manual_seed(0)
        return measure(from_config(config, adj), batch_size=1, device=device, mode=mode, warmup=warmup,
                       iters=iters, name=config["name"]).median_ms

    students = budget_students(space, int(adj.shape[0]))
    ref_config = students.pop("reference")
    reference = lat(ref_config)
    widest = {label: lat(cfg) for label, cfg in students.items()}
    low_wide, source, cuda = min(widest.values()), "calibrated here", device == "cuda"
    if cuda and mode == "cuda-graph" and teacher_ms:
        budget, source = TEACHER_FRACTION * float(teacher_ms), "the latency part"
        rule = (f"1/{round(1 / TEACHER_FRACTION)} of {DEFAULT_TEACHER}'s CUDA-graph latency at batch 1, fp32 "
                f"({float(teacher_ms):.4g} ms, measured by the latency part of this run)")
    elif low_wide > 1.05 * reference:
        budget, rule = math.sqrt(reference * low_wide), "geometric mean of the reference and the fastest widest student"
    else:
        budget, rule = 1.05 * reference, ("the widest students are not measurably slower than the reference here, so "
                                          "no budget above the reference excludes them; budget = 1.05 x the reference")
    if cuda and source != "the latency part":
        rule += (" (no CUDA-graph figure of the teacher from the latency part" if not teacher_ms else
                 " (the students are timed eagerly here") + ", so not 1/10 of the teacher's)"
    return {"mode": mode, "device": device, "batch": 1, "source": source,
            "reference": {"model": ref_config["name"], "hidden": 32, "median_ms": reference,
                          "within_budget": reference <= budget},
            "teacher": {"model": DEFAULT_TEACHER, "mode": "cuda-graph", "batch": 1, "median_ms": teacher_ms},
            "widest": widest, "budget_ms": budget, "rule": rule}
