"""One description of a run: what every front end (``stgkd train``/``distill``, the demo, the benchmarks) builds
and :func:`stgkd.engine.run` alone carries out (resume, evaluation, checkpoints).

A :class:`RunSpec` names the model and its hyperparameters, the data (:class:`DataSpec`), the optimisation
(:class:`~stgkd.engine.trainer.TrainConfig`) and, for a distillation, the teachers and the loss
(:class:`~stgkd.distill.DistillConfig`). Each setting has one name, the field's, which is also its
command-line flag (:mod:`stgkd.settings`) and its key in the checkpoints::

    spec = RunSpec("stgru", {"hidden": 32}, DataSpec("metr-la"), TrainConfig(epochs=30),
                   teachers=("runs/gwn/best.pt",), distill=DistillConfig(tau=2.0))
    result = run(spec, "runs/stgru")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stgkd.data.core import TrafficData
from stgkd.engine.trainer import TrainConfig
from stgkd.errors import ConfigError
from stgkd.missing import MissingSpec

__all__ = ["DataSpec", "RunSpec"]


@dataclass(frozen=True)
class DataSpec:
    """The series and how its windows are made.

    Args:
        dataset: a registered dataset name, a path or a :class:`TrafficData`; for a distillation ``None`` is
            the teacher's series (default: ``None``).
        data_dir: root of registered datasets (default: ``$STGKD_DATA`` or ``<repo>/datasets``).
        missing: which readings are missing (:mod:`stgkd.missing`; default: the dataset's convention, a
            resumed run's, or a teacher's).
        in_steps, out_steps: window lengths (default: 12 and 12; a distillation takes the teacher's).
        split: train/val/test fractions (default: the dataset's).
        time_of_day: the time-of-day input feature (default: True).
        day_of_week: the day-of-week input feature (default: ``None``, where the series allows a week-long
            season).
        seasonal: seasons whose seasonal-lag channels the model reads, ``()`` for none (default: ``None``,
            the model family's that the series allows).
    """

    dataset: str | Path | TrafficData | None = None
    data_dir: str | Path | None = None
    missing: MissingSpec = None
    in_steps: int = 12
    out_steps: int = 12
    split: Sequence[float] | None = None
    time_of_day: bool = True
    day_of_week: bool | None = None
    seasonal: Sequence[str] | None = None


@dataclass(frozen=True)
class RunSpec:
    """A training run: plain (no ``teachers``) or a distillation from one teacher or an ensemble.

    Args:
        model: registered model name (the student, for a distillation).
        hparams: its hyperparameters, by their constructor names (``{"hidden": 32}``; default: the family's).
        data: the series and its windows (default: ``DataSpec()``).
        train: optimisation settings (default: ``TrainConfig()``; on resume the run's own, but ``epochs`` and
            ``device``).
        teachers: teacher checkpoints (``best.pt``); several are one ensemble (default: none, a plain run).
        distill: the distillation loss (default: ``DistillConfig()`` when there are teachers).
        feature_teacher: with several teachers, the one whose features and relations the loss reads
            (default: the first).
    """

    model: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainConfig | None = None
    teachers: tuple[Path, ...] = ()
    distill: Any = None
    feature_teacher: Path | None = None

    def __post_init__(self) -> None:
        teachers = (self.teachers,) if isinstance(self.teachers, (str, Path)) else tuple(self.teachers)
        object.__setattr__(self, "teachers", tuple(Path(t).resolve() for t in teachers))
        if not isinstance(self.hparams, Mapping):
            raise ConfigError(f"RunSpec.hparams must map hyperparameter names to values, got {type(self.hparams).__name__}")
        object.__setattr__(self, "hparams", dict(self.hparams))
        if not self.teachers and (self.distill is not None or self.feature_teacher is not None):
            raise ConfigError(f"{self.model}: distillation settings without a teacher checkpoint")
        if self.distill is not None:
            from stgkd.distill import DistillConfig

            if not isinstance(self.distill, DistillConfig):
                raise ConfigError(f"RunSpec.distill must be a DistillConfig (DistillConfig.from_dict turns a dict "
                                  f"of its fields into one), got {type(self.distill).__name__}")
        if self.teachers:
            default = DataSpec()
            fixed = [name for name in ("in_steps", "out_steps", "split", "time_of_day", "day_of_week")
                     if getattr(self.data, name) != getattr(default, name)]
            if fixed:
                raise ConfigError(f"a distillation reads {', '.join(fixed)} from the teacher's checkpoint; "
                                  "leave them unset")

    @property
    def distills(self) -> bool:
        """Whether this run has teachers (a plain run through the distillation path when every weight is 0)."""
        return bool(self.teachers)
