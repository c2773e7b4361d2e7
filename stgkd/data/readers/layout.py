"""The file layouts datasets come in, as a registry that detection walks in order.

Each layout module (:mod:`~stgkd.data.readers.dcrnn`, :mod:`~stgkd.data.readers.astgcn`,
:mod:`~stgkd.data.readers.los_loop`, :mod:`~stgkd.data.readers.generic`) registers one
:class:`Layout`: its reader and how to recognise a folder or a file in it.
:func:`stgkd.data.datasets.detect_layout` asks them in :attr:`Layout.order`; the first that
recognises the path reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stgkd.data.core import TrafficData
from stgkd.registry import Registry

__all__ = ["LAYOUTS", "Layout", "layouts_in_order", "register_layout"]


@dataclass(frozen=True)
class Layout:
    """One file layout: its reader and how to recognise it.

    Args:
        name: the layout's name (``"dcrnn"``, ``"astgcn"``, ``"los-loop"``, ``"generic"``).
        reader: ``reader(**args, **options) -> TrafficData``.
        order: detection order, lower first: the first layout that recognises a path reads it.
        in_folder: ``in_folder(folder)``: the reader's arguments for the dataset in ``folder``, or
            ``None`` when the folder is not in this layout (a :class:`~stgkd.errors.DataError` when it
            is, ambiguously).
        at_file: ``at_file(path)``: the same for a file (what lies beside it may count).
        expects: what a folder in this layout holds, for the message when no layout matches.
        registered_files: the reader's arguments that a registered dataset's files fill, in the
            order of its :attr:`~stgkd.data.datasets.DatasetInfo.files`.
    """

    name: str
    reader: Callable[..., TrafficData]
    order: int
    in_folder: Callable[[Path], dict[str, Any] | None]
    at_file: Callable[[Path], dict[str, Any] | None]
    expects: str
    registered_files: tuple[str, ...] = ()


LAYOUTS: Registry[Layout] = Registry("layout")


def register_layout(layout: Layout) -> Layout:
    """Add ``layout`` to :data:`LAYOUTS` under its name."""
    LAYOUTS.register(layout.name, layout)
    return layout


def layouts_in_order() -> list[Layout]:
    """Every registered layout, in detection order."""
    return sorted((LAYOUTS.get(name) for name in LAYOUTS.names()), key=lambda layout: layout.order)
