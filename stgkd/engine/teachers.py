"""Teachers from checkpoints: one, or several combined into a :class:`~stgkd.distill.TeacherEnsemble`,
and how an ensemble scores against its members.

:func:`load_teachers` reads the checkpoints (``torch.load(weights_only=True)``), checks that every
teacher was trained on the same data (dataset, sensors, split, windows, input features, interval,
missing-value convention, scaler statistics: a :class:`~stgkd.errors.DataError` names both files
otherwise), freezes them and, for several, weights their forecasts per horizon step and sensor by
``DistillConfig.teacher_combine`` from their validation errors (:func:`validation_errors`, computed
once). :func:`score_ensemble` measures the ensemble and each member on a split with the engine's
evaluation (:func:`~stgkd.engine.evaluate.evaluate_split`): the ensemble is worth distilling only
if it beats its best member.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
from stgkd.engine.evaluate import evaluate_split, predict_split
from stgkd.errors import ConfigError, DataError
from stgkd.metrics import MetricAccumulator

__all__ = ["DATA_KEYS", "EnsembleScore", "Teachers", "check_same_data", "check_teacher_statistics", "load_teachers",
           "score_ensemble", "validation_errors"]

#: the data settings every teacher of an ensemble must share (a checkpoint's ``"data"`` entries)
DATA_KEYS = ("name", "sensor_ids", "split", "in_steps", "out_steps", "input_features", "interval_minutes", "missing")


def check_teacher_statistics(scaler: Any, teacher_scaler: dict[str, float], *, where: str = "the dataset") -> None:
    """The student's data must be scaled as the teacher's was (the same training statistics).

    Raises:
        DataError: the statistics differ, naming ``where`` the data came from.
    """
    if not (math.isclose(scaler.mean, teacher_scaler["mean"], rel_tol=1e-4, abs_tol=1e-6)
            and math.isclose(scaler.std, teacher_scaler["std"], rel_tol=1e-4, abs_tol=1e-6)):
        raise DataError(
            f"{where}: its training statistics (mean {scaler.mean:.4g}, std {scaler.std:.4g}) differ from the "
            f"teacher's ({teacher_scaler['mean']:.4g}, {teacher_scaler['std']:.4g}): the teacher was trained on "
            "other data; distill on the teacher's dataset"
        )


@dataclass
class Teachers:
    """What :func:`load_teachers` returns.

    Attributes:
        model: the frozen teacher, or a :class:`~stgkd.distill.TeacherEnsemble` of several.
        paths: the checkpoints, resolved, in the order given.
        payloads: their contents.
        feature_teacher: the checkpoint whose features and relations the loss reads.
        record: what a distilled student's checkpoint records about an ensemble (``None`` for one
            teacher): ``{"members", "combine", "feature_teacher", "val_mae", "weights"}`` (``val_mae``:
            each member's masked MAE over the validation split).
    """

    model: nn.Module
    paths: list[Path]
    payloads: list[dict[str, Any]]
    feature_teacher: Path
    record: dict[str, Any] | None = None

    @property
    def feature_payload(self) -> dict[str, Any]:
        return self.payloads[self.paths.index(self.feature_teacher)]


def check_same_data(paths: Sequence[Path], payloads: Sequence[dict[str, Any]]) -> None:
    """Raise a DataError naming both files when two teachers were trained on different data."""
    first, ref = paths[0], payloads[0]
    for path, payload in zip(paths[1:], payloads[1:]):
        differ = [k for k in DATA_KEYS if ref["data"].get(k) != payload["data"].get(k)]
        if differ:
            k = differ[0]
            raise DataError(f"teachers {first} and {path} were trained on different data: {differ} differ "
                            f"({k}: {_short(ref['data'].get(k))} vs {_short(payload['data'].get(k))}); an ensemble "
                            "needs one dataset, split, window lengths and input features")
        a, b = ref["scaler"], payload["scaler"]
        if not all(math.isclose(a[s], b[s], rel_tol=1e-4, abs_tol=1e-6) for s in ("mean", "std")):
            raise DataError(f"teachers {first} and {path} scale their inputs differently (mean, std "
                            f"{a['mean']:.4g}, {a['std']:.4g} vs {b['mean']:.4g}, {b['std']:.4g}): they were "
                            "trained on different training slices")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validation_errors(models: Sequence[nn.Module], split: Any, scaler: Any, *, device: torch.device | str = "cpu",
                      batch_size: int = 64) -> Tensor:
    """Each model's masked MAE (raw units) on every window of ``split``, per horizon step and sensor.

    The sums are :class:`~stgkd.metrics.MetricAccumulator`'s with the horizon and sensor axes
    flattened into one, so ``e[k, h, n] = Σ_s m·|ŷ_k - y| / Σ_s m`` over the windows ``s`` (``nan``
    where sensor ``n`` has no observed reading at step ``h``).

    Shapes:
        returns ``(K, H, N)`` float64.
    """
    return _validation_scores(models, split, scaler, device=device, batch_size=batch_size)[0]


@torch.no_grad()
def _validation_scores(models: Sequence[nn.Module], split: Any, scaler: Any, *, device: torch.device | str,
                       batch_size: int) -> tuple[Tensor, list[float]]:
    """``(errors (K, H, N), each model's masked MAE over every reading of the split)``."""
    errors, pooled = [], []
    for model in models:
        fc = predict_split(model, split, scaler, batch_size=batch_size, device=device)
        s, h, n = fc.pred.shape
        acc = MetricAccumulator(h * n)
        acc.update(torch.from_numpy(fc.pred).reshape(s, h * n), torch.from_numpy(fc.true).reshape(s, h * n),
                   torch.from_numpy(fc.mask).reshape(s, h * n))
        errors.append(torch.tensor([m["mae"] for m in acc.per_step()], dtype=torch.float64).reshape(h, n))
        pooled.append(acc.metrics()["mae"])
    return torch.stack(errors), pooled


def load_teachers(
    paths: str | Path | Sequence[str | Path],
    *,
    prepared: Any = None,
    combine: str = "mean",
    feature_teacher: str | Path | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
) -> Teachers:
    """The frozen teacher(s) of a distillation run.

    Args:
        paths: one checkpoint, or several (an ensemble).
        prepared: the data the teachers were trained on (its validation split weights an ensemble);
            needed for several teachers.
        combine: a :data:`~stgkd.distill.ensemble.TEACHER_COMBINES` name (default: ``"mean"``).
        feature_teacher: the checkpoint, one of ``paths``, whose features, relations and adaptive
            adjacency the loss reads (default: the first).
        device: where the teachers run.
        batch_size: windows per forward when computing validation errors.

    Raises:
        ConfigError: no path, a path given twice, ``feature_teacher`` not among ``paths``, an unknown
            ``combine``. DataError: two teachers trained on different data.
        CheckpointError: a checkpoint cannot be read or rebuilt.
    """
    from stgkd.distill.ensemble import TEACHER_COMBINES, TeacherEnsemble, weights_summary

    given = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not given:
        raise ConfigError("--teacher: no teacher checkpoint given")
    resolved = [Path(p).resolve() for p in given]
    if len(set(resolved)) != len(resolved):
        raise ConfigError(f"--teacher: a checkpoint is given twice ({[str(p) for p in given]})")
    chosen = resolved[0] if feature_teacher is None else Path(feature_teacher).resolve()
    if chosen not in resolved:
        raise ConfigError(f"--feature-teacher {feature_teacher}: not one of the teachers ({[str(p) for p in given]})")
    weigh = TEACHER_COMBINES.get(combine)
    payloads = [load_checkpoint(p) for p in resolved]
    for path, payload in zip(resolved, payloads):
        if payload.get("role") == "student":  # allowed (a student can teach), but rarely what was meant
            warnings.warn(f"--teacher {path}: a student's checkpoint ({payload['model'].get('name')}), distilled "
                          "from as the teacher", UserWarning, stacklevel=2)
    check_same_data(resolved, payloads)
    models = []
    for path, payload in zip(resolved, payloads):
        model = model_from_checkpoint(payload, device=device, where=str(path))
        for p in model.parameters():
            p.requires_grad_(False)
        models.append(model)
    if len(models) == 1:
        return Teachers(models[0], resolved, payloads, chosen)
    if prepared is None:
        raise ConfigError("load_teachers: several teachers need the prepared data to weigh them")
    errors, pooled = _validation_scores(models, prepared.val, prepared.scaler, device=device, batch_size=batch_size)
    names = [str(p) for p in resolved]
    ensemble = TeacherEnsemble(models, weigh(errors).to(device), feature_teacher=resolved.index(chosen), names=names)
    record = {"members": names, "combine": combine, "feature_teacher": str(chosen),
              "val_mae": [round(v, 5) for v in pooled], "weights": weights_summary(ensemble.weights, names)}
    return Teachers(ensemble, resolved, payloads, chosen, record)


@dataclass
class EnsembleScore:
    """Test (or validation) masked metrics of an ensemble and of each of its members.

    Attributes:
        split: the split scored.
        members: per member name, ``{"15min": {...}, ..., "avg": {...}}`` (MAE, RMSE, MAPE).
        ensemble: the same for the ensemble.
        per_step_mae: MAE at every horizon step, ``{"ensemble": [...], name: [...]}``.
        val_mae: each member's masked MAE over the validation split (the ensemble's record), where known:
            the best member is then chosen on it, as a user would choose one model, not on the split scored.
    """

    split: str
    members: dict[str, dict[str, Any]]
    ensemble: dict[str, Any]
    per_step_mae: dict[str, list[float]] = field(default_factory=dict)
    val_mae: dict[str, float] = field(default_factory=dict)

    def best_member(self, key: str = "avg") -> str:
        """The member with the lowest validation MAE where :attr:`val_mae` is known, else the lowest MAE at
        ``key`` (``"avg"``, ``"60min"``, ...) on the split scored."""
        if self.val_mae:
            return min(self.members, key=lambda name: self.val_mae[name])
        return min(self.members, key=lambda name: self.members[name][key]["mae"])

    def gain(self, key: str = "avg") -> float:
        """Best member's MAE minus the ensemble's at ``key`` (positive: the ensemble is better)."""
        return self.members[self.best_member(key)][key]["mae"] - self.ensemble[key]["mae"]

    def to_dict(self) -> dict[str, Any]:
        keys = [k for k in self.ensemble if k != "per_step"]
        return {"split": self.split, "members": self.members, "ensemble": self.ensemble,
                "per_step_mae": self.per_step_mae,
                "best_member": {k: self.best_member(k) for k in keys},
                "best_member_chosen_on": "val" if self.val_mae else self.split,
                "val_mae": self.val_mae, "gain_over_best": {k: self.gain(k) for k in keys}}


def score_ensemble(ensemble: nn.Module, prepared: Any, *, split: str = "test", device: torch.device | str = "cpu",
                   batch_size: int = 64, val_mae: Sequence[float] | None = None) -> EnsembleScore:
    """Masked MAE/RMSE/MAPE at 15/30/60 minutes, over the horizon and at every step, of a
    :class:`~stgkd.distill.TeacherEnsemble` and of each member on ``split`` (raw units, dataset level);
    ``val_mae`` (each member's validation MAE, in member order: :func:`load_teachers`' record) chooses the
    best member on validation."""
    windows = prepared.get_split(split)
    interval = int(prepared.data.interval_minutes)

    def score(model: nn.Module) -> tuple[dict[str, Any], list[float]]:
        metrics = evaluate_split(model, windows, prepared.scaler, batch_size=batch_size, device=device,
                                 interval_minutes=interval)
        return {k: v for k, v in metrics.items() if k != "per_step"}, [m["mae"] for m in metrics["per_step"]]

    members: dict[str, dict[str, Any]] = {}
    per_step: dict[str, list[float]] = {}
    for name, member in zip(ensemble.names, ensemble.members):
        members[name], per_step[name] = score(member)
    combined, per_step["ensemble"] = score(ensemble)
    val = dict(zip(ensemble.names, (float(v) for v in val_mae))) if val_mae is not None else {}
    return EnsembleScore(split, members, combined, per_step, val)
