"""The interface every teacher and student speaks.

Inputs are ``(B, T_in, N, C)`` (channel 0 is the z-scored target variable, the rest are time
features), forecasts are ``(B, T_out, N)`` in the same z-scored units; the trainer and the exported
:class:`~stgkd.Forecaster` convert to raw units. The static graph is given at construction as a dense
``(N, N)`` weighted adjacency; each model normalises it as its paper does.
"""

from __future__ import annotations

import inspect

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError


#: most sensors a model forms a dense ``(N, N)`` graph operator for (16,384: 1 GiB per float32 matrix, and
#: a dense model holds several and their products); above it, models whose operators are edge lists and
#: low-rank factors (``stgru``) still build
DENSE_SENSOR_LIMIT = 16384


def check_dense_size(num_nodes: int, *, where: str = "model", limit: int | None = None) -> None:
    """Refuse a dense ``(N, N)`` operator for more than ``limit`` (default :data:`DENSE_SENSOR_LIMIT`) sensors.

    Raises:
        ConfigError: naming ``where``, the size of one matrix and the way out.
    """
    limit = DENSE_SENSOR_LIMIT if limit is None else limit
    if num_nodes > limit:
        raise ConfigError(f"{where}: a dense {num_nodes:,} x {num_nodes:,} graph operator "
                          f"({num_nodes * num_nodes * 4 / 2**30:.1f} GiB per float32 matrix) is above the limit of "
                          f"{limit:,} sensors; use a student whose graph operators grow with sensors + edges "
                          "(stgru)")


def as_adjacency(graph: Tensor | np.ndarray | None, num_nodes: int, *, where: str = "model") -> Tensor:
    """Return ``graph`` as a float32 ``(N, N)`` tensor, or the identity when it is ``None``.

    Raises:
        ConfigError: more sensors than :data:`DENSE_SENSOR_LIMIT` (:func:`check_dense_size`).
    """
    check_dense_size(num_nodes, where=where)
    if graph is None:
        return torch.eye(num_nodes)
    adj = torch.as_tensor(np.asarray(graph) if not isinstance(graph, Tensor) else graph).float()
    if adj.shape != (num_nodes, num_nodes):
        raise ValueError(f"graph must be ({num_nodes}, {num_nodes}), got {tuple(adj.shape)}")
    return adj


def day_channel_of(input_features: list[str]) -> dict[str, int | None]:
    """``{"day_channel": the channel of the day of week, or None}``: what a family with a weekday embedding
    reads from the data (:meth:`~stgkd.nn.base.ForecastModel.hparams_for_features`)."""
    return {"day_channel": input_features.index("day_of_week") if "day_of_week" in input_features else None}


class ForecastModel(nn.Module):
    """Base class of every registered model.

    Subclasses set the class attributes below, take their hyperparameters as typed keyword
    arguments, call ``super().__init__(num_nodes=..., in_steps=..., out_steps=..., in_channels=...,
    **hparams)`` so that :meth:`config` can rebuild them, and implement :meth:`forward`.

    Attributes:
        role: ``"teacher"``, ``"student"`` or ``"baseline"`` (fitted, not trained:
            :mod:`stgkd.nn.baselines`).
        feature_names: names of the intermediate representations ``forward(x, return_features=True)``
            returns, each ``(B, N, D)`` or ``(B, T, N, D)``.
        distill_feature: the feature that is the natural match for distillation.
        uses_graph: whether the model reads the graph (graph-free models ignore it).
        default_lr: the AdamW learning rate a run uses when none is given (``TrainConfig.lr=None``,
            ``stgkd train/distill`` without ``--lr``): the one measured to train this family well.
        default_seasons: the seasonal-lag input channels (:data:`stgkd.data.features.SEASONS`) a run adds
            when none are asked for, where the data allows them
            (:func:`stgkd.data.features.default_seasons`).
    """

    role: ClassVar[str] = "student"
    default_lr: ClassVar[float] = 1e-3
    default_seasons: ClassVar[tuple[str, ...]] = ()
    feature_names: ClassVar[tuple[str, ...]] = ()
    distill_feature: ClassVar[str] = ""
    uses_graph: ClassVar[bool] = True
    registry_name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        num_nodes: int,
        in_steps: int = 12,
        out_steps: int = 12,
        in_channels: int = 2,
        **hparams: Any,
    ) -> None:
        super().__init__()
        if num_nodes < 1 or in_steps < 1 or out_steps < 1 or in_channels < 1:
            raise ValueError(
                f"num_nodes, in_steps, out_steps and in_channels must be positive, got "
                f"{num_nodes}, {in_steps}, {out_steps}, {in_channels}"
            )
        self.num_nodes = num_nodes
        self.in_steps = in_steps
        self.out_steps = out_steps
        self.in_channels = in_channels
        self._hparams = dict(hparams)

    @classmethod
    def default_hparams(cls, num_nodes: int) -> dict[str, Any]:
        """The hyperparameters a model of this family gets on ``num_nodes`` sensors when none are given:
        its constructor's defaults (a family whose default depends on the network resolves it here)."""
        skip = {"self", "num_nodes", "in_steps", "out_steps", "in_channels", "graph"}
        return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if name not in skip and p.default is not inspect.Parameter.empty
                and p.kind is not inspect.Parameter.VAR_KEYWORD}

    @classmethod
    def hparams_for_features(cls, input_features: list[str]) -> dict[str, Any]:
        """Hyperparameters this family takes from the names of the data's input channels (``["value",
        "time_of_day", "day_of_week", ...]``, :attr:`stgkd.data.PreparedData.input_features`), which
        :func:`stgkd.nn.build_for` gives unless they are set (default: none)."""
        return {}

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description that :func:`stgkd.nn.build` turns back into this model
        (the graph is stored beside it, not in it)."""
        return {
            "name": self.registry_name,
            "num_nodes": self.num_nodes,
            "in_steps": self.in_steps,
            "out_steps": self.out_steps,
            "in_channels": self.in_channels,
            "hparams": dict(self._hparams),
        }

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, x: Tensor, return_features: bool = False):  # pragma: no cover - abstract
        raise NotImplementedError  # abstract: every registered model overrides it

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_steps or x.shape[2] != self.num_nodes or x.shape[3] != self.in_channels:
            raise ConfigError(
                f"{type(self).__name__} expects x of shape (B, {self.in_steps}, {self.num_nodes}, "
                f"{self.in_channels}), got {tuple(x.shape)}"
            )


class SelectInputs(nn.Module):
    """A model fed only some of the input channels: a teacher trained on ``["value", "time_of_day"]``
    distilled into a student whose data also carries seasonal-lag channels reads exactly the channels it
    was trained with, in its order. Everything else (``feature_names``, ``adaptive_support()``, its node
    embeddings, ...) is the wrapped model's.

    Args:
        model: the wrapped model.
        channels: indices of its input channels in the wider input, in the model's order.
    """

    def __init__(self, model: nn.Module, channels: list[int]) -> None:
        super().__init__()
        self.model = model
        # on the model's device: a model moved before it was wrapped keeps its place
        device = next(iter(model.parameters()), torch.empty(0)).device
        self.register_buffer("channels", torch.as_tensor(channels, dtype=torch.long, device=device),
                             persistent=False)

    @classmethod
    def for_features(cls, model: nn.Module, given: list[str], wanted: list[str], *, where: str = "model") -> nn.Module:
        """``model`` itself when ``given == wanted``, else wrapped to pick ``wanted`` out of ``given``.

        Raises:
            ConfigError: a feature the model was trained with is not among ``given``.
        """
        given, wanted = list(given), list(wanted)
        if given == wanted:
            return model
        missing = [f for f in wanted if f not in given]
        if missing:
            raise ConfigError(f"{where} was trained with input features {wanted}; the data lacks {missing} "
                              f"(it has {given})")
        return cls(model, [given.index(f) for f in wanted])

    def forward(self, x: Tensor, return_features: bool = False):
        """The wrapped model on the selected channels.

        Shapes:
            x ``(B, T, N, C_wide)`` -> whatever the model returns for ``(B, T, N, C_model)``
        """
        return self.model(x.index_select(-1, self.channels), return_features=return_features)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)
