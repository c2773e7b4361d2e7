"""The project's error types.

Every reader, validator and command raises :class:`StgkdError` (a ``ValueError``) or one of its
subclasses, with a message that names the file or argument and what is wrong with it. The CLI turns
them into one readable line on stderr and a non-zero exit code.
"""

from __future__ import annotations


class StgkdError(ValueError):
    """Base class of every error stgkd raises on bad input."""


class DataError(StgkdError):
    """A data file, graph or dataset argument is missing, malformed or inconsistent."""


class UnsafePickleError(DataError):
    """A pickle asked for an object outside the restricted set (builtins, numbers, numpy arrays)."""


class CheckpointError(StgkdError):
    """A checkpoint or exported student is missing, corrupt or of an unknown format."""


class ConfigError(StgkdError):
    """A model, loss, search-space or command-line configuration is invalid."""
