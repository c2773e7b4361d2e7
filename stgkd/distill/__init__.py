"""Knowledge distillation from a frozen spatio-temporal teacher into a small student.

``L = w_sup·masked MAE + w_out·output distillation + w_feat·feature matching + w_rel·relation
distillation`` (:mod:`~stgkd.distill.objective`), built from the pure functions in
:mod:`~stgkd.distill.losses`, the training-only :mod:`~stgkd.distill.adapters`, the feature pairing
of :mod:`~stgkd.distill.taps`, the hand-over of the teacher's learned graph in
:mod:`~stgkd.distill.inherit`, the once-per-split :mod:`~stgkd.distill.cache` of teacher outputs,
the epoch schedule of :mod:`~stgkd.distill.stages`, several teachers combined into one
(:mod:`~stgkd.distill.ensemble`) and teacher-labelled augmented windows (:mod:`~stgkd.distill.augment`).
"""

from __future__ import annotations

from stgkd.distill.adapters import TIME_POOLS, FeatureAdapter, pool_time
from stgkd.distill.augment import AUGMENTATIONS, Augmenter, parse_augment
from stgkd.distill.cache import ADJACENCY_KEY, TeacherCache
from stgkd.distill.ensemble import TEACHER_COMBINES, TeacherEnsemble, inverse_error_weights
from stgkd.distill.inherit import inherit_adjacency
from stgkd.distill.losses import (
    ELEMENT_LOSSES,
    FEATURE_LOSSES,
    adjacency_relation_distillation,
    cosine_similarity_matrix,
    effective_sample_size,
    feature_matching,
    masked_mae,
    output_distillation,
    relation_distillation,
    relation_kl,
    relative_temperature,
    standardize,
    trust_weights,
)
from stgkd.distill.objective import (
    RELATION_NORMS,
    RELATION_SOURCES,
    TERMS,
    UNITS,
    DistillationObjective,
    DistillConfig,
)
from stgkd.distill.stages import STAGES, parse_stages, stage_at, stage_bounds
from stgkd.distill.taps import FeaturePair, auto_pairs, default_pairs, parse_pairs, probe_features, resolve_pairs

__all__ = [
    "ADJACENCY_KEY",
    "AUGMENTATIONS",
    "Augmenter",
    "TEACHER_COMBINES",
    "TeacherEnsemble",
    "inverse_error_weights",
    "parse_augment",
    "ELEMENT_LOSSES",
    "FEATURE_LOSSES",
    "RELATION_NORMS",
    "RELATION_SOURCES",
    "STAGES",
    "TERMS",
    "TIME_POOLS",
    "UNITS",
    "DistillConfig",
    "DistillationObjective",
    "FeatureAdapter",
    "FeaturePair",
    "TeacherCache",
    "adjacency_relation_distillation",
    "auto_pairs",
    "cosine_similarity_matrix",
    "default_pairs",
    "effective_sample_size",
    "feature_matching",
    "inherit_adjacency",
    "masked_mae",
    "output_distillation",
    "parse_pairs",
    "parse_stages",
    "pool_time",
    "probe_features",
    "relation_distillation",
    "relation_kl",
    "relative_temperature",
    "resolve_pairs",
    "stage_at",
    "stage_bounds",
    "standardize",
    "trust_weights",
]
