"""The data a model was trained on, both ways: the description a checkpoint records
(:func:`data_meta`) and the windows rebuilt from it (:func:`prepare_from_meta`).

A checkpoint's ``"data"`` entry names the series (its registered name and the files it was read
from), the split, the window lengths, the input features, the sensors in order, the interval and the
missing-value convention. :func:`prepare_from_meta` finds the series again (or takes the one given),
checks that its sensors and convention are the checkpoint's and prepares the same windows, so
evaluation, distillation, export checks and the tuner all score a model on the data it learned from.
:func:`load_data` is the one way a command turns a name, a path or a :class:`TrafficData` into a series.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from stgkd.data.core import TrafficData
from stgkd.data.features import default_seasons
from stgkd.data.windows import SEASONS, prepare, seasonal_feature_names, seasons_of
from stgkd.errors import ConfigError, DataError
from stgkd.missing import MissingSpec, parse_missing

__all__ = ["TIME_FEATURES", "data_meta", "load_data", "prepare_data", "prepare_from_meta"]

#: input features that are computed from timestamps rather than read from a data channel
TIME_FEATURES = ("time_of_day", "day_of_week")


def load_data(dataset: str | Path | TrafficData, *, data_dir: str | Path | None = None,
              missing: MissingSpec = None) -> TrafficData:
    """A :class:`TrafficData` as is, or a registered name / path through
    :func:`stgkd.data.datasets.load_dataset` with the missing-value convention ``missing`` (default:
    the dataset's).

    Raises:
        ConfigError: ``missing`` differs from the convention a given :class:`TrafficData` was built with.
    """
    if isinstance(dataset, TrafficData):
        if missing is not None and parse_missing(missing).name != dataset.missing:
            raise ConfigError(
                f"{dataset.name}: loaded with missing={dataset.missing!r}, not {parse_missing(missing).name!r}; "
                "load it again with the convention you want"
            )
        return dataset
    from stgkd.data.datasets import load_dataset

    return load_dataset(str(dataset), root=data_dir, missing=missing)


def prepare_data(data: TrafficData, *, in_steps: int, out_steps: int, split, input_features: Sequence[str] | None,
                 time_of_day: bool, day_of_week: bool, device: torch.device, seasonal: Sequence[str] = ()):
    """:func:`~stgkd.data.windows.prepare` with the input features named: ``input_features`` (a
    checkpoint's, ``"value"`` first), when given, decides the time features, the seasonal-lag channels
    and the extra channels, and the prepared data must end up with exactly those.

    Raises:
        DataError: the prepared input features differ from ``input_features``.
    """

    channels: list[str] = []
    if input_features is not None:
        time_of_day = "time_of_day" in input_features
        day_of_week = "day_of_week" in input_features
        seasonal = seasons_of(input_features)
        lagged = {f for season in seasonal for f in seasonal_feature_names(season)}
        channels = [f for f in list(input_features)[1:] if f not in TIME_FEATURES and f not in lagged]
    prepared = prepare(data, in_steps=in_steps, out_steps=out_steps, split=split, time_of_day=time_of_day,
                       day_of_week=day_of_week, channels=channels or None, seasonal=seasonal, device=device)
    if input_features is not None and list(prepared.input_features) != list(input_features):
        raise DataError(
            f"{data.name}: input features {prepared.input_features} differ from the checkpoint's {list(input_features)}"
        )
    return prepared


def prepare_from_meta(meta: dict[str, Any], *, dataset: str | Path | TrafficData | None = None,
                      data_dir: str | Path | None = None, device: str | torch.device = "cpu",
                      missing: MissingSpec = None, seasonal: Sequence[str] = (),
                      seasons_by_default: Sequence[str] = ()):
    """Rebuild the windows a checkpoint was trained on from its ``"data"`` entry.

    ``seasonal`` adds the seasonal-lag channels of those seasons (:func:`~stgkd.data.windows.prepare`) after
    the checkpoint's input features, e.g. for a student distilled from a teacher trained without them;
    ``seasons_by_default`` those of its seasons the series allows (:func:`~stgkd.data.features.default_seasons`:
    a student family's defaults).

    The series comes from ``dataset`` when given, else from the checkpoint's dataset name or its
    source path. Its sensors must be the checkpoint's, in the same order. It is read with the
    checkpoint's missing-value convention (``"zero"`` for checkpoints that predate the entry);
    ``missing``, when given, must be that convention.

    Raises:
        DataError: the dataset cannot be found, its sensors differ from the checkpoint's, or it was
            read with another missing-value convention than the checkpoint's.
    """
    convention = parse_missing(meta.get("missing", "zero")).name
    asked = parse_missing(missing).name if missing is not None else convention
    given = dataset.missing if isinstance(dataset, TrafficData) else asked
    if given != convention:
        raise DataError(
            f"the checkpoint was trained with missing={convention!r} "
            f"({parse_missing(convention).describe().split(': ', 1)[1]}); the data was "
            f"{'loaded' if isinstance(dataset, TrafficData) else 'asked for'} with missing={given!r}; "
            f"use --missing {convention} (a model's missing-value convention is part of what it learned)"
        )
    if dataset is not None:
        data = load_data(dataset, data_dir=data_dir, missing=None if isinstance(dataset, TrafficData) else convention)
    else:
        # the files it was read from first (when still there), then its registered name
        candidates = []
        sources = [Path(s) for s in meta.get("source", [])]
        if len(sources) == 1:
            candidates.append(str(sources[0]))
        elif sources:
            candidates.append(os.path.commonpath([str(s.parent) for s in sources]))
        candidates = [c for c in candidates if Path(c).exists()] + [meta.get("name")]
        data, errors = None, []
        for cand in [c for c in candidates if c]:
            try:
                data = load_data(cand, data_dir=data_dir, missing=convention)
                if [str(s) for s in data.sensor_ids] == list(meta["sensor_ids"]):
                    break
                errors.append(f"{cand}: different sensors")
                data = None
            except (DataError, FileNotFoundError, ConfigError) as exc:
                errors.append(str(exc))
        if data is None:
            raise DataError(
                f"cannot find the checkpoint's dataset {meta.get('name')!r} ({'; '.join(errors)}); pass --dataset"
            )
    if [str(s) for s in data.sensor_ids] != list(meta["sensor_ids"]):
        raise DataError(
            f"{data.name}: its {data.num_nodes} sensors are not the checkpoint's {len(meta['sensor_ids'])} "
            "(in the same order)"
        )
    features = list(meta["input_features"])
    notes: list[str] = []
    by_default = default_seasons(seasons_by_default, data.interval_minutes, data.num_steps, int(meta["in_steps"]),
                                 notes)
    for note in notes:
        print(f"note: {data.name}: {note}", file=sys.stderr)
    wanted = set(seasons_of(features)) | set(seasonal) | set(by_default)
    features = [f for f in features if f not in {g for season in SEASONS for g in seasonal_feature_names(season)}]
    features += [f for season in SEASONS if season in wanted for f in seasonal_feature_names(season)]
    unknown = sorted(wanted - set(SEASONS))
    if unknown:
        raise DataError(f"seasonal: unknown season(s) {unknown}; expected one of {', '.join(SEASONS)}")
    return prepare_data(data, in_steps=int(meta["in_steps"]), out_steps=int(meta["out_steps"]),
                        split=tuple(meta["split"]), input_features=features, time_of_day=True,
                        day_of_week=False, device=torch.device(device))


def data_meta(prepared) -> dict[str, Any]:
    """The ``"data"`` entry of a checkpoint for a :class:`~stgkd.data.PreparedData`."""
    data = prepared.data
    return {
        "name": str(data.name),
        "source": [str(s) for s in data.source],
        "split": [float(s) for s in data.split],
        "in_steps": int(prepared.in_steps),
        "out_steps": int(prepared.out_steps),
        "input_features": [str(f) for f in prepared.input_features],
        "sensor_ids": [str(s) for s in data.sensor_ids],
        "interval_minutes": int(data.interval_minutes),
        "missing": str(data.missing),  # the missing-value convention; absent in older files: "zero"
    }
