"""stgkd: spatio-temporal GNN traffic forecasting, distilled into small fast students."""

from __future__ import annotations

from stgkd.version import __version__

__all__ = ["__version__", "Forecaster"]


def __getattr__(name: str):
    # Forecaster pulls in torch and the export format; keep `import stgkd` light.
    if name == "Forecaster":
        from stgkd.forecaster import Forecaster

        return Forecaster
    raise AttributeError(f"module 'stgkd' has no attribute {name!r}")
