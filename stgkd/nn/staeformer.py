"""An attention teacher in the STAEformer style: embeddings of the input, the time and each sensor, then
plain transformer layers over time and over sensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError
from stgkd.nn.base import ForecastModel, day_channel_of
from stgkd.nn.registry import register_model

__all__ = ["STAEformer"]


@register_model("staeformer")
class STAEformer(ForecastModel):
    r"""Spatio-temporal adaptive embedding transformer (Liu, Yang, Jiang, Shimizu, Bai, Wang, Xu, Du: "STAEformer:
    Spatio-Temporal Adaptive Embedding Makes Vanilla Transformer SOTA for Traffic Forecasting", CIKM 2023).

    Every (step, sensor) cell is embedded as the concatenation of a projection of its input channels, a
    time-of-day embedding, optionally a day-of-week embedding, and a learned spatio-temporal adaptive
    embedding ``E_a \in R^{T_{in} \times N \times d_a}`` (one vector per input step and sensor):

    .. math::
        Z^{(0)}_{t,n} = [W_x x_{t,n} \,\|\, e_{tod}(t) \,\|\, e_{dow}(t) \,\|\, E_a[t, n]], \qquad
        Z \leftarrow \mathrm{TL}_{time}(Z) \;(L \text{ times}), \qquad
        Z \leftarrow \mathrm{TL}_{space}(Z) \;(L \text{ times}), \qquad
        \hat y_{1..T_{out}, n} = W_o \,\mathrm{vec}(Z_{1..T_{in}, n})

    where ``TL`` is a post-norm transformer encoder layer (multi-head self-attention and a ReLU feed-forward,
    each with a residual and layer norm) attending over the steps of one sensor (``time``) or over the sensors
    at one step (``space``), and the output is the paper's "mixed" projection of each sensor's whole
    sequence to every horizon. It reads no road graph: the sensors' relations are learned by attention and
    the adaptive embedding. Defaults are the paper's METR-LA setting (dims 24 / 24 / 24 / 80, model width
    152, feed-forward 256, 4 heads, 3 + 3 layers, dropout 0.1): 1,242,252 parameters at 207 sensors with the
    day-of-week embedding on.

    Input channels: all of them enter the input projection (the reading, the calendar values and any
    seasonal-lag channels); the time-of-day embedding reads channel ``time_channel`` of every step (minutes
    since midnight / 1440, as :func:`stgkd.data.prepare` builds it) and the day-of-week embedding channel
    ``day_channel`` (weekday / 7); ``day_channel=None`` leaves the weekday out (a week of data sees each
    weekday once, and the test days' weekdays never in training).

    Args:
        num_nodes: number of sensors ``N``.
        graph: ignored (accepted so that every model is built alike).
        in_steps: input steps (default: 12).
        out_steps: forecast horizons (default: 12).
        in_channels: input channels (default: 2).
        input_embed: size of the input projection (default: 24).
        tod_embed: size of the time-of-day embedding (default: 24; 0 for none).
        tod_slots: time-of-day slots of that embedding (default: 288, five minutes).
        time_channel: input channel holding the time of day (default: 1).
        dow_embed: size of the day-of-week embedding (default: 24; used only with ``day_channel``).
        day_channel: input channel holding the day of week, or None for no weekday embedding (default: None;
            :func:`stgkd.nn.build_for` gives the data's day-of-week channel where it has one).
        adaptive_embed: size of the spatio-temporal adaptive embedding (default: 80; 0 for none).
        feed_forward: hidden width of each layer's feed-forward block (default: 256).
        heads: attention heads; the model width must be a multiple of it (default: 4).
        layers: transformer layers over time, and as many over sensors (default: 3).
        dropout: dropout in every layer (default: 0.1).
    """

    role = "teacher"
    feature_names = ("temporal", "hidden", "last")
    distill_feature = "last"
    uses_graph = False

    @classmethod
    def hparams_for_features(cls, input_features: list[str]) -> dict[str, Any]:
        """The day-of-week channel where the data has one (:func:`~stgkd.nn.base.day_channel_of`)."""
        return day_channel_of(input_features)

    def __init__(
        self,
        *,
        num_nodes: int,
        graph: Tensor | np.ndarray | None = None,
        in_steps: int = 12,
        out_steps: int = 12,
        in_channels: int = 2,
        input_embed: int = 24,
        tod_embed: int = 24,
        tod_slots: int = 288,
        time_channel: int = 1,
        dow_embed: int = 24,
        day_channel: int | None = None,
        adaptive_embed: int = 80,
        feed_forward: int = 256,
        heads: int = 4,
        layers: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(
            num_nodes=num_nodes,
            in_steps=in_steps,
            out_steps=out_steps,
            in_channels=in_channels,
            input_embed=input_embed,
            tod_embed=tod_embed,
            tod_slots=tod_slots,
            time_channel=time_channel,
            dow_embed=dow_embed,
            day_channel=day_channel,
            adaptive_embed=adaptive_embed,
            feed_forward=feed_forward,
            heads=heads,
            layers=layers,
            dropout=dropout,
        )
        for key, value in {"input_embed": input_embed, "tod_slots": tod_slots, "feed_forward": feed_forward,
                           "heads": heads, "layers": layers}.items():
            if value < 1:
                raise ConfigError(f"staeformer: {key} must be >= 1, got {value}")
        if tod_embed < 0 or dow_embed < 0 or adaptive_embed < 0:
            raise ConfigError(f"staeformer: tod_embed, dow_embed and adaptive_embed must be >= 0, got "
                              f"{tod_embed}, {dow_embed}, {adaptive_embed}")
        if tod_embed and not 0 <= time_channel < in_channels:
            raise ConfigError(f"staeformer: tod_embed needs the time of day in input channel {time_channel}, but "
                              f"there are {in_channels} channels (set time_channel, or tod_embed=0)")
        if day_channel is not None and not 0 <= day_channel < in_channels:
            raise ConfigError(f"staeformer: day_channel {day_channel} is not one of the {in_channels} input "
                              "channels (train with --day-of-week, or leave day_channel unset)")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"staeformer: dropout must be in [0, 1), got {dropout}")
        width = input_embed + tod_embed + (dow_embed if day_channel is not None else 0) + adaptive_embed
        if width % heads:
            raise ConfigError(f"staeformer: the model width {width} (input_embed + tod_embed + dow_embed with a "
                              f"day_channel + adaptive_embed) must be a multiple of heads={heads}")
        self.width = width
        self.tod_slots = tod_slots
        self.time_channel = time_channel
        self.day_channel = day_channel

        self.input_proj = nn.Linear(in_channels, input_embed)
        self.tod_embedding = nn.Embedding(tod_slots, tod_embed) if tod_embed else None
        self.dow_embedding = nn.Embedding(7, dow_embed) if (dow_embed and day_channel is not None) else None
        self.adaptive_embedding = (nn.Parameter(nn.init.xavier_uniform_(torch.empty(in_steps, num_nodes, adaptive_embed)))
                                   if adaptive_embed else None)

        def layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(width, heads, dim_feedforward=feed_forward, dropout=dropout,
                                              batch_first=True)

        self.temporal_layers = nn.ModuleList(layer() for _ in range(layers))
        self.spatial_layers = nn.ModuleList(layer() for _ in range(layers))
        self.output_proj = nn.Linear(in_steps * width, out_steps)

    def _embed(self, x: Tensor) -> Tensor:
        """Shapes:
            x ``(B, T, N, C)`` -> ``(B, T, N, width)``
        """
        b = x.shape[0]
        parts = [self.input_proj(x)]
        if self.tod_embedding is not None:
            slot = (x[..., self.time_channel] * self.tod_slots).long().clamp(0, self.tod_slots - 1)
            parts.append(self.tod_embedding(slot))
        if self.dow_embedding is not None:
            day = torch.round(x[..., self.day_channel] * 7).long() % 7
            parts.append(self.dow_embedding(day))
        if self.adaptive_embedding is not None:
            parts.append(self.adaptive_embedding.expand(b, -1, -1, -1))
        return torch.cat(parts, dim=-1)

    def forward(self, x: Tensor, return_features: bool = False):
        """Embed every cell, attend over time then over sensors, project each sensor's sequence to the horizons.

        Shapes:
            x ``(B, T_in, N, C)`` -> forecast ``(B, T_out, N)``; features ``"temporal"`` ``(B, T_in, N, width)``
            (after the layers over time), ``"hidden"`` ``(B, T_in, N, width)`` (after the layers over sensors,
            what the output projection reads), ``"last"`` ``(B, N, width)`` (its last step, the natural
            distillation match).
        """
        self._check_input(x)
        b, t, n, _ = x.shape
        z = self._embed(x)
        h = z.transpose(1, 2).reshape(b * n, t, self.width)  # a sequence over time per sensor
        for layer in self.temporal_layers:
            h = layer(h)
        temporal = h.reshape(b, n, t, self.width).transpose(1, 2)  # (B, T, N, D)
        h = temporal.reshape(b * t, n, self.width)  # a sequence over sensors per step
        for layer in self.spatial_layers:
            h = layer(h)
        hidden = h.reshape(b, t, n, self.width)
        out = self.output_proj(hidden.transpose(1, 2).reshape(b, n, t * self.width)).transpose(1, 2)  # (B, H, N)
        if return_features:
            return out, {"temporal": temporal, "hidden": hidden, "last": hidden[:, -1]}
        return out
