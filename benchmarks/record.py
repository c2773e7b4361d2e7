"""What every benchmark run records about itself: the environment it ran in, and its progress log.

:func:`environment` is the ``"environment"`` entry of a results record (device, versions, threads);
:func:`log` prints a timestamped progress line on stderr.
"""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from typing import Any

import torch

__all__ = ["environment", "log"]


def log(msg: str) -> None:
    """``[HH:MM:SS] msg`` on stderr, flushed (a benchmark's progress)."""
    print(f"[{_dt.datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def environment(device: str) -> dict[str, Any]:
    """The device and its name, the versions of torch, CUDA, Python and torch-geometric-temporal, the
    platform and torch's intra-op thread count."""
    from stgkd.latency import device_name

    env = {
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
    }
    try:
        import torch_geometric_temporal  # noqa: F401  (version only)
        from importlib.metadata import version

        env["torch_geometric_temporal"] = version("torch-geometric-temporal")
    except Exception:
        env["torch_geometric_temporal"] = None
    return env
