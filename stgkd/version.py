"""stgkd's version: the number this source declares, and the installed distribution's."""

from __future__ import annotations

__all__ = ["__version__", "package_version"]

__version__ = "0.1.0"


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else :data:`__version__` (a checkout on
    ``sys.path`` that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stgkd")
    except PackageNotFoundError:
        return __version__
