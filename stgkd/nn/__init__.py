"""Models: teachers, students, baselines, their layers, the registry and FLOP counting.

Importing this package registers every model (``stgkd.nn.MODELS.names()``).
"""

from __future__ import annotations

from stgkd.nn import baselines, dcgru, graph_wavenet, peers, staeformer, stgru, students
from stgkd.nn.base import ForecastModel
from stgkd.nn.dcgru import DCGRUStudent
from stgkd.nn.flops import count_flops
from stgkd.nn.graph_wavenet import GraphWaveNet
from stgkd.nn.registry import DEFAULT_STUDENT, DEFAULT_TEACHER, MODELS, build, build_for, from_config, register_model
from stgkd.nn.students import GCNGRUStudent, GRUStudent
from stgkd.nn.staeformer import STAEformer
from stgkd.nn.stgru import STGRUStudent

__all__ = [
    "DEFAULT_STUDENT",
    "DEFAULT_TEACHER",
    "DCGRUStudent",
    "baselines",
    "MODELS",
    "ForecastModel",
    "GCNGRUStudent",
    "GRUStudent",
    "GraphWaveNet",
    "STAEformer",
    "STGRUStudent",
    "build",
    "build_for",
    "count_flops",
    "dcgru",
    "from_config",
    "graph_wavenet",
    "peers",
    "register_model",
    "staeformer",
    "stgru",
    "students",
]
