"""Readers for the file layouts traffic datasets come in; each returns a validated :class:`TrafficData`.

Layouts:

* **DCRNN** (METR-LA, PEMS-BAY): ``metr-la.h5`` / ``pems-bay.h5`` (pandas HDF5, key ``df``,
  ``DatetimeIndex`` x sensor-id columns) + ``adj_mx.pkl`` (``[sensor_ids, sensor_id_to_ind, adj_mx]``,
  protocol 2, latin-1): :func:`read_dcrnn` (:mod:`~stgkd.data.readers.dcrnn`).
* **ASTGCN/STSGCN** (PEMS03/04/07/08): ``PEMS0x.npz`` (key ``data``, ``(T, N, C)``, flow first) + a
  distance CSV ``from,to,cost`` (PEMS03: raw sensor ids, mapped to indices by ``PEMS03.txt``):
  :func:`read_pems` (:mod:`~stgkd.data.readers.astgcn`). The adjacency is DCRNN's Gaussian kernel of the distances.
* **T-GCN "Los-loop"**: ``*_speed.csv`` (header of sensor ids) + a dense adjacency CSV without header
  (``los_adj.csv``) or DCRNN's ``adj_mx.pkl``: :func:`read_los_loop` (:mod:`~stgkd.data.readers.los_loop`).
* **Generic**: values as CSV / NPZ / NPY / HDF5 of ``(T, N)`` or ``(T, N, C)`` with optional
  timestamps; graph as an edge list CSV ``source,target[,weight|distance]`` or a dense matrix
  (CSV / NPY): :func:`read_generic` (:mod:`~stgkd.data.readers.generic`).

One module per layout; each registers a :class:`~stgkd.data.readers.layout.Layout` (its reader and how
to recognise it) in :data:`LAYOUTS`, which :func:`stgkd.data.datasets.detect_layout` walks. The
readers share :mod:`~stgkd.data.readers.common` (checks), :mod:`~stgkd.data.readers.graphs` (graph
files) and :mod:`~stgkd.data.readers.values` (value files).

Conventions every reader applies (nothing is silently truncated or reordered):

* Missing readings follow the ``missing=`` convention (:mod:`stgkd.missing`; default ``"zero"``:
  ``0`` and ``NaN`` are missing, as METR-LA / PEMS-BAY are released; ``"nan"``: only ``NaN`` / empty
  cells, a ``0`` is a reading; ``"none"``: no reading is missing; or a sentinel number). Every missing
  reading becomes ``NaN`` in :attr:`TrafficData.values`. ``NaN`` in a file whose convention uses
  another marker is counted and reported by a :class:`DataWarning` naming the file; more than 20 %
  missing readings, and sensors with no reading at all (by id), are reported too. ``Inf`` is an error
  (with its count).
* Non-numeric cells, a short or long CSV row, a corrupt or truncated file, a wrong key: an error
  naming the file and what is wrong.
* Timestamps must be strictly increasing with one interval. Duplicates and unordered timestamps are
  errors. Gaps of whole steps are errors unless ``gaps="keep"`` (rows kept as they are; PEMS-BAY's
  release lacks the hour of the 2017-03-12 daylight-saving change, and the standard split counts its
  52116 rows as they are) or ``gaps="fill"`` (missing steps inserted as missing readings, counted).
* Values and graph must hold the same sensors. When both carry ids (DCRNN h5 columns and the
  pickle's ``sensor_ids``) and the sets are equal but the order differs, the value columns are
  reordered *by id* to the graph's order and a :class:`DataWarning` says so; different sets are an
  error naming the ids that do not match.
* The series must be long enough for ``12 + 12`` windows and a non-empty train/val/test split.
"""

from __future__ import annotations

from stgkd.data.readers.common import DataWarning, check_enough_steps
from stgkd.data.readers.graphs import find_adj_pickle, read_adj_pickle, read_dense_matrix, read_edge_list
from stgkd.data.readers.layout import LAYOUTS, Layout, layouts_in_order, register_layout
from stgkd.data.readers.values import read_values

# the layouts, in detection order; importing each registers it
from stgkd.data.readers.dcrnn import read_dcrnn  # noqa: E402  isort: skip
from stgkd.data.readers.astgcn import PEMS_START, read_pems  # noqa: E402  isort: skip
from stgkd.data.readers.los_loop import read_los_loop  # noqa: E402  isort: skip
from stgkd.data.readers.generic import read_generic  # noqa: E402  isort: skip

__all__ = [
    "DataWarning",
    "LAYOUTS",
    "Layout",
    "PEMS_START",
    "find_adj_pickle",
    "layouts_in_order",
    "read_adj_pickle",
    "read_dense_matrix",
    "read_edge_list",
    "read_values",
    "read_dcrnn",
    "read_pems",
    "read_los_loop",
    "read_generic",
    "register_layout",
    "check_enough_steps",
]
