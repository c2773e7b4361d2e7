"""The frozen teacher's forecasts and features, computed once per split and looked up by index.

A teacher is frozen during distillation, so running it every epoch would only repeat the same
numbers at the price of a teacher forward per student step. :meth:`TeacherCache.build` runs it once
over a split, in order, in eval mode without gradients, and keeps

* ``forecast`` ``(S, H, N)``: the teacher's z-scored forecast of every window of the split,
* ``features[name]`` ``(S, N, D)``: each requested feature; a time-laid-out ``(B, T, N, D)`` feature
  is pooled over time (``time_pool``, as the adapters do) before it is stored, so the cache is
  ``T`` times smaller and feature matching reads it directly,
* the teacher's adaptive operator as it applies it, ``adaptive_support()`` ``(N, N)`` (Graph WaveNet:
  ``A_adp^T``, row ``m`` = what node ``m`` aggregates), once, when it has one (relation distillation).

Storage is a tensor on ``device`` when the whole cache fits in ``max_bytes``, otherwise ``.npy``
files opened as numpy memmaps in ``cache_dir`` (a temporary directory, removed with the cache, when
not given). Values are stored as ``float16`` by default (forecasts are z-scores, so the relative
error of 1e-3 is far below any forecast error) and returned as ``float32``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.distill.adapters import pool_time
from stgkd.errors import ConfigError, DataError

__all__ = ["TeacherCache", "ADJACENCY_KEY", "teacher_outputs"]

#: key under which lookups carry the teacher's applied adaptive operator ``(N, N)`` (rows = receivers).
ADJACENCY_KEY = "adaptive_adjacency"
_META = "teacher_cache.json"
_NP_DTYPES = {torch.float16: np.float16, torch.float32: np.float32}


def _default_max_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return 2 << 30


class TeacherCache:
    """Teacher outputs of one split, indexed by window position (``Batch.index``).

    Build with :meth:`build`; reopen a disk cache with :meth:`open`. Use :meth:`lookup`.
    """

    def __init__(
        self,
        forecast: Tensor | np.ndarray,
        features: dict[str, Tensor | np.ndarray],
        *,
        adjacency: Tensor | None = None,
        device: str | torch.device = "cpu",
        directory: Path | None = None,
        keep_alive: Any = None,
    ) -> None:
        self.forecast = forecast
        self.features = features
        self.adjacency = adjacency
        self.device = torch.device(device)
        self.directory = directory
        self._keep_alive = keep_alive  # a TemporaryDirectory that lives as long as the cache

    @property
    def on_disk(self) -> bool:
        return isinstance(self.forecast, np.ndarray)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def nbytes(self) -> int:
        arrays = [self.forecast, *self.features.values()]
        return sum(a.nbytes if isinstance(a, np.ndarray) else a.numel() * a.element_size() for a in arrays)

    def __len__(self) -> int:
        return int(self.forecast.shape[0])

    @classmethod
    def build(
        cls,
        teacher: nn.Module,
        source: Any,
        feature_names: Sequence[str] = (),
        device: str | torch.device = "cpu",
        *,
        max_bytes: int | None = None,
        dtype: torch.dtype = torch.float16,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        time_pool: str = "mean",
        num_samples: int | None = None,
    ) -> "TeacherCache":
        """Run ``teacher`` once over ``source`` and store its outputs.

        Args:
            teacher: the trained teacher, already on ``device``; run in eval mode (its mode is
                restored afterwards) under ``torch.no_grad``.
            source: a split (``len(source)`` and ``source.batch(idx) -> Batch``), walked in order in
                chunks of ``batch_size``; or any iterable of batches carrying ``x`` and ``index`` (a
                loader), whose size is ``num_samples``, ``len(source.split)`` or ``len(source.dataset)``.
            feature_names: teacher features to keep (none: forecasts only).
            device: where the teacher runs and where lookups are returned.
            max_bytes: largest cache held on ``device``; beyond it the cache goes to disk
                (default: half the free GPU memory on CUDA, 2 GiB on CPU).
            dtype: storage dtype, ``torch.float16`` or ``torch.float32`` (default: ``float16``).
            cache_dir: directory for the disk cache (default: a temporary one).
            batch_size: windows per teacher forward when walking a split (default: ``64``).
            time_pool: reduction of ``(B, T, N, D)`` features, ``"mean"`` or ``"last"`` (default: ``"mean"``).
            num_samples: number of windows when ``source`` is an iterable without a known size.
        """
        if dtype not in _NP_DTYPES:
            raise ConfigError(f"TeacherCache.build: dtype must be float16 or float32, got {dtype}")
        device = torch.device(device)
        total, batches = _windows(source, batch_size, num_samples)
        names = list(dict.fromkeys(feature_names))
        limit = _default_max_bytes(device) if max_bytes is None else int(max_bytes)
        store: dict[str, Any] = {}
        seen = torch.zeros(total, dtype=torch.bool)
        keep_alive = directory = None
        was_training = teacher.training
        teacher.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    index = batch.index.detach().cpu().long()
                    x = batch.x.to(device)
                    outputs = teacher_outputs(teacher, x, names, time_pool)
                    if not store:
                        store, directory, keep_alive = _allocate(outputs, total, dtype=dtype, device=device,
                                                                 max_bytes=limit, cache_dir=cache_dir)
                    _mark_seen(seen, index, x.shape[0])
                    _put(store, outputs, index, dtype=dtype, device=device)
                adjacency = _applied_adjacency(teacher, device)
        finally:
            teacher.train(was_training)
        if not bool(seen.all()):
            raise DataError(f"TeacherCache.build: source visited {int(seen.sum())} of {total} windows")
        forecast = store.pop("forecast")
        if directory is not None:
            _close_on_disk(directory, forecast, store, adjacency, total=total, dtype=dtype, time_pool=time_pool)
        return cls(forecast, store, adjacency=adjacency, device=device, directory=directory, keep_alive=keep_alive)

    @classmethod
    def open(cls, directory: str | Path, device: str | torch.device = "cpu") -> "TeacherCache":
        """Reopen a disk cache written by :meth:`build` with ``cache_dir`` (memmaps, read-only; no
        pickles). The caller vouches that it belongs to the same teacher and split."""
        directory = Path(directory)
        meta_path = directory / _META
        if not meta_path.is_file():
            raise DataError(f"TeacherCache.open: {meta_path} not found")
        try:
            meta = json.loads(meta_path.read_text())
            files = meta["files"]
            arrays = {k: np.load(directory / f, mmap_mode="r", allow_pickle=False) for k, f in files.items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"TeacherCache.open: {directory} is not a teacher cache ({exc})") from exc
        forecast = arrays.pop("forecast")
        if any(a.shape[0] != forecast.shape[0] for a in arrays.values()):
            raise DataError(f"TeacherCache.open: {directory} holds arrays of different lengths")
        adj_path = directory / "adjacency.npy"
        adjacency = torch.from_numpy(np.load(adj_path, allow_pickle=False)).to(device) if adj_path.is_file() else None
        return cls(forecast, arrays, adjacency=adjacency, device=device, directory=directory)

    def lookup(self, index: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Teacher forecast and features of the windows ``index`` (positions in the split), float32
        on the cache's device; the features dict also holds ``"adaptive_adjacency"`` ``(N, N)`` when
        the teacher has one.

        Shapes:
            index: ``(B,)`` long; returns ``(B, H, N)`` and ``{name: (B, N, D)}``.
        """
        index = torch.as_tensor(index).long()
        if index.dim() != 1:
            raise ConfigError(f"TeacherCache.lookup: index must be (B,), got {tuple(index.shape)}")
        if self.on_disk:
            idx = index.cpu().numpy()
            if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
                raise DataError(f"TeacherCache.lookup: index outside 0..{len(self) - 1}")

            def get(arr: Any) -> Tensor:
                return torch.from_numpy(np.ascontiguousarray(arr[idx])).to(self.device).float()

        else:
            idx_t = index.to(self.device)

            def get(arr: Any) -> Tensor:
                return arr[idx_t].float()

        feats = {name: get(arr) for name, arr in self.features.items()}
        if self.adjacency is not None:
            feats[ADJACENCY_KEY] = self.adjacency
        return get(self.forecast), feats


# --------------------------------------------------------------------------- the steps of TeacherCache.build


def _windows(source: Any, batch_size: int, num_samples: int | None) -> tuple[int, Iterable[Any]]:
    """``(number of windows, batches)`` of a split (walked in order in chunks of ``batch_size``) or of
    an iterable of batches (its size from ``num_samples``, ``source.split`` or ``source.dataset``)."""
    if hasattr(source, "batch") and hasattr(source, "__len__"):
        total = len(source)
        batches: Iterable[Any] = (
            source.batch(torch.arange(i, min(i + batch_size, total))) for i in range(0, total, batch_size)
        )
    else:
        total = num_samples
        for attr in ("split", "dataset"):
            if total is None and hasattr(getattr(source, attr, None), "__len__"):
                total = len(getattr(source, attr))
        if total is None:
            raise ConfigError("TeacherCache.build: cannot tell the number of windows of source; pass num_samples=")
        batches = source
    if total < 1:
        raise DataError("TeacherCache.build: the source holds no windows")
    return total, batches


def teacher_outputs(teacher: nn.Module, x: Tensor, names: Sequence[str], time_pool: str) -> dict[str, Tensor]:
    """``{"forecast": (B, H, N), name: (B, N, D)}``: the teacher's forecast and its features ``names``,
    time-laid-out ones pooled over time: what the cache stores of each window (and what a step that
    labels windows the cache does not hold computes).

    Shapes:
        x: ``(B, T, N, C)``; returns ``{"forecast": (B, H, N), name: (B, N, D)}``.
    """
    if not names:
        return {"forecast": teacher(x)}
    out, feats = teacher(x, return_features=True)
    missing = [n for n in names if n not in feats]
    if missing:
        raise ConfigError(f"TeacherCache.build: teacher features lack {missing} (it returns {sorted(feats)})")
    return {"forecast": out, **{n: pool_time(feats[n], time_pool) for n in names}}


def _allocate(outputs: dict[str, Tensor], total: int, *, dtype: torch.dtype, device: torch.device, max_bytes: int,
              cache_dir: str | Path | None) -> tuple[dict[str, Any], Path | None, Any]:
    """``(store, directory, keep_alive)``: one array of ``total`` rows per output, shaped as the first
    batch's, as tensors on ``device`` when they fit in ``max_bytes``, else ``.npy`` memmaps in
    ``cache_dir`` (a temporary directory kept alive by ``keep_alive`` when not given)."""
    per_sample = sum(o[0].numel() for o in outputs.values()) * torch.empty((), dtype=dtype).element_size()
    if per_sample * total <= max_bytes:
        return {k: torch.empty((total, *o.shape[1:]), dtype=dtype, device=device) for k, o in outputs.items()}, None, None
    keep_alive = None
    if cache_dir is None:
        keep_alive = tempfile.TemporaryDirectory(prefix="stgkd-teacher-cache-")
        directory = Path(keep_alive.name)
    else:
        directory = Path(cache_dir)
        directory.mkdir(parents=True, exist_ok=True)
    store = {
        k: np.lib.format.open_memmap(directory / f"{i:02d}.npy", mode="w+", dtype=_NP_DTYPES[dtype],
                                     shape=(total, *o.shape[1:]))
        for i, (k, o) in enumerate(outputs.items())
    }
    return store, directory, keep_alive


def _mark_seen(seen: Tensor, index: Tensor, batch: int) -> None:
    """Mark the windows ``index`` of a batch of ``batch`` windows as seen; each window exactly once."""
    total = seen.numel()
    if index.numel() != batch or (index < 0).any() or (index >= total).any():
        raise DataError(f"TeacherCache.build: batch index out of 0..{total - 1} or of the wrong length")
    if seen[index].any() or index.unique().numel() != index.numel():
        raise DataError("TeacherCache.build: a window was seen twice; source must visit each once")
    seen[index] = True


def _put(store: dict[str, Any], outputs: dict[str, Tensor], index: Tensor, *, dtype: torch.dtype,
         device: torch.device) -> None:
    """Write a batch's outputs into rows ``index`` of the store."""
    for k, o in outputs.items():
        if isinstance(store[k], np.ndarray):
            store[k][index.numpy()] = o.detach().to("cpu", dtype).numpy()
        else:
            store[k][index.to(device)] = o.detach().to(dtype)


def _applied_adjacency(teacher: nn.Module, device: torch.device) -> Tensor | None:
    """The teacher's adaptive operator as it applies it (row m = what node m aggregates), if it has one."""
    if getattr(teacher, "adaptive", True) and callable(getattr(teacher, "adaptive_support", None)):
        return teacher.adaptive_support().detach().float().to(device)
    return None


def _close_on_disk(directory: Path, forecast: np.ndarray, features: dict[str, np.ndarray], adjacency: Tensor | None,
                   *, total: int, dtype: torch.dtype, time_pool: str) -> None:
    """Flush a disk cache and write what :meth:`TeacherCache.open` reads back (its metadata, the adjacency)."""
    for arr in (forecast, *features.values()):
        arr.flush()
    meta = {"num_samples": total, "dtype": str(dtype).replace("torch.", ""), "time_pool": time_pool,
            "files": {"forecast": "00.npy", **{n: f"{i + 1:02d}.npy" for i, n in enumerate(features)}}}
    (directory / _META).write_text(json.dumps(meta, indent=1))
    if adjacency is not None:
        np.save(directory / "adjacency.npy", adjacency.cpu().numpy(), allow_pickle=False)
