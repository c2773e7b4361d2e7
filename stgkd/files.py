"""Writing result files: atomically, and in plain JSON values.

:func:`atomic_write` is how stgkd writes every file a reader may open while it is written, or that a
killed process must not leave half-written (checkpoints, downloads, generated datasets, reports,
benchmark results). :func:`to_jsonable` turns what a training run logs (tensors, numpy scalars,
tuples) into the plain values ``json.dumps`` takes.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

__all__ = ["TEMP_SUFFIX", "atomic_write", "to_jsonable"]

#: what ends the name of a temporary file :func:`atomic_write` writes (``.<name>.<random>.tmp``)
TEMP_SUFFIX = ".tmp"

Content = Union[bytes, bytearray, memoryview, str, Callable[[Path], Any]]


def atomic_write(path: str | os.PathLike[str], content: Content, *, encoding: str = "utf-8") -> Path:
    """Write ``content`` to ``path`` so that a reader, or a process killed at any moment, sees either
    the old file or the complete new one, never a torn write.

    The content goes to a temporary file beside ``path`` (``.<name>.<random>.tmp``, in the same
    directory, so the final move is a rename on one file system), which is flushed and fsync'ed and then
    moved over ``path`` with :func:`os.replace`; the directory is fsync'ed too where the platform allows,
    so the rename itself is durable. On any error the temporary file is removed and ``path`` is untouched.

    Args:
        path: the file to write; its directory is created when missing.
        content: bytes, text (written with ``encoding``), or a function that writes the file at the
            temporary path it is given (for writers that take a path: ``DataFrame.to_hdf``,
            ``savefig``, a download). That path ends in ``path``'s suffix, for writers that choose the
            format by it; the function may raise to abandon the write.
        encoding: the encoding of text content (default: ``"utf-8"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = callable(content)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX + (path.suffix if writer else ""),
                                    dir=path.parent)
    tmp = Path(tmp_name)
    try:
        if writer:
            os.close(fd)
            content(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        else:
            data = content.encode(encoding) if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable (POSIX); not possible on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the file itself is already synced
        pass
    finally:
        os.close(fd)


def to_jsonable(obj: Any, *, finite: bool = False) -> Any:
    """``obj`` as plain JSON values: dicts with string keys, lists, strings, numbers, booleans, ``None``.

    Tuples become lists; a tensor or array of one element becomes its number, a larger one a nested
    list; a numpy scalar becomes its Python number; anything else its ``str``.

    Args:
        obj: what to convert (nested containers are converted all the way down).
        finite: write ``NaN`` and ``±inf`` as ``None`` (``null``), so the result is strict JSON, as
            JSON-lines logs are read by tools that refuse the ``NaN`` token (default: ``False``: kept
            as floats, which ``json.dumps`` writes as ``NaN`` / ``Infinity``).
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, finite=finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, finite=finite) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return None if finite and not math.isfinite(obj) else obj
    if hasattr(obj, "numel") or (hasattr(obj, "size") and hasattr(obj, "tolist")):  # tensors, numpy arrays/scalars
        size = obj.numel() if hasattr(obj, "numel") else obj.size
        return to_jsonable(obj.item() if size == 1 else obj.tolist(), finite=finite)
    return str(obj)
