"""The baselines a forecast is scored beside, and the one comparison of a model with them.

:func:`score_baselines` fits every baseline of :mod:`stgkd.nn.baselines` that the data allows on the
training slice of a :class:`~stgkd.data.windows.PreparedData` and scores it on a split with the metrics
the models get (:func:`~stgkd.engine.evaluate.evaluate_split`), on **the same forecast targets** as the
models: each window of the split keeps its targets, and a baseline's input ends where the model's does
but reaches as far back as the baseline needs (one step for the last value, a season for a seasonal
naive), read from the same series. The candidates follow the data's interval:

* last value;
* the zero forecast, where the readings are counts (most of them ``0``);
* seasonal naive, the same time one day and one week earlier;
* historical average and historical median per sensor by time of day, and by time of day and day of week
  when the training slice spans two weeks or more.

**The best baseline** at each horizon is chosen as a model is: the lowest MAE at that horizon on the
validation split. Its figure on the scored split is the one a model must beat there.

A baseline the data cannot support (a season longer than the history before the split's first window,
a training slice shorter than a day, an interval that does not divide a day) is left out with the reason
(:attr:`BaselineScores.left_out`), never scored as ``NaN``.

:func:`compare_with_baselines` is the comparison, a pure function: the horizons where a model's MAE is
above the best baseline's. :func:`report_baselines` prints the table, the best baseline and
one ``warning:`` line per horizon the model loses. Every scoring command (``stgkd evaluate``,
``train --test``, ``distill --test``, ``stgkd demo``) and the benchmark tables go through these three.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, TextIO

import numpy as np
import torch

from stgkd.errors import StgkdError
from stgkd.metrics import DEFAULT_STEPS
from stgkd.nn.baselines import season_label

__all__ = [
    "BaselineScore",
    "BaselineScores",
    "Shortfall",
    "baseline_candidates",
    "baseline_notes",
    "best_baselines",
    "compare_with_baselines",
    "format_baselines",
    "print_shortfalls",
    "report_baselines",
    "score_baselines",
]

#: days of training data from which the historical profiles are kept per day of week
WEEKLY_PROFILE_DAYS = 14
#: floats of one baseline input batch at most (a week-long window at 207 sensors is 417 k)
_BATCH_FLOATS = 2**24


@dataclass
class BaselineScore:
    """One baseline on one split.

    Attributes:
        name: the registered model (``"seasonal-naive"``).
        label: how tables name it (``"seasonal naive (1 day)"``).
        hparams: its hyperparameters (``{"season_steps": 288}``).
        in_steps: the input steps it reads before each forecast.
        metrics: ``{"15min": {"mae", "rmse", "mape"}, ..., "avg": {...}}``; ``None`` when left out.
        note: why it was left out (``None`` when scored).
        val_maes: its MAE per horizon key on the split the best baselines are chosen on (``None`` when
            it was not scored there).
    """

    name: str
    label: str
    hparams: dict[str, Any]
    in_steps: int
    metrics: dict[str, Any] | None = None
    note: str | None = None
    val_maes: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.name, "label": self.label, "hparams": dict(self.hparams),
                               "in_steps": self.in_steps}
        if self.metrics is not None:
            out["metrics"] = self.metrics
        if self.note is not None:
            out["left_out"] = self.note
        if self.val_maes is not None:
            out["val_maes"] = dict(self.val_maes)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BaselineScore":
        """The inverse of :meth:`to_dict`."""
        return cls(str(d["model"]), str(d["label"]), dict(d.get("hparams") or {}), int(d.get("in_steps", 1)),
                   metrics=d.get("metrics"), note=d.get("left_out"),
                   val_maes=None if d.get("val_maes") is None else {k: float(v) for k, v in d["val_maes"].items()})


@dataclass
class BaselineScores:
    """What :func:`score_baselines` returns: the baselines scored on a split and those left out.

    ``chosen`` names the best baseline per horizon key (``{"15min": "last value", "60min": "historical
    median", "avg": ...}``), the one with the lowest MAE at that horizon on the split ``chosen_on``
    (validation); ``None`` in scores written before the choice was recorded.
    """

    dataset: str
    split: str
    windows: int
    interval_minutes: int
    out_steps: int
    scored: list[BaselineScore] = field(default_factory=list)
    left_out: list[BaselineScore] = field(default_factory=list)
    chosen: dict[str, str] | None = None
    chosen_on: str | None = None

    def best(self) -> dict[str, tuple[str, float]]:
        """:func:`best_baselines` of these scores."""
        return best_baselines(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "windows": self.windows,
            "interval_minutes": self.interval_minutes,
            "out_steps": self.out_steps,
            "scored": [s.to_dict() for s in self.scored],
            "left_out": [s.to_dict() for s in self.left_out],
            "chosen": None if self.chosen is None else dict(self.chosen),
            "chosen_on": self.chosen_on,
            "best": {h: {"baseline": label, "mae": mae} for h, (label, mae) in self.best().items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BaselineScores":
        """The inverse of :meth:`to_dict`, for the ``baselines`` block of a ``metrics.json`` or a benchmark
        record (``"best"`` is recomputed from the scores). A block written before the interval and the
        horizon were recorded reads as 0 minutes and 12 steps (the DCRNN protocol's); both only word
        :class:`Shortfall` messages."""
        return cls(dataset=str(d.get("dataset", "")), split=str(d.get("split", "")), windows=int(d.get("windows", 0)),
                   interval_minutes=int(d.get("interval_minutes") or 0), out_steps=int(d.get("out_steps") or 12),
                   scored=[BaselineScore.from_dict(s) for s in d.get("scored", [])],
                   left_out=[BaselineScore.from_dict(s) for s in d.get("left_out", [])],
                   chosen=None if d.get("chosen") is None else dict(d["chosen"]), chosen_on=d.get("chosen_on"))


@dataclass(frozen=True)
class Shortfall:
    """A horizon where a model's MAE is above the best baseline's."""

    model: str
    horizon: str
    baseline: str
    model_mae: float
    baseline_mae: float
    out_steps: int = 12

    def message(self) -> str:
        """``dcgru is worse than seasonal naive (1 day) at 60 min: 5.34 vs 5.12``."""
        a, b = _two(self.model_mae, self.baseline_mae)
        return f"{self.model} is worse than {self.baseline} {_horizon_text(self.horizon, self.out_steps)}: {a} vs {b}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "horizon": self.horizon, "baseline": self.baseline,
                "model_mae": self.model_mae, "baseline_mae": self.baseline_mae}


def _two(a: float, b: float) -> tuple[str, str]:
    """Two MAEs with two decimals, more where two decimals would show them equal."""
    for digits in (2, 3, 4, 6):
        sa, sb = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if sa != sb:
            break
    return sa, sb


def _horizon_text(key: str, out_steps: int) -> str:
    if key == "avg":
        return f"on average over the {out_steps} steps"
    lead = key.rstrip("abcdefghijklmnopqrstuvwxyz")  # a horizon name (stgkd.metrics.horizon_name): "60min", "3h"
    return f"at {lead} {key[len(lead):]}" if lead.isdigit() and len(lead) < len(key) else f"at {key}"


def baseline_candidates(prepared: Any) -> list[BaselineScore]:
    """The baselines :func:`score_baselines` tries on ``prepared``, unscored; one the data rules out
    (an interval that does not divide a day, a training slice too short for a weekly profile) carries the
    reason in ``note``.

    Seasons and slots follow the data's interval (a day is ``1440 / interval`` steps). The historical
    average and median come per sensor by time of day, and by time of day and day of week; the zero
    forecast joins them where the readings are counts (:attr:`TrafficData.is_count_series
    <stgkd.data.TrafficData.is_count_series>`).
    """
    interval = int(prepared.data.interval_minutes)
    out = [BaselineScore("last-value", "last value", {}, 1)]
    if prepared.data.is_count_series:
        out.append(BaselineScore("zero", "zero", {}, 1))
    profiles = [(name, weekly) for weekly in (False, True) for name in ("historical-average", "historical-median")]

    def profile_label(name: str, weekly: bool) -> str:
        return name.replace("-", " ") + (" (day of week)" if weekly else "")

    if interval < 1 or 1440 % interval:
        note = f"an interval of {interval} min does not divide a day"
        for name, label in (("seasonal-naive", "seasonal naive (1 day)"), ("seasonal-naive", "seasonal naive (1 week)")):
            out.append(BaselineScore(name, label, {}, 1, note=note))
        out += [BaselineScore(name, profile_label(name, weekly), {}, 1, note=note) for name, weekly in profiles]
        return out
    day = 1440 // interval
    for season in (day, 7 * day):
        label = f"seasonal naive ({season_label(season, interval)})"
        out.append(BaselineScore("seasonal-naive", label, {"season_steps": season}, season))
    for name, weekly in profiles:
        hparams = {"slots_per_day": day, "weekly": weekly, "time_channel": 1, "day_channel": 2}
        score = BaselineScore(name, profile_label(name, weekly), hparams, 1)
        if weekly and prepared.train_end < WEEKLY_PROFILE_DAYS * day:
            score.note = (f"a profile per day of week needs {WEEKLY_PROFILE_DAYS} days of training data, the "
                          f"training split holds {prepared.train_end / day:.1f}")
        out.append(score)
    return out


def _baseline_split(prepared: Any, split: Any, in_steps: int, features: torch.Tensor | None):
    """The windows of ``split`` with the same targets and an input of ``in_steps`` steps ending where the
    model's does: the reading channel only, then ``features`` (time of day, day of week)."""
    from stgkd.data.windows import WindowSplit

    starts = split.starts + (split.in_steps - in_steps)
    return WindowSplit(split.name, split.inputs[..., :1], split.targets, starts, in_steps, split.out_steps, features)


@torch.no_grad()
def score_baselines(
    prepared: Any,
    split: str = "test",
    *,
    names: Sequence[str] | None = None,
    steps: Sequence[int] = DEFAULT_STEPS,
    batch_size: int | None = None,
) -> BaselineScores:
    """Fit the baselines on ``prepared``'s training slice, choose the best on validation, and score them
    on ``split``.

    The benchmark tables and every scoring command call this: the figures are those of
    :func:`~stgkd.engine.evaluate.evaluate_split` (dataset-level masked MAE/RMSE/MAPE at ``steps`` and over
    the horizon) on the forecast targets of ``split``'s windows, the ones a model on ``prepared`` is
    scored on. **The best baseline** at each horizon (:attr:`BaselineScores.chosen`) is the one with the
    lowest MAE at that horizon on the validation split, the way a model is chosen; its figure on
    ``split`` is the one a model must beat there. Where the validation split has no window the choice is
    made on ``split`` itself (:attr:`BaselineScores.chosen_on` says which).

    Args:
        prepared: a :class:`~stgkd.data.windows.PreparedData`.
        split: ``"train"``, ``"val"`` or ``"test"`` (default: ``"test"``).
        names: registered baselines to try (default: all of :func:`baseline_candidates`).
        steps: horizon steps to report (default: ``(3, 6, 12)``).
        batch_size: windows per forward (default: as many as fit in about 64 MB of input).

    Returns:
        :class:`BaselineScores`; a baseline the data cannot support is in ``left_out`` with the reason.
    """
    from stgkd.data.windows import time_features
    from stgkd.nn.registry import MODELS

    data = prepared.data
    interval = int(data.interval_minutes)
    times = time_features(data, time_of_day=True, day_of_week=True)
    features = torch.from_numpy(np.stack([times["time_of_day"], times["day_of_week"]], axis=1)).to(prepared.device)
    windows = prepared.get_split(split)
    result = BaselineScores(dataset=str(data.name), split=split, windows=len(windows), interval_minutes=interval,
                            out_steps=prepared.out_steps)
    candidates = baseline_candidates(prepared)
    if names is not None:
        wanted = {MODELS.get(n).registry_name for n in names}
        candidates = [c for c in candidates if c.name in wanted]
    choose_on = "val" if split != "val" and len(prepared.get_split("val")) else split
    for score in candidates:
        if score.note is not None:
            result.left_out.append(score)
            continue
        try:
            model = _fitted(prepared, score, windows, split)
        except StgkdError as exc:
            score.note = str(exc)
            result.left_out.append(score)
            continue
        score.label = model.label(interval)
        score.metrics = _scored(model, prepared, windows, score.in_steps, features, steps, batch_size)
        on_val = score.metrics
        if choose_on != split:
            val = prepared.get_split(choose_on)
            ok = _history(val) >= score.in_steps
            on_val = _scored(model, prepared, val, score.in_steps, features, steps, batch_size) if ok else None
        if on_val is not None:
            score.val_maes = {k: float(m["mae"]) for k, m in on_val.items() if np.isfinite(m["mae"])}
        result.scored.append(score)
    chosen: dict[str, str] = {}
    for key in result.scored[0].metrics if result.scored else ():
        ranked = [s for s in result.scored if s.val_maes and key in s.val_maes and key in s.metrics]
        if ranked:
            chosen[key] = min(ranked, key=lambda s: s.val_maes[key]).label  # the first listed on a tie
    if chosen:
        result.chosen, result.chosen_on = chosen, choose_on
    return result


def _history(windows: Any) -> int:
    """Steps of the series up to the first forecast of ``windows`` (0 without a window)."""
    return int(windows.starts[0]) + windows.in_steps if len(windows) else 0


def _fitted(prepared: Any, score: BaselineScore, windows: Any, split: str):
    """The baseline of ``score`` built and fitted on ``prepared``; a :class:`StgkdError` saying what is short."""
    from stgkd.nn.registry import build

    data = prepared.data
    in_steps = score.in_steps
    model = build(score.name, num_nodes=data.num_nodes, in_steps=in_steps, out_steps=prepared.out_steps,
                  in_channels=3, **score.hparams).to(prepared.device)
    history = _history(windows)
    if history < in_steps:
        interval = int(data.interval_minutes)
        raise StgkdError(
            f"needs {in_steps} steps of history up to each forecast, and the first window of the {split} "
            f"split has {history} ({history * interval / 1440:.1f} of the {in_steps * interval / 1440:.1f} days)"
        )
    return model.fit(prepared)


def _scored(model: Any, prepared: Any, windows: Any, in_steps: int, features: torch.Tensor, steps: Sequence[int],
            batch_size: int | None) -> dict[str, Any]:
    """:func:`~stgkd.engine.evaluate.evaluate_split` of a fitted baseline on ``windows``' targets."""
    from stgkd.engine.evaluate import evaluate_split

    view = _baseline_split(prepared, windows, in_steps, features)
    per_batch = batch_size or max(1, _BATCH_FLOATS // (in_steps * prepared.data.num_nodes * 3))
    metrics = evaluate_split(model, view, prepared.scaler, batch_size=per_batch, device=prepared.device,
                             steps=tuple(steps), interval_minutes=int(prepared.data.interval_minutes))
    metrics.pop("per_step", None)
    return metrics


def best_baselines(scores: BaselineScores) -> dict[str, tuple[str, float]]:
    """Per horizon key (``"15min"``, ..., ``"avg"``): the label and MAE of the best baseline there.

    The best baseline at a horizon is the one chosen there on validation (:attr:`BaselineScores.chosen`).
    Scores written before that choice was recorded take the scored baseline with the lowest MAE on the
    scored split itself (the first listed on a tie). Horizons without a finite MAE are absent.
    """
    if scores.chosen:
        by_label = {s.label: s.metrics or {} for s in scores.scored}
        picked = {key: (label, by_label.get(label, {}).get(key, {}).get("mae")) for key, label in scores.chosen.items()}
        return {key: (label, float(mae)) for key, (label, mae) in picked.items() if mae is not None and np.isfinite(mae)}
    best: dict[str, tuple[str, float]] = {}
    for score in scores.scored:
        for key, m in (score.metrics or {}).items():
            mae = m.get("mae") if isinstance(m, dict) else None
            if mae is None or not np.isfinite(mae):
                continue
            if key not in best or mae < best[key][1]:
                best[key] = (score.label, float(mae))
    return best


def compare_with_baselines(model: str, metrics: Mapping[str, Any], scores: BaselineScores) -> list[Shortfall]:
    """The horizons where ``model``'s MAE is above the best baseline's, in ``metrics``' order.

    Args:
        model: how to name the model in the message (``"dcgru"``).
        metrics: its ``{"15min": {"mae": ...}, ..., "avg": {...}}`` on the split ``scores`` were taken on.
        scores: from :func:`score_baselines`.
    """
    best = best_baselines(scores)
    out = []
    for key, m in metrics.items():
        if key not in best or not isinstance(m, Mapping) or "mae" not in m:
            continue
        label, mae = best[key]
        if float(m["mae"]) > mae:
            out.append(Shortfall(model, key, label, float(m["mae"]), mae, scores.out_steps))
    return out


def format_baselines(scores: BaselineScores) -> str:
    """The baselines' MAE per horizon, the best per horizon, and those left out with the reason."""
    keys: list[str] = []
    for s in scores.scored:
        keys += [k for k in (s.metrics or {}) if k not in keys]
    width = max([len(s.label) for s in scores.scored] + [len("best baseline")])
    lines = [f"baselines, {scores.split} split, the same forecast targets (MAE):",
             f"{'baseline':<{width}}  " + "  ".join(f"{k:>8}" for k in keys)]
    for s in scores.scored:
        lines.append(f"{s.label:<{width}}  " + "  ".join(f"{s.metrics[k]['mae']:8.4f}" if k in s.metrics else f"{'-':>8}"
                                                         for k in keys))
    return "\n".join(lines + baseline_notes(scores))


def baseline_notes(scores: BaselineScores) -> list[str]:
    """The lines under a table of baselines: the best per horizon, then each baseline left out and why."""
    best = scores.best()
    if not best:
        lines = []
    else:
        how = f" (chosen per horizon on the {scores.chosen_on} split)" if scores.chosen else ""
        lines = [f"best baseline{how}: " + "; ".join(f"{k} {label} {mae:.4f}" for k, (label, mae) in best.items())]
    return lines + [f"left out: {s.label}: {s.note}" for s in scores.left_out]


def print_shortfalls(shortfalls: Sequence[Shortfall], file: TextIO | None = None) -> None:
    """One ``warning: MODEL is worse than BASELINE at H: a vs b`` line per shortfall (default: to stderr)."""
    for s in shortfalls:
        print(f"warning: {s.message()}", file=file if file is not None else sys.stderr)


def report_baselines(scores: BaselineScores, models: Mapping[str, Mapping[str, Any]] | None = None, *,
                     out: TextIO | None = None, warn: TextIO | None = None) -> list[Shortfall]:
    """Print :func:`format_baselines` to ``out`` (default: stdout) and, for each model in ``models``
    (name -> metrics), one ``warning: ...`` line per horizon it loses to the best baseline to ``warn``
    (default: stderr); returns the shortfalls."""
    print(format_baselines(scores), file=out if out is not None else sys.stdout)
    shortfalls = [s for name, metrics in (models or {}).items() for s in compare_with_baselines(name, metrics, scores)]
    print_shortfalls(shortfalls, warn)
    return shortfalls
