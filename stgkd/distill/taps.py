"""Which student feature is matched with which teacher feature.

Models expose their intermediate representations through ``forward(x, return_features=True)``
under the names in ``feature_names``, and name their natural match in ``distill_feature``. A
*pair* is written ``"student_name:teacher_name"``. Pairs are chosen

* ``"default"``: ``(student.distill_feature, teacher.distill_feature)``;
* ``"auto"``: every student feature is paired with the teacher feature of the same layout rank
  (node ``(B, N, D)`` with node, time ``(B, T, N, D)`` with time; any rank when the teacher has none
  of it) at the same relative depth in ``feature_names`` order, so a one-feature student meets the
  teacher's deepest feature of its layout;
* explicitly: a list of ``"s:t"`` strings (or one comma-separated string).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError

__all__ = ["FeaturePair", "parse_pairs", "default_pairs", "auto_pairs", "probe_features", "resolve_pairs"]


@dataclass(frozen=True)
class FeaturePair:
    """One student feature matched with one teacher feature."""

    student: str
    teacher: str

    @classmethod
    def parse(cls, spec: str) -> "FeaturePair":
        parts = spec.split(":")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ConfigError(f"distill pairs: {spec!r} is not 'student_feature:teacher_feature'")
        return cls(parts[0].strip(), parts[1].strip())

    @property
    def key(self) -> str:
        """Name of this pair's adapter in the objective's ``ModuleDict`` (no dots allowed there)."""
        return f"{self.student}:{self.teacher}".replace(".", "_")

    def __str__(self) -> str:
        return f"{self.student}:{self.teacher}"


def parse_pairs(spec: str | Sequence[str] | Sequence[FeaturePair]) -> list[FeaturePair]:
    """``"a:x,b:y"`` or ``["a:x", "b:y"]`` (or pairs) -> list of :class:`FeaturePair`, duplicates refused."""
    items = [s for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    pairs = [p if isinstance(p, FeaturePair) else FeaturePair.parse(p) for p in items]
    if not pairs:
        raise ConfigError("distill pairs: no feature pair given")
    keys = [p.key for p in pairs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"distill pairs: duplicate pair in {[str(p) for p in pairs]}")
    return pairs


def default_pairs(student: nn.Module, teacher: nn.Module) -> list[FeaturePair]:
    """``[(student.distill_feature, teacher.distill_feature)]``."""
    s, t = getattr(student, "distill_feature", ""), getattr(teacher, "distill_feature", "")
    if not s or not t:
        raise ConfigError(
            f"distill pairs: 'default' needs distill_feature on both models, got student {s!r}, teacher {t!r}"
        )
    return [FeaturePair(s, t)]


def probe_features(model: nn.Module, x: Tensor) -> dict[str, tuple[int, ...]]:
    """Shapes of the features ``model`` returns on ``x`` (one no-grad eval forward, mode restored).

    Shapes:
        x: ``(B, T, N, C)``; returns ``{name: (B, N, D) or (B, T, N, D)}`` as tuples.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, feats = model(x, return_features=True)
    finally:
        model.train(was_training)
    return {name: tuple(f.shape) for name, f in feats.items()}


def auto_pairs(
    student_shapes: Mapping[str, Sequence[int]], teacher_shapes: Mapping[str, Sequence[int]]
) -> list[FeaturePair]:
    """Pair every student feature with a teacher feature of the same layout rank at the same
    relative depth (dict order = depth order). Features whose node count differs are skipped.

    Shapes:
        values: ``(B, N, D)`` or ``(B, T, N, D)`` shapes.
    """
    if not student_shapes or not teacher_shapes:
        raise ConfigError("distill pairs: 'auto' needs at least one feature on each model")
    pairs = []
    names = list(student_shapes)
    for i, s_name in enumerate(names):
        s_shape = tuple(student_shapes[s_name])
        nodes = [t for t, shape in teacher_shapes.items() if tuple(shape)[-2] == s_shape[-2]]
        same_rank = [t for t in nodes if len(teacher_shapes[t]) == len(s_shape)]
        candidates = same_rank or nodes
        if not candidates:
            continue
        depth = (i + 1) / len(names)
        pairs.append(FeaturePair(s_name, candidates[max(0, math.ceil(depth * len(candidates)) - 1)]))
    if not pairs:
        raise ConfigError("distill pairs: 'auto' found no teacher feature with the student's node count")
    return pairs


def _names(model: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(model, "feature_names", ()))


def resolve_pairs(
    spec: str | Sequence[str] | None,
    student: nn.Module,
    teacher: nn.Module,
    *,
    sample_x: Tensor | None = None,
) -> list[FeaturePair]:
    """Turn a pair spec (``None``/``"default"``, ``"auto"``, or ``"s:t"`` strings) into checked pairs.

    ``"auto"`` runs both models once on ``sample_x`` (``(B, T, N, C)``) to learn the layouts.
    Names are checked against each model's ``feature_names`` where the model declares them.
    """
    if spec is None or spec == "default":
        pairs = default_pairs(student, teacher)
    elif spec == "auto":
        if sample_x is None:
            raise ConfigError("distill pairs: 'auto' needs sample_x to probe the feature layouts")
        pairs = auto_pairs(probe_features(student, sample_x), probe_features(teacher, sample_x))
    else:
        pairs = parse_pairs(spec)
    s_names, t_names = _names(student), _names(teacher)
    for p in pairs:
        if s_names and p.student not in s_names:
            raise ConfigError(f"distill pairs: student has no feature {p.student!r}; it has {list(s_names)}")
        if t_names and p.teacher not in t_names:
            raise ConfigError(f"distill pairs: teacher has no feature {p.teacher!r}; it has {list(t_names)}")
    return pairs
