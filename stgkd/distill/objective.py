"""The combined distillation loss and its JSON-serialisable configuration.

.. math::
    L = w_{sup} \\, L_{sup} + w_{out} \\, L_{out} + w_{feat} \\, L_{feat} + w_{rel} \\, L_{rel}

* :math:`L_{sup}`: masked MAE of the student against the truth (:func:`~stgkd.distill.losses.masked_mae`);
* :math:`L_{out}`: trust-weighted distance to the teacher's forecast, temperature ``tau``, by default
  a multiple of the teacher's mean error on the batch (``tau_relative``,
  :func:`~stgkd.distill.losses.relative_temperature`; :func:`~stgkd.distill.losses.output_distillation`);
* :math:`L_{feat}`: adapted student features against the teacher's, mean over the feature pairs
  (:func:`~stgkd.distill.losses.feature_matching`);
* :math:`L_{rel}`: KL between node-relation distributions at ``relation_tau``, mean over the pairs,
  the teacher's relations taken from its features or from its learned adaptive adjacency, each row
  of scores standardised first by default (``relation_norm``).

``stages`` switches terms on and off by epoch (:mod:`~stgkd.distill.stages`; the trainer's
:class:`~stgkd.engine.callbacks.DistillStages` callback calls :meth:`DistillationObjective.set_terms`).

Units: forecast terms are computed in z-scored units by default (``units="scaled"``): the models'
forecasts already are, and the raw truth of a :class:`Batch` is scaled with the training scaler,
so :math:`L_{sup}` is the raw MAE divided by the training std and ``tau`` and the weights mean the
same on every dataset. ``units="raw"`` compares in the data's units instead (``tau`` then in e.g.
mph). The parts dict always carries ``"mae_raw"``, the supervised MAE in raw units, for logging, and
with the output term ``"trust_ess"`` (the effective sample size of the trust weights, 1 = uniform)
and ``"tau_eff"`` (the trust temperature used, in the loss units; finite ``tau`` only).

Typical use by the trainer::

    objective = DistillationObjective.from_models(config, student, teacher, sample_x=batch.x)
    cache = TeacherCache.build(teacher, prepared.train, objective.teacher_feature_names, device,
                               time_pool=config.time_pool)
    optimizer = Adam([*student.parameters(), *objective.parameters()])
    for batch in loader:
        s_out, s_feats = student(batch.x, return_features=True)
        t_out, t_feats = cache.lookup(batch.index)
        loss, parts = objective(s_out, s_feats, batch, t_out, t_feats, prepared.scaler)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from stgkd.distill.cache import ADJACENCY_KEY
from stgkd.distill.adapters import TIME_POOLS, FeatureAdapter, pool_time
from stgkd.distill.augment import format_augment, parse_augment
from stgkd.distill.ensemble import TEACHER_COMBINES
from stgkd.distill.losses import (
    ELEMENT_LOSSES,
    FEATURE_LOSSES,
    adjacency_relation_distillation,
    effective_sample_size,
    feature_matching,
    masked_mae,
    output_distillation,
    relation_distillation,
    relative_temperature,
    trust_weights,
)
from stgkd.distill.stages import STAGES, format_stages, parse_stages
from stgkd.distill.taps import FeaturePair, parse_pairs, probe_features, resolve_pairs
from stgkd.errors import ConfigError
from stgkd.registry import Registry
from stgkd.settings import flag

__all__ = ["ADJACENCY_KEY", "RELATION_NORMS", "RELATION_SOURCES", "TERMS", "UNITS", "DistillConfig",
           "DistillationObjective"]

#: the loss terms, in the order they are added.
TERMS = ("sup", "out", "feat", "rel")



def _feature(feats: Mapping[str, Any] | None, name: str, side: str) -> Any:
    if feats is None or name not in feats:
        have = [] if feats is None else sorted(feats)
        raise ConfigError(f"DistillationObjective: {side} features lack {name!r} (got {have})")
    return feats[name]


#: units the forecast terms are computed in: ``units(student_out, teacher_out, y_raw, scaler)`` ->
#: ``(prediction, target, teacher)`` in those units (the models' outputs are z-scores).
UNITS: Registry[Callable[..., tuple[Tensor, Tensor, Tensor | None]]] = Registry("loss units")


@UNITS.register("scaled")
def _scaled_units(student_out: Tensor, teacher_out: Tensor | None, y_raw: Tensor, scaler: Any):
    """z-scores of the training slice: the truth is scaled, the forecasts are compared as they come."""
    return student_out, scaler.transform(y_raw), teacher_out


@UNITS.register("raw")
def _raw_units(student_out: Tensor, teacher_out: Tensor | None, y_raw: Tensor, scaler: Any):
    """The data's own units: the forecasts are scaled back."""
    teacher = None if teacher_out is None else scaler.inverse_transform(teacher_out)
    return scaler.inverse_transform(student_out), y_raw, teacher


@dataclass(frozen=True)
class RelationSource:
    """Where the teacher's node relations come from.

    Attributes:
        term: ``term(student_nodes (B, N, D), pair, teacher_feats, tau, standardize) -> scalar``: the
            relation term of one feature pair.
        reads_teacher_features: whether the term reads the teacher's paired features (so the teacher
            cache must hold them).
    """

    term: Callable[..., Tensor]
    reads_teacher_features: bool


def _relations_of_features(s: Tensor, pair: FeaturePair, teacher_feats: Mapping[str, Tensor] | None, tau: float,
                           standardize: bool, time_pool: str) -> Tensor:
    t = pool_time(_feature(teacher_feats, pair.teacher, "teacher"), time_pool)
    return relation_distillation(s, t, tau, standardize_scores=standardize)


def _relations_of_adjacency(s: Tensor, pair: FeaturePair, teacher_feats: Mapping[str, Tensor] | None, tau: float,
                            standardize: bool, time_pool: str) -> Tensor:
    adj = _feature(teacher_feats, ADJACENCY_KEY, "teacher")
    return adjacency_relation_distillation(s, adj, tau, standardize_scores=standardize)


#: where the teacher's node relations come from, by name.
RELATION_SOURCES: Registry[RelationSource] = Registry("relation source")
#: cosine similarity of the teacher's paired node features
RELATION_SOURCES.register("features", RelationSource(_relations_of_features, reads_teacher_features=True))
#: the teacher's learned adaptive adjacency (Graph WaveNet)
RELATION_SOURCES.register("adaptive", RelationSource(_relations_of_adjacency, reads_teacher_features=False))
#: how relation scores are prepared before the tempered softmax: whether each row is z-scored.
RELATION_NORMS: Registry[bool] = Registry("relation norm")
#: each row z-scored, so tau is in row standard deviations
RELATION_NORMS.register("standardize", True)
#: raw scores (cosine similarities, log adjacency)
RELATION_NORMS.register("none", False)


@dataclass
class DistillConfig:
    """Settings of the distillation loss; ``to_json`` / ``from_json`` round-trip for checkpoints and
    the tuner.

    Args:
        w_sup: weight of the supervised masked MAE (default: ``1.0``).
        w_out: weight of output distillation (default: ``1.0``).
        w_feat: weight of feature matching (default: ``0.1``).
        w_rel: weight of relation distillation (default: ``0.1``).
        tau: trust temperature of output distillation (default: ``1.0``); ``inf`` trusts the
            teacher uniformly. A multiple of the teacher's mean absolute error on the batch's
            observed readings when ``tau_relative``, else in the loss units (one training std when
            scaled).
        tau_relative: read ``tau`` relative to the teacher's own error,
            ``tau_eff = tau · mean|teacher - truth|`` (default: ``True``; ``False`` is how runs saved
            before the option read it).
        relation_tau: softmax temperature of the relation distributions (default: ``0.5``).
        relation_norm: ``"standardize"`` (z-score each row of relation scores before the softmax, so
            the term's gradient is of the order of the others') or ``"none"`` (default:
            ``"standardize"``; ``"none"`` for runs saved before the option).
        pairs: ``"default"``, ``"auto"`` or a list of ``"student:teacher"`` feature names
            (default: ``"default"``).
        feature_loss: ``"mse"`` (on standardised features) or ``"cosine"`` (default: ``"mse"``).
        output_loss: ``"l1"``, ``"huber"`` or ``"l2"`` (default: ``"l1"``).
        huber_delta: threshold of the Huber output loss (default: ``1.0``).
        relation_source: ``"features"`` or ``"adaptive"`` (default: ``"features"``).
        time_pool: reduction of ``(B, T, N, D)`` features, ``"mean"`` or ``"last"`` (default: ``"mean"``).
        units: ``"scaled"`` or ``"raw"`` forecast units (default: ``"scaled"``).
        inherit_adjacency: start the student's adaptive adjacency at the teacher's learned one by
            copying the teacher's node embeddings (:func:`~stgkd.distill.inherit.inherit_adjacency`);
            the student must be built with ``adaptive=True`` and the teacher's ``embed_dim``
            (default: ``False``).
        stages: ``None`` (every term in every epoch) or a schedule such as
            ``"hint:0.2,kd:0.6,fine:0.2"``: fractions of the epochs for feature hints (sup + feat),
            output/relation distillation (sup + out + rel) and a fine-tune on the truth (sup)
            (:mod:`~stgkd.distill.stages`) (default: ``None``).
        teacher_combine: how several teachers' forecasts are combined
            (:data:`~stgkd.distill.ensemble.TEACHER_COMBINES`): ``"mean"``, or ``"inverse-error"``
            (weights per horizon step and sensor proportional to ``1 / validation MAE``); one
            teacher ignores it (default: ``"mean"``).
        augment: ``None``, or teacher-labelled augmented views (:mod:`~stgkd.distill.augment`), e.g.
            ``"noise,dropout,mixup,shift"`` or with strengths ``"noise:0.1,dropout:0.1,mixup:0.4,shift:3"``
            (those are the defaults: σ in z-units, drop probability, Beta α, largest shift in steps);
            stored with every strength written out (default: ``None``).
        augment_fraction: views per training window of a batch, in ``(0, 1]`` (default: ``0.5``).
    """

    w_sup: float = flag(1.0, "weight of the supervised masked MAE")
    w_out: float = flag(1.0, "weight of output distillation")
    w_feat: float = flag(0.1, "weight of feature matching")
    w_rel: float = flag(0.1, "weight of relation distillation")
    tau: float = flag(1.0, "trust temperature of output KD (DistillConfig.tau): a multiple of the teacher's mean "
                      "error on each batch (or, with --no-tau-relative, in z-score units); 'inf' = uniform trust. "
                      "--temperature is its earlier name; the relation term has its own, --relation-tau",
                      aliases=("--temperature",))
    relation_tau: float = flag(0.5, "softmax temperature of the relation distributions (DistillConfig.relation_tau)")
    pairs: str | list[str] = flag("default", "feature pairs: default, auto, or student:teacher names (default: default, each model's natural match)", nargs="+",
                                 metavar="S:T")
    feature_loss: str = "mse"
    output_loss: str = "l1"
    huber_delta: float = 1.0
    relation_source: str = flag("features", "teacher relations from features or its adaptive adjacency",
                                choices=lambda: RELATION_SOURCES.names())
    time_pool: str = "mean"
    units: str = "scaled"
    inherit_adjacency: bool = flag(False, "start the student's adaptive adjacency at the teacher's (needs --hparams "
                                          "adaptive=true)")
    tau_relative: bool = flag(True, "read --tau relative to the teacher's mean absolute error",
                              negatable=True)
    relation_norm: str = flag("standardize", "z-score each row of relation scores before the softmax", choices=lambda: RELATION_NORMS.names())
    stages: str | None = flag(None, "staged distillation, e.g. hint:0.2,kd:0.6,fine:0.2 (fractions of the epochs: "
                              "feature hints, then output/relation KD, then a fine-tune on the truth; default: all "
                              "terms throughout)", metavar="SPEC")
    teacher_combine: str = flag("mean", "several teachers' forecasts: their mean, or weighted per horizon step and "
                                "sensor by 1 / validation MAE", choices=lambda: TEACHER_COMBINES.names())
    augment: str | None = flag(None, "teacher-labelled augmented views: noise,dropout,mixup,shift, each optionally "
                               "with a strength, e.g. noise:0.1,dropout:0.1,mixup:0.4,shift:3 (the defaults); the "
                               "teacher runs on the views every step (its seconds are logged per epoch)", metavar="KINDS")
    augment_fraction: float = flag(0.5, "augmented views per training window of a batch, in (0, 1]")

    #: values that reproduce the behaviour of configs saved before a field existed (see
    #: :meth:`from_checkpoint`); a field missing here had no earlier behaviour to keep.
    LEGACY: ClassVar[dict[str, Any]] = {"tau_relative": False, "relation_norm": "none", "stages": None}

    def __post_init__(self) -> None:
        for name in ("w_sup", "w_out", "w_feat", "w_rel"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"DistillConfig.{name} must be a finite number >= 0, got {value!r}")
            setattr(self, name, float(value))
        if not (isinstance(self.tau, (int, float)) and self.tau > 0):
            raise ConfigError(f"DistillConfig.tau must be > 0 (inf allowed), got {self.tau!r}")
        if not (isinstance(self.relation_tau, (int, float)) and 0 < self.relation_tau < math.inf):
            raise ConfigError(f"DistillConfig.relation_tau must be finite and > 0, got {self.relation_tau!r}")
        if not (isinstance(self.huber_delta, (int, float)) and 0 < self.huber_delta < math.inf):
            raise ConfigError(f"DistillConfig.huber_delta must be finite and > 0, got {self.huber_delta!r}")
        self.tau, self.relation_tau, self.huber_delta = float(self.tau), float(self.relation_tau), float(self.huber_delta)
        FEATURE_LOSSES.get(self.feature_loss)
        ELEMENT_LOSSES.get(self.output_loss)
        RELATION_SOURCES.get(self.relation_source)
        TIME_POOLS.get(self.time_pool)
        UNITS.get(self.units)
        if not isinstance(self.inherit_adjacency, bool):
            raise ConfigError(f"DistillConfig.inherit_adjacency must be true or false, got {self.inherit_adjacency!r}")
        if not isinstance(self.tau_relative, bool):
            raise ConfigError(f"DistillConfig.tau_relative must be true or false, got {self.tau_relative!r}")
        RELATION_NORMS.get(self.relation_norm)
        if self.stages is not None:
            self.stages = format_stages(parse_stages(self.stages))
        TEACHER_COMBINES.get(self.teacher_combine)
        if self.augment is not None:
            self.augment = format_augment(parse_augment(self.augment))
        if not (isinstance(self.augment_fraction, (int, float)) and 0 < self.augment_fraction <= 1):
            raise ConfigError(f"DistillConfig.augment_fraction must be in (0, 1], got {self.augment_fraction!r}")
        self.augment_fraction = float(self.augment_fraction)
        if not isinstance(self.pairs, str) and len(self.pairs) == 1 and self.pairs[0] in ("default", "auto"):
            self.pairs = self.pairs[0]  # --pairs default
        if isinstance(self.pairs, str) and self.pairs not in ("default", "auto"):
            self.pairs = [str(p) for p in parse_pairs(self.pairs)]
        elif not isinstance(self.pairs, str):
            self.pairs = [str(p) for p in parse_pairs(list(self.pairs))]

    @property
    def weights(self) -> dict[str, float]:
        """``{"sup": w_sup, "out": w_out, "feat": w_feat, "rel": w_rel}``."""
        return {"sup": self.w_sup, "out": self.w_out, "feat": self.w_feat, "rel": self.w_rel}

    @property
    def distills(self) -> bool:
        """Whether the loss reads the teacher at all (``w_out``, ``w_feat`` or ``w_rel`` above 0); with all
        three at 0 the student trains plainly on the truth."""
        return self.w_out > 0 or self.w_feat > 0 or self.w_rel > 0

    @property
    def uses_features(self) -> bool:
        """Whether the loss reads any student or teacher features."""
        return self.w_feat > 0 or self.w_rel > 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pairs"] = self.pairs if isinstance(self.pairs, str) else list(self.pairs)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DistillConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"DistillConfig: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_checkpoint(cls, data: Mapping[str, Any]) -> "DistillConfig":
        """A config saved in a checkpoint (its ``"distill"`` entry), read as it was meant.

        Fields added since the checkpoint was written take the :attr:`LEGACY` values, which behave as
        the code that wrote it did (an old ``tau`` stays in loss units), rather than the current
        defaults. :meth:`from_dict` instead fills missing fields with the current defaults (what a
        partial dict of overrides wants).
        """
        return cls.from_dict({**cls.LEGACY, **dict(data)})

    @classmethod
    def from_json(cls, text: str) -> "DistillConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"DistillConfig: invalid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"DistillConfig: JSON must hold an object, got {type(data).__name__}")
        return cls.from_dict(data)


class DistillationObjective(nn.Module):
    """The combined loss; owns the training-only feature adapters.

    Args:
        config: the loss settings (default: ``DistillConfig()``).
        pairs: resolved feature pairs; needed when ``config.pairs`` is ``"default"``/``"auto"`` and
            a feature term is on (:meth:`from_models` resolves them from the models).
        feature_dims: ``{pair key or "s:t": (student_dim, teacher_dim)}`` to build adapters now;
            otherwise call :meth:`build_adapters`, or they are built at the first forward (then add
            their parameters to the optimizer afterwards).
    """

    def __init__(
        self,
        config: DistillConfig | None = None,
        *,
        pairs: Sequence[FeaturePair | str] | None = None,
        feature_dims: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        self.config = config if config is not None else DistillConfig()
        if pairs is not None:
            self.pairs = parse_pairs(list(pairs))
        elif not isinstance(self.config.pairs, str):
            self.pairs = parse_pairs(self.config.pairs)
        elif self.config.uses_features:
            raise ConfigError(
                f"DistillationObjective: pairs={self.config.pairs!r} must be resolved against the models; "
                "use DistillationObjective.from_models(...) or pass pairs="
            )
        else:
            self.pairs = []
        #: training-only projections, one per feature pair (never part of the student).
        self.adapters = nn.ModuleDict()
        self._active: frozenset[str] | None = None
        if feature_dims:
            by_key = {FeaturePair.parse(k).key if ":" in k else k: v for k, v in feature_dims.items()}
            for pair in self.pairs:
                if pair.key not in by_key:
                    raise ConfigError(f"DistillationObjective: feature_dims has no entry for pair {str(pair)!r}")
                self._add_adapter(pair, *by_key[pair.key])

    @classmethod
    def from_models(
        cls, config: DistillConfig, student: nn.Module, teacher: nn.Module, *, sample_x: Tensor | None = None
    ) -> "DistillationObjective":
        """Resolve ``config.pairs`` against the models and, given ``sample_x`` ``(B, T, N, C)`` and a
        feature-matching weight, build the adapters from the probed feature widths."""
        pairs = resolve_pairs(config.pairs, student, teacher, sample_x=sample_x) if config.uses_features else []
        objective = cls(config, pairs=pairs or None)
        if config.w_feat > 0 and sample_x is not None:
            objective.build_adapters(probe_features(student, sample_x), probe_features(teacher, sample_x))
        return objective

    @property
    def student_feature_names(self) -> list[str]:
        return list(dict.fromkeys(p.student for p in self.pairs)) if self.config.uses_features else []

    @property
    def teacher_feature_names(self) -> list[str]:
        """Teacher features the loss reads (what a :class:`TeacherCache` must store)."""
        if not self.config.uses_features:
            return []
        reads = self.config.w_feat > 0 or RELATION_SOURCES.get(self.config.relation_source).reads_teacher_features
        names = [p.teacher for p in self.pairs] if reads else []
        return list(dict.fromkeys(names))

    def set_terms(self, terms: Sequence[str] | None) -> None:
        """Keep only ``terms`` (names from :data:`TERMS`) on, at their configured weights; ``None``
        turns every term back on. A stage of a staged run (:mod:`~stgkd.distill.stages`) calls this."""
        if terms is None:
            self._active = None
            return
        unknown = sorted(set(terms) - set(TERMS))
        if unknown:
            raise ConfigError(f"DistillationObjective.set_terms: unknown terms {unknown}; known: {list(TERMS)}")
        self._active = frozenset(terms)

    def set_stage(self, stage: str | None) -> None:
        """Keep on the terms of the named stage (``None``: all terms)."""
        self.set_terms(None if stage is None else STAGES.get(stage))

    @property
    def active_terms(self) -> tuple[str, ...] | None:
        """The terms :meth:`set_terms` keeps on (``None``: all)."""
        return None if self._active is None else tuple(t for t in TERMS if t in self._active)

    @property
    def weights(self) -> dict[str, float]:
        """The weight each term has now: the configured one, ``0`` for a term switched off."""
        return {k: (w if self._active is None or k in self._active else 0.0) for k, w in self.config.weights.items()}

    def resolved_config(self) -> DistillConfig:
        """The config with the resolved pairs written out (what a checkpoint should record)."""
        data = self.config.to_dict()
        if self.pairs:
            data["pairs"] = [str(p) for p in self.pairs]
        return DistillConfig.from_dict(data)

    def _add_adapter(self, pair: FeaturePair, student_dim: int, teacher_dim: int) -> FeatureAdapter:
        adapter = FeatureAdapter(int(student_dim), int(teacher_dim), time_pool=self.config.time_pool)
        self.adapters[pair.key] = adapter
        return adapter

    def build_adapters(
        self, student_feats: Mapping[str, Tensor | Sequence[int]], teacher_feats: Mapping[str, Tensor | Sequence[int]]
    ) -> None:
        """Create the missing adapters from example features (tensors or shapes), last dim = width."""
        for pair in self.pairs:
            if pair.key in self.adapters:
                continue
            s, t = self._get(student_feats, pair.student, "student"), self._get(teacher_feats, pair.teacher, "teacher")
            s_shape = tuple(s.shape) if isinstance(s, Tensor) else tuple(s)
            t_shape = tuple(t.shape) if isinstance(t, Tensor) else tuple(t)
            adapter = self._add_adapter(pair, s_shape[-1], t_shape[-1])
            if isinstance(s, Tensor):
                adapter.to(device=s.device, dtype=s.dtype if s.is_floating_point() else None)

    @staticmethod
    def _get(feats: Mapping[str, Any] | None, name: str, side: str) -> Any:
        return _feature(feats, name, side)

    def terms(
        self,
        student_out: Tensor,
        student_feats: Mapping[str, Tensor] | None,
        batch: Any,
        teacher_out: Tensor | None,
        teacher_feats: Mapping[str, Tensor] | None,
        scaler: Any,
        *,
        weights: Mapping[str, float] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The unweighted loss terms and the diagnostics, as tensors (arguments as in :meth:`forward`).

        ``"sup"`` is always computed; ``"out"``, ``"feat"`` and ``"rel"`` only when their weight in
        ``weights`` (default: :attr:`weights`) is above 0. Diagnostics: ``"mae_raw"`` always, and
        with the output term ``"trust_ess"`` and (finite ``tau``) ``"tau_eff"``.
        """
        cfg = self.config
        w = self.weights if weights is None else weights
        mask = batch.mask.bool()
        y_raw = batch.y
        pred, target, teacher = UNITS.get(cfg.units)(student_out, teacher_out, y_raw, scaler)
        terms: dict[str, Tensor] = {"sup": masked_mae(pred, target, mask)}
        diag: dict[str, Tensor] = {}
        with torch.no_grad():
            diag["mae_raw"] = masked_mae(scaler.inverse_transform(student_out), y_raw, mask)
        if w["out"] > 0:
            if teacher is None:
                raise ConfigError("DistillationObjective: w_out > 0 needs teacher_out")
            teacher = teacher.to(pred.dtype)
            tau = relative_temperature(teacher, target, mask, cfg.tau) if cfg.tau_relative else cfg.tau
            trust = trust_weights(teacher, target, mask, tau)
            terms["out"] = output_distillation(pred, teacher, target, mask, weights=trust, kind=cfg.output_loss,
                                               huber_delta=cfg.huber_delta)
            diag["trust_ess"] = effective_sample_size(trust, mask)
            if not math.isinf(cfg.tau):
                diag["tau_eff"] = torch.as_tensor(tau, dtype=torch.float32, device=pred.device)
        if w["feat"] > 0:
            if any(p.key not in self.adapters for p in self.pairs):
                self.build_adapters(student_feats, teacher_feats)
            parts = []
            for pair in self.pairs:
                s = self.adapters[pair.key](self._get(student_feats, pair.student, "student"))
                t = pool_time(self._get(teacher_feats, pair.teacher, "teacher"), cfg.time_pool)
                parts.append(feature_matching(s, t.to(s.dtype), cfg.feature_loss))
            terms["feat"] = torch.stack(parts).mean()
        if w["rel"] > 0:
            source = RELATION_SOURCES.get(cfg.relation_source)
            standardize = RELATION_NORMS.get(cfg.relation_norm)
            parts = []
            for pair in self.pairs:
                s = pool_time(self._get(student_feats, pair.student, "student"), cfg.time_pool)
                parts.append(source.term(s, pair, teacher_feats, cfg.relation_tau, standardize, cfg.time_pool))
            terms["rel"] = torch.stack(parts).mean()
        return terms, diag

    def forward(
        self,
        student_out: Tensor,
        student_feats: Mapping[str, Tensor] | None,
        batch: Any,
        teacher_out: Tensor | None,
        teacher_feats: Mapping[str, Tensor] | None,
        scaler: Any,
    ) -> tuple[Tensor, dict[str, float]]:
        """Combined loss and its unweighted parts.

        Terms whose weight is 0 (configured, or switched off by :meth:`set_terms`) are not computed
        (reported as ``0.0``), so with ``w_out = w_feat = w_rel = 0`` the loss is exactly
        ``w_sup · masked MAE``; teacher inputs may then be ``None``. Parts are fetched from the
        device in one transfer.

        Args:
            student_out: student forecast, z-scored.
            student_feats: the student's ``return_features`` dict.
            batch: has ``y`` (RAW truth) and ``mask`` (observed).
            teacher_out: teacher forecast, z-scored (e.g. from :class:`TeacherCache`).
            teacher_feats: teacher features by name, ``(B, N, D)`` or ``(B, T, N, D)``, plus
                ``"adaptive_adjacency"`` ``(N, N)`` for ``relation_source="adaptive"``.
            scaler: has ``transform`` / ``inverse_transform`` (the training scaler).

        Shapes:
            student_out, teacher_out, batch.y, batch.mask: ``(B, H, N)``; features ``(B, N, D)`` or
            ``(B, T, N, D)``; returns a scalar loss and ``{"loss", "sup", "out", "feat", "rel",
            "mae_raw": float}``, plus ``"trust_ess"`` and ``"tau_eff"`` when the output term is on.
        """
        w = self.weights
        terms, diag = self.terms(student_out, student_feats, batch, teacher_out, teacher_feats, scaler, weights=w)
        loss = w["sup"] * terms["sup"]
        for name in TERMS[1:]:
            if name in terms:
                loss = loss + w[name] * terms[name]
        zero = student_out.new_zeros(())
        names = ["loss", *TERMS, *diag]
        values = torch.stack([loss.detach(), *(terms.get(k, zero).detach() for k in TERMS),
                              *(v.detach().float() for v in diag.values())]).float().tolist()
        return loss, dict(zip(names, values))
