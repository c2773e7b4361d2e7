"""Training steps: one batch in, ``(loss, raw forecasts, logged parts)`` out.

:class:`SupervisedStep` trains on the truth (masked MAE in raw units); :class:`DistillStep` trains a
student under a :class:`~stgkd.distill.DistillationObjective`, reading the teacher's outputs from a
:class:`~stgkd.distill.TeacherCache`; :func:`make_distill_step` assembles the right one from
distillation settings. :class:`~stgkd.engine.trainer.Trainer` calls whichever step it is given;
checkpoints keep what a step adds (``checkpoint_extras``: a distillation step's adapters).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stgkd.engine.distributed import DistContext, all_reduce_sum
from stgkd.errors import ConfigError
from stgkd.metrics import LOSSES, masked_loss
from stgkd.precision import training_autocast

__all__ = ["SupervisedStep", "DistillStep", "make_distill_step"]


class SupervisedStep(nn.Module):
    """Plain training: masked MAE (or another pointwise loss of :data:`stgkd.metrics.LOSSES`) in raw
    units between ``scaler.inverse_transform(model(x))`` and ``y``.

    Under several processes the loss is ``sum l(err) / (global observed count) * world_size``, so
    DDP's gradient averaging yields exactly the gradient one process would compute on the union of
    the ranks' batches (plain per-rank means would weight ranks with more missing readings too high).
    """

    def __init__(self, model: nn.Module, scaler, *, ctx: DistContext | None = None, amp: bool = True,
                 loss: str = "mae") -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"loss {loss!r}: expected one of {', '.join(LOSSES)}")
        self.model = model
        self.scaler = scaler
        self.ctx = ctx or DistContext()
        self.amp = amp
        self.loss = loss

    def forward(self, x: Tensor, y: Tensor, mask: Tensor, index: Tensor):
        """Shapes:
            x: ``(B, T, N, C)``; y, mask: ``(B, H, N)``; index: ``(B,)``.
            Returns ``(loss scalar, pred_raw (B, H, N), parts {name: scalar})``.
        """
        with training_autocast(x.device, self.amp):
            out = self.model(x)
        pred = self.scaler.inverse_transform(out.float())
        if self.ctx.enabled:
            pointwise = LOSSES[self.loss](pred - y)
            err = torch.where(mask, pointwise, torch.zeros((), dtype=pred.dtype, device=pred.device)).sum()
            count = all_reduce_sum(mask.sum().to(torch.float64).reshape(1), self.ctx)[0]
            loss = err / count.clamp(min=1).to(err.dtype) * self.ctx.world_size
        else:
            loss = masked_loss(pred, y, mask, loss=self.loss)
        return loss, pred, {}

    def checkpoint_extras(self) -> dict[str, Any]:
        return {}


class DistillStep(nn.Module):
    """Training step of a student under a :class:`~stgkd.distill.DistillationObjective`.

    The teacher's forecasts (and the features the objective reads) come from a
    :class:`~stgkd.distill.TeacherCache` of the training split, looked up by ``batch.index``; the
    teacher never runs for those windows. With an ``augmenter`` (:class:`~stgkd.distill.Augmenter`)
    each training batch also gets perturbed views of some of its windows, which the cache cannot hold:
    ``teacher`` labels them on the fly (under ``no_grad``), and the loss covers the clean windows and
    the views (each with its own valid target); :attr:`teacher_seconds` and :attr:`teacher_windows` add
    up that cost (the :class:`~stgkd.engine.callbacks.TeacherCost` callback logs them per epoch).
    Without a distillation term (``cache=None``) the views are trained on their targets alone.
    The objective's adapters are trained with the student and saved under the checkpoint's
    ``"adapters"`` entry.
    """

    def __init__(self, model: nn.Module, objective: nn.Module, cache, scaler, *, amp: bool = True,
                 augmenter: Any = None, teacher: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.cache = cache
        self.scaler = scaler
        self.amp = amp
        self.needs_features = bool(objective.config.uses_features)
        self.augmenter = augmenter
        if augmenter is not None and cache is not None and teacher is None:
            raise ConfigError("DistillStep: augmented views need the teacher to label them")
        self._teacher = [teacher]  # a list: the frozen teacher is not a submodule (not trained, not saved)
        self.teacher_seconds = 0.0
        self.teacher_windows = 0

    #: parts of the objective reported per batch (averaged into the epoch's ``train_<name>`` logs)
    LOGGED_PARTS = ("sup", "out", "feat", "rel", "trust_ess", "tau_eff")

    def _outputs(self, x: Tensor, index: Tensor, views: Any = None):
        """Student outputs of ``x`` (and of the views' inputs after it), and the teacher's: looked up
        for ``index``, computed for the views."""
        if views is not None:
            x = torch.cat([x, views.x])
        with training_autocast(x.device, self.amp):
            if self.needs_features:
                out, feats = self.model(x, return_features=True)
            else:
                out, feats = self.model(x), None
        out = out.float()
        if feats is not None:
            feats = {k: v.float() for k, v in feats.items()}
        if self.cache is None:
            return out, feats, None, None
        t_out, t_feats = self.cache.lookup(index)
        if views is not None:
            t_out, t_feats = self._label(views.x, t_out, t_feats)
        return out, feats, t_out, t_feats

    def _label(self, x: Tensor, t_out: Tensor, t_feats: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The cached teacher outputs of the clean windows followed by the teacher's outputs of ``x``."""
        import time

        from stgkd.distill.cache import ADJACENCY_KEY, teacher_outputs

        teacher = self._teacher[0]
        names = [k for k in t_feats if k != ADJACENCY_KEY]
        start = time.perf_counter()
        was_training = teacher.training
        teacher.eval()
        with torch.no_grad():
            labels = teacher_outputs(teacher, x, names, self.objective.config.time_pool)
        teacher.train(was_training)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        self.teacher_seconds += time.perf_counter() - start
        self.teacher_windows += int(x.shape[0])
        feats = {k: (v if k == ADJACENCY_KEY else torch.cat([v, labels[k].float()])) for k, v in t_feats.items()}
        return torch.cat([t_out, labels["forecast"].float()]), feats

    def forward(self, x: Tensor, y: Tensor, mask: Tensor, index: Tensor):
        """Shapes:
            x: ``(B, T, N, C)``; y, mask: ``(B, H, N)``; index: ``(B,)`` positions in the train split.
            Returns ``(loss scalar, pred_raw (B, H, N), parts {"sup", "out", "feat", "rel"}``, plus
            ``"trust_ess"`` and ``"tau_eff"`` while the output term is on``)``; ``pred_raw`` is the
            forecast of the clean windows (the views, in training with an augmenter, count in the loss only).
        """
        from stgkd.data.windows import Batch

        batch = Batch(x, y, mask, index)
        views = self.augmenter(batch) if self.augmenter is not None and self.training else None
        out, feats, t_out, t_feats = self._outputs(x, index, views)
        if views is not None:
            batch = Batch(torch.cat([x, views.x]), torch.cat([y, views.y]), torch.cat([mask, views.mask]),
                          torch.cat([index, views.index]))
        loss, parts = self.objective(out, feats, batch, t_out, t_feats, self.scaler)
        pred = self.scaler.inverse_transform(out[: x.shape[0]])
        return loss, pred, {k: parts[k] for k in self.LOGGED_PARTS if k in parts}

    def loss_terms(self, x: Tensor, y: Tensor, mask: Tensor, index: Tensor) -> dict[str, Tensor]:
        """The weighted terms ``{name: w_k · L_k}`` of a batch at the configured weights (every term
        with a weight above 0, whatever stage a staged run is in), each with its graph, for measuring
        its gradient (:func:`~stgkd.engine.callbacks.measure_gradient_share`)."""
        from stgkd.data.windows import Batch

        weights = self.objective.config.weights
        out, feats, t_out, t_feats = self._outputs(x, index)
        terms, _ = self.objective.terms(out, feats, Batch(x, y, mask, index), t_out, t_feats, self.scaler,
                                        weights=weights)
        return {k: weights[k] * v for k, v in terms.items() if weights[k] > 0}

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"adapters": {k: v.detach().cpu() for k, v in self.objective.adapters.state_dict().items()}}

    def load_checkpoint_extras(self, payload: dict[str, Any]) -> None:
        if "adapters" in payload:
            self.objective.adapters.load_state_dict(payload["adapters"])


def make_distill_step(
    student: nn.Module,
    teacher: nn.Module,
    prepared: Any,
    dcfg: Any,
    *,
    device: torch.device | str,
    amp: bool = True,
    ctx: DistContext | None = None,
    cache: Any = None,
    cache_dtype: torch.dtype = torch.float16,
    cache_batch_size: int = 64,
    split: Any = None,
    first_window: int = 0,
) -> tuple[nn.Module, Any]:
    """The training step of ``student`` under the distillation settings ``dcfg``, and the resolved settings.

    With ``dcfg.inherit_adjacency`` the student's adaptive adjacency is first copied from the teacher.
    With every distillation weight at 0 it is the plain :class:`SupervisedStep` (raw-unit masked MAE,
    no teacher output read). Otherwise the feature pairs are resolved against the two models, the
    adapters built, and a :class:`DistillStep` reads the teacher's outputs from ``cache``: a
    :class:`~stgkd.distill.TeacherCache` of the training windows, a function returning one (called only
    when needed, so a search builds it once and only for trials that distill), or ``None`` to build it
    here from ``teacher``. The training windows are ``prepared.train`` unless ``split`` names others
    (a benchmark that steps over the validation windows).

    With ``dcfg.augment`` the step also trains on teacher-labelled perturbed views of its batches
    (:mod:`stgkd.distill.augment`; ``teacher`` labels them on the fly); ``shift`` moves windows within
    the split's windows ``first_window ..`` (a run on its most recent windows passes the first of those).
    With ``dcfg.augment`` and every distillation weight at 0, the views are trained on their targets
    alone and the teacher is never run (augmentation without distillation, the control).
    """
    from stgkd.distill import DistillationObjective, TeacherCache, inherit_adjacency

    if dcfg.inherit_adjacency:  # before a resumed run's weights are restored, so those win
        inherit_adjacency(student, teacher)
    distills = dcfg.distills
    if not distills and not dcfg.augment:
        return SupervisedStep(student, prepared.scaler, ctx=ctx, amp=amp), dcfg
    split = prepared.train if split is None else split
    sample_x = split.batch(torch.arange(min(2, len(split)))).x.to(device)
    was_training = student.training
    student.eval()  # probing feature shapes must not draw dropout masks from the RNG
    objective = DistillationObjective.from_models(dcfg, student, teacher, sample_x=sample_x)
    student.train(was_training)
    objective = objective.to(device)
    augmenter = None
    if dcfg.augment:
        from stgkd.distill.augment import Augmenter, parse_augment

        augmenter = Augmenter(parse_augment(dcfg.augment), dcfg.augment_fraction, split=split, first=first_window)
    if not distills:
        return (DistillStep(student, objective, None, prepared.scaler, amp=amp, augmenter=augmenter),
                objective.resolved_config())
    if cache is None:
        cache = TeacherCache.build(teacher, split, objective.teacher_feature_names, device,
                                   dtype=cache_dtype, batch_size=cache_batch_size, time_pool=dcfg.time_pool)
    elif not isinstance(cache, TeacherCache):
        cache = cache()
    if len(cache) != len(split):
        raise ConfigError(f"the teacher cache holds {len(cache)} windows, the training split {len(split)}: "
                          "it was built over other data")
    missing = [n for n in objective.teacher_feature_names if n not in cache.feature_names]
    if missing:
        raise ConfigError(f"the teacher cache lacks features {missing} (it holds {cache.feature_names})")
    return (DistillStep(student, objective, cache, prepared.scaler, amp=amp, augmenter=augmenter, teacher=teacher),
            objective.resolved_config())
