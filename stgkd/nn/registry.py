"""Models by name: ``build("graph-wavenet", num_nodes=207, graph=adj)``, or ``build_for(name, prepared)``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from torch import Tensor

from stgkd.nn.base import ForecastModel
from stgkd.registry import Registry

MODELS: Registry[type[ForecastModel]] = Registry("model")

#: the student every front end trains by default (``stgkd distill``, ``stgkd demo``, the tuner's first trial, the
#: benchmarks): the most accurate light model on the METR-LA week
DEFAULT_STUDENT = "stgru"
#: the teacher every front end trains by default (``stgkd train``, ``stgkd demo``)
DEFAULT_TEACHER = "graph-wavenet"


def register_model(name: str) -> Callable[[type[ForecastModel]], type[ForecastModel]]:
    """Class decorator: register a :class:`ForecastModel` subclass under ``name``."""

    def wrap(cls: type[ForecastModel]) -> type[ForecastModel]:
        cls.registry_name = name
        MODELS.register(name, cls)
        return cls

    return wrap


def model_names(role: str | None = None) -> list[str]:
    """Registered model names, sorted; with ``role`` (``"teacher"``, ``"student"`` or ``"baseline"``) only those of
    that role, so a newly registered student family joins every loop over students."""
    return [n for n in MODELS.names() if role is None or getattr(MODELS.get(n), "role", None) == role]


def build(
    name: str,
    *,
    num_nodes: int,
    graph: Tensor | np.ndarray | None = None,
    in_steps: int = 12,
    out_steps: int = 12,
    in_channels: int = 2,
    **hparams: Any,
) -> ForecastModel:
    """Build a registered model. Unknown hyperparameters raise a ``TypeError`` (never dropped)."""
    cls = MODELS.get(name)
    return cls(
        num_nodes=num_nodes,
        graph=graph,
        in_steps=in_steps,
        out_steps=out_steps,
        in_channels=in_channels,
        **hparams,
    )


def build_for(name: str, prepared: Any, **hparams: Any) -> ForecastModel:
    """Build a registered model for prepared data (a :class:`~stgkd.data.windows.PreparedData`, or
    anything with its ``num_nodes``, ``adj``, ``in_steps``, ``out_steps`` and ``in_channels``): its
    sensors, graph, window lengths and input channels, and what the family reads from the data's input
    features (:meth:`~stgkd.nn.base.ForecastModel.hparams_for_features`, e.g. which channel holds the day of
    week), which ``hparams`` override. Unknown hyperparameters raise a ``TypeError``."""
    features = getattr(prepared, "input_features", None)
    from_data = MODELS.get(name).hparams_for_features(list(features)) if features is not None else {}
    return build(name, num_nodes=prepared.num_nodes, graph=prepared.adj, in_steps=prepared.in_steps,
                 out_steps=prepared.out_steps, in_channels=prepared.in_channels, **{**from_data, **hparams})


def from_config(config: dict[str, Any], graph: Tensor | np.ndarray | None = None) -> ForecastModel:
    """Rebuild a model from :meth:`ForecastModel.config` and its graph."""
    return build(
        config["name"],
        num_nodes=config["num_nodes"],
        graph=graph,
        in_steps=config["in_steps"],
        out_steps=config["out_steps"],
        in_channels=config["in_channels"],
        **config.get("hparams", {}),
    )
