"""Traffic data: readers for the standard layouts, the dataset registry, windows and scalers.

Names are imported on first use (module ``__getattr__``), so ``import stgkd.data`` stays light and
does not pull in pandas or torch until something needs them.

    >>> from stgkd.data import load_dataset, prepare
    >>> data = load_dataset("synthetic")
    >>> prepared = prepare(data)
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module defining it
_EXPORTS: dict[str, str] = {
    "TrafficData": "stgkd.data.core",
    # datasets.py
    "load_dataset": "stgkd.data.datasets",
    "DATASETS": "stgkd.data.datasets",
    "DatasetInfo": "stgkd.data.datasets",
    "data_root": "stgkd.data.datasets",
    "detect_layout": "stgkd.data.datasets",
    "get_dataset": "stgkd.data.datasets",
    "list_datasets": "stgkd.data.datasets",
    # readers/
    "DataWarning": "stgkd.data.readers",
    "read_dcrnn": "stgkd.data.readers",
    "read_pems": "stgkd.data.readers",
    "read_los_loop": "stgkd.data.readers",
    "read_generic": "stgkd.data.readers",
    "read_values": "stgkd.data.readers",
    "read_adj_pickle": "stgkd.data.readers",
    "read_dense_matrix": "stgkd.data.readers",
    "read_edge_list": "stgkd.data.readers",
    # safe_pickle.py
    "safe_load": "stgkd.data.safe_pickle",
    # windows.py / scalers.py
    "prepare": "stgkd.data.windows",
    "PreparedData": "stgkd.data.windows",
    "WindowSplit": "stgkd.data.windows",
    "WindowLoader": "stgkd.data.windows",
    "Batch": "stgkd.data.windows",
    "StandardScaler": "stgkd.data.scalers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'stgkd.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
