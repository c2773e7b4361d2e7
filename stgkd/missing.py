"""Which readings are missing: the convention a series was recorded with, in one place.

Releases mark a missing reading in different ways. DCRNN's METR-LA and PEMS-BAY store it as ``0`` (a
loop detector that reported no speed); a series of counts, flows or occupancies has real zeros and
marks a gap with an empty cell (``NaN``) or a sentinel such as ``-1``. The convention is a
:class:`MissingPolicy`, spelled the same way everywhere it is asked for or stored: the ``missing=``
argument of every reader, of :func:`~stgkd.data.load_dataset` and of :class:`~stgkd.data.TrafficData`,
the registry entries, ``--missing`` on the command line, checkpoints and exported students.

============  ================================================  ==============
``missing``   missing readings                                  a ``0`` is
============  ================================================  ==============
``"zero"``    ``0`` and ``NaN`` (DCRNN's convention; default)    missing
``"nan"``     ``NaN`` (an empty cell) only                      a reading
``"none"``    none: a ``NaN`` in the file is an error           a reading
a number      that value and ``NaN``, e.g. ``"-1"``             a reading
============  ================================================  ==============

The convention is applied once, when a :class:`~stgkd.data.TrafficData` is built: every missing
reading becomes ``NaN`` in ``values``, so nothing downstream needs to know the convention. Windows
turn ``NaN`` into the observed mask the loss and the metrics read (``batch.mask``), the scaler skips
it, and an input reading that is missing enters the model as the training mean. An exported student
applies the same convention to the raw readings it is given (``NaN`` is missing there under every
convention, since it cannot be a reading), so a student trained with zeros as readings forecasts
from them as such.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stgkd.errors import ConfigError, DataError

__all__ = [
    "MissingPolicy",
    "MissingSpec",
    "DEFAULT_MISSING",
    "WARN_FRACTION",
    "parse_missing",
    "missing_warnings",
    "silent_sensors",
    "add_missing_argument",
]

#: the convention where nothing says otherwise (DCRNN's, as METR-LA and PEMS-BAY are released)
DEFAULT_MISSING = "zero"
#: share of missing target readings above which loading warns that the convention may be wrong
WARN_FRACTION = 0.2

_NAMED = ("zero", "nan", "none")
_CHUNK = 1 << 18  # readings handled at a time, bounding temporaries


@dataclass(frozen=True)
class MissingPolicy:
    """A missing-value convention (build one with :func:`parse_missing`).

    Attributes:
        name: ``"zero"``, ``"nan"``, ``"none"``, or the sentinel written as a number (``"-1"``); what
            checkpoints, exported students and messages store.
        sentinel: the value that marks a missing reading besides ``NaN`` (``0.0`` for ``"zero"``),
            or ``None``.
    """

    name: str
    sentinel: float | None

    def __str__(self) -> str:
        return self.name

    @property
    def zero_is_missing(self) -> bool:
        return self.sentinel == 0.0

    def describe(self) -> str:
        """The convention in words, e.g. ``"missing='zero': 0 and NaN are missing"``."""
        if self.name == "none":
            what = "every value is a reading"
        elif self.sentinel is None:
            what = "NaN (an empty cell) is missing, 0 is a reading"
        elif self.zero_is_missing:
            what = "0 and NaN are missing"
        else:
            what = f"{self.name} and NaN are missing, 0 is a reading"
        return f"missing={self.name!r}: {what}"

    def is_missing(self, values: np.ndarray) -> np.ndarray:
        """Bool array of ``values``' shape: ``NaN``, or equal to the sentinel (compared in ``values``' dtype)."""
        values = np.asarray(values)
        out = np.isnan(values)
        if self.sentinel is not None:
            out |= values == values.dtype.type(self.sentinel)
        return out

    def apply(self, values: np.ndarray, *, where: str, copy: bool = True) -> np.ndarray:
        """``values`` (float) with every missing reading set to ``NaN``.

        The sentinel is replaced in chunks of the first axis; ``values`` itself is modified only when
        ``copy`` is ``False``, and a copy is made only when there is something to replace.

        Raises:
            DataError: ``missing="none"`` and ``values`` holds ``NaN`` (named with its count and first
                position).
        """
        if values.dtype.kind != "f":
            raise DataError(f"{where}: values must be floating point to mark missing readings, got {values.dtype}")
        if self.name == "none":
            nan = _count(values, np.isnan)
            if nan:
                first = tuple(int(i) for i in np.argwhere(np.isnan(values))[0])
                raise DataError(
                    f"{where}: {nan} NaN readings (first at index {first}), but missing='none' says every value "
                    "is a reading; load with missing='nan' to treat them as missing"
                )
            return values
        if self.sentinel is None:
            return values
        marker = values.dtype.type(self.sentinel)
        if not _count(values, lambda block: block == marker):
            return values
        out = values.copy() if copy else values
        rows = _rows(out)
        for begin in range(0, len(out), rows):
            block = out[begin : begin + rows]  # a view: slicing the first axis
            block[block == marker] = np.nan
        return out


MissingSpec = str | float | int | MissingPolicy | None


def parse_missing(spec: MissingSpec, *, where: str = "missing") -> MissingPolicy:
    """The :class:`MissingPolicy` of ``spec``: ``"zero"``, ``"nan"``, ``"none"``, a number (``-1``,
    ``"-9999"``; ``0`` is ``"zero"``), a policy, or ``None`` for :data:`DEFAULT_MISSING`.

    Raises:
        ConfigError: anything else (named with ``where``).
    """
    if spec is None:
        spec = DEFAULT_MISSING
    if isinstance(spec, MissingPolicy):
        return spec
    if isinstance(spec, bool):
        raise ConfigError(f"{where}: {spec!r} is not a missing-value convention; {_CHOICES}")
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in _NAMED:
            return _named(text)
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{where}: {spec!r} is not a missing-value convention; {_CHOICES}") from None
    elif isinstance(spec, (int, float, np.integer, np.floating)):
        number = float(spec)
    else:
        raise ConfigError(f"{where}: {spec!r} is not a missing-value convention; {_CHOICES}")
    if math.isnan(number):
        return _named("nan")
    if math.isinf(number):
        raise ConfigError(f"{where}: an infinite sentinel ({spec!r}) cannot mark missing readings; {_CHOICES}")
    if number == 0.0:
        return _named("zero")
    name = str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
    return MissingPolicy(name=name, sentinel=number)


_CHOICES = "use 'zero' (0 and NaN are missing), 'nan' (only NaN), 'none' (no reading is missing) or a sentinel number"


def _named(name: str) -> MissingPolicy:
    return MissingPolicy(name=name, sentinel=0.0 if name == "zero" else None)


def _rows(values: np.ndarray) -> int:
    """Steps (first-axis entries) per chunk of about :data:`_CHUNK` readings."""
    per_row = int(np.prod(values.shape[1:], dtype=np.int64)) if values.ndim > 1 else 1
    return max(1, _CHUNK // max(1, per_row))


def _count(values: np.ndarray, test) -> int:  # noqa: ANN001 - a vectorised predicate
    rows = _rows(values)
    return sum(int(np.count_nonzero(test(values[i : i + rows]))) for i in range(0, len(values), rows))


# ----------------------------------------------------------------------------------------------
# what a loaded series says about its convention


def silent_sensors(target: np.ndarray) -> np.ndarray:
    """Indices of the sensors of ``target`` ``(T, N)`` (missing = ``NaN``) with no reading at all."""
    observed = np.zeros(target.shape[1], dtype=bool)
    rows = _rows(target)
    for begin in range(0, target.shape[0], rows):
        observed |= ~np.isnan(target[begin : begin + rows]).all(axis=0)
    return np.flatnonzero(~observed)


def missing_warnings(
    where: str, policy: MissingPolicy, fraction: float, silent: Sequence[str], num_nodes: int
) -> list[str]:
    """The warnings a series deserves: a large share of missing readings (above :data:`WARN_FRACTION`,
    with how to change the convention when zeros count as missing), and the sensors without any reading,
    by id.

    Args:
        where: the file (or dataset) the messages start with.
        policy: the convention the series was loaded with.
        fraction: share of missing target-channel readings.
        silent: ids of the sensors with no target reading at all.
        num_nodes: number of sensors.
    """
    out = []
    hint = (
        "; if 0 is a real reading here (counts, flows, occupancies), load with missing='nan' "
        "(--missing nan), or missing='none' when no reading is missing"
        if policy.zero_is_missing else ""
    )
    if fraction > WARN_FRACTION:
        out.append(
            f"{where}: {100.0 * fraction:.2f}% of channel-0 readings are missing ({policy.describe()}); the loss "
            f"and the metrics skip them{hint}"
        )
    if len(silent):
        shown = ", ".join(list(silent)[:10]) + (f", ... ({len(silent) - 10} more)" if len(silent) > 10 else "")
        out.append(
            f"{where}: {len(silent)} of {num_nodes} sensors have no channel-0 reading at all ({policy.describe()}): "
            f"{shown}; their forecasts are never trained or scored{hint if fraction <= WARN_FRACTION else ''}"
        )
    return out


# ----------------------------------------------------------------------------------------------
# command line


def _cli_value(text: str) -> str:
    try:
        return parse_missing(text, where="--missing").name
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--missing: ")) from None


def add_missing_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, default: str) -> None:
    """Add ``--missing zero|nan|none|NUMBER`` (stored as the convention's name, ``None`` when not given).

    Args:
        parser: the parser or argument group.
        default: what happens without the flag, in words (for the help).
    """
    parser.add_argument(
        "--missing", type=_cli_value, default=None, metavar="zero|nan|none|NUMBER",
        help="which readings are missing: zero (0 and NaN), nan (only NaN / empty cells; 0 is a reading), "
             f"none (no reading is), or a sentinel number such as -1 (default: {default})",
    )
