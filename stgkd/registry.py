"""A small name -> object registry, used for models, losses, datasets and CLI commands."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from stgkd.errors import ConfigError

T = TypeVar("T")


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


class Registry(Generic[T]):
    """Maps names (case-insensitive, ``_`` and ``-`` equivalent) to objects.

    Example::

        MODELS = Registry("model")

        @MODELS.register("gru")
        class GRUStudent(...): ...

        MODELS.get("GRU")  # -> GRUStudent
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def add(item: T) -> T:
            key = _canonical(name)
            if key in self._items and self._items[key] is not item:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            self._items[key] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        key = _canonical(name)
        if key not in self._items:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; available: {', '.join(sorted(self._items)) or 'none'}"
            )
        return self._items[key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _canonical(name) in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
