"""A restricted unpickler for the pickles traffic datasets ship (DCRNN's ``adj_mx.pkl``).

``pickle.load`` runs whatever callable a pickle names, so a downloaded ``adj_mx.pkl`` could run code
on load. :class:`SafeUnpickler` resolves only the globals in :data:`ALLOWED_GLOBALS`: builtin
containers and numbers, and numpy's array/dtype/scalar reconstruction helpers. Anything else raises
:class:`~stgkd.errors.UnsafePickleError` naming the file and the refused global, before the global
is imported, let alone called.

Which globals real pickles reference:

* DCRNN's files (Python 2, protocol 2): ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``; strings arrive as latin-1 decoded ``str`` (hence ``encoding="latin1"``).
* numpy 2.x, protocol 2: ``numpy._core.multiarray._reconstruct`` / ``scalar``, ``numpy.ndarray``,
  ``numpy.dtype``, ``_codecs.encode`` (Python 3 writes ``bytes`` as ``_codecs.encode(str, "latin1")``)
  and ``__builtin__.set``.
* numpy, protocol 5: ``numpy._core.numeric._frombuffer``.

``_codecs.encode`` is admitted through a wrapper that accepts only text encodings (latin-1, ascii,
utf-8), so a pickle cannot reach the zlib/base64/... codecs through it.
"""

from __future__ import annotations

import builtins
import codecs
import io
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stgkd.errors import DataError, UnsafePickleError

__all__ = ["ALLOWED_GLOBALS", "SafeUnpickler", "safe_load", "safe_loads"]

_TEXT_ENCODINGS = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1", "ascii", "us-ascii", "utf-8", "utf8"}


def _text_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to text encodings (how Python 3 pickles ``bytes`` at protocol 2)."""
    if not isinstance(obj, str) or not isinstance(encoding, str) or encoding.lower() not in _TEXT_ENCODINGS:
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(obj, encoding, errors)


def _numpy_attr(*candidates: str) -> Callable[..., Any]:
    """The first of ``module:name`` candidates that exists (numpy 1.x ``numpy.core`` vs 2.x ``numpy._core``)."""
    import importlib

    for candidate in candidates:
        module_name, name = candidate.split(":")
        try:
            return getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {candidates} is available in this numpy")


def _build_allowed() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_attr("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")
    scalar = _numpy_attr("numpy._core.multiarray:scalar", "numpy.core.multiarray:scalar")
    frombuffer = _numpy_attr("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")
    allowed: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _text_encode
    for name in ("set", "frozenset", "list", "dict", "tuple", "int", "float", "complex", "bool", "str", "bytes", "bytearray"):
        allowed[("builtins", name)] = getattr(builtins, name)
        allowed[("__builtin__", name)] = getattr(builtins, name)
    return allowed


#: ``(module, name)`` -> the object a pickle may reference; everything else is refused.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _build_allowed()


class SafeUnpickler(pickle.Unpickler):
    """:class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS`.

    Args:
        file: binary file object to read from.
        source: name used in error messages (the path).
        encoding: how Python 2 ``str`` objects are decoded (default: ``"latin1"``, which numpy
            arrays written by Python 2 need).
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str = "<pickle>", encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refused to load global {module}.{name}; only builtin containers, numbers "
                "and numpy arrays are allowed in data pickles"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refused persistent id {pid!r} in a data pickle")


def safe_loads(data: bytes, *, source: str = "<bytes>", encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler`; corrupt data raises :class:`DataError`."""
    try:
        return SafeUnpickler(io.BytesIO(data), source=source, encoding=encoding).load()
    except DataError:
        raise
    except Exception as exc:  # truncated or corrupt streams raise a zoo of types
        raise DataError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def safe_load(path: str | Path, *, encoding: str = "latin1") -> Any:
    """Unpickle the file at ``path`` without running code from it.

    Raises:
        DataError: the file is missing or is not a readable pickle.
        UnsafePickleError: the pickle references a global outside :data:`ALLOWED_GLOBALS`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return safe_loads(path.read_bytes(), source=str(path), encoding=encoding)
